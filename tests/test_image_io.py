"""Image files of every kind users have, and the broken ones, become [0, 1] RGB or a UserError."""
import os

import numpy as np
import pytest
from PIL import Image

from nst_tf import image_io
from nst_tf.errors import UserError

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [200, 100, 50], [0, 0, 0]]], np.uint8)


def check_rgb(arr, shape):
    assert arr.dtype == np.float32 and arr.shape == shape
    assert arr.min() >= 0.0 and arr.max() <= 1.0


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"),
                                          ("WEBP", ".webp")])
def test_lossless_formats_round_trip(tmp_path, fmt, suffix):
    path = tmp_path / f"img{suffix}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(RGB).save(path, format=fmt, **kwargs)
    arr = image_io.load_image(str(path))
    check_rgb(arr, (2, 3, 3))
    np.testing.assert_allclose(arr * 255, RGB, atol=0.5)


def test_jpeg(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path, quality=95)
    arr = image_io.load_image(str(path))
    check_rgb(arr, (8, 8, 3))
    np.testing.assert_allclose(arr, 128 / 255, atol=2 / 255)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))   # 20 wide, 10 high
    exif = img.getexif()
    exif[0x0112] = 6    # "rotate 90 CW to display"
    img.save(path, exif=exif)
    assert image_io.load_image(str(path)).shape == (20, 10, 3)


def test_grayscale_becomes_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 255], [51, 102]], np.uint8), mode="L").save(path)
    arr = image_io.load_image(str(path))
    check_rgb(arr, (2, 2, 3))
    np.testing.assert_allclose(arr[1, 0], [0.2, 0.2, 0.2], atol=1e-6)


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.array([[0, 65535], [32768, 1000]], np.uint16)).save(path)
    arr = image_io.load_image(str(path))
    check_rgb(arr, (2, 2, 3))
    np.testing.assert_allclose(arr[:, :, 0], [[0, 1], [32768 / 65535, 1000 / 65535]], atol=1e-6)


def test_rgba_is_composited_over_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(path)
    arr = image_io.load_image(str(path))
    np.testing.assert_allclose(arr[0, 0], [1, 0, 0])
    np.testing.assert_allclose(arr[0, 1], [1, 1, 1])


def test_palette_and_cmyk(tmp_path):
    pal = tmp_path / "palette.gif"
    Image.fromarray(RGB).convert("P").save(pal)
    check_rgb(image_io.load_image(str(pal)), (2, 3, 3))
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(RGB).convert("CMYK").save(cmyk)
    check_rgb(image_io.load_image(str(cmyk)), (2, 3, 3))


def test_animated_gif_gives_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    np.testing.assert_allclose(image_io.load_image(str(path)), 0.0)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "image not found"),
    (lambda p: p.write_bytes(b""), "image file is empty"),
    (lambda p: p.write_bytes(b"this is text, not a picture"), "not an image Pillow can read"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(UserError, match=message):
        image_io.load_image(str(path))


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        image_io.load_image(str(path))


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UserError, match="declares more than 100 pixels"):
        image_io.load_image(str(path))


def test_path_with_spaces_and_unicode(tmp_path):
    path = tmp_path / "mon tableau é 星.png"
    Image.fromarray(RGB).save(path)
    check_rgb(image_io.load_image(str(path)), (2, 3, 3))


def test_fit_size():
    assert image_io.fit_size(300, 400, 200) == (150, 200)
    assert image_io.fit_size(400, 300, 200) == (200, 150)
    assert image_io.fit_size(10, 10, 64) == (64, 64)   # small images are upscaled to the working size
    with pytest.raises(UserError, match="short side must be at least 16"):
        image_io.fit_size(1, 10000, 512)


def test_resize_keeps_range_and_mean():
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(64, 48, 3)).astype(np.float32)
    out = image_io.resize(img, (32, 24))
    check_rgb(out, (32, 24, 3))
    assert abs(out.mean() - img.mean()) < 0.01


def test_save_image_round_trip_and_is_atomic(tmp_path):
    img = np.random.default_rng(0).uniform(size=(5, 7, 3)).astype(np.float32)
    path = str(tmp_path / "out.png")
    image_io.save_image(img, path)
    np.testing.assert_allclose(image_io.load_image(path), img, atol=0.5 / 255 + 1e-6)
    assert os.listdir(tmp_path) == ["out.png"]     # no temporary file left behind
    assert (os.stat(path).st_mode & 0o777) != 0o600   # usual permissions, not mkstemp's


def test_failed_write_leaves_old_file(tmp_path):
    path = str(tmp_path / "keep.txt")
    image_io.atomic_write(path, lambda f: f.write("old"), mode="w")

    def broken(f):
        f.write("half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        image_io.atomic_write(path, broken, mode="w")
    assert open(path).read() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_noise_is_seeded():
    a, b = image_io.noise_like((4, 4, 3), 7), image_io.noise_like((4, 4, 3), 7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, image_io.noise_like((4, 4, 3), 8))


def test_smooth_noise_is_seeded_zero_centred_and_low_frequency():
    a = image_io.smooth_noise((48, 64, 3), 4, 7)
    assert a.shape == (48, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, image_io.smooth_noise((48, 64, 3), 4, 7))
    assert not np.array_equal(a, image_io.smooth_noise((48, 64, 3), 4, 8))
    assert a.min() < -0.3 and a.max() > 0.3          # around 0, not clipped to [0, 1]
    # 4 cells across 64 px (3 along 48 px): a pixel differs from its neighbour by a small part of the
    # spread; white noise's neighbours differ by about sqrt(2) times it
    step = np.abs(np.diff(a, axis=1)).mean()
    assert step < 0.15 * a.std()
    fine = image_io.smooth_noise((48, 64, 3), 32, 7)
    assert np.abs(np.diff(fine, axis=1)).mean() > 3 * step   # more cells: finer noise
