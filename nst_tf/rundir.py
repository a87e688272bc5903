"""Run folders: where a run's files go and how they are read back. No TensorFlow.

A run writes `<output_dir>/<run_name>/`:
  result.png        the final image
  snapshots/        step_NNNNN.png every `save_every` steps
  run.flags         a flagfile that reproduces the run (`python run.py --flagfile=.../run.flags`)
  config.json       the resolved config, as JSON (run.flags holds the same; `nst_tf.resume` reads that)
  losses.csv        every named term at every logged step, with the wall time
  losses.png        the loss curves (log scale), drawn when the run ends or stops
  events.out.tfevents.*  TensorBoard scalars and images
  summary.json      how the run ended, in one schema for every mode (`summary`): status, mode, steps,
                    wall time, device, versions, final terms, the mode's details
  state.npz         the image and the optimizer's state, for --resume
  scales/<size>/    coarse to fine: each scale before the last, with files of its own as above
A sweep folder holds sweep.flags, sweep.json, one run folder per cell and the comparison (`nst_tf.comparison`).
Every file but the TensorBoard event file is written whole or not at all (`image_io.atomic_write`).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import sys
import time
from datetime import datetime

import numpy as np

from nst_tf import image_io
from nst_tf.config import (Config, field_sections, from_flags, schedule, split_list, to_dict, to_flags, validate,
                           with_field)
from nst_tf.errors import UserError

STATE_FILE = "state.npz"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


def _stem(paths: str | None) -> str:
    """"a" for "dir/a.jpg"; "a+b" for several images "dir/a.jpg,b.png"; "dir" for a folder "dir/" or a
    pattern "dir/*.jpg"."""
    def stem(path: str) -> str:
        path = path.rstrip("/" + os.sep)
        if glob.has_magic(path):
            path = os.path.dirname(path) or "many"
        name = os.path.basename(os.path.abspath(path))
        return name if os.path.isdir(path) else os.path.splitext(name)[0]
    return "+".join(stem(p) for p in split_list(paths))


def default_name(config: Config) -> str:
    """<content>_<style>_<timestamp> (texture_<style>_..., content_<content>_..., stylizer_<style>_...,
    apply_<content>_<model's run>_... in the other modes)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stems = {"transfer": [_stem(config.images.content), _stem(config.images.style)],
             "content": ["content", _stem(config.images.content)],
             "texture": ["texture", _stem(config.images.style)],
             "train": ["stylizer", _stem(config.images.style)],
             "apply": ["apply", _stem(config.images.content) or "export",
                       os.path.basename(os.path.dirname(os.path.abspath(config.stylizer.model or "model")))]}[config.mode]
    return "_".join([*stems, stamp])


def create(output_dir: str, name: str) -> str:
    """Creates a new folder `output_dir/name` (suffix -2, -3, ... if taken): never reuses one.

    `os.mkdir` fails if the folder exists, so two runs started at the same moment cannot share one.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {output_dir!r} ({e.strerror}); "
                        "choose another with --output_dir.") from None
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"the output folder {output_dir!r} is not writable; choose another with --output_dir.")
    for k in range(1, 10_000):
        path = os.path.join(output_dir, name if k == 1 else f"{name}-{k}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise UserError(f"too many runs named {name!r} in {output_dir!r}; pass another --run_name.")


def output_bytes(config: Config, shape: tuple[int, ...]) -> int:
    """An upper bound on what a run writes: PNGs (result, snapshots, their TensorBoard copies) at most
    3 bytes per pixel each, state.npz (image and two Adam moments, float32), 1 MB of logs and plots."""
    pixels = shape[0] * shape[1]
    period = config.output.save_every
    images = 2 + (2 * (config.optim.num_steps // period) if period else 0)
    return pixels * (3 * images + 3 * 4 * 3) + 2**20


def check_free_space(output_dir: str, needed: int) -> None:
    """UserError up front when the disk holding `output_dir` has less free space than `needed` bytes."""
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UserError(f"only {free / 2**20:.0f} MB free under {output_dir!r} and the outputs need up to "
                        f"{needed / 2**20:.0f} MB; free some space or choose another --output_dir.")


def write_text(path: str, text: str) -> None:
    image_io.atomic_write(path, lambda f: f.write(text), mode="w")


def write_csv(path: str, rows: list[dict], fieldnames: list[str] | None = None) -> None:
    """A CSV file with a header (`fieldnames`, or the first row's keys) and one line per row."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_config(config: Config, folder: str, flagfile: str = "run.flags", what: str = "run", note: str = "") -> None:
    """Writes `flagfile` (reproduces the run or sweep: `python run.py --flagfile=...`; `read_config` reads it
    back) and, beside it, the config as JSON for other programs (`config.json`, or `sweep.json`)."""
    write_text(os.path.join(folder, flagfile),
               f"# Reproduces {what} {os.path.basename(folder)}{note}: python run.py --flagfile={folder}/{flagfile}\n"
               + "\n".join(to_flags(config)) + "\n")
    json_name = CONFIG_FILE if flagfile == "run.flags" else os.path.splitext(flagfile)[0] + ".json"
    write_json(os.path.join(folder, json_name), to_dict(config))


def flagfile_of(folder: str) -> str:
    """The run.flags or sweep.flags of a run or sweep folder; UserError if it has neither."""
    for name in ("run.flags", "sweep.flags"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise UserError(f"{folder!r} is not a run or sweep folder (it has no run.flags or sweep.flags); "
                    "name a folder in outputs/.")


def read_config(folder: str) -> Config:
    """The config a run or sweep folder was started with, from its run.flags or sweep.flags."""
    path = flagfile_of(folder)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path!r} is not a text flagfile (it holds binary bytes); a flagfile has one "
                        "--name=value per line: start the run again.") from None
    except OSError as e:
        raise UserError(f"cannot read {path!r} ({e.strerror}).") from None
    return from_flags(lines, path)


def resumed_config(folder: str, overrides: dict | None = None) -> Config:
    """The config to continue `folder` with: its own (read_config), `overrides` ({option: value}) on top.
    A sweep keeps its own axes."""
    config = read_config(folder)
    for name, value in (overrides or {}).items():
        if name == "sweep":
            if tuple(value) != config.sweep:
                raise UserError("--resume keeps the sweep's own axes; leave out --sweep.")
            continue
        if name not in field_sections():
            raise UserError(f"cannot resume with {name}={value!r}: there is no such option.")
        config = with_field(config, name, value)
    return validate(config)


SUMMARY_KEYS = ("status", "mode", "message", "steps", "wall_time_s", "steps_per_s", "device", "versions", "final",
                "details", "started_at", "finished_at")


def versions() -> dict[str, str | None]:
    """The versions a run ran with (TensorFlow's and Keras' read from the installed packages: no import)."""
    from importlib import metadata
    from nst_tf import __version__

    def installed(*names):
        for name in names:
            module = sys.modules.get(name.replace("-cpu", ""))
            if module is not None and hasattr(module, "__version__"):
                return module.__version__
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None
    return {"nst_tf": __version__, "python": sys.version.split()[0],
            "tensorflow": installed("tensorflow", "tensorflow-cpu"), "keras": installed("keras")}


def summary(status: str, mode: str, steps: int, wall_time_s: float, device: str | None, final: dict | None = None,
            details: dict | None = None, message: str = "", started_at: str | None = None) -> dict:
    """summary.json, one schema (`SUMMARY_KEYS`) for every mode:

      status       done, interrupted, diverged, out of memory, failed or crashed (`nst_tf.lifecycle`)
      mode         the lifecycle's mode: optimize, sweep, train, apply, color_only, ...
      message      how a run that is not done ended (the line the command printed); "" when done
      steps        the mode's units of work done: optimizer steps, training steps, images stylized; a sweep:
                   its cells' steps together
      wall_time_s  seconds, over every session of a resumed run where the mode keeps them
      steps_per_s  steps / wall_time_s
      device       where it ran ("/CPU:0", "/GPU:0"; None without a network)
      versions     nst_tf, python, tensorflow, keras
      final        the named terms of the last logged step ({"total": ..., "style/conv1_1": ...}); {} without
      details      what only this mode has (backbone, effective weights, cells, ms per image, ...)
    """
    return {"status": status, "mode": mode, "message": message, "steps": int(steps),
            "wall_time_s": round(wall_time_s, 3),
            "steps_per_s": round(steps / wall_time_s, 4) if wall_time_s > 0 and steps else None,
            "device": device, "versions": versions(), "final": dict(final or {}), "details": dict(details or {}),
            "started_at": started_at, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_summary(run_dir: str, value: dict) -> None:
    write_json(os.path.join(run_dir, SUMMARY_FILE), value)


def read_summary(run_dir: str) -> dict:
    """The run folder's summary.json ({} if it has none, or an unreadable one)."""
    try:
        with open(os.path.join(run_dir, SUMMARY_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def finished(run_dir: str) -> bool:
    return read_summary(run_dir).get("status") == "done"


def completed(summary: dict, config: Config) -> bool:
    """Whether a run's summary says it is done with all the steps of `config`'s last scale (a finished run
    asked for more steps is not)."""
    return summary.get("status") == "done" and summary.get("steps", 0) >= schedule(config)[-1][1]


def save_state(run_dir: str, state: dict[str, np.ndarray]) -> None:
    """Writes state.npz (an image and its optimizer state), what `--resume` reads."""
    image_io.atomic_write(os.path.join(run_dir, STATE_FILE), lambda f: np.savez(f, **state))


def has_state(run_dir: str) -> bool:
    return os.path.exists(os.path.join(run_dir, STATE_FILE))


def load_state(run_dir: str) -> dict[str, np.ndarray]:
    """The run folder's state.npz; UserError, saying what to do, when it is missing or damaged."""
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.exists(path):
        raise UserError(f"{run_dir!r} has no {STATE_FILE}: it is written at each snapshot, at the end and when "
                        "a run is stopped, so this run stopped before its first; start it again instead.")
    try:
        with np.load(path) as f:
            state = dict(f)
    except Exception as e:   # a truncated or foreign file: zipfile, zlib, numpy and pickle errors alike
        problem = "unreadable: " + (" ".join(str(e).split())[:120] or type(e).__name__)
    else:
        missing = [key for key in ("images", "step") if key not in state]
        problem = f"it lacks {' and '.join(repr(k) for k in missing)}" if missing else None
        if not problem and (state["step"].shape != () or state["images"].ndim != 3):
            problem = "its 'step' or 'images' has the wrong shape"
    if problem:
        raise UserError(f"{path} is damaged ({problem}), so the run cannot continue from it; start it again "
                        f"(python run.py --flagfile={os.path.join(run_dir, 'run.flags')}); its last image is "
                        "kept in result.png and snapshots/.")
    return state


def saved_step(run_dir: str) -> int | None:
    """The step of the run folder's state.npz, or None if it has none."""
    return int(load_state(run_dir)["step"]) if has_state(run_dir) else None
