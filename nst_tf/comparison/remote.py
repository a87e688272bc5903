"""A batch of comparison cells as one task of `nst_tf.cluster`: what a Ray worker runs for `--cluster`.

The driver (`runner.run_sweep`) plans every cell, as in-process, and sends each batch as a `BatchTask`:
the cells' resolved configs and inputs (the images travel with the task, so the workers need no shared
filesystem, only nst_tf and the backbone's weights installed). `run_batch` runs the batch through the same
engine, in the worker's folder, one run folder per cell, syncing it back at every snapshot. A retried task
(its worker died) or a resumed sweep finds its cells' state.npz there and continues from it.
"""
from __future__ import annotations

import dataclasses
import os

from nst_tf.config import Config
from nst_tf.inputs import Inputs


@dataclasses.dataclass(frozen=True)
class BatchCell:
    name: str          # the cell's run folder, relative to the sweep folder
    config: Config     # resolved (nst_tf.plan)
    inputs: Inputs     # at the result's size


@dataclasses.dataclass(frozen=True)
class BatchTask:
    cells: tuple[BatchCell, ...]
    resume: bool       # continue from the cells' saved states (a resumed sweep)
    desc: str = "batch"


def run_batch(task: BatchTask, workdir: str, sync, progress) -> dict:
    """Optimizes the cells of `task` together in `workdir/<cell name>/`; returns {"cells": [(name, status,
    message)], "resumed": where this attempt continued from (None: from the start)}.

    `sync()` is called whenever the cells' folders are consistent (after each save of their states),
    `progress(step, total)` as the steps go."""
    import tensorflow as tf
    from nst_tf import engine, plan, rundir
    from nst_tf.config import schedule
    first = task.cells[0].config
    device = plan.pick_device(first.optim.device)
    with tf.device(device):
        network = engine.load_network(first, say=lambda *a: None)
    jobs = []
    for cell in task.cells:
        run_dir = os.path.join(workdir, cell.name)
        os.makedirs(run_dir, exist_ok=True)
        rundir.write_config(cell.config, run_dir)
        jobs.append(engine.Job(cell.config, cell.inputs, run_dir))
    if all(_done(job) for job in jobs):   # an attempt that died after the end, before it returned
        return {"cells": [(cell.name, "done", "") for cell in task.cells], "resumed": "the end"}
    # a retried attempt finds the state its dead predecessor synced; a fresh cell has none
    resume = task.resume or any(_started(job.run_dir) for job in jobs)
    resumed = engine.resume_point(jobs[0].run_dir, schedule(first)) if resume else None
    try:
        engine.optimize(jobs, network, device, show_progress=False, desc=task.desc, resume=resume,
                        on_save=sync, on_progress=progress)
    finally:
        sync()
    return {"cells": [(cell.name, job.status, job.message) for cell, job in zip(task.cells, jobs)],
            "resumed": resumed}


def _done(job) -> bool:
    from nst_tf import rundir
    return rundir.completed(rundir.read_summary(job.run_dir), job.config)


def _started(run_dir: str) -> bool:
    """Whether a cell's folder holds a saved state, at its last scale or at a coarser one of its pyramid."""
    from nst_tf import rundir
    scales = os.path.join(run_dir, "scales")
    return rundir.has_state(run_dir) or (os.path.isdir(scales) and any(
        rundir.has_state(os.path.join(scales, size)) for size in os.listdir(scales)))
