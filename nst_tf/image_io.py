"""The only place that turns files into images and images into files.

The project's one image convention: float32 RGB, values in [0, 1]; NumPy arrays are HWC, tensors fed to
the network are NHWC. Whatever a file holds (EXIF rotation, grayscale, alpha, palette, CMYK, 16 bits,
animation) is converted to that here, and every failure is a `UserError` with a one-line message.
"""
from __future__ import annotations

import os
import tempfile
import warnings
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_tf.errors import UserError

# Pillow's decompression-bomb guard, made explicit: 2**27 pixels (e.g. 16k x 8k) is far beyond anything
# the optimization can use, and refusing larger files keeps a hostile PNG from exhausting memory.
MAX_IMAGE_PIXELS = 2**27
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image of any mode -> float32 HxWx3 in [0, 1]. Alpha is composited over white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit or float grayscale: Pillow's convert("RGB") would clip these to 8 bits wrongly.
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):   # 16 bits whatever the values: 200 of 65535 is dark, not bright
            scale = 65535.0
        elif img.mode == "I":   # 32-bit integers: no depth recorded; 16-bit range if it goes past 8 bits
            scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        else:   # "F": floats in [0, 1]; NaN stays NaN so that load_image refuses it
            scale = 1.0
            arr[np.isinf(arr)] = np.nan
        gray = np.clip(arr / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return rgb


def from_pil(img: Image.Image) -> np.ndarray:
    """A PIL image (any mode, EXIF rotation applied) as float32 HxWx3 RGB in [0, 1], as `load_image` reads files."""
    arr = _to_float_rgb(ImageOps.exif_transpose(img))
    if not np.isfinite(arr).all():
        raise UserError("the image holds non-finite values (NaN or infinity); pass pixels in [0, 1].")
    return arr


def check_image_path(path: str) -> None:
    """Raises UserError unless `path` is a non-empty file (cheap: run.py checks before TensorFlow loads)."""
    if not os.path.exists(path):
        raise UserError(f"image not found: {path!r}; check the path.")
    if os.path.isdir(path):
        raise UserError(f"{path!r} is a folder, not an image file.")
    if os.path.getsize(path) == 0:
        raise UserError(f"image file is empty: {path!r}; use a JPEG, PNG, BMP, WebP or TIFF file.")


def check_model_path(path: str) -> None:
    """Raises UserError unless `path` is a non-empty .keras or .onnx file (--model, checked before TensorFlow
    loads)."""
    if not os.path.isfile(path):
        raise UserError(f"stylizer not found: {path!r}; name the stylizer.keras of a --mode=train run folder.")
    if not (path.endswith(".keras") or path.lower().endswith(".onnx")) or os.path.getsize(path) == 0:
        raise UserError(f"{path!r} is not a stylizer file (stylizer.keras, written by --mode=train, or its "
                        "stylizer.onnx, written by --export=onnx).")


def load_image(path: str) -> np.ndarray:
    """Reads an image file -> float32 HxWx3 RGB in [0, 1], upright (EXIF orientation applied).

    Animated files give their first frame. Raises UserError for a missing, empty, corrupt, truncated or
    oversized file.
    """
    check_image_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_float_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path!r} declares more than {MAX_IMAGE_PIXELS} pixels; "
                        "downscale it before use.") from None
    except UnidentifiedImageError:
        raise UserError(f"{path!r} is not an image Pillow can read; "
                        "use a JPEG, PNG, BMP, WebP or TIFF file.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UserError(f"cannot decode {path!r} ({e}); the file may be truncated or corrupt.") from None
    if min(arr.shape[:2]) < 1:
        raise UserError(f"{path!r} has no pixels.")
    if not np.isfinite(arr).all():
        share = np.mean(~np.isfinite(arr[..., 0]))
        raise UserError(f"{path!r} holds non-finite values (NaN or infinity) in {share:.1%} of its pixels; "
                        "replace them (e.g. by 0) and save it again.")
    return arr


def fit_size(height: int, width: int, max_side: int, min_side: int = 16, flag: str = "--max_size") -> tuple[int, int]:
    """(h, w) scaled so that the longest side is `max_side`, keeping the aspect ratio.

    Raises UserError when the short side would fall below `min_side` (the network pools 4 times).
    """
    scale = max_side / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if min(h, w) < min_side:
        raise UserError(f"an image of {width}x{height} pixels becomes {w}x{h} at a longest side of "
                        f"{max_side}: its short side must be at least {min_side} pixels; crop it to a "
                        f"less extreme aspect ratio or raise {flag}.")
    return h, w


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resamples HxWx3 [0, 1] to `size` = (h, w): Lanczos, with antialiasing when shrinking."""
    if image.shape[:2] == tuple(size):
        return image.astype(np.float32)
    return np.clip(_lanczos(image, size), 0.0, 1.0)


def _lanczos(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWxC float values resampled to `size` = (h, w), each channel alone, by Lanczos; not clipped."""
    planes = [np.asarray(Image.fromarray(array[..., c].astype(np.float32), mode="F")
                         .resize((size[1], size[0]), Image.Resampling.LANCZOS)) for c in range(array.shape[-1])]
    return np.stack(planes, axis=-1).astype(np.float32)


def load_resized(path: str, max_side: int) -> np.ndarray:
    """`load_image` then `resize` so the longest side is `max_side`."""
    image = load_image(path)
    return resize(image, fit_size(*image.shape[:2], max_side))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] HxWx3 (or 1xHxWx3) -> uint8 HxWx3, rounded."""
    image = np.asarray(image)
    if image.ndim == 4:
        image = image[0]
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str, write, mode: str = "wb") -> None:
    """Calls `write(fileobj)` on a temporary file beside `path`, then renames it over `path`.

    Readers see the old file or the whole new one, never a partial one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_image(image: np.ndarray, path: str) -> None:
    """Writes a [0, 1] image as an 8-bit PNG, atomically."""
    pil = Image.fromarray(to_uint8(image), mode="RGB")
    atomic_write(path, lambda f: pil.save(f, format="PNG"))


def noise_like(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Uniform white noise in [0, 1], float32, reproducible from `seed`."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=shape).astype(np.float32)


def smooth_noise(shape: tuple[int, int, int], cells: int, seed: int) -> np.ndarray:
    """Low-frequency noise [H, W, C], float32, reproducible from `seed`: independent standard normal values on
    a grid of `cells` cells across the longest side (at least 2 along each side), resampled to H x W by
    Lanczos (not clipped: values around 0, standard deviation a little under 1)."""
    h, w, c = shape
    gh, gw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    grid = np.random.default_rng([seed, 1]).standard_normal((gh, gw, c))
    return _lanczos(grid, (h, w))
