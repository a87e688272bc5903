"""Comparison runs (`--sweep`): a grid of settings, optimized in batches, laid out side by side.

  axes.py    the axes as data: parse `--sweep`, expand them into cells, group cells into batches (no TensorFlow)
  runner.py  a sweep end to end: plan the cells, run each batch through `nst_tf.engine`, resume
  report.py  what a sweep writes about its cells: grid.png, difference.png, results.csv/.md, curves.png

Importing this package imports only `axes` (run.py expands a sweep before TensorFlow loads); the runner
is `nst_tf.comparison.runner.run_sweep`.
"""
from nst_tf.comparison.axes import (PER_IMAGE_FIELDS, RATIO, Axis, Cell, auto_batch_size, batch_key, batches,  # noqa: F401
                                   expand, job_axes, label, parse_axes, parse_axis, photo_files, sweepable)

__all__ = ["PER_IMAGE_FIELDS", "RATIO", "Axis", "Cell", "auto_batch_size", "batch_key", "batches", "expand",
           "job_axes", "label", "parse_axes", "parse_axis", "photo_files", "sweepable"]
