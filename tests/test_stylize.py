"""One run through the engine: interrupt and resume give the result of a run that never stopped."""
import csv
import dataclasses
import os

import numpy as np
import pytest

from nst_tf import image_io, stylize
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig
from nst_tf.errors import Interrupted, UserError
from nst_tf.summaries import RunLogger

QUIET = dict(show_progress=False, say=lambda *a: None)


def config_for(tmp_path, content_path, style_path, name, num_steps=12):
    return Config(images=ImageConfig(content=content_path, style=style_path, max_size=32),
                  model=ModelConfig(backbone="vgg16_hed"),
                  loss=LossConfig(style_layers=("conv1_1", "conv2_1"), style_weight=1e6),
                  optim=OptimConfig(num_steps=num_steps, seed=2, learning_rate=0.05, init="noise"),
                  output=OutputConfig(output_dir=str(tmp_path), run_name=name, save_every=4, log_every=2))


def rows(run_dir):
    with open(os.path.join(run_dir, "losses.csv")) as f:
        return [{k: float(v) for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


def interrupt_at(monkeypatch, at_step):
    """Makes Ctrl-C arrive right after the logger has handled step `at_step`."""
    original = RunLogger.__call__

    def call(self, step, images, terms):
        original(self, step, images, terms)
        if step == at_step:
            raise KeyboardInterrupt
    monkeypatch.setattr(RunLogger, "__call__", call)


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, content_path, style_path, monkeypatch):
    whole = stylize.run(config_for(tmp_path, content_path, style_path, "whole"), **QUIET)

    with monkeypatch.context() as m:
        interrupt_at(m, 6)
        with pytest.raises(Interrupted, match=r"the last good image \(step 6\)"):
            stylize.run(config_for(tmp_path, content_path, style_path, "parts"), **QUIET)
    parts = os.path.join(tmp_path, "parts")
    assert os.path.exists(os.path.join(parts, "state.npz")) and os.path.exists(os.path.join(parts, "result.png"))
    assert int(np.load(os.path.join(parts, "state.npz"))["step"]) == 7   # step 6's update was applied
    stylize.run(config_for(tmp_path, content_path, style_path, "parts"), resume_dir=parts, **QUIET)

    a = image_io.load_image(os.path.join(whole, "result.png"))
    b = image_io.load_image(os.path.join(parts, "result.png"))
    np.testing.assert_array_equal(a, b)
    ra, rb = rows(whole), rows(parts)
    assert [r["step"] for r in rb] == [0, 2, 4, 6, 8, 10, 12]
    for x, y in zip(ra, rb):
        assert x == pytest.approx(y, rel=1e-5)
    assert sorted(os.listdir(os.path.join(parts, "snapshots"))) == sorted(os.listdir(os.path.join(whole, "snapshots")))

    # a finished run continues with a larger --num_steps; the same count is refused
    longer = config_for(tmp_path, content_path, style_path, "parts", num_steps=14)
    stylize.run(longer, resume_dir=parts, **QUIET)
    assert [r["step"] for r in rows(parts)][-2:] == [12, 14]
    with pytest.raises(UserError, match="already at step 14 of 14; pass a larger --num_steps"):
        stylize.run(longer, resume_dir=parts, **QUIET)
    flags_before = open(os.path.join(parts, "run.flags")).read()
    with pytest.raises(UserError, match="already at step 14 of 10"):
        stylize.run(config_for(tmp_path, content_path, style_path, "parts", num_steps=10), resume_dir=parts, **QUIET)
    assert open(os.path.join(parts, "run.flags")).read() == flags_before   # a refused resume changes nothing


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the dropped KeyboardInterrupt
def test_an_interrupt_lost_in_a_finalizer_still_stops_the_run(tmp_path, content_path, style_path, monkeypatch):
    """Python drops an exception raised while a finalizer runs, so the signal handler's KeyboardInterrupt can
    be lost (TensorFlow's objects have finalizers); the next step still stops the run with its image saved."""
    import gc
    import signal

    class SignalsWhenCollected:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)   # the handler runs here, inside the finalizer

    lost = []
    original = RunLogger.__call__

    def call(self, step, images, terms):
        original(self, step, images, terms)
        if step == 4:
            SignalsWhenCollected()   # collected at once: its finalizer signals, the KeyboardInterrupt is dropped
            gc.collect()
            lost.append(step)        # the run went on past the signal
    monkeypatch.setattr(RunLogger, "__call__", call)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as an interactive process has it
    try:
        with pytest.raises(Interrupted, match=r"the last good image \(step 4\)"):
            stylize.run(config_for(tmp_path, content_path, style_path, "lost", num_steps=40), **QUIET)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert lost == [4]
    # stopped at the next log row (step 6, its update applied), not after 40 steps
    assert int(np.load(os.path.join(tmp_path, "lost", "state.npz"))["step"]) == 7
    stylize.run(config_for(tmp_path, content_path, style_path, "after", num_steps=2), **QUIET)   # nothing left over


def test_resume_without_state_or_with_other_flags_is_refused(tmp_path, content_path, style_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="has no state.npz"):
        stylize.run(config_for(tmp_path, content_path, style_path, "x"), resume_dir=str(empty), **QUIET)
    run_dir = stylize.run(config_for(tmp_path, content_path, style_path, "short", num_steps=2), **QUIET)
    bigger = config_for(tmp_path, content_path, style_path, "short")
    bigger = dataclasses.replace(bigger, images=dataclasses.replace(bigger.images, max_size=40))
    with pytest.raises(UserError, match="does not fit this run"):
        stylize.run(bigger, resume_dir=run_dir, **QUIET)


def test_a_full_disk_is_refused_before_anything_runs(tmp_path, content_path, style_path, monkeypatch):
    import collections
    import shutil
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(UserError, match=r"only 0 MB free under .* the outputs need up to 1 MB"):
        stylize.run(config_for(tmp_path, content_path, style_path, "full"), **QUIET)
    assert not os.path.exists(tmp_path / "full")


def test_a_crash_keeps_the_last_image_and_state(tmp_path, content_path, style_path, monkeypatch):
    original = RunLogger.__call__

    def call(self, step, images, terms):
        original(self, step, images, terms)
        if step == 4:
            raise RuntimeError("a bug")
    monkeypatch.setattr(RunLogger, "__call__", call)
    with pytest.raises(RuntimeError, match="a bug"):
        stylize.run(config_for(tmp_path, content_path, style_path, "crash"), **QUIET)
    run_dir = tmp_path / "crash"
    assert (run_dir / "result.png").exists() and (run_dir / "state.npz").exists()
    assert '"status": "crashed"' in (run_dir / "summary.json").read_text()




@pytest.mark.slow
def test_a_canvas_run_keeps_the_centre_and_resumes_to_the_same_image(tmp_path, content_path, style_path):
    """--canvas_margin with the new defaults' companions (replicate padding, an iterate average, a pyramid):
    the result has the content's size, and a run interrupted in its last scale resumes to the same image."""
    import dataclasses as dc
    from nst_tf.summaries import RunLogger

    def config(name):
        base = config_for(tmp_path, content_path, style_path, name, num_steps=8)
        return dc.replace(base, images=dc.replace(base.images, scales=(24, 32)),
                          model=dc.replace(base.model, padding="replicate"),
                          optim=dc.replace(base.optim, canvas_margin=4, average_decay=0.9))
    whole = stylize.run(config("whole"), **QUIET)
    assert image_io.load_image(os.path.join(whole, "result.png")).shape == (27, 32, 3)
    original = RunLogger.__call__

    def stop_in_the_last_scale(self, step, images, terms):
        original(self, step, images, terms)
        if step >= 2 and not self.run_dir.split(os.sep)[-2] == "scales":
            raise KeyboardInterrupt
    RunLogger.__call__ = stop_in_the_last_scale
    try:
        with pytest.raises(Interrupted):
            stylize.run(config("parts"), **QUIET)
    finally:
        RunLogger.__call__ = original
    parts = os.path.join(str(tmp_path), "parts")
    stylize.run(config("parts"), resume_dir=parts, **QUIET)
    np.testing.assert_array_equal(image_io.load_image(os.path.join(parts, "result.png")),
                                  image_io.load_image(os.path.join(whole, "result.png")))


@pytest.mark.slow   # seconds; the whole suite runs it
def test_style_octaves_add_terms_that_the_optimization_lowers(tmp_path):
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    config = config_for(tmp_path, os.path.join(examples, "chelsea.jpg"), os.path.join(examples, "swirls.jpg"),
                        "octaves", num_steps=8)
    config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_octaves=1),
                                 images=dataclasses.replace(config.images, max_size=64),   # 1/2: 32 px, > 16
                                 optim=dataclasses.replace(config.optim, init="content"))
    logged = rows(stylize.run(config, **QUIET))
    # conv1_1 (stride 1) gets a copy at 1/2; conv2_1 (stride 2, the deepest) none
    assert "style/conv1_1@2" in logged[0] and "weighted/style/conv1_1@2" in logged[0]
    assert not any("conv2_1@" in name for name in logged[0])
    assert logged[-1]["style/conv1_1@2"] < 0.5 * logged[0]["style/conv1_1@2"]
    assert logged[-1]["weighted/style/conv1_1@2"] == pytest.approx(1e6 * 0.5 * logged[-1]["style/conv1_1@2"], rel=1e-5)


@pytest.mark.slow
def test_auto_steps_stop_at_the_first_log_row_where_the_image_stopped_changing(tmp_path, content_path, style_path,
                                                                                 monkeypatch):
    """--num_steps=auto: the scale stops at the first log row where the image has stopped changing
    (`engine.stopped_changing`), below the cap, and summary.json says where. (A threshold this tiny run reaches
    before its plateau, so that the test does not hang on the plateau's rule alone.)"""
    from nst_tf import engine, rundir
    from nst_tf.config import AUTO_STEPS, AUTO_STEPS_CAP
    monkeypatch.setattr(engine, "CONVERGED", 0.5)
    config = config_for(tmp_path, content_path, style_path, "auto")
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, num_steps=AUTO_STEPS,
                                                                   learning_rate=0.02))
    details = rundir.read_summary(stylize.run(config, **QUIET))["details"]
    changes, stop = details["image_change_per_step"], details["converged_at"]
    assert stop is not None and engine.CONVERGED_MIN_STEPS <= stop < AUTO_STEPS_CAP
    assert stop == next(step for i, (step, _) in enumerate(changes) if engine.stopped_changing(changes[:i + 1]))
    assert changes[-1][1] < 0.5 or changes[-1][0] >= engine.CONVERGED_MIN_STEPS + engine.PLATEAU_STEPS
    assert changes[-1][0] == stop   # nothing optimized after it


@pytest.mark.parametrize("changes, stopped", [
    ([(10, 3.0), (20, 0.09)], False),                  # under the threshold, but before CONVERGED_MIN_STEPS
    ([(40, 0.09)], True),                              # under CONVERGED (0.10)
    ([(40, 0.5), (50, 0.2)], False),
    ([(50, 0.2), (100, 0.18)], True),                  # fell by 10% in 50 steps: less than PLATEAU_DROP (15%)
    ([(50, 0.2), (100, 0.16)], False),                 # fell by 20%: still settling
    ([(30, 0.2), (80, 0.19)], False),                  # the row 50 steps back is before CONVERGED_MIN_STEPS
    ([(50, 0.2), (90, 0.19), (100, 0.3), (50, 0.3), (70, 0.3)], False),   # a new scale: its own rows only
    ([(100, 0.3), (50, 0.2), (80, 0.19), (100, 0.18)], True),
])
def test_an_image_has_stopped_changing_under_the_threshold_or_on_a_plateau(changes, stopped):
    from nst_tf import engine
    assert engine.stopped_changing(changes) is stopped
