"""One run end to end: plan it, load the network, optimize, keep the result; resume a stopped one.

`run(config)` is what `run.py` and the Python API (`nst_tf.transfer`, ...) call for one run; `resume(folder)`
continues a stopped run or sweep from its own folder. The files a run writes are listed in
`nst_tf.rundir`. A run that fails or is interrupted saves its last good image as result.png (and says so)
before it stops.
"""
from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from nst_tf import balance, color, engine, image_io, rundir
from nst_tf.comparison.axes import photo_files
from nst_tf.config import Config, schedule, validate
from nst_tf.errors import UserError
from nst_tf.inputs import load_inputs
from nst_tf.plan import make_plan


def run(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None,
        run_dir: str | None = None) -> str:
    """Runs one stylization (or reconstruction, or texture synthesis); returns the run folder.

    With `resume_dir`, continues the run stopped in that folder (from its state.npz) instead of starting
    a new one; the result equals that of a run that never stopped. `run_dir`: a new folder made for this
    run (by `rundir.create`, holding its inputs) to run in, instead of making one.
    Raises UserError (with a one-line message) for bad input or a diverging run, and `Interrupted` on
    Ctrl-C; in both cases after the run's last good image, its optimizer state and its logs are saved.
    """
    if config.images.color_only:   # no network, no optimization
        return _color_only(config, say, run_dir)
    plan = make_plan(config, say)
    config = plan.config
    with tf.device(plan.device):
        network = engine.load_network(config, say)
        config, found = balance.resolve(config, plan.inputs, network, say)
    rundir.check_free_space(config.output.output_dir, rundir.output_bytes(config, plan.inputs.shape))
    if resume_dir:   # refused before run.flags is rewritten with the new flags
        run_dir = resume_dir
        say(f"resuming {run_dir} at {engine.resume_point(run_dir, schedule(config))}")
    else:
        run_dir = run_dir or rundir.create(config.output.output_dir,
                                           config.output.run_name or rundir.default_name(config))
        say(f"run folder: {run_dir}")
    rundir.write_config(config, run_dir, note=f" (--strength={found.strength:g} found its weights)" if found else "")
    job = engine.Job(config, plan.inputs, run_dir, balance=found)
    start = time.monotonic()
    engine.optimize([job], network, plan.device, show_progress, resume=bool(resume_dir))
    if job.status == "diverged":
        raise UserError(job.message)
    say(f"result: {os.path.join(run_dir, 'result.png')} ({time.monotonic() - start:.1f} s)")
    return run_dir


def resume(folder: str, overrides: dict | None = None, show_progress: bool = True, say=print) -> str:
    """Continues the run or sweep stopped in `folder` with its own config (its run.flags or sweep.flags),
    `overrides` ({option: value}, e.g. {"num_steps": 500} to extend a finished run) applied on top.
    Returns the folder."""
    config = rundir.resumed_config(folder, overrides)
    if config.mode == "train":
        from nst_tf.stylizer import train
        return train.train(config, show_progress=show_progress, say=say, resume_dir=folder)
    if config.sweep or photo_files(config.images.content) is not None:
        from nst_tf.comparison.runner import run_sweep
        return run_sweep(config, show_progress=show_progress, say=say, resume_dir=folder)
    return run(config, show_progress=show_progress, say=say, resume_dir=folder)


def _color_only(config: Config, say, run_dir: str | None = None) -> str:
    """--color_only: the content image with the (first) style's colour mean and covariance, no optimization."""
    inputs = load_inputs(validate(config))
    run_dir = run_dir or rundir.create(config.output.output_dir, config.output.run_name or rundir.default_name(config))
    rundir.write_config(config, run_dir)
    result = np.clip(color.match_colors(inputs.content, inputs.style, config.images.color_match), 0.0, 1.0)
    image_io.save_image(result, os.path.join(run_dir, "result.png"))
    say(f"result: {os.path.join(run_dir, 'result.png')} (the content in the style's colours)")
    return run_dir

