"""One image optimized end to end (--mode=transfer, content, texture): plan it, load the network, optimize,
keep the result. `work` and `color_only` are modes of `nst_tf.lifecycle`, which creates the run folder,
writes summary.json and turns errors into a status.

`run(config)` is `nst_tf.lifecycle.run`, kept here for scripts that call it. The files a run writes are
listed in `nst_tf.rundir`. A run that fails or is interrupted saves its last good image as result.png (and
says so) before it stops.
"""
from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from nst_tf import balance, color, engine, image_io, lifecycle, rundir
from nst_tf.config import schedule, validate
from nst_tf.errors import Diverged
from nst_tf.inputs import load_inputs
from nst_tf.plan import make_plan

run = lifecycle.run
resume = lifecycle.resume


def work(run: lifecycle.Run) -> None:
    """Runs one stylization (or reconstruction, or texture synthesis) in a new run folder, or continues the
    one stopped in `run.resume_dir` (from its state.npz; the result equals that of a run that never stopped).
    Raises UserError (one line) for bad input or a diverging run, and `Interrupted` on Ctrl-C; in both cases
    after the run's last good image, its optimizer state and its logs are saved."""
    say = run.say
    plan = make_plan(run.config, say)
    config = plan.config
    with tf.device(plan.device):
        network = engine.load_network(config, say)
    rundir.check_free_space(config.output.output_dir, rundir.output_bytes(config, plan.inputs.shape))
    if run.resume_dir:   # refused before run.flags is rewritten with the new flags
        say(f"resuming {run.resume_dir} at {engine.resume_point(run.resume_dir, schedule(config))}")
    with tf.device(plan.device):   # a resumed run's own run.flags holds the weights found when it started
        config, found = balance.resolve(config, plan.inputs, network, say, floor=plan.floor)
    run_dir = run.open(config, note=found.note() if found else "")
    if not run.resume_dir:
        say(f"run folder: {run_dir}")
    job = engine.Job(config, plan.inputs, run_dir, balance=found)
    start = time.monotonic()
    try:
        engine.optimize([job], network, plan.device, run.show_progress, resume=bool(run.resume_dir))
    finally:
        run.record(device=plan.device, **job.record())
    if job.status == "diverged":
        raise Diverged(job.message)
    say(f"result: {os.path.join(run_dir, 'result.png')} ({time.monotonic() - start:.1f} s)")


def color_only(run: lifecycle.Run) -> None:
    """--color_only: the content image with the (first) style's colour mean and covariance, no optimization."""
    config = run.config
    inputs = load_inputs(validate(config))
    run_dir = run.open()
    result = np.clip(color.match_colors(inputs.content, inputs.style, config.images.color_match), 0.0, 1.0)
    image_io.save_image(result, os.path.join(run_dir, "result.png"))
    run.say(f"result: {os.path.join(run_dir, 'result.png')} (the content in the style's colours)")
