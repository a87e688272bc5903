"""A sweep end to end: expand `--sweep` into cells, optimize them in batches, write the comparison.

A sweep writes `<output_dir>/sweep_<content>_<style>_<time>/`:
  sweep.flags           reproduces the whole sweep
  <NN>_<axis=value>_.../  one folder per cell, with the usual run outputs (result.png, losses.csv, ...);
                        `tensorboard --logdir <sweep folder>` overlays the cells' curves, named by folder
  grid.png              the labelled grid: inputs on top, the last axis across, the others down
  difference.png        (seed sweeps) each cell's pixel difference to the cell with the first seed
  results.csv, results.md  each cell's axis values, status, final loss terms and wall time
  curves.png            every cell's total loss on one plot

Cells that share `sweep.batch_key` are optimized together as one batch (`--sweep_batch` caps the batch).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nst_tf import backbones, image_io, sweep  # noqa: E402
from nst_tf.config import Config, schedule, to_flags  # noqa: E402
from nst_tf.errors import UserError  # noqa: E402
from nst_tf.grid import render_grid  # noqa: E402
from nst_tf.inputs import Inputs  # noqa: E402
from nst_tf.summaries import read_losses  # noqa: E402
from nst_tf.stylize import (STATE_FILE, Interrupted, Job, check_free_space, default_run_name,  # noqa: E402
                            load_model, make_run_dir, optimize, output_bytes, prepare, read_summary,
                            start_run_dir)

SUMMARY_TERMS = ("total", "weighted/content", "weighted/style", "weighted/tv", "content", "style", "tv")


@dataclasses.dataclass
class Outcome:
    """What one cell produced: status, last good image and step, logged rows, inputs, and its batch."""
    cell: sweep.Cell
    status: str = "not run"
    image: np.ndarray | None = None
    last_good_step: int | None = None
    rows: list = dataclasses.field(default_factory=list)
    inputs: list = dataclasses.field(default_factory=list)   # [(name, image)]
    batch: int | str = ""
    batch_cells: int | str = ""
    wall_s: float | str = ""

    @property
    def final(self) -> dict:
        return self.rows[-1] if self.rows else {}

    @classmethod
    def of_job(cls, cell: sweep.Cell, job: Job, batch: int, batch_cells: int) -> "Outcome":
        inputs = _inputs_of(job.working)
        logger = job.logger
        if logger is None:
            return cls(cell, job.status, inputs=inputs, batch=batch + 1, batch_cells=batch_cells)
        image = None if logger.last_good_image is None else job.output(logger.last_good_image)
        return cls(cell, job.status, image, logger.last_good_step, logger.rows, inputs,
                   batch + 1, batch_cells, round(logger.elapsed, 3))

    @classmethod
    def of_folder(cls, cell: sweep.Cell, run_dir: str, summary: dict, inputs: list) -> "Outcome":
        """A cell that an earlier, resumed sweep finished, read back from its run folder."""
        rows = read_losses(run_dir)
        image = image_io.load_image(os.path.join(run_dir, "result.png"))
        return cls(cell, summary["status"], image, rows[-1]["step"] if rows else None, rows, inputs,
                   "earlier", "", summary.get("wall_time_s", ""))


def _inputs_of(inputs: Inputs) -> list[tuple[str, np.ndarray]]:
    """[(label, image)]: the content and the style images, as the grid shows them beside the cells."""
    styles = inputs.styles
    named = [("content", inputs.content)] if inputs.content is not None else []
    return named + [("style" if len(styles) == 1 else f"style {i + 1}", s) for i, s in enumerate(styles)]


def _once(say):
    seen = set()
    def say_once(line):
        if line not in seen:
            seen.add(line)
            say(line)
    return say_once


def _model_key(config: Config):
    m = config.model
    return (m.backbone, m.pooling, m.weights, config.optim.seed if m.weights == "random" else None,
            m.normalize_features, m.normalize_images, m.precision)


def _saved_step(run_dir: str) -> int | None:
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        return int(f["step"])


def _prepare(config: Config, say) -> tuple[Config, list[sweep.Cell], dict]:
    """(config with its seed and backbone fixed, cells with resolved configs, {index: (config, content,
    style)}); every input image is loaded here, so a bad one fails before anything runs."""
    if config.optim.seed is None:   # one seed for every cell, so cells differ only where the axes say
        config = dataclasses.replace(config, optim=dataclasses.replace(
            config.optim, seed=random.SystemRandom().randrange(2**31)))
    if config.model.backbone == "auto":   # resolved once, not once per cell (it may try a download)
        name, why = backbones.resolve_backbone("auto", config.model.weights)
        say(f"backbone: {name} ({why})")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, backbone=name))
    cells = sweep.expand(config)
    say_once = _once(say)
    prepared = {}
    for cell in cells:
        try:
            prepared[cell.index] = prepare(cell.config, say_once)
        except UserError as e:
            raise UserError(f"sweep cell {cell.label}: {e}") from None
    return config, [dataclasses.replace(c, config=prepared[c.index][0]) for c in cells], prepared


def _plan(cells: list[sweep.Cell], prepared: dict, sweep_dir: str, resume: bool,
          batch_size: int) -> tuple[list[Outcome], list[tuple[list[sweep.Cell], bool]]]:
    """(an outcome per cell, the batches to run as (cells, resume?)). When resuming, finished and diverged
    cells are read back and kept, stopped cells continue together only from the same saved step."""
    outcomes = [Outcome(c) for c in cells]
    fresh, by_step = [], {}
    for cell in cells:
        run_dir = os.path.join(sweep_dir, cell.name)
        summary = read_summary(run_dir) if resume else {}
        if summary.get("status") == "diverged" or (
                summary.get("status") == "done" and summary.get("steps", 0) >= schedule(cell.config)[-1][1]):
            outcomes[cell.index] = Outcome.of_folder(cell, run_dir, summary, _inputs_of(prepared[cell.index][1]))
            continue
        step = _saved_step(run_dir) if resume else None
        if step is None:
            fresh.append(cell)
        else:
            by_step.setdefault(step, []).append(cell)
    batches = [(batch, False) for batch in sweep.batches(fresh, batch_size)]
    batches += [(batch, True) for same_step in by_step.values() for batch in sweep.batches(same_step, batch_size)]
    return outcomes, batches


def run_sweep(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None) -> str:
    """Runs every cell of `config.sweep`; returns the sweep folder.

    With `resume_dir` (a sweep folder), finished and diverged cells are kept, stopped cells continue from
    their state.npz and the others start; the grid and tables then cover every cell.
    Raises UserError if a cell's input is bad (before anything runs) or, after everything is written, if
    a cell diverged; `Interrupted` on Ctrl-C after the grid and table of what finished are written.
    """
    config, cells, prepared = _prepare(config, say)
    device = backbones.pick_device(config.optim.device)
    models = {}
    with tf.device(device):
        for cell in cells:
            if _model_key(cell.config) not in models:
                models[_model_key(cell.config)] = load_model(cell.config, say)
    check_free_space(config.output.output_dir, sum(
        output_bytes(c.config, prepared[c.index][1].shape) for c in cells))
    if resume_dir:
        sweep_dir = resume_dir
    else:
        sweep_dir = make_run_dir(config.output.output_dir,
                                 config.output.run_name or "sweep_" + default_run_name(config))
    image_io.atomic_write(os.path.join(sweep_dir, "sweep.flags"), lambda f: f.write(
        f"# Reproduces sweep {os.path.basename(sweep_dir)} ({len(cells)} cells): "
        f"python run.py --flagfile={sweep_dir}/sweep.flags\n" + "\n".join(to_flags(config)) + "\n"), mode="w")
    say(f"{'resuming sweep' if resume_dir else 'sweep folder:'} {sweep_dir} ({len(cells)} cells)")

    outcomes, groups = _plan(cells, prepared, sweep_dir, bool(resume_dir), config.sweep_batch)
    try:
        for b, (batch, resume) in enumerate(groups):
            jobs = []
            for cell in batch:
                run_dir = os.path.join(sweep_dir, cell.name)
                os.makedirs(run_dir, exist_ok=bool(resume_dir))
                start_run_dir(cell.config, run_dir)
                jobs.append(Job(cell.config, prepared[cell.index][1], run_dir))
            say(f"batch {b + 1}/{len(groups)}{' (resumed)' if resume else ''}: " +
                ("; ".join(c.label for c in batch) if len(batch) <= 3 else
                 f"{len(batch)} cells, {batch[0].name} ... {batch[-1].name}"))
            try:
                optimize(jobs, models[_model_key(batch[0].config)], device, show_progress,
                         desc=f"batch {b + 1}/{len(groups)}", resume=resume)
            finally:
                for cell, job in zip(batch, jobs):
                    outcomes[cell.index] = Outcome.of_job(cell, job, b, len(batch))
    except Interrupted:
        write_report(sweep_dir, config, outcomes)
        raise Interrupted(f"interrupted; the finished cells and the last images of the running ones are in "
                          f"{os.path.join(sweep_dir, 'grid.png')}") from None
    except UserError:   # out of memory: the cells that finished are kept in the grid and the table
        write_report(sweep_dir, config, outcomes)
        raise
    write_report(sweep_dir, config, outcomes)
    say(f"grid: {os.path.join(sweep_dir, 'grid.png')}; table: {os.path.join(sweep_dir, 'results.md')}")
    diverged = [o.cell.label for o in outcomes if o.status == "diverged"]
    if diverged:
        raise UserError(f"{len(diverged)} of {len(cells)} cells diverged ({'; '.join(diverged)}); their last good "
                        f"images are in the grid; lower --learning_rate or the weights for them")
    return sweep_dir


# ------------------------------------------------------------------------------------------- report

def _layout(config: Config) -> tuple[list[str], list[str]]:
    """Row and column labels: the last axis across, every combination of the others down."""
    axes = sweep.parse_axes(config.sweep)
    cols = [sweep.label(axes[-1].name, v) for v in axes[-1].values]
    rows = [""]
    for axis in axes[:-1]:
        rows = [f"{r}\n{sweep.label(axis.name, v)}".strip() for r in rows for v in axis.values]
    return rows, cols


def _caption(o: Outcome) -> str:
    if o.status == "done":
        return f"total {o.final.get('total', float('nan')):.3g}"
    if o.status == "not run":
        return "not run"
    return f"{o.status} at step {o.last_good_step}" if o.image is not None else o.status


def _inputs(outcomes: list[Outcome]) -> list[tuple[str, np.ndarray]]:
    return next((o.inputs for o in outcomes if o.inputs), [])


def _seed_differences(config: Config, outcomes: list[Outcome]) -> dict[int, np.ndarray]:
    """{cell index: |image - image of the cell with the first seed and the same other values|, [H, W]}."""
    axes = sweep.parse_axes(config.sweep)
    if "seed" not in [a.name for a in axes]:
        return {}
    first = dict(zip([a.name for a in axes], [a.values[0] for a in axes]))["seed"]
    by_values = {o.cell.values: o for o in outcomes}
    diffs = {}
    for o in outcomes:
        values = dict(o.cell.values)
        if values["seed"] == first or o.image is None:
            continue
        ref = by_values[tuple((k, first if k == "seed" else v) for k, v in o.cell.values)]
        if ref.image is not None and ref.image.shape == o.image.shape:
            diffs[o.cell.index] = np.abs(o.image - ref.image).mean(axis=-1)
    return diffs


def write_report(sweep_dir: str, config: Config, outcomes: list[Outcome]) -> None:
    """grid.png, difference.png (seed sweeps), results.csv, results.md and curves.png, each atomically."""
    rows, cols = _layout(config)
    tiles = {(o.cell.row, o.cell.col): o.image for o in outcomes if o.image is not None}
    captions = {(o.cell.row, o.cell.col): _caption(o) for o in outcomes}
    title = f"{os.path.basename(sweep_dir)}"
    png = render_grid(tiles, len(rows), len(cols), rows, cols, captions, _inputs(outcomes), title)
    image_io.atomic_write(os.path.join(sweep_dir, "grid.png"), lambda f: f.write(png))

    diffs = _seed_differences(config, outcomes)
    if diffs:
        gain = max(1.0, round(0.9 / max(float(np.percentile(np.stack(list(diffs.values())), 99)), 1e-6)))
        diff_tiles, diff_captions = {}, {}
        for o in outcomes:
            pos = (o.cell.row, o.cell.col)
            if o.cell.index in diffs:
                d = diffs[o.cell.index]
                diff_tiles[pos] = np.clip(d * gain, 0, 1)
                diff_captions[pos] = f"mean |diff| {255 * d.mean():.2f}/255"
            elif o.image is not None:
                diff_tiles[pos], diff_captions[pos] = o.image, "reference (first seed)"
        png = render_grid(diff_tiles, len(rows), len(cols), rows, cols, diff_captions,
                          title=f"pixel difference to the first seed's image, x{gain:g} (white = {1 / gain:.3g})")
        image_io.atomic_write(os.path.join(sweep_dir, "difference.png"), lambda f: f.write(png))

    table = _table(config, outcomes, diffs)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    image_io.atomic_write(os.path.join(sweep_dir, "results.csv"), lambda f: f.write(buf.getvalue()), mode="w")
    image_io.atomic_write(os.path.join(sweep_dir, "results.md"), lambda f: f.write(_markdown(table)), mode="w")
    _plot_curves(os.path.join(sweep_dir, "curves.png"), outcomes)


def _table(config: Config, outcomes: list[Outcome], diffs: dict[int, np.ndarray]) -> list[dict]:
    axes = [a.name for a in sweep.parse_axes(config.sweep)]
    layer_terms = []
    for o in outcomes:
        layer_terms += [k for k in o.final if k.count("/") == 1 and not k.startswith("weighted/")
                        and k not in layer_terms]
    table = []
    for o in outcomes:
        row = {"cell": o.cell.name, **dict(o.cell.values), "status": o.status,
               "steps": o.final.get("step", ""), "batch": o.batch, "batch_cells": o.batch_cells,
               "wall_s": o.wall_s}
        for name in (*SUMMARY_TERMS, *layer_terms):
            row[name] = f"{o.final[name]:.6g}" if name in o.final else ""
        if diffs or "seed" in axes:
            d = diffs.get(o.cell.index)
            row["mean_abs_diff_vs_first_seed"] = "" if d is None else f"{d.mean():.6g}"
        table.append(row)
    return table


def _markdown(table: list[dict]) -> str:
    """The table's key columns as Markdown (results.csv has every term)."""
    keep = [k for k in table[0]
            if k not in ("content", "style", "tv", "batch_cells") and ("/" not in k or k.startswith("weighted/"))]
    lines = ["| " + " | ".join(keep) + " |", "|" + "---|" * len(keep)]
    for row in table:
        lines.append("| " + " | ".join(str(row[k]).replace("|", "/") for k in keep) + " |")
    return "\n".join(lines) + "\n"


def _plot_curves(path: str, outcomes: list[Outcome]) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for o in outcomes:
        if o.rows:
            ax.plot([r["step"] for r in o.rows], [max(r["total"], 1e-30) for r in o.rows], label=o.cell.label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    image_io.atomic_write(path, lambda f: f.write(buf.getvalue()))
