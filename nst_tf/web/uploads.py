"""Uploaded photos and paintings: checked like any input, kept under `<outputs>/.uploads/`. No TensorFlow.

An upload is refused unless its bytes decode as an image (the type is read from the content, not from the
name or the browser's claim), it is at most MAX_BYTES long and declares at most MAX_PIXELS pixels; then
`nst_tf.image_io.load_image` decodes it whole, as a run would, so a truncated or hostile file fails here
with the same one-line message, not minutes later in the child run. The file is kept under a name made of
its own (cleaned) stem and the hash of its bytes: the same picture uploaded twice is one file, and the
client refers to it only by that id, never by a path.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings

from PIL import Image

from nst_tf import image_io
from nst_tf.errors import UserError
from nst_tf.web.store import UPLOADS

MAX_BYTES = 40 * 2**20
# A web upload is a photo or a painting: 50 Mpixel is beyond any camera's frame and keeps one decode of it
# (float32 RGB, 600 MB) affordable; run.py itself accepts up to image_io.MAX_IMAGE_PIXELS from local files.
MAX_PIXELS = 50_000_000
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif", "GIF": ".gif"}
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}-[0-9a-f]{12}\.(jpg|png|bmp|webp|tif|gif)$")


def folder(outputs: str) -> str:
    return os.path.join(outputs, UPLOADS)


def _stem(filename: str) -> str:
    """A safe stem for the stored name, from the client's file name: letters, digits, _ and - only."""
    stem = os.path.splitext(os.path.basename(filename.replace("\\", "/")))[0]
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", stem).strip("_-")[:40] or "image"


def save(outputs: str, filename: str, data: bytes) -> str:
    """Checks `data` (the bytes of an uploaded image called `filename` by the client) and keeps it; returns
    its id. UserError with a one-line message naming `filename` when it is not an acceptable image."""
    shown = _stem(filename) if filename else "the upload"
    if not data:
        raise UserError(f"{shown}: the file is empty; choose a JPEG, PNG, BMP, WebP, TIFF or GIF image.")
    if len(data) > MAX_BYTES:
        raise UserError(f"{shown}: {len(data) / 2**20:.0f} MB is more than the {MAX_BYTES // 2**20} MB an upload "
                        "may have; downscale or compress it first.")
    import io
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind, (width, height) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        kind, width, height = "", MAX_PIXELS + 1, 1
    except Exception:
        raise UserError(f"{shown}: not an image that can be read; choose a JPEG, PNG, BMP, WebP, TIFF or GIF "
                        "image.") from None
    if width * height > MAX_PIXELS:
        raise UserError(f"{shown}: more than {MAX_PIXELS // 10**6} Mpixel; downscale it first.")
    if kind not in FORMATS:
        raise UserError(f"{shown}: a {kind or 'unknown'} file; choose a JPEG, PNG, BMP, WebP, TIFF or GIF image.")
    os.makedirs(folder(outputs), exist_ok=True)
    upload_id = f"{_stem(filename)}-{hashlib.sha256(data).hexdigest()[:12]}{FORMATS[kind]}"
    path = os.path.join(folder(outputs), upload_id)
    if not os.path.isfile(path):
        tmp = path + ".part"
        image_io.atomic_write(tmp, lambda f: f.write(data))
        try:
            image_io.load_image(tmp)   # the whole decode a run would do: truncated, NaN, ... fail here
        except UserError as e:
            os.remove(tmp)
            raise UserError(str(e).replace(repr(tmp), shown)) from None
        os.replace(tmp, path)
    return upload_id


def path_of(outputs: str, upload_id: str) -> str:
    """The stored file of an upload id; UserError if the id is malformed or unknown."""
    path = os.path.join(folder(outputs), upload_id)
    if not UPLOAD_ID.match(upload_id or "") or os.path.islink(path) or not os.path.isfile(path):
        raise UserError(f"unknown upload {upload_id!r}; upload the image again.")
    return path


def id_of(outputs: str, path: str) -> str | None:
    """The upload id of a path a run.flags names, if it is one of the uploads (else None)."""
    if os.path.dirname(os.path.realpath(path)) == os.path.realpath(folder(outputs)):
        name = os.path.basename(path)
        return name if UPLOAD_ID.match(name) else None
    return None


def adopt(outputs: str, path: str) -> str:
    """The upload id of the image file at `path` (a run's input named in its run.flags, read by the server,
    never sent by the client), copying it among the uploads after the same checks."""
    existing = id_of(outputs, path)
    if existing and os.path.isfile(os.path.join(folder(outputs), existing)):
        return existing
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"the run's input {os.path.basename(path)!r} cannot be read ({e.strerror}); upload it "
                        "again.") from None
    return save(outputs, os.path.basename(path), data)
