"""The stylizer's training photos: which files, which are held out, and the random crops a step sees.

Without --train_images the training set is the photographs that ship offline: nst_tf's bundled ones
(nst_tf/data/images), the colour photos of scikit-image's data module that those do not already hold, and
matplotlib's sample portrait. A user's folder (COCO, their own photos) replaces them. Every tenth photo
(at least two of four or more, one of two or three; at most eight) is held out of training: the sample grid
shows them, never seen in training.

Each training image is a random crop of a photo rescaled so that its short side is `size` times a random
factor in [1, MAX_ZOOM] (the rescale), flipped left-right half the time.
"""
from __future__ import annotations

import glob
import os
import warnings

import numpy as np

from nst_tf import image_io
from nst_tf.errors import UserError
from nst_tf.inputs import photo_files

MAX_ZOOM = 2.0
# Photos kept decoded in memory (the default set and small folders); larger folders are read per crop.
CACHE_LIMIT = 64
# scikit-image's colour photographs (its other images are grey, synthetic or microscopy)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg")


def bundled_photos() -> tuple[str, ...]:
    """The offline training set: nst_tf's bundled photos, scikit-image's colour photos (when installed) that
    those do not hold, matplotlib's sample portrait."""
    here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "images")
    files = sorted(glob.glob(os.path.join(here, "*.jpg")))
    have = {os.path.splitext(os.path.basename(p))[0] for p in files}
    try:
        import skimage.data
        folder = os.path.dirname(skimage.data.__file__)
        for name in SKIMAGE_PHOTOS:
            path = os.path.join(folder, name)
            if os.path.splitext(name)[0] not in have and os.path.exists(path):
                files.append(path)
                have.add(os.path.splitext(name)[0])
    except ImportError:
        pass
    import matplotlib
    portrait = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if os.path.exists(portrait):
        files.append(portrait)
    return tuple(files)


def default_set_note() -> str | None:
    """The line that says the offline set lacks scikit-image's photos (it is an extra), or None."""
    import importlib.util
    if importlib.util.find_spec("skimage") is not None:
        return None
    return (f"note: training on the bundled photos alone; pip install \"nst_tf[train]\" adds scikit-image's "
            f"{len(SKIMAGE_PHOTOS)} colour photos to the default set")


def training_photos(folder: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training photos, held-out photos) of --train_images (a folder or a pattern), or of the offline set."""
    if folder is None:
        files = bundled_photos()
    else:
        if not (os.path.isdir(folder) or glob.has_magic(folder)):
            raise UserError(f"--train_images={folder!r} is not a folder; name a folder of photos (or a pattern "
                            "such as 'photos/*.jpg'), or leave it out to train on the bundled photos.")
        files = photo_files(folder)
    if len(files) < 2:
        raise UserError(f"--train_images={folder!r} holds {len(files)} photo; training needs at least 2 (one is "
                        "held out for the sample grid), and many more train a better stylizer.")
    held = max(2 if len(files) >= 4 else 1, min(8, len(files) // 10))
    step = len(files) // held
    held_out = tuple(files[i * step + step - 1] for i in range(held))
    return tuple(f for f in files if f not in held_out), held_out


class Crops:
    """Random training crops of `photos`: `next_batch(n)` -> [n, size, size, 3] float32 in [0, 1].

    A photo that cannot be read is skipped with one warning (a corrupt file in a large folder does not stop
    training); when no photo can be read, UserError."""

    def __init__(self, photos: tuple[str, ...], size: int, seed: int):
        self.photos, self.size = photos, size
        self.rng = np.random.default_rng(seed)
        self.cache: dict[str, np.ndarray] = {}
        self.bad: set[str] = set()

    def _photo(self, path: str) -> np.ndarray | None:
        if path in self.cache:
            return self.cache[path]
        try:
            image = image_io.load_image(path)
        except UserError as e:
            warnings.warn(f"skipping a training photo: {e}")
            self.bad.add(path)
            return None
        short = min(image.shape[:2])
        limit = int(self.size * MAX_ZOOM)
        if short > limit:   # kept at the largest size a crop is taken from
            image = image_io.resize(image, (max(1, round(image.shape[0] * limit / short)),
                                            max(1, round(image.shape[1] * limit / short))))
        if len(self.photos) <= CACHE_LIMIT:
            self.cache[path] = image
        return image

    def crop(self) -> np.ndarray:
        """One random crop [size, size, 3]."""
        while True:
            usable = [p for p in self.photos if p not in self.bad]
            if not usable:
                raise UserError("none of the training photos can be read; check --train_images.")
            image = self._photo(usable[self.rng.integers(len(usable))])
            if image is not None:
                break
        zoom = self.rng.uniform(1.0, MAX_ZOOM) * self.size / min(image.shape[:2])
        h, w = (max(self.size, round(n * zoom)) for n in image.shape[:2])
        scaled = image_io.resize(image, (h, w))
        top, left = self.rng.integers(h - self.size + 1), self.rng.integers(w - self.size + 1)
        out = scaled[top:top + self.size, left:left + self.size]
        return out[:, ::-1] if self.rng.random() < 0.5 else out

    def next_batch(self, n: int) -> np.ndarray:
        return np.stack([self.crop() for _ in range(n)]).astype(np.float32)


def sample_photos(paths: tuple[str, ...], size: int) -> list[np.ndarray]:
    """The held-out photos at `size` px on the longest side, for the sample grid."""
    return [image_io.load_resized(p, size) for p in paths]
