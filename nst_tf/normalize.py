"""The paper's normalized network (`--normalize_features`): each layer's features divided by the mean
activation of their channels.

Gatys et al. (2016, Sec. 2): "We normalized the network by scaling the weights such that the mean
activation of each convolutional filter over images and positions is equal to one." VGG has only ReLUs
and poolings within channels, so dividing filter k's weights and bias by m_k and multiplying the next
layer's input weights for channel k by m_k leaves everything else unchanged: the normalized network's
features at a layer are exactly F_k / m_k, with m_k the original network's mean activation of channel k
(tests/test_normalize.py checks this against rescaled weights). So the extractor divides each selected
output by its channels' means rather than rewriting the weights.

For ResNet (batch normalization, residual sums) the same division balances the layers' terms but is not
a reparametrization of the network. Its outputs before a ReLU may be negative, so m_k is the mean
absolute activation (the mean itself after a ReLU). Channels that (almost) never fire are not scaled up
without bound: see FLOOR.

The means are measured on a set of images (the bundled photographs of nst_tf/data/images by default,
or `--normalize_images=DIR`) at MEASURE_SIZE px and cached, per backbone, weights, pooling and images,
in `$XDG_CACHE_HOME/nst_tf` (else ~/.cache/nst_tf).
"""
from __future__ import annotations

import hashlib
import json
import os

import keras
import numpy as np

from nst_tf import backbones, image_io, registry
from nst_tf.errors import UserError

BUNDLED_IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "images")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MEASURE_SIZE = 256
# Channels that rarely fire on photographs (on vgg16_hed, means down to 1e-6 of their layer's average,
# and 40% of conv5_1 never fires) would be multiplied by up to 1e6 and, in a style image that excites
# them, drown every other term (measured on the swirls: a style term 1e5 times the content term and a
# garish result; with a floor at 0.1 x the median, conv5_1's term was still 1000 times the others'). So
# no channel is divided by less than this fraction of its layer's mean channel mean.
FLOOR = 0.1
CACHE_VERSION = 3


def image_files(folder: str | None) -> list[str]:
    """The image files in `folder` (the bundled photographs when None), sorted; UserError if none."""
    folder = folder or BUNDLED_IMAGES
    if not os.path.isdir(folder):
        raise UserError(f"--normalize_images={folder!r} is not a folder; give a folder of photographs.")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UserError(f"--normalize_images={folder!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return files


def channel_means(backbone: keras.Model, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """{layer: [C] float32}: m_k = mean over the images and positions of |F_k|, for every selectable layer.

    Each image counts equally, whatever its size (an image too small to reach a deep layer does not count
    there). m_k is at least FLOOR times the mean of the layer's m (1 if that is 0): see FLOOR.
    """
    spec = registry.BACKBONES[backbone.name]
    layers = tuple(ours for ours, _ in registry.layer_table(spec))
    extractor = backbones.build_extractor(backbone, layers)
    per_image = {name: [] for name in layers}
    for image in images:
        features = extractor(image[None])
        for name in layers:
            f = np.abs(features[name].numpy())
            if f.size:
                per_image[name].append(f.mean(axis=(0, 1, 2)))
    means = {}
    for name in layers:
        m = np.mean(per_image[name], axis=0) if per_image[name] else np.ones(features[name].shape[-1])
        floor = FLOOR * np.mean(m) if np.mean(m) > 0 else 1.0
        means[name] = np.maximum(m, floor).astype(np.float32)
    return means


def cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "nst_tf")


def _file_identity(path: str) -> list:
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def cache_path(name: str, pooling: str, weights: str | None, seed: int, files: list[str],
               padding: tuple[str, str] = ("zero", "all")) -> str:
    """Where the means of this backbone, weights, pooling, padding (--padding, --padding_scope: the border
    changes the means a little) and set of images are cached."""
    if weights == "random":
        weights_id = ["random", seed]
    elif weights is not None:
        weights_id = _file_identity(weights)
    elif name == "vgg16_hed":
        weights_id = _file_identity(backbones.hed_weights_path())
    else:
        weights_id = ["imagenet", keras.__version__]
    key = json.dumps([CACHE_VERSION, name, pooling, weights_id, MEASURE_SIZE, [_file_identity(f) for f in files],
                      *([] if padding[0] == "zero" else [list(padding)])])   # zero: the key of earlier caches
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"feature_means_{name}_{pooling}_{digest}.npz")


def feature_scales(backbone: keras.Model, pooling: str, weights: str | None, seed: int,
                   folder: str | None = None, say=print,
                   padding: tuple[str, str] = ("zero", "all")) -> dict[str, np.ndarray]:
    """The channel means of every layer of `backbone` (built with `padding` = (--padding,
    --padding_scope)), from the cache or measured now (and cached)."""
    files = image_files(folder)
    path = cache_path(backbone.name, pooling, weights, seed, files, padding)
    try:
        with np.load(path) as cached:
            return {name: cached[name] for name in cached.files}
    except (OSError, ValueError, KeyError):
        pass   # not cached yet, or an unreadable cache file: measure again
    say(f"normalizing features: measuring mean activations on {len(files)} images (cached in {path})")
    images = [image_io.load_resized(f, MEASURE_SIZE) for f in files]
    means = channel_means(backbone, images)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image_io.atomic_write(path, lambda f: np.savez(f, **means))
    except OSError as e:
        say(f"warning: cannot cache the feature means in {path} ({e.strerror}); they are measured each run")
    return means
