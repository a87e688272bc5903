"""What a sweep writes about its cells: the labelled grid, the seed differences, the tables, the curves.

  grid.png              the labelled grid: inputs on top, the last axis across, the others down
  difference.png        (seed sweeps) each cell's pixel difference to the cell with the first seed
  results.csv, results.md  each cell's axis values, status, final loss terms and wall time
  curves.png            every cell's total loss on one plot

Everything here works from `Outcome`s (what each cell produced), so a report can be written for a
sweep that finished, stopped or was resumed.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from nst_tf import image_io, rundir
from nst_tf.config import Config
from nst_tf.grid import render_grid
from nst_tf.objective import is_layer_term, summary_terms, term_names
from nst_tf.summaries import plot_curves
from nst_tf.comparison.axes import Cell, grid_columns, job_axes, label, parse_axes, photo_files


@dataclasses.dataclass
class Outcome:
    """What one cell produced: status, last good image and step, logged rows, inputs, and its batch."""
    cell: Cell
    status: str = "not run"
    image: np.ndarray | None = None
    last_good_step: int | None = None
    rows: list = dataclasses.field(default_factory=list)
    inputs: list = dataclasses.field(default_factory=list)   # [(name, image)]
    batch: int | str = ""
    batch_cells: int | str = ""
    wall_s: float | str = ""
    message: str = ""
    attempts: int | str = ""   # on a cluster: how many times its batch ran (more than 1: a worker died)

    @property
    def final(self) -> dict:
        return self.rows[-1] if self.rows else {}


def _layout(config: Config) -> tuple[list[str], list[str]]:
    """Row and column labels: the last axis across, every combination of the others down (the photos of a
    many-photo job alone: one a row)."""
    axes = job_axes(config)
    if grid_columns(axes) == 1 and len(axes) == 1:
        return [label(axes[0].name, v) for v in axes[0].values], ["result"]
    cols = [label(axes[-1].name, v) for v in axes[-1].values]
    rows = [""]
    for axis in axes[:-1]:
        rows = [f"{r}\n{label(axis.name, v)}".strip() for r in rows for v in axis.values]
    return rows, cols


def _caption(o: Outcome) -> str:
    if o.status == "failed":
        return "failed: see results.md"
    if o.status == "done":
        return f"total {o.final.get('total', float('nan')):.3g}"
    if o.status == "not run":
        return "not run"
    return f"{o.status} at step {o.last_good_step}" if o.image is not None else o.status


def _inputs(outcomes: list[Outcome]) -> list[tuple[str, np.ndarray]]:
    return next((o.inputs for o in outcomes if o.inputs), [])


def _seed_differences(config: Config, outcomes: list[Outcome]) -> dict[int, np.ndarray]:
    """{cell index: |image - image of the cell with the first seed and the same other values|, [H, W]}."""
    axes = parse_axes(config.sweep)
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
    inputs = _inputs(outcomes)
    if photo_files(config.images.content) is not None:   # a contact sheet: each row's photo beside its results
        photos = {o.cell.row: dict(o.inputs)["content"] for o in outcomes if "content" in dict(o.inputs)}
        tiles = {(r, c + 1): image for (r, c), image in tiles.items()} | {(r, 0): p for r, p in photos.items()}
        captions = {(r, c + 1): text for (r, c), text in captions.items()}
        cols = ["photo", *cols]
        inputs = [(name, image) for name, image in inputs if name != "content"]
    png = render_grid(tiles, len(rows), len(cols), rows, cols, captions, inputs, title)
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
    rundir.write_csv(os.path.join(sweep_dir, "results.csv"), table)
    rundir.write_text(os.path.join(sweep_dir, "results.md"), _markdown(table, [a.name for a in job_axes(config)]))
    plot_curves(os.path.join(sweep_dir, "curves.png"),
                [("total loss of each cell", {o.cell.label: [(r["step"], r["total"]) for r in o.rows]
                                              for o in outcomes if o.rows})], ylabel="total loss")


def _table(config: Config, outcomes: list[Outcome], diffs: dict[int, np.ndarray]) -> list[dict]:
    axes = [a.name for a in job_axes(config)]
    names = term_names({"content": (), "style": ()})   # the sums every run has, then every term some cell logged
    for o in outcomes:
        names += [k for k in o.final if k not in ("step", "wall_s") and k not in names]
    layer_terms = [k for k in names if is_layer_term(k)]
    failed = any(o.status == "failed" for o in outcomes)   # an error column only when some cell has one
    retried = any(o.attempts != "" for o in outcomes)
    table = []
    for o in outcomes:
        row = {"cell": o.cell.name, **dict(o.cell.values), "status": o.status,
               "steps": o.final.get("step", ""), "batch": o.batch, "batch_cells": o.batch_cells,
               "wall_s": o.wall_s, **({"attempts": o.attempts} if retried else {}),
               **({"error": o.message} if failed else {})}
        for name in (*summary_terms(names), *layer_terms):   # a term named like an axis (content, style): loss/<name>
            row[f"loss/{name}" if name in axes else name] = f"{o.final[name]:.6g}" if name in o.final else ""
        if diffs or "seed" in axes:
            d = diffs.get(o.cell.index)
            row["mean_abs_diff_vs_first_seed"] = "" if d is None else f"{d.mean():.6g}"
        table.append(row)
    return table


def _markdown(table: list[dict], axes: list[str]) -> str:
    """The table's key columns as Markdown (results.csv has every term)."""
    sums = [k for k in summary_terms(list(table[0])) if k != "total" and not k.startswith("weighted/")]
    keep = [k for k in table[0] if k in axes or (
        k not in (*sums, "batch_cells", "loss/content", "loss/style")
        and ("/" not in k or k.startswith("weighted/")))]
    lines = ["| " + " | ".join(keep) + " |", "|" + "---|" * len(keep)]
    for row in table:
        lines.append("| " + " | ".join(str(row[k]).replace("|", "/") for k in keep) + " |")
    return "\n".join(lines) + "\n"
