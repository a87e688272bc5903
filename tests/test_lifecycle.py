"""The run lifecycle: one folder, one summary schema and one mapping of errors for every mode."""
import json
import os
import signal
import sys

import pytest

import nst_tf
from nst_tf import lifecycle, rundir
from nst_tf.config import Config, ImageConfig, OptimConfig, OutputConfig, StylizerConfig
from nst_tf.errors import Diverged, Interrupted, OutOfMemory, UserError
from tests.conftest import smooth_image, write_png


def summary_of(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def assert_schema(summary, mode, status="done"):
    assert tuple(summary) == rundir.SUMMARY_KEYS
    assert summary["mode"] == mode and summary["status"] == status
    assert isinstance(summary["steps"], int) and summary["wall_time_s"] >= 0
    assert set(summary["versions"]) == {"nst_tf", "python", "tensorflow", "keras"}
    assert isinstance(summary["final"], dict) and isinstance(summary["details"], dict)


# A mode of its own, registered as the video mode will be: its work alone, no TensorFlow.
calls = {}


def fake_work(run):
    run.say("working")
    folder = run.open()
    run.record(steps=3, device="nowhere", final={"total": 1.5}, details={"frames": 3})
    what = calls.get("raise")
    if what == "sigint-twice":   # a Ctrl-C, then another while the stop is saved
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGINT)   # held: the save below completes
            with open(os.path.join(folder, "saved"), "w") as f:
                f.write("yes")
            raise Interrupted("interrupted at step 3; saved") from None
    elif what is not None:
        raise what


@pytest.fixture
def fake_mode(monkeypatch, tmp_path):
    monkeypatch.setattr(lifecycle, "MODES", list(lifecycle.MODES))
    lifecycle.register(lifecycle.Mode("fake", f"{__name__}:fake_work", lambda c: c.output.run_name == "fake"))
    calls.clear()
    return Config(images=ImageConfig(content="a.jpg", style="b.jpg"),
                  output=OutputConfig(output_dir=str(tmp_path), run_name="fake"))


def test_a_registered_mode_gets_a_folder_its_config_and_the_summary(fake_mode, tmp_path):
    said = []
    run_dir = lifecycle.run(fake_mode, say=said.append)
    assert run_dir == str(tmp_path / "fake") and said == ["working"]
    assert {"run.flags", "config.json", "summary.json"} <= set(os.listdir(run_dir))
    summary = summary_of(run_dir)
    assert_schema(summary, "fake")
    assert summary["steps"] == 3 and summary["final"] == {"total": 1.5} and summary["details"] == {"frames": 3}
    assert summary["device"] == "nowhere" and summary["message"] == ""


@pytest.mark.parametrize("error, status, code", [
    (Diverged("the loss became non-finite at step 2"), "diverged", 2),
    (OutOfMemory("out of memory; lower --max_size"), "out of memory", 2),
    (UserError("bad input"), "failed", 2),
    (Interrupted("interrupted at step 3"), "interrupted", 130),
    (RuntimeError("a bug"), "crashed", 1),
])
def test_each_way_a_run_ends_has_its_status_line_and_exit_code(fake_mode, error, status, code, capsys):
    calls["raise"] = error
    assert lifecycle.command(fake_mode, say=lambda *a: None) == code
    err = capsys.readouterr().err
    summary = summary_of(os.path.join(fake_mode.output.output_dir, "fake"))
    assert_schema(summary, "fake", status)
    assert summary["message"] == str(error)
    assert err.strip().splitlines()[-1] == lifecycle.exit_status(error)[1]
    assert ("Traceback" in err) == (code == 1)


def test_a_second_interrupt_while_the_stop_saves_is_held_and_the_message_is_the_runs(fake_mode, capsys):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as an interactive process has it
    try:
        calls["raise"] = "sigint-twice"
        assert lifecycle.command(fake_mode, say=lambda *a: None) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert "stopping: the run is saving its state" in err
    assert err.strip().splitlines()[-1] == "stopped: interrupted at step 3; saved"
    run_dir = os.path.join(fake_mode.output.output_dir, "fake")
    assert open(os.path.join(run_dir, "saved")).read() == "yes"
    assert summary_of(run_dir)["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is previous


def test_an_interrupt_the_mode_does_not_catch_says_where_the_run_is(fake_mode):
    calls["raise"] = KeyboardInterrupt()
    with pytest.raises(Interrupted, match="keeps what the run had saved") as caught:
        lifecycle.run(fake_mode, say=lambda *a: None)
    assert "before the first step" not in str(caught.value)


def test_options_the_mode_does_not_read_are_refused_or_named(tmp_path):
    train = Config(mode="train", images=ImageConfig(style="b.jpg"), optim=OptimConfig(num_steps=3))
    with pytest.raises(UserError, match="--mode=train does not read --num_steps; it reads --train_steps"):
        lifecycle.check_options(train)
    train = Config(mode="train", images=ImageConfig(style="b.jpg"), optim=OptimConfig(init="noise"))
    assert lifecycle.check_options(train) == ["note: --mode=train does not read --init (left unused)."]
    transfer = Config(images=ImageConfig(content="a.jpg", style="b.jpg"), stylizer=StylizerConfig(train_steps=9))
    with pytest.raises(UserError, match="does not read --train_steps; it reads --num_steps"):
        lifecycle.check_options(transfer)
    apply = Config(mode="apply", images=ImageConfig(content="a.jpg", max_size=40),
                   optim=OptimConfig(num_steps=3), stylizer=StylizerConfig(model="m.keras"))
    assert lifecycle.check_options(apply) == ["note: --mode=apply does not read --num_steps (left unused)."]
    assert lifecycle.check_options(Config(images=ImageConfig(content="a.jpg", style="b.jpg"))) == []
    for row in lifecycle.NOT_READ.values():   # the table names real options
        assert set(row) <= set(Config.__dataclass_fields__) | {o for s in ("images", "model", "loss", "optim",
                                                                           "output", "stylizer")
                                                               for o in getattr(Config(), s).__dataclass_fields__}


def test_the_modes_are_found_without_tensorflow(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"")
    name = lambda **kw: lifecycle.mode_of(Config(**kw)).name   # noqa: E731
    assert name() == "optimize" and name(mode="train") == "train" and name(mode="apply") == "apply"
    assert name(sweep=("seed:1,2",)) == "sweep" and name(images=ImageConfig(content=str(photos))) == "sweep"
    assert name(images=ImageConfig(color_only=True)) == "color_only"


@pytest.mark.slow
def test_every_mode_writes_the_one_summary_schema(tmp_path, content_path, style_path):
    quiet = dict(say=None, progress=False)
    tiny = dict(backbone="vgg16_hed", max_size=32, seed=1, log_every=1, save_every=0, canvas_margin=0,
                output_dir=str(tmp_path / "out"))
    one = nst_tf.transfer(content_path, style_path, num_steps=2, **tiny, **quiet)
    assert_schema(summary_of(one.run_dir), "optimize")
    assert summary_of(one.run_dir)["steps"] == 2 and "total" in summary_of(one.run_dir)["final"]
    grid = nst_tf.sweep(content_path, style_path, {"seed": [1, 2]}, num_steps=2,
                        **{k: v for k, v in tiny.items() if k != "seed"}, **quiet)
    assert_schema(summary_of(grid.run_dir), "sweep")
    assert summary_of(grid.run_dir)["details"]["cells"] == 2 and summary_of(grid.run_dir)["steps"] == 4
    for cell in grid.cells:
        assert_schema(summary_of(cell["run_dir"]), "optimize")
    colours = nst_tf.transfer(content_path, style_path, color_only=True, output_dir=str(tmp_path / "out"), **quiet)
    assert_schema(summary_of(colours.run_dir), "color_only")
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in (1, 2):
        write_png(photos / f"photo{seed}.png", smooth_image(40, 48, seed=seed))
    trained = nst_tf.train_stylizer(style_path, str(photos), backbone="vgg16_hed", seed=1, train_size=32,
                                    batch_size=1, stylizer_width=4, train_steps=2, log_every=1, save_every=0,
                                    output_dir=str(tmp_path / "out"), **quiet)
    assert_schema(summary_of(trained.run_dir), "train")
    assert summary_of(trained.run_dir)["steps"] == 2 and summary_of(trained.run_dir)["details"]["held_out"]
    applied = nst_tf.apply_stylizer(trained, content_path, max_size=32, output_dir=str(tmp_path / "out"), say=None)
    assert_schema(summary_of(applied.run_dir), "apply")
    assert summary_of(applied.run_dir)["steps"] == 1 and summary_of(applied.run_dir)["details"]["images"] == 1


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, content_path, style_path, capsys):
    from tests.test_run import main_in_process
    monkeypatch.setitem(sys.modules, "ray", None)   # as if `pip install -e .` left the [cluster] extra out
    code = main_in_process(f"--content={content_path}", f"--style={style_path}", "--sweep=seed:1,2", "--cluster=ray",
                           f"--output_dir={tmp_path}")
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == ('error: --cluster=ray needs ray, which is not installed: pip install '
                                         '"nst_tf[cluster]" (or pip install -e ".[cluster]" in a checkout).')
    assert not os.listdir(tmp_path) or set(os.listdir(tmp_path)) <= {"content.png", "style.png"}


def test_without_scikit_image_the_default_training_set_is_said(monkeypatch):
    from nst_tf.stylizer import data
    assert data.default_set_note() is None   # the [test] extra brings it
    with_it = data.bundled_photos()
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert 'pip install "nst_tf[train]"' in data.default_set_note()
    assert set(data.bundled_photos()) < set(with_it)
