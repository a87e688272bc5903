"""Shared fixtures: tiny images made here (no file from outside the repo), the offline backbone."""
import os

import tempfile  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# --normalize_features caches feature means in the user's cache; tests (and the run.py they start) use
# a fresh one, so they neither read nor leave anything in the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nst_tf_test_cache_")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import nst_tf  # noqa: E402,F401  (pins the Keras backend before keras is imported)


def checkerboard(h: int, w: int) -> np.ndarray:
    """+-1 alternating along both axes: the 2 px period (what the pooling's aliasing adds to a gradient)."""
    return np.indices((h, w)).sum(0) % 2 * 2.0 - 1.0


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, colourful float32 [0, 1] test image (gradients plus a few blobs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for _ in range(3):
        cx, cy, f = rng.uniform(0, 1, 3)
        channels.append(0.5 + 0.5 * np.sin(6 * f * x + 4 * y * (1 - f)) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2)))
    return np.clip(np.stack(channels, -1), 0, 1).astype(np.float32)


def stripes_image(h: int, w: int, period: int = 6) -> np.ndarray:
    """A high-contrast striped texture, float32 [0, 1]."""
    y, x = np.mgrid[0:h, 0:w]
    v = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.5 * y) / period)
    return np.stack([v, 1 - v, 0.5 * np.ones_like(v)], -1).astype(np.float32)


def write_png(path, image: np.ndarray) -> str:
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture
def content_path(tmp_path):
    return write_png(tmp_path / "content.png", smooth_image(40, 48))


@pytest.fixture
def style_path(tmp_path):
    return write_png(tmp_path / "style.png", stripes_image(48, 40))


@pytest.fixture(scope="session")
def hed_backbone():
    from nst_tf import backbones
    return backbones.load_backbone("vgg16_hed")


def make_fake_extractor(channels=(4, 6), seed=0):
    """A two-conv stand-in for a backbone's extractor, for the objective and engine tests: RGB [B, H, W, 3]
    -> {"conv1_1": [B, H, W, c1], "conv2_1": [B, H/2, W/2, c2]}, a ReLU after each conv, average pooling
    between them, fixed random weights from `seed`. Builds in milliseconds, unlike a VGG."""
    import keras
    keras.utils.set_random_seed(seed)
    images = keras.Input((None, None, 3), name="image")
    a = keras.layers.Conv2D(channels[0], 3, padding="same", activation="relu", name="conv1_1")(images)
    pooled = keras.layers.AveragePooling2D(2, name="pool1")(a)
    b = keras.layers.Conv2D(channels[1], 3, padding="same", activation="relu", name="conv2_1")(pooled)
    model = keras.Model(images, {"conv1_1": a, "conv2_1": b}, name="fake_extractor")
    model.trainable = False
    return model


@pytest.fixture(scope="session")
def fake_extractor():
    return make_fake_extractor()
