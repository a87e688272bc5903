"""End to end: `run.py` as a user runs it, on tiny images, with the offline backbone."""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import run as run_script
from nst_tf import image_io
from tests.conftest import write_png, smooth_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--backbone=vgg16_hed", "--max_size=32", "--seed=3", "--progress=false",
        "--canvas_margin=0"]   # a 16 px canvas would quadruple a 32 px image; its own tests are in test_stylize


def main_in_process(*args) -> int:
    """run.py's main() in this process (as a subprocess test would, without starting TensorFlow again)."""
    run_script.FLAGS.unparse_flags()
    try:
        return run_script.main(["run.py", *args])
    finally:
        run_script.FLAGS.unparse_flags()


def run_py(*args, timeout=300, **env_vars):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_vars}
    return subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


def wait_for(pattern, timeout=180):
    """Waits until a file matching `pattern` exists (the run has got that far)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not glob.glob(pattern):
        time.sleep(0.2)
    assert glob.glob(pattern), f"nothing matched {pattern} after {timeout} s"


def sigterm_after(pattern, *args):
    """Starts an endless run.py, sends SIGTERM once a file matching `pattern` exists; (stderr, process)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), "--num_steps=100000", "--log_every=1",
                             "--save_every=5", *TINY, *args], stderr=subprocess.PIPE, text=True, env=env)
    wait_for(pattern)
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)[1], proc


def only_run(out_dir):
    runs = os.listdir(out_dir)
    assert len(runs) == 1, runs
    return os.path.join(out_dir, runs[0])


@pytest.mark.slow
def test_transfer_writes_every_output(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=6", "--save_every=3",
                  "--log_every=2", "--tv_weight=10", f"--output_dir={out}", *TINY)
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(out)
    assert os.path.basename(run_dir).startswith("content_style_")
    files = set(os.listdir(run_dir))
    assert {"result.png", "run.flags", "config.json", "losses.csv", "losses.png", "summary.json",
            "snapshots"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    # save_every=3, log_every=2: the first logged step at or after 3 (the last step is result.png)
    assert os.listdir(os.path.join(run_dir, "snapshots")) == ["step_00004.png"]
    assert not [f for f in files if f.endswith(".tmp")]

    result = image_io.load_image(os.path.join(run_dir, "result.png"))
    assert result.shape == (27, 32, 3)      # the 40x48 (h x w) content image at a longest side of 32
    with open(os.path.join(run_dir, "losses.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 2, 4, 6]
    for name in ("total", "content/conv4_2", "style/conv1_1", "style/conv5_1", "tv", "weighted/style",
                 "weighted/content/conv4_2", "wall_s"):
        assert name in rows[0]
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["status"] == "done" and summary["steps"] == 6 and summary["wall_time_s"] > 0
    assert summary["details"]["backbone"] == "vgg16_hed" and summary["mode"] == "optimize"
    flags_text = open(os.path.join(run_dir, "run.flags")).read()
    assert flags_text.startswith("# Reproduces run") and "--seed=3" in flags_text
    assert "--backbone=vgg16_hed" in flags_text and "--tv_weight=10.0" in flags_text

    # TensorBoard events hold the named scalars.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(run_dir)
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert {"total", "content/conv4_2", "style/conv3_1", "weighted/tv", "image/2_result"} <= set(tags)


@pytest.mark.slow
def test_flagfile_reproduces_the_run(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    first = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=3", "--init=noise",
                   f"--output_dir={out}", "--run_name=a", *TINY)
    assert first.returncode == 0, first.stderr
    again = run_py(f"--flagfile={out}/a/run.flags", "--run_name=b", "--progress=false")
    assert again.returncode == 0, again.stderr
    a = image_io.load_image(str(out / "a" / "result.png"))
    b = image_io.load_image(str(out / "b" / "result.png"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_content_and_texture_modes(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py("--mode=texture", f"--style={style_path}", "--num_steps=2", f"--output_dir={out}", *TINY)
    assert proc.returncode == 0, proc.stderr
    proc = run_py("--mode=content", f"--content={content_path}", "--content_layers=conv_1", "--num_steps=2",
                  f"--output_dir={out}", *TINY)
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(out))
    assert names[0].startswith("content_content_") and names[1].startswith("texture_style_")
    texture_csv = open(os.path.join(out, names[1], "losses.csv")).readline()
    assert "style/conv1_1" in texture_csv and "content/" not in texture_csv
    content_csv = open(os.path.join(out, names[0], "losses.csv")).readline()
    assert "content/conv1_1" in content_csv and "style/" not in content_csv


@pytest.mark.slow
def test_sweep_from_the_command_line(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=2", f"--output_dir={out}",
                  "--sweep=ratio:1e-3,1e-2", "--sweep_batch=2", *TINY)
    assert proc.returncode == 0, proc.stderr
    sweep_dir = only_run(out)
    assert os.path.basename(sweep_dir).startswith("sweep_content_style_")
    assert "grid:" in proc.stdout and "batch 1/1: ratio=1e-3; ratio=1e-2" in proc.stdout
    again = run_py(f"--flagfile={sweep_dir}/sweep.flags", "--run_name=again", "--progress=false")
    assert again.returncode == 0, again.stderr
    for cell in ("00_ratio=1e-3", "01_ratio=1e-2"):
        a = image_io.load_image(os.path.join(sweep_dir, cell, "result.png"))
        b = image_io.load_image(os.path.join(out, "again", cell, "result.png"))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args, message", [
    (["--content=missing.jpg", "--style=missing.jpg"], "image not found: 'missing.jpg'"),
    (["--style_layers=conv1_1,conv9_1"], "unknown layer 'conv9_1' for vgg16_hed; valid layers:"),
    (["--max_size=99999"], "--max_size=99999 is out of range"),
    (["--num_steps=abc"], "--num_steps"),
    (["--style_layer_weights=1,x"], "must be comma-separated numbers"),
    (["--backbone=alexnet"], "--backbone"),
    (["--weights=nowhere.h5"], "weights file not found"),
    (["stray"], "unexpected argument 'stray'"),
    (["--sweep=colour:1,2"], "'colour' cannot be swept"),
    (["--sweep=style:missing.jpg,other.jpg"], "image not found: 'missing.jpg'"),
    (["--sweep=style_layers:conv1_1;conv9_1"], "sweep cell style_layers=conv9_1: unknown layer 'conv9_1'"),
    (["--resume=nowhere"], "'nowhere' is not a run or sweep folder"),
    (["--backbone=resnet50", "--weights=random", "--style_layers=conv1_1"],
     "unknown layer 'conv1_1' for resnet50; its layers are Keras' names"),
    (["--feature_transform=cosine"], "--feature_transform"),
    (["--normalize_features", "--normalize_images=nowhere"], "--normalize_images='nowhere' is not a folder"),
    (["--list_layers", "--max_size=5"], "--max_size=5 is out of range"),
    (["--style_blend_weights=1,2"], "--style_blend_weights has 2 values for 1 style images"),
    (["--scales=64,32"], "must grow from scale to scale"),
    (["--scales=32,x"], "--scales=32,x must be comma-separated whole numbers"),
    (["--scales=16,32"], "short side must be at least 16 pixels; crop it to a less extreme aspect ratio or raise "
                         "the smallest of --scales"),
    (["--content_mask=nowhere.png", "--style_mask=#ffffff"], "image not found: 'nowhere.png'"),
    (["--style_mask=#ffffff"], "--content_mask and --style_mask go together"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content_path, style_path, args, message, capsys):
    base = [f"--content={content_path}", f"--style={style_path}", f"--output_dir={tmp_path / 'out'}", *TINY,
            "--num_steps=1"]
    code = main_in_process(*base, *args)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], stderr
    assert "Traceback" not in stderr
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


@pytest.mark.slow   # a fresh process loading TensorFlow: 5 s
def test_exit_status_of_bad_input_in_a_fresh_process(tmp_path, content_path, style_path):
    """One bad-input case through a real process (the others run main() in-process): exit 2, one line."""
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--style_layers=conv9_1", *TINY)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: unknown layer 'conv9_1'")
    assert "Traceback" not in proc.stderr


def test_corrupt_image_is_one_line(tmp_path, style_path, capsys):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main_in_process(f"--content={bad}", f"--style={style_path}", f"--output_dir={tmp_path}", *TINY)
    stderr = capsys.readouterr().err
    assert code == 2 and "error:" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_non_finite_loss_stops_with_exit_2(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=5",
                  "--style_weight=1e38", "--content_weight=1e38", f"--output_dir={out}", *TINY)
    assert proc.returncode == 2, proc.stderr
    assert "the loss became non-finite at step 0" in proc.stderr and "Traceback" not in proc.stderr
    summary = json.load(open(os.path.join(only_run(out), "summary.json")))
    assert summary["status"] == "diverged"


@pytest.mark.slow
def test_sigterm_keeps_the_last_image(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    err, proc = sigterm_after(str(out / "*" / "snapshots" / "step_*.png"), f"--content={content_path}",
                              f"--style={style_path}", f"--output_dir={out}")
    assert proc.returncode == 130, err
    assert "stopped: interrupted; the last good image (step" in err
    run_dir = only_run(out)
    assert os.path.exists(os.path.join(run_dir, "result.png"))
    assert json.load(open(os.path.join(run_dir, "summary.json")))["status"] == "interrupted"

    # --resume continues it in the same folder (here to two steps past where it stopped)
    step = int(np.load(os.path.join(run_dir, "state.npz"))["step"])
    proc = run_py(f"--resume={run_dir}", f"--num_steps={step + 2}", "--progress=false")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming {run_dir} at step {step}" in proc.stdout
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["status"] == "done" and summary["steps"] == step + 2
    assert only_run(out) == run_dir


@pytest.mark.slow
def test_sigterm_during_a_sweep_keeps_the_grid(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    err, proc = sigterm_after(str(out / "*" / "00_seed=1" / "snapshots" / "step_*.png"), f"--content={content_path}",
                              f"--style={style_path}", f"--output_dir={out}", "--sweep=seed:1,2", "--sweep_batch=1")
    assert proc.returncode == 130, err
    assert "stopped: interrupted; the finished cells and the last images" in err
    sweep_dir = only_run(out)
    rows = list(csv.DictReader(open(os.path.join(sweep_dir, "results.csv"))))
    assert [r["status"] for r in rows] == ["interrupted", "not run"]
    assert os.path.exists(os.path.join(sweep_dir, "grid.png"))
    assert os.path.exists(os.path.join(sweep_dir, "00_seed=1", "result.png"))

    # --resume on the sweep folder: the stopped cell continues, the other starts, one grid covers both
    step = int(np.load(os.path.join(sweep_dir, "00_seed=1", "state.npz"))["step"])
    proc = run_py(f"--resume={sweep_dir}", f"--num_steps={step + 2}", "--progress=false")
    assert proc.returncode == 0, proc.stderr
    assert "(resumed): seed=1" in proc.stdout and only_run(out) == sweep_dir
    rows = list(csv.DictReader(open(os.path.join(sweep_dir, "results.csv"))))
    assert [(r["status"], r["steps"]) for r in rows] == [("done", str(step + 2)), ("done", str(step + 2))]


def test_config_from_flags_round_trip(tmp_path):
    """Every flag of a written flagfile parses back to the same config."""
    from absl import flags
    from nst_tf.config import to_flags
    argv = ["run.py", "--content=a.jpg", "--style=b.png", "--style_layer_weights=0.1,0.2,0.3,0.2,0.2",
            "--content_layers=conv4_2,conv5_2", "--seed=9", "--tv_weight=0.5", "--normalize_features",
            "--feature_transform=softmax", "--normalize_images=photos"]
    run_script.FLAGS.unparse_flags()
    run_script.FLAGS(argv)
    config = run_script.config_from_flags()
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("\n".join(to_flags(config)))
    run_script.FLAGS.unparse_flags()
    run_script.FLAGS(["run.py", f"--flagfile={flagfile}"])
    assert run_script.config_from_flags() == config
    run_script.FLAGS.unparse_flags()
    assert isinstance(run_script.FLAGS, flags.FlagValues)


@pytest.mark.slow   # a fresh process loading TensorFlow: 5 s
def test_tensorflow_start_up_lines_are_hidden(tmp_path, content_path, style_path):
    """Without TF_CPP_MIN_LOG_LEVEL set, stderr holds only our own line (and is restored after loading)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), f"--content={content_path}",
                           f"--style={style_path}", "--style_layers=conv9_1", f"--output_dir={tmp_path}", *TINY],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(proc.stderr.splitlines()) == 1 and "unknown layer 'conv9_1'" in proc.stderr


def test_list_layers(content_path, capsys):
    assert main_in_process("--list_layers", "--backbone=resnet50", "--max_size=64") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("resnet50: ResNet-50")
    assert any(line.split()[:6] == ["conv5_block2_2_conv", "2", "x", "2", "x", "512"] for line in lines)
    assert any(line.split()[0] == "conv1_relu" and line.split()[-1] == "style" for line in lines[2:-3])
    assert "default style layers:   conv1_relu,conv2_block1_1_conv," in out
    assert "default feature transform: softmax" in out
    assert "finds them from the pair (--strength=0.5)" in lines[-1]   # resnet50 is not where they were chosen
    # The content image's aspect: 40 x 48 at --max_size=48.
    assert main_in_process("--list_layers", "--backbone=vgg16_hed", "--max_size=48", f"--content={content_path}") == 0
    out = capsys.readouterr().out
    assert any(line.split()[:6] == ["conv1_1", "40", "x", "48", "x", "64"] for line in out.splitlines())
    assert "default content layers: conv4_2" in out
    assert "with --style_loss=sliced (the default for a still image): 3.33333e+06" in out
    assert "finds them from the pair" not in out


@pytest.mark.slow
def test_resnet50_and_normalized_runs(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=2", f"--output_dir={out}",
                  "--run_name=resnet", "--backbone=resnet50", "--weights=random", "--max_size=32", "--seed=1",
                  "--progress=false")
    assert proc.returncode == 0, proc.stderr
    header = open(out / "resnet" / "losses.csv").readline()
    assert "content/conv5_block1_1_conv" in header and "style/conv1_relu" in header
    flagfile = (out / "resnet" / "run.flags").read_text().splitlines()
    assert "--feature_transform=softmax" in flagfile   # and its weights found: resnet50's fixed beta was never chosen
    assert "--strength=0.5 found its weights" in flagfile[0] and "not chosen on resnet50" in proc.stdout
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", smooth_image(40, 40))
    write_png(photos / "b.png", smooth_image(30, 40, seed=4))
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--num_steps=2", f"--output_dir={out}",
                  "--run_name=normalized", "--normalize_features", f"--normalize_images={photos}", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "measuring mean activations on 2 images" in proc.stdout
    assert "--normalize_features=True" in (out / "normalized" / "run.flags").read_text().splitlines()


@pytest.mark.slow
def test_color_controls(tmp_path, content_path, style_path):
    from nst_tf import color
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--color_only", f"--output_dir={out}",
                  "--run_name=colors", "--max_size=32", "--progress=false")
    assert proc.returncode == 0, proc.stderr
    result = image_io.load_image(str(out / "colors" / "result.png"))
    style = image_io.load_image(style_path)
    np.testing.assert_allclose(result.reshape(-1, 3).mean(0), style.reshape(-1, 3).mean(0), atol=0.03)
    content = image_io.load_resized(content_path, 32)
    for mode in ("luminance", "swap"):
        proc = run_py(f"--content={content_path}", f"--style={style_path}", f"--preserve_colors={mode}",
                      "--num_steps=3", f"--output_dir={out}", f"--run_name={mode}", *TINY)
        assert proc.returncode == 0, proc.stderr
        result = image_io.load_image(str(out / mode / "result.png"))
        # The content's colour channels (I, Q) are back in the result, up to clipping and 8-bit rounding.
        np.testing.assert_allclose(color.rgb_to_yiq(result)[..., 1:], color.rgb_to_yiq(content)[..., 1:], atol=0.03)


def label_mask(path, shape, left, right):
    """A two-region label image: the left half one colour, the right half another."""
    from PIL import Image
    arr = np.zeros((*shape, 3), np.uint8)
    arr[:, : shape[1] // 2] = left
    arr[:, shape[1] // 2:] = right
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.mark.slow
def test_blend_masks_and_scales(tmp_path, content_path, style_path):
    """Two styles blended; each half of the content styled by its own style image; coarse to fine."""
    out = tmp_path / "out"
    other = write_png(tmp_path / "other.png", smooth_image(30, 30, seed=9))
    styles = f"--style={style_path},{other}"
    proc = run_py(f"--content={content_path}", styles, "--style_blend_weights=3,1", "--num_steps=2",
                  f"--output_dir={out}", "--run_name=blend", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "--style_blend_weights=3.0,1.0" in (out / "blend" / "run.flags").read_text().splitlines()

    mask = label_mask(tmp_path / "mask.png", (40, 48), (255, 0, 0), (0, 0, 255))
    proc = run_py(f"--content={content_path}", styles, f"--content_mask={mask}", "--style_mask=#ff0000,#0000ff",
                  "--num_steps=2", f"--output_dir={out}", "--run_name=masked", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert image_io.load_image(str(out / "masked" / "result.png")).shape == (27, 32, 3)

    bad = label_mask(tmp_path / "bad.png", (48, 40), (255, 0, 0), (0, 255, 0))   # over the 40x48 style
    proc = run_py(f"--content={content_path}", styles, f"--content_mask={mask}", f"--style_mask={bad},#0000ff",
                  "--num_steps=2", f"--output_dir={out}", "--run_name=bad", *TINY)
    assert proc.returncode == 2 and "#00ff00 that --content_mask lacks" in proc.stderr, proc.stderr

    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--scales=24,32", "--scale_steps=3,2",
                  f"--output_dir={out}", "--run_name=pyramid", *TINY)
    assert proc.returncode == 0, proc.stderr
    coarse = json.load(open(out / "pyramid" / "scales" / "24" / "summary.json"))
    fine = json.load(open(out / "pyramid" / "summary.json"))
    assert (coarse["status"], coarse["steps"], fine["status"], fine["steps"]) == ("done", 3, "done", 2)
    assert image_io.load_image(str(out / "pyramid" / "scales" / "24" / "result.png")).shape == (20, 24, 3)
    assert image_io.load_image(str(out / "pyramid" / "result.png")).shape == (27, 32, 3)


@pytest.mark.slow
def test_pyramid_interrupted_at_a_coarse_scale_resumes_there(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    err, proc = sigterm_after(str(out / "*" / "scales" / "24" / "snapshots" / "step_*.png"),
                              f"--content={content_path}", f"--style={style_path}", f"--output_dir={out}",
                              "--scales=24,32")
    assert proc.returncode == 130, err
    run_dir = only_run(out)
    assert os.path.exists(os.path.join(run_dir, "scales", "24", "result.png"))
    step = int(np.load(os.path.join(run_dir, "scales", "24", "state.npz"))["step"])
    proc = run_py(f"--resume={run_dir}", f"--scale_steps={step + 2},3", "--progress=false")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming {run_dir} at 24 px, step {step}" in proc.stdout
    coarse = json.load(open(os.path.join(run_dir, "scales", "24", "summary.json")))
    assert coarse["status"] == "done" and coarse["steps"] == step + 2
    assert json.load(open(os.path.join(run_dir, "summary.json")))["steps"] == 3


@pytest.mark.slow
def test_tiled_run_equals_the_untiled_run(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    # tiles run without the style octaves (a downsampled copy is not tiled) and with the Gram term (the sliced
    # one compares whole feature maps): the whole run goes without them too
    args = [f"--content={content_path}", f"--style={style_path}", "--num_steps=3", "--log_every=1",
            f"--output_dir={out}", "--style_octaves=0", "--style_loss=gram", *TINY]
    for name, tile in (("whole", "0"), ("tiled", "64")):
        proc = run_py(*args, f"--run_name={name}", f"--tile_size={tile}", "--max_size=128")
        assert proc.returncode == 0, proc.stderr
    whole, tiled = (list(csv.DictReader(open(out / name / "losses.csv"))) for name in ("whole", "tiled"))
    for a, b in zip(whole, tiled):
        assert float(b["total"]) == pytest.approx(float(a["total"]), rel=1e-4)
    assert float(whole[-1]["total"]) < float(whole[0]["total"])
    diff = np.abs(image_io.load_image(str(out / "whole" / "result.png")) -
                  image_io.load_image(str(out / "tiled" / "result.png")))
    assert diff.max() <= 1 / 255


@pytest.mark.slow
def test_max_size_auto_picks_the_largest_size_that_fits(tmp_path, content_path, style_path, monkeypatch, capsys):
    from nst_tf import memory, registry
    style = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    # the default --style_octaves=2 adds the copies at 1/2 (a 64 px image's are 32 px, more than the 16 px margin)
    octaves = registry.octave_layers(style, 2, registry.BACKBONES["vgg16_hed"], 64)
    assert octaves
    layers = ("conv4_2",) + style + octaves
    monkeypatch.setenv("NST_TF_FREE_MEMORY", str(memory.predict("vgg16_hed", "avg", layers, 64, 64) / memory.HEADROOM))
    out = tmp_path / "out"
    code = main_in_process(f"--content={content_path}", f"--style={style_path}", "--num_steps=2",
                           f"--output_dir={out}", "--run_name=auto", *TINY, "--max_size=auto")
    assert code == 0, capsys.readouterr().err
    assert "--max_size=auto: 64 px" in capsys.readouterr().out
    assert image_io.load_image(str(out / "auto" / "result.png")).shape == (53, 64, 3)
    assert "--max_size=64" in open(out / "auto" / "run.flags").read()


def test_a_size_that_cannot_fit_is_refused_before_the_run(tmp_path, content_path, style_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setenv("NST_TF_FREE_MEMORY", str(2**29))
    assert main_in_process(f"--content={content_path}", f"--style={style_path}", f"--output_dir={out}", *TINY) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: --max_size=32: a whole-image step needs about 1.0 GiB but 0.5 GiB is free; free some memory")
    assert not out.exists()


@pytest.mark.slow
def test_lbfgs_run(tmp_path, content_path, style_path):
    out = tmp_path / "out"
    proc = run_py(f"--content={content_path}", f"--style={style_path}", "--optimizer=lbfgs", "--num_steps=4",
                  "--log_every=2", f"--output_dir={out}", "--run_name=lbfgs", *TINY)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "lbfgs" / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    assert "lbfgs/position" in np.load(out / "lbfgs" / "state.npz")
