"""The run lifecycle: what every mode's run goes through, from the config to the exit status. No TensorFlow.

  run(config, ...) -> folder      the one entry of every mode (run.py and the Python API both call it)
  resume(folder, overrides, ...)  continues a stopped run of any mode with its own config
  command(config, ...) -> status  run() for the command line: the last line on stderr and the exit status
  exit_status(error) -> (status, line)  how an error ends: 0, 1 (a bug), 2 (the user can fix it), 130 (stopped)

A mode supplies only its work, `work(run: Run)`: it checks and prepares (nothing is written yet), calls
`run.open(config)` once it is ready (the one place that creates the run folder, or takes the resumed one,
and writes run.flags and config.json), does the work, and records what the summary says with
`run.record(...)`. This module does the rest: picks the mode (`mode_of`), holds Ctrl-C and SIGTERM while a
stop is being saved, turns the errors into a status, and writes `summary.json` (`rundir.summary`, one schema
for every mode) whether the run finished or not. A new mode is one entry of `MODES` (or `register(Mode(...))`
from elsewhere): its name, its work as "module:function" (imported only when a run of that mode starts, so
TensorFlow loads there) and which configs it runs.

Status of a run: done, interrupted (Ctrl-C, SIGTERM: exit 130), diverged (a non-finite loss), out of memory,
failed (another UserError: exit 2), crashed (a bug: exit 1).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import Callable

from nst_tf import rundir
from nst_tf.config import Config, field_sections, get_field, is_onnx, validate, with_field
from nst_tf.errors import Diverged, Interrupted, OutOfMemory, UserError, request_stop, require
from nst_tf.inputs import photo_files


@dataclasses.dataclass(frozen=True)
class Mode:
    """A kind of run: `name` (summary.json's "mode"), `work` ("module:function", the function taking a `Run`),
    `runs` (whether a config is a run of this mode; `MODES` is asked in order, the first that says yes runs)."""
    name: str
    work: str
    runs: Callable[[Config], bool]

    def load(self) -> Callable[["Run"], None]:
        module, function = self.work.split(":")
        return getattr(importlib.import_module(module), function)


def _is_clip(config: Config) -> bool:
    from nst_tf import video   # no TensorFlow: its file types and --clip
    return video.is_clip(config)


def _are_clips(config: Config) -> bool:
    from nst_tf import video
    return video.clip_files(config) is not None


MODES: list[Mode] = [
    Mode("train", "nst_tf.stylizer.train:work", lambda c: c.mode == "train"),
    Mode("video", "nst_tf.video:work", _is_clip),   # a clip, by optimization or through a stylizer
    Mode("clips", "nst_tf.video:work_many", _are_clips),   # a folder or pattern of clips, each in turn
    Mode("apply", "nst_tf.stylizer.apply:work", lambda c: c.mode == "apply"),
    Mode("sweep", "nst_tf.comparison.runner:work",   # a --sweep grid, or many photos (a contact sheet)
         lambda c: bool(c.sweep) or photo_files(c.images.content) is not None),
    Mode("color_only", "nst_tf.stylize:color_only", lambda c: c.images.color_only),
    Mode("optimize", "nst_tf.stylize:work", lambda c: True),   # one image: transfer, content, texture
]


# The options each --mode leaves unread: {option: the option this mode reads instead, or None}. Given with
# another value than its default, one with an option of its own in this mode is refused (naming that
# option: `--mode=train --num_steps=3` once trained for the default --train_steps); the others are named in
# one line at the start. A new --mode adds its row.
_STYLIZER = {"train_steps": "num_steps", "train_learning_rate": "learning_rate", "train_size": "max_size",
             "batch_size": None, "stylizer_width": None, "stylizer_arch": None}
_PYRAMID = dict.fromkeys(("scales", "scale_steps", "min_scale", "scale_ratio"))
_START = dict.fromkeys(("init", "init_contrast", "init_noise", "init_noise_cells", "average_decay", "canvas_margin",
                        "jit_compile"))
_RUNS_OF_MANY = dict.fromkeys(("sweep", "sweep_batch", "cluster", "ray_workers"))


def _section(name: str) -> dict:
    return {option: None for option, section in field_sections().items() if section == name}


NOT_READ: dict[str, dict[str, str | None]] = {
    "transfer": _STYLIZER, "content": _STYLIZER, "texture": _STYLIZER,
    "train": {"num_steps": "train_steps", "learning_rate": "train_learning_rate", "max_size": "train_size",
              **_PYRAMID, **_START, **_RUNS_OF_MANY, "preserve_colors": None, "color_match": None},
    "apply": {**_section("model"), **_section("loss"), **_PYRAMID, **_START, **_RUNS_OF_MANY,
              **dict.fromkeys(_STYLIZER),
              "num_steps": None, "learning_rate": None, "optimizer": None, "seed": None, "tile_size": None,
              "gradient_blur": None, "style_scale": None, "color_match": None},
}


def check_options(config: Config) -> list[str]:
    """UserError for an option given in a --mode that does not read it but reads another instead, or one
    whose optional part is not installed (`errors.require`); the lines that name the other unread options
    given (empty if none)."""
    if config.cluster:   # an optional part: fail before anything loads
        require("ray", "cluster", f"--cluster={config.cluster}")
    if "onnx" in config.stylizer.export:
        require("tf2onnx", "onnx", "--export=onnx")
    if config.stylizer.model and is_onnx(config.stylizer.model):
        require("onnxruntime", "onnx", f"--model={config.stylizer.model}")
    row, default = NOT_READ.get(config.mode, {}), Config()
    unread = []
    for name, instead in row.items():
        if name not in field_sections() or get_field(config, name) == get_field(default, name):
            continue
        if instead:
            raise UserError(f"--mode={config.mode} does not read --{name}; it reads --{instead}.")
        unread.append(f"--{name}")
    return [f"note: --mode={config.mode} does not read {', '.join(unread)} (left unused)."] if unread else []


def register(mode: Mode) -> None:
    """Adds a mode, asked before the built-in ones (replacing one of the same name)."""
    MODES[:] = [mode] + [m for m in MODES if m.name != mode.name]


def mode_of(config: Config) -> Mode:
    return next(m for m in MODES if m.runs(config))


@dataclasses.dataclass
class Run:
    """One run as its mode sees it. The mode reads `config`, `say`, `show_progress` and `resume_dir` (the
    folder of a stopped run to continue, or None), calls `open` once, and `record`s what it did."""
    config: Config
    mode: Mode
    say: Callable = print
    show_progress: bool = True
    resume_dir: str | None = None
    run_dir: str | None = None       # set by `open` (or before it, for a folder holding the run's inputs)
    status: str = "running"
    steps: int = 0
    wall_time_s: float | None = None  # None: this session's time
    device: str | None = None
    final: dict = dataclasses.field(default_factory=dict)
    details: dict = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    started_at: str = dataclasses.field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    stopping: bool = False           # an interrupt has been raised: further ones wait for the stop to be saved

    def open(self, config: Config | None = None, flagfile: str = "run.flags", **note) -> str:
        """The run folder, with `config` (default the run's; a mode passes its resolved one) written as
        `flagfile` and JSON beside it (`rundir.write_config`; `note`: its what= and note=). A new folder is
        created here (never an existing one reused); a resumed run keeps its own."""
        if config is not None:
            self.config = config
        if self.resume_dir:
            self.run_dir = self.resume_dir
        elif self.run_dir is None:
            self.run_dir = new_folder(self.config)
        rundir.write_config(self.config, self.run_dir, flagfile, **note)
        return self.run_dir

    def record(self, **fields) -> None:
        """Sets what summary.json will say: steps, wall_time_s, device, final, details, status."""
        for name, value in fields.items():
            if not hasattr(self, name):
                raise TypeError(f"Run has no field {name!r}")
            setattr(self, name, value)

    def write_summary(self, message: str = "") -> None:
        wall = self.wall_time_s if self.wall_time_s is not None else time.monotonic() - self.started
        rundir.write_summary(self.run_dir, rundir.summary(
            self.status, self.mode.name, self.steps, wall, self.device, self.final, self.details, message,
            self.started_at))


def new_folder(config: Config) -> str:
    """A new run folder for `config`: --run_name, or <content>_<style>_<time> (sweep_... for a sweep)."""
    prefix = "sweep_" if config.sweep else ""
    return rundir.create(config.output.output_dir, config.output.run_name or prefix + rundir.default_name(config))


def status_of(error: BaseException) -> str:
    if isinstance(error, (Interrupted, KeyboardInterrupt)):
        return "interrupted"
    if isinstance(error, Diverged):
        return "diverged"
    if isinstance(error, OutOfMemory):
        return "out of memory"
    if isinstance(error, (UserError, OSError)):
        return "failed"
    return "crashed"


def run(config: Config, *, show_progress: bool = True, say=print, resume_dir: str | None = None,
        images: dict | None = None) -> str:
    """Runs `config` as its mode (`mode_of`) says; returns the run folder.

    `resume_dir`: continue the run stopped in that folder (its config: `resume`). `images`: {"content" or
    "style": float32 RGB [H, W, 3] in [0, 1]} given in memory, saved as PNGs in `<run folder>/inputs/` first
    (so that its run.flags reproduces the run). Raises UserError (one line: bad input, a diverged run, out
    of memory), `Interrupted` (Ctrl-C or SIGTERM, after the run saved what it had) or a bug's exception;
    whenever the run folder exists, its summary.json says how the run ended.
    """
    say = say or (lambda *a: None)
    if not images:
        config = validate(config)
    for line in check_options(config):
        say(line)
    mode = mode_of(config)
    current = Run(config, mode, say, show_progress, resume_dir)
    if images:
        current.run_dir, current.config = _save_inputs(config, images)
    work = mode.load()   # TensorFlow loads here
    with _interrupts_held_while_stopping(current):   # until summary.json is written
        try:
            work(current)
        except BaseException as error:
            current.stopping = True
            stop = error
            if isinstance(error, KeyboardInterrupt):   # not turned into a saved stop by the mode: say what there is
                stop = Interrupted(f"interrupted; {current.run_dir} keeps what the run had saved" if current.run_dir
                                   else "interrupted before the first step; nothing was written.")
            if current.run_dir and os.path.isdir(current.run_dir):
                current.status = status_of(stop)
                try:
                    current.write_summary(str(stop))
                except OSError:   # the disk that stopped the run may not take the summary either
                    pass
            if stop is not error:
                raise stop from None
            raise
        finally:
            if "nst_tf.summaries" in sys.modules:   # the progress bar is drawn a last time before the last line
                sys.modules["nst_tf.summaries"].close_progress_bars()
        current.stopping = True
        current.status = "done"
        current.write_summary()
    return current.run_dir


def resume(folder: str, overrides: dict | None = None, *, show_progress: bool = True, say=print) -> str:
    """Continues the run (of any mode) stopped in `folder` with its own config (its run.flags or
    sweep.flags), `overrides` ({option: value}, e.g. {"num_steps": 500} to extend a finished run) on top.
    Returns the folder."""
    return run(rundir.resumed_config(folder, overrides), show_progress=show_progress, say=say, resume_dir=folder)


def _save_inputs(config: Config, images: dict) -> tuple[str, Config]:
    """(new run folder, config naming the saved files) for images given in memory."""
    from nst_tf import image_io
    named = config
    for kind in images:   # the folder is named after "content" / "style" for in-memory images
        named = with_field(named, kind, kind)
    folder = new_folder(named)
    os.makedirs(os.path.join(folder, "inputs"))
    for kind, image in images.items():
        path = os.path.join(folder, "inputs", f"{kind}.png")
        image_io.save_image(image, path)
        config = with_field(config, kind, path)
    return folder, validate(config)


class _interrupts_held_while_stopping:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt once, which the mode turns into a saved stop; a second
    one while that stop is being saved is held (saving takes a moment; a half-written state would lose the
    run), with one line saying so. On the main thread only (signals cannot be handled elsewhere), and not
    for a signal the process ignores (a background job's SIGINT)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, current: Run):
        self.current, self.previous = current, {}

    def _handle(self, signum, frame):
        if self.current.stopping:
            print("stopping: the run is saving its state; it ends in a moment.", file=sys.stderr)
            return
        self.current.stopping = True
        request_stop()   # the step loops raise it again if this one is lost in a finalizer
        raise KeyboardInterrupt

    def __enter__(self):
        request_stop(False)
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        request_stop(False)
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


def exit_status(error: BaseException | None) -> tuple[int, str | None]:
    """(exit status, last line for stderr) of a run that ended with `error` (None: it finished)."""
    if error is None:
        return 0, None
    if isinstance(error, UserError):
        return 2, f"error: {error}"
    if isinstance(error, Interrupted):
        return 130, f"stopped: {error}"
    if isinstance(error, KeyboardInterrupt):
        return 130, "stopped: interrupted before the first step; nothing was written."
    if isinstance(error, OSError):   # a full disk or a folder that vanished while writing outputs
        return 2, (f"error: cannot write {error.filename or 'the outputs'} ({error.strerror or error}); free some "
                   "space or choose another --output_dir.")
    return 1, ("error: nst_tf failed unexpectedly (traceback above); the run folder keeps the last good image "
               "and its state (--resume); please report this with the traceback.")


def command(config: Config, *, resume_dir: str | None = None, show_progress: bool = True, say=print) -> int:
    """`run` for the command line: prints how it ended (a bug's traceback too) and returns the exit status."""
    try:
        run(config, show_progress=show_progress, say=say, resume_dir=resume_dir)
        error = None
    except BaseException as e:   # noqa: B902 -- KeyboardInterrupt too: it is a stop
        if isinstance(e, (SystemExit, GeneratorExit)):
            raise
        error = e
    status, line = exit_status(error)
    if status == 1:
        traceback.print_exception(error)
    if line:
        print(line, file=sys.stderr)
    return status
