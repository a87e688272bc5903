"""Everything a run reports: the progress bar, TensorBoard, `losses.csv`, the loss plot, snapshots, and the
guard that stops a run at its first non-finite loss.

All of it is fed from one place, `RunLogger.__call__`, with the named terms of `objective.Objective`.
"""
from __future__ import annotations

import csv
import io
import math
import os
import sys
import time

import numpy as np
from matplotlib.figure import Figure  # not pyplot: a notebook's own backend stays as it is
# the PNG renderer now, not at the first plot: a SIGTERM during that first import left a half-initialized
# extension behind, and the plot in the stop handler then failed ("RendererAgg is already registered")
import matplotlib.backends.backend_agg  # noqa: E402,F401
import tensorflow as tf
from tqdm.auto import tqdm  # a widget in Jupyter, the bar in a terminal

from nst_tf.errors import UserError, stop_if_requested
from nst_tf.image_io import atomic_write, save_image
from nst_tf.objective import is_layer_term, summary_terms
from nst_tf.rundir import write_csv

class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; `last_good_step` is the last step whose loss was finite."""

    def __init__(self, message: str, step: int, last_good_step: int | None):
        super().__init__(message)
        self.step, self.last_good_step = step, last_good_step


class RunLogger:
    """The `on_log` callback of `optimize.run_adam` for image `index` of the batch, writing into `run_dir`.

    Keeps the last image whose loss was finite (`last_good_image`, `last_good_step`), so a run that fails
    or is interrupted can still save it.
    """

    def __init__(self, run_dir: str, term_names: list[str], num_steps: int, save_every: int,
                 show_progress: bool = True, index: int = 0, desc: str = "steps"):
        self.run_dir = run_dir
        self.term_names = term_names
        # the progress line: total and each term's weighted sum (total content style [mrf ...] tv)
        self.progress_terms = [n for n in summary_terms(term_names) if n == "total" or n.startswith("weighted/")]
        self.num_steps = num_steps
        self.save_every = save_every
        self.index = index
        self.rows: list[dict] = []
        self.last_good_step: int | None = None
        self.last_good_image: np.ndarray | None = None
        self.last_snapshot = 0
        self.start = time.perf_counter()
        self.writer = tf.summary.create_file_writer(run_dir)
        self.bar = tqdm(total=num_steps, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True,
                        disable=not show_progress, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                        "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def resume(self, step: int, image: np.ndarray, through: bool = False) -> None:
        """Continues a stopped run at `step` (with its current `image`): the rows it logged before `step`
        (through `step` itself with `through`: a training checkpoint is taken after its step was logged)
        come back from losses.csv, its clock from the last of them, its snapshot schedule from snapshots/."""
        rows = read_losses(self.run_dir)
        if rows and set(rows[0]) != {"step", "wall_s", *self.term_names}:
            raise UserError(f"{os.path.join(self.run_dir, 'losses.csv')} holds other loss terms than this run; "
                            "resume with the run's own flags.")
        self.rows = [r for r in rows if r["step"] < step + through]
        snapshots = [int(name[5:10]) for name in os.listdir(os.path.join(self.run_dir, "snapshots"))
                     if name.startswith("step_")] if os.path.isdir(os.path.join(self.run_dir, "snapshots")) else []
        self.last_snapshot = max([n for n in snapshots if n <= step] or [0])
        self.start -= self.rows[-1]["wall_s"] if self.rows else 0.0
        self.last_good_step, self.last_good_image = step, image
        self.bar.update(step)

    def log_inputs(self, images: dict[str, np.ndarray]) -> None:
        """TensorBoard image summaries of the inputs, e.g. {"0_content": ..., "1_style": ...}."""
        with self.writer.as_default():
            for name, image in images.items():
                tf.summary.image(f"image/{name}", image[None], step=0)

    def __call__(self, step: int, images: np.ndarray, terms: dict) -> None:
        stop_if_requested()
        values = {name: float(np.asarray(terms[name])[self.index]) for name in self.term_names}
        if not math.isfinite(values["total"]):
            where = (f"between step {self.last_good_step} and step {step}" if self.last_good_step is not None
                     else f"at step {step}")
            raise NonFiniteLoss(f"the loss became non-finite {where}; lower --learning_rate or the loss "
                                "weights and run again", step, self.last_good_step)
        image = images[self.index]
        self.last_good_step, self.last_good_image = step, image
        self.rows.append({"step": step, "wall_s": round(self.elapsed, 3), **values})
        with self.writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(" ".join(f"{n.split('/')[-1]}={values[n]:.3g}" for n in self.progress_terms),
                                 refresh=True)
        if self.snapshot_due(step):
            self.snapshot(step, image)
            self.last_snapshot = step

    def snapshot_due(self, step: int) -> bool:
        """Whether logging `step` takes a snapshot: the first logged step at or after each multiple of
        save_every (not the last step: the result is written then)."""
        period = self.save_every
        return bool(period) and 0 < step < self.num_steps and step // period > self.last_snapshot // period

    def snapshot(self, step: int, image: np.ndarray) -> None:
        """Writes snapshots/step_NNNNN.png, a TensorBoard image, and the CSV so far (the plot is drawn when the
        run ends or stops, `close`: drawing it takes about half a second, more than a small step)."""
        os.makedirs(os.path.join(self.run_dir, "snapshots"), exist_ok=True)
        save_image(image, os.path.join(self.run_dir, "snapshots", f"step_{step:05d}.png"))
        with self.writer.as_default():
            tf.summary.image("image/2_result", image[None], step=step)
        self.write_tables(plot=False)

    def write_tables(self, plot: bool = True) -> None:
        """losses.csv and (with `plot`) losses.png from the rows so far, each written atomically."""
        self.writer.flush()
        if not self.rows:
            return
        write_csv(os.path.join(self.run_dir, "losses.csv"), self.rows, ["step", "wall_s", *self.term_names])
        if plot:
            plot_losses(self.rows, self.term_names, os.path.join(self.run_dir, "losses.png"))

    def close(self, final_image: np.ndarray | None = None) -> None:
        self.bar.close()   # first: an error while writing the tables then comes after the bar, not before it
        if final_image is not None:
            with self.writer.as_default():
                tf.summary.image("image/2_result", final_image[None], step=self.rows[-1]["step"] if self.rows else 0)
        self.write_tables()
        self.writer.close()


def close_progress_bars() -> None:
    """Closes every progress bar still open (a run that ended in an error before its logger closed), so
    that the bar's last redraw comes before the error line instead of after it, at exit."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def read_losses(run_dir: str) -> list[dict]:
    """The rows of a run's losses.csv ([] if it has none), with int steps and float values."""
    path = os.path.join(run_dir, "losses.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: int(v) if k == "step" else float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def plot_losses(rows: list[dict], term_names: list[str], path: str) -> None:
    """Loss curves on a log scale: the weighted totals on the left, each raw per-layer term on the right."""
    left = [n for n in summary_terms(term_names) if n == "total" or n.startswith("weighted/")]
    right = [n for n in term_names if is_layer_term(n)] + ["tv"]
    plot_curves(path, [(title, {name: [(r["step"], r[name]) for r in rows] for name in names
                                if any(r[name] > 0 for r in rows)})
                       for names, title in ((left, "weighted terms (what is minimized)"),
                                            (right, "raw terms per layer"))])


def plot_curves(path: str, panels: list[tuple[str, dict[str, list[tuple[int, float]]]]],
                ylabel: str = "") -> None:
    """PNG of one or more panels side by side, each (title, {label: [(step, value)]}) on a log scale."""
    width = 6 * len(panels) + 2 * (len(panels) == 1)
    fig = Figure(figsize=(width, 4.5))
    # fixed margins (room for log-scale tick labels and the titles): tight_layout drew the figure twice
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.2 / width, bottom=0.12, top=0.92, wspace=0.25)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for name, points in series.items():
            ax.plot([p[0] for p in points], [max(p[1], 1e-30) for p in points], label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7 if len(series) > 6 else 8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
