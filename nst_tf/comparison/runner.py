"""A sweep end to end: expand `--sweep` into cells, plan them, optimize them in batches, write the comparison.

A sweep writes `<output_dir>/sweep_<content>_<style>_<time>/`:
  sweep.flags, sweep.json  reproduce the whole sweep (`python run.py --flagfile=.../sweep.flags`)
  <NN>_<axis=value>_.../   one run folder per cell (`nst_tf.rundir`); `tensorboard --logdir <sweep folder>`
                           overlays the cells' curves, named by folder
  grid.png, difference.png, results.csv, results.md, curves.png   the comparison (`nst_tf.comparison.report`)

Cells that share `axes.batch_key` are optimized together as one batch (`--sweep_batch` caps the batch).
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import tensorflow as tf

from nst_tf import balance, engine, image_io, lifecycle, rundir
from nst_tf.config import Config
from nst_tf.errors import Diverged, Interrupted, UserError
from nst_tf.inputs import Inputs, photo_files
from nst_tf.plan import Plan, make_plan, pick_device, with_seed_and_backbone
from nst_tf.summaries import read_losses
from nst_tf.comparison.axes import Cell, batches, expand
from nst_tf.comparison.report import Outcome, write_report


def inputs_shown(inputs: Inputs) -> list[tuple[str, "object"]]:
    """[(label, image)]: the content and the style images, as the grid shows them beside the cells."""
    styles = inputs.styles
    named = [("content", inputs.content)] if inputs.content is not None else []
    return named + [("style" if len(styles) == 1 else f"style {i + 1}", s) for i, s in enumerate(styles)]


def outcome_of_job(cell: Cell, job: engine.Job, batch: int, batch_cells: int) -> Outcome:
    inputs = inputs_shown(job.working)
    logger = job.logger
    if logger is None:
        return Outcome(cell, job.status, inputs=inputs, batch=batch + 1, batch_cells=batch_cells, message=job.message)
    image = None if logger.last_good_image is None else job.output(logger.last_good_image)
    return Outcome(cell, job.status, image, logger.last_good_step, logger.rows, inputs,
                   batch + 1, batch_cells, round(logger.elapsed, 3), job.message)


def outcome_of_folder(cell: Cell, run_dir: str, summary: dict, inputs: list) -> Outcome:
    """A cell that an earlier, resumed sweep finished, read back from its run folder."""
    rows = read_losses(run_dir)
    image = image_io.load_image(os.path.join(run_dir, "result.png"))
    return Outcome(cell, summary["status"], image, rows[-1]["step"] if rows else None, rows, inputs,
                   "earlier", "", summary.get("wall_time_s", ""))


def _once(say):
    seen = set()
    def say_once(line):
        if line not in seen:
            seen.add(line)
            say(line)
    return say_once


def network_key(config: Config):
    """What cells must share to share a loaded network."""
    m = config.model
    return (m.backbone, m.pooling, m.weights, config.optim.seed if m.weights == "random" else None,
            m.normalize_features, m.normalize_images, m.precision)


def plan_cells(config: Config, say=print) -> tuple[Config, list[Cell], dict[int, Plan], dict[int, str]]:
    """(config with its seed and backbone fixed, cells with resolved configs, {cell index: its plan},
    {cell index: why it cannot run}). Every input image is loaded here: in a sweep a bad one fails before
    anything runs; in a many-photo job a bad photo fails its cells alone (the others run)."""
    config = with_seed_and_backbone(config, say)   # once, not per cell: cells differ only where the axes say
    cells = expand(config)
    many = photo_files(config.images.content) is not None
    say_once = _once(say)
    plans, failed = {}, {}
    for cell in cells:
        try:
            plans[cell.index] = make_plan(cell.config, say_once)
        except UserError as e:
            if not many:
                raise UserError(f"sweep cell {cell.label}: {e}") from None
            failed[cell.index] = str(e)
            say(f"{cell.label}: {e}")
    cells = [dataclasses.replace(c, config=plans[c.index].config) if c.index in plans else c for c in cells]
    return config, cells, plans, failed


def _groups(cells: list[Cell], plans: dict[int, Plan], failed: dict[int, str], sweep_dir: str, resume: bool,
            batch_size: int) -> tuple[list[Outcome], list[tuple[list[Cell], bool]]]:
    """(an outcome per cell, the batches to run as (cells, resume?)). When resuming, finished and diverged
    cells are read back and kept, stopped cells continue together only from the same saved step."""
    outcomes = [Outcome(c, "failed", message=failed[c.index]) if c.index in failed else Outcome(c) for c in cells]
    fresh, by_step = [], {}
    for cell in cells:
        if cell.index in failed:
            continue
        run_dir = os.path.join(sweep_dir, cell.name)
        summary = rundir.read_summary(run_dir) if resume else {}
        if summary.get("status") == "diverged" or rundir.completed(summary, cell.config):
            outcomes[cell.index] = outcome_of_folder(cell, run_dir, summary, inputs_shown(plans[cell.index].inputs))
            continue
        step = rundir.saved_step(run_dir) if resume else None
        if step is None:
            fresh.append(cell)
        else:
            by_step.setdefault(step, []).append(cell)
    shapes = {index: plan.inputs.shape for index, plan in plans.items()}
    groups = [(batch, False) for batch in batches(fresh, batch_size, shapes)]
    groups += [(batch, True) for same_step in by_step.values() for batch in batches(same_step, batch_size, shapes)]
    return outcomes, groups


def _run_here(groups, plans, networks, device, outcomes, sweep_dir, resuming, show_progress, say) -> None:
    """Each batch in this process, one after another."""
    for b, (batch, resume) in enumerate(groups):
        jobs = []
        for cell in batch:
            run_dir = os.path.join(sweep_dir, cell.name)
            os.makedirs(run_dir, exist_ok=resuming)
            rundir.write_config(cell.config, run_dir)
            jobs.append(engine.Job(cell.config, plans[cell.index].inputs, run_dir))
        say(f"batch {b + 1}/{len(groups)}{' (resumed)' if resume else ''}: " +
            ("; ".join(c.label for c in batch) if len(batch) <= 3 else
             f"{len(batch)} cells, {batch[0].name} ... {batch[-1].name}"))
        try:
            engine.optimize(jobs, networks[network_key(batch[0].config)], device, show_progress,
                            desc=f"batch {b + 1}/{len(groups)}", resume=resume)
        finally:
            for cell, job in zip(batch, jobs):
                outcomes[cell.index] = outcome_of_job(cell, job, b, len(batch))


# On a cluster each batch is one task whose folder is `STAGING/<batch>`, holding its cells' run folders while
# it runs (the cluster layer mirrors one folder per task); each cell's folder is moved to its place in the
# sweep folder when the tasks end, and moved back in before a resumed sweep starts, so that a task's first
# attempt starts from what its cells had.
STAGING = ".batches"


def _unstage(sweep_dir: str) -> None:
    """Moves every cell folder under STAGING to its place in the sweep folder (also after a crash)."""
    staging = os.path.join(sweep_dir, STAGING)
    if not os.path.isdir(staging):
        return
    for batch in os.listdir(staging):
        for name in os.listdir(os.path.join(staging, batch)):
            target = os.path.join(sweep_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.rename(os.path.join(staging, batch, name), target)
    shutil.rmtree(staging)


def _run_on_cluster(config: Config, groups, plans, outcomes, sweep_dir, show_progress, say) -> None:
    """Each batch as one task of `nst_tf.cluster` (Ray), the results read back from the cells' folders."""
    from nst_tf import cluster
    from nst_tf.comparison import remote
    _unstage(sweep_dir)   # what a crashed driver left staged
    tasks = []
    for b, (batch, resume) in enumerate(groups):
        folder = f"{STAGING}/{b:03d}"
        os.makedirs(os.path.join(sweep_dir, folder), exist_ok=True)
        for cell in batch:
            if os.path.isdir(os.path.join(sweep_dir, cell.name)):   # a resumed sweep: the task starts from it
                os.rename(os.path.join(sweep_dir, cell.name), os.path.join(sweep_dir, folder, cell.name))
        cells = tuple(remote.BatchCell(c.name, c.config, plans[c.index].inputs) for c in batch)
        tasks.append(cluster.Task(folder, remote.BatchTask(cells, resume, f"batch {b + 1}/{len(groups)}"), len(batch)))
    workers = f" ({config.ray_workers} workers)" if config.ray_workers else ""
    say(f"{len(tasks)} batches on {config.cluster}{workers}")
    try:
        results = cluster.run_tasks(remote.run_batch, tasks, sweep_dir, cluster=config.cluster,
                                    workers=config.ray_workers or None, cpus_per_task=1 if config.ray_workers else None,
                                    show_progress=show_progress)
    except KeyboardInterrupt:
        results = None
    finally:
        _unstage(sweep_dir)
    for b, (batch, _) in enumerate(groups):
        error = results[b].error if results else None
        if results and results[b].attempts > 1:
            resumed = (results[b].value or {}).get("resumed")
            say(f"batch {b + 1}/{len(groups)}: its worker died; attempt {results[b].attempts} continued "
                + (f"from {resumed}" if resumed else "from the start (nothing had been saved yet)"))
        for cell in batch:
            run_dir = os.path.join(sweep_dir, cell.name)
            summary = rundir.read_summary(run_dir)
            if error:
                outcomes[cell.index] = Outcome(cell, "failed", message=error,
                                               inputs=inputs_shown(plans[cell.index].inputs))
            elif summary and os.path.exists(os.path.join(run_dir, "result.png")):
                outcome = outcome_of_folder(cell, run_dir, summary, inputs_shown(plans[cell.index].inputs))
                outcomes[cell.index] = dataclasses.replace(outcome, batch=b + 1, batch_cells=len(batch),
                                                           attempts=results[b].attempts if results else "")
    if results is None:
        raise Interrupted("interrupted")


def balanced(cells: list[Cell], plans: dict[int, Plan], networks: dict, say=print) -> list[Cell]:
    """The cells with the weights of the automatic balance found for each (nst_tf.balance), or the fixed default
    beta raised where the cell's pair needs it (`balance.floored`), on the network they run on (loaded here for
    the balance alone on a cluster); said for the first cell only."""
    out = []
    for cell in cells:
        plan = plans.get(cell.index)
        if plan and (cell.config.automatic_balance or plan.floor):
            key = network_key(cell.config)
            if key not in networks:
                networks[key] = engine.load_network(cell.config, say)
            config, _ = balance.resolve(cell.config, plan.inputs, networks[key], say, floor=plan.floor)
            say = lambda *a: None  # noqa: E731
            cell = dataclasses.replace(cell, config=config)
        out.append(cell)
    return out


def work(run: lifecycle.Run) -> None:
    """Runs every cell of the sweep (or every photo of a many-photo job) in the sweep folder.

    With `run.resume_dir` (a sweep folder), finished and diverged cells are kept, stopped cells continue
    from their state.npz and the others start; the grid and tables then cover every cell.
    Raises UserError if a cell's input is bad (before anything runs) or, after everything is written, if
    a cell diverged; `Interrupted` on Ctrl-C after the grid and table of what finished are written.
    """
    say = run.say
    config, cells, plans, failed = plan_cells(run.config, say)
    device = pick_device(config.optim.device)
    networks = {}
    with tf.device(device):
        for cell in cells:   # on a cluster each worker loads its own
            if not config.cluster and cell.index in plans and network_key(cell.config) not in networks:
                networks[network_key(cell.config)] = engine.load_network(cell.config, say)
        cells = balanced(cells, plans, networks, say)
    rundir.check_free_space(config.output.output_dir, sum(
        rundir.output_bytes(c.config, plans[c.index].inputs.shape) for c in cells if c.index in plans))
    resuming = bool(run.resume_dir)
    sweep_dir = run.open(config, "sweep.flags", what="sweep", note=f" ({len(cells)} cells)")
    say(f"{'resuming sweep' if resuming else 'sweep folder:'} {sweep_dir} ({len(cells)} cells)")
    run.record(device=device)

    outcomes, groups = _groups(cells, plans, failed, sweep_dir, resuming, config.sweep_batch)
    try:
        if config.cluster:
            _run_on_cluster(config, groups, plans, outcomes, sweep_dir, run.show_progress, say)
        else:
            _run_here(groups, plans, networks, device, outcomes, sweep_dir, resuming, run.show_progress, say)
    except Interrupted:
        write_report(sweep_dir, config, outcomes)
        raise Interrupted(f"interrupted; the finished cells and the last images of the running ones are in "
                          f"{os.path.join(sweep_dir, 'grid.png')}") from None
    except UserError:   # out of memory: the cells that finished are kept in the grid and the table
        write_report(sweep_dir, config, outcomes)
        raise
    finally:
        statuses = [o.status for o in outcomes]
        run.record(steps=sum(int(o.final.get("step", 0)) for o in outcomes),
                   details={"cells": len(cells), **{s: statuses.count(s) for s in sorted(set(statuses))},
                            "grid": "grid.png", "table": "results.md"})
    write_report(sweep_dir, config, outcomes)
    say(f"grid: {os.path.join(sweep_dir, 'grid.png')}; table: {os.path.join(sweep_dir, 'results.md')}")
    diverged = [o.cell.label for o in outcomes if o.status == "diverged"]
    if diverged:
        raise Diverged(f"{len(diverged)} of {len(cells)} cells diverged ({'; '.join(diverged)}); their last good "
                       f"images are in the grid; lower --learning_rate or the weights for them")
    failures = [o.cell.label for o in outcomes if o.status == "failed"]
    if failures:
        what = "photos could not be used" if photo_files(config.images.content) is not None else "cells failed"
        raise UserError(f"{len(failures)} of {len(cells)} {what} ({'; '.join(failures)}); the others are done; "
                        f"the reasons are in {os.path.join(sweep_dir, 'results.md')}")


def run_sweep(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None) -> str:
    """`nst_tf.lifecycle.run` of a sweep, kept for scripts that call it; returns the sweep folder."""
    if not lifecycle.mode_of(config).name == "sweep":
        raise UserError("run_sweep needs --sweep or a folder of photos as --content.")
    return lifecycle.run(config, show_progress=show_progress, say=say, resume_dir=resume_dir)
