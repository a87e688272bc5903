"""Whatever files users feed it: a corpus made here, each answered with a one-line error or a correct image,
plus property-based tests (hypothesis) of the image loader and the command-line parser."""
import io
import struct
import zlib

import numpy as np
import pytest
from absl import flags
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

import run as run_script
from nst_tf import image_io
from nst_tf.config import Config, ImageConfig
from nst_tf.errors import UserError
from nst_tf.inputs import load_inputs

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A valid 1x1 PNG whose header declares width x height pixels (10^10: a 30 GB bitmap)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(mode: str, w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 90)], -1).astype(np.uint8)).convert(mode)


def animated_gif() -> bytes:
    frames = [gradient("RGB", 20, 20), Image.new("RGB", (20, 20), "red")]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


jpeg = save(gradient("RGB", 64, 48), "JPEG")
CORPUS = {   # name -> (file name, bytes, expected: "ok" or a fragment of the error)
    "truncated jpeg": ("cut.jpg", jpeg[: len(jpeg) // 2], "truncated"),
    "png bomb": ("bomb.png", png_bomb(), "more than 134217728 pixels"),
    "not an image": ("notes.jpg", b"these are my notes, not a picture\n" * 20, "not an image"),
    "html as png": ("page.png", b"<html><body>404 Not Found</body></html>", "not an image"),
    "empty file": ("empty.png", b"", "empty"),
    "1x1": ("dot.png", save(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), "ok"),
    "1x10000": ("line.png", save(gradient("RGB", 10000, 1), "PNG"), "short side must be at least 16"),
    "16-bit grey": ("deep.png", save(Image.fromarray(np.arange(0, 65536, 16, np.uint16).reshape(64, 64)), "PNG"), "ok"),
    "cmyk jpeg": ("print.jpg", save(gradient("CMYK", 40, 30), "JPEG"), "ok"),
    "palette": ("pal.png", save(gradient("RGB", 40, 30).convert("P", palette=Image.ADAPTIVE), "PNG"), "ok"),
    "alpha": ("alpha.png", save(gradient("RGBA", 40, 30), "PNG"), "ok"),
    "grey+alpha": ("la.png", save(gradient("LA", 40, 30), "PNG"), "ok"),
    "animated gif": ("anim.gif", animated_gif(), "ok"),
    "tiff": ("scan.tiff", save(gradient("RGB", 40, 30), "TIFF"), "ok"),
    "webp": ("web.webp", save(gradient("RGB", 40, 30), "WEBP"), "ok"),
    "png named jpg": ("wrong ext.jpg", save(gradient("RGB", 40, 30), "PNG"), "ok"),
    "unicode path": ("Straße – 東京 photo.png", save(gradient("RGB", 40, 30), "PNG"), "ok"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_file_gives_an_image_or_one_line(tmp_path, case):
    name, data, expected = CORPUS[case]
    path = tmp_path / name
    path.write_bytes(data)
    config = Config(images=ImageConfig(content=str(path), style=str(path), max_size=32))
    if expected == "ok":
        inputs = load_inputs(config)
        for image in (inputs.content, *inputs.styles):
            assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
            assert max(image.shape[:2]) == 32 and np.isfinite(image).all()
            assert image.min() >= 0 and image.max() <= 1
    else:
        with pytest.raises(UserError) as err:
            load_inputs(config)
        message = str(err.value)
        assert expected in message and "\n" not in message


def test_bomb_limit_is_explicit():
    assert image_io.MAX_IMAGE_PIXELS == 2**27 == Image.MAX_IMAGE_PIXELS


MODES = st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "I;16", "1"])
FORMATS = st.sampled_from(["PNG", "BMP", "TIFF", "GIF", "JPEG", "WEBP"])


@PROPERTY
@given(mode=MODES, fmt=FORMATS, w=st.integers(1, 48), h=st.integers(1, 48), seed=st.integers(0, 2**16))
def test_loader_gives_float_rgb_in_range_for_any_mode_and_format(tmp_path, mode, fmt, w, h, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257) if mode == "I;16" else image.convert(mode)
    try:
        data = save(image, fmt)
    except (OSError, ValueError, KeyError):
        return   # this format cannot store this mode: nothing to load
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    loaded = image_io.load_image(str(path))
    assert loaded.shape == (h, w, 3) and loaded.dtype == np.float32
    assert loaded.min() >= 0 and loaded.max() <= 1
    if fmt in ("PNG", "BMP", "TIFF") and mode == "RGB":   # lossless: the pixels come back exactly
        np.testing.assert_array_equal(image_io.to_uint8(loaded), pixels)


@PROPERTY
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".webp", ".tif"]))
def test_loader_answers_any_bytes_with_an_image_or_a_user_error(tmp_path, data, suffix):
    path = tmp_path / f"blob{suffix}"
    path.write_bytes(data)
    try:
        image = image_io.load_image(str(path))
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert image.ndim == 3 and image.shape[2] == 3


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
               max_size=30)
FLAG_NAMES = ["max_size", "style_scale", "style_weight", "tv_weight", "num_steps", "learning_rate", "seed",
              "content_layers", "style_layers", "style_layer_weights", "gram_norm", "init", "sweep",
              "sweep_batch", "mode", "save_every", "log_every", "backbone", "run_name", "feature_transform",
              "softmax_temperature", "normalize_features", "normalize_images", "list_layers", "preserve_colors",
              "color_match", "color_only", "style_blend_weights", "scales", "scale_steps", "content_mask",
              "style_mask", "resolution_invariant", "normalize_gradients", "style"]


@PROPERTY
@given(values=st.dictionaries(st.sampled_from(FLAG_NAMES), TEXT, max_size=4))
def test_parser_answers_any_flags_with_a_config_or_a_one_line_error(tmp_path, values):
    content = tmp_path / "c.png"
    content.write_bytes(save(gradient("RGB", 20, 20), "PNG"))
    argv = ["run.py", f"--content={content}", f"--style={content}",
            *(f"--{name}={value}" for name, value in values.items())]
    run_script.FLAGS.unparse_flags()
    try:
        config, cells, _ = run_script.parse(argv)
    except (UserError, flags.Error) as e:
        assert str(e) and "\n" not in str(e).strip()
    else:
        if run_script.FLAGS.list_layers:   # --list_layers needs no config
            assert config is None and cells == []
        else:
            assert isinstance(config, Config)
            assert all(isinstance(c.config, Config) for c in cells)
    finally:
        run_script.FLAGS.unparse_flags()
