"""Comparison runs as data: parse `--sweep` axes, expand them into cells, group the cells into batches.

An axis is `name:values`. `name` is any flag of a run (its config field) except the output ones, or
`ratio`, the paper's alpha/beta (it sets style_weight = content_weight / ratio). Values are separated by
commas; for flags whose value is itself a list (content_layers, style_layers, *_layer_weights) the values
are separated by semicolons and each is a comma list:

  --sweep=ratio:1e-4,1e-3,1e-2
  --sweep='style_layers:conv1_1;conv1_1,conv2_1;conv1_1,conv2_1,conv3_1'

The cells are every combination of the axes' values (the first axis varies slowest). In the grid image
the last axis runs along the columns and the others along the rows. Axes are applied in the order given,
so `ratio` after `content_weight` uses each cell's own alpha.

No TensorFlow here: this module only turns configs into configs.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass

from nst_tf.config import (Config, LossConfig, OutputConfig, field_sections, get_field, parse_field, validate,
                           weighted_terms, with_field)
from nst_tf.errors import UserError
from nst_tf.inputs import IMAGE_EXTENSIONS, photo_files  # noqa: F401  (the photos of a many-photo job)

RATIO = "ratio"
# Flags that differ per image of one batch: they only change the per-image loss weights, the layer mask
# or the start image, never the shapes, the network or the targets. Every other field splits batches.
# The weights and layers of every term of the schema (`config.weighted_terms`) are per image.
PER_IMAGE_FIELDS = tuple(f"{term}{suffix}" for term in weighted_terms()
                         for suffix in ("_weight", "_layers", "_layer_weights")
                         if hasattr(LossConfig, f"{term}{suffix}")) + (
    "init", "init_contrast", "init_noise", "init_noise_cells", "seed")
# The automatic batch holds at most this many pixels (cells x max_size^2). A batch's memory grows with
# its pixels: 20 cells of 192x144 (0.55 Mpixel) with vgg16_hed up to conv5_1 peaked at 2.6 GB (measured,
# flags/figure2_grid.flags), so a full automatic batch needs about 4 to 5 GB.
AUTO_BATCH_PIXELS = 2**20
_NOT_SWEEPABLE = tuple(f.name for f in dataclasses.fields(OutputConfig)) + ("sweep", "sweep_batch", "cluster",
                                                                           "ray_workers")


def sweepable() -> tuple[str, ...]:
    """Every axis name `--sweep` accepts."""
    return (RATIO,) + tuple(n for n in field_sections(Config()) if n not in _NOT_SWEEPABLE)


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[str, ...]     # each value's text as given; also its label


def label(axis: str, text: str) -> str:
    """`axis=value` as grids, folders and messages show it; layer lists joined by '+' (conv1_1+conv2_1);
    image files by their names (content=tubingen.jpg)."""
    if axis in IMAGE_AXES:
        text = ",".join(os.path.basename(p) for p in text.split(","))
    return f"{axis}={text.replace(',', '+')}"


IMAGE_AXES = ("content", "style", "content_mask", "style_mask")
def job_axes(config: Config) -> tuple[Axis, ...]:
    """The axes of a comparison: `--sweep`'s, after the photos of a many-photo job (`photo_files`), which
    come first, so that each photo is a row of the contact sheet."""
    axes = parse_axes(config.sweep)
    photos = photo_files(config.images.content)
    if photos is None:
        return axes
    if any(a.name == "content" for a in axes):
        raise UserError("--content names several photos already; leave content out of --sweep.")
    return (Axis("content", photos), *axes)


def grid_columns(axes: tuple[Axis, ...]) -> int:
    """Columns of the grid: the last axis's values, or 1 when the photos of a many-photo job are the only
    axis (one photo a row)."""
    return 1 if len(axes) == 1 and axes[0].name == "content" else len(axes[-1].values)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its position, its axis values and its complete config."""
    index: int
    row: int
    col: int
    values: tuple[tuple[str, str], ...]   # ((axis name, value text), ...) in axis order
    config: Config

    @property
    def name(self) -> str:
        """A folder (and TensorBoard run) name: 03_ratio=1e-3_style_layers=conv1_1+conv2_1."""
        parts = [label(axis, text) for axis, text in self.values]
        return re.sub(r"[^A-Za-z0-9._=+-]", "-", f"{self.index:02d}_" + "_".join(parts))[:120]

    @property
    def label(self) -> str:
        return ", ".join(label(axis, text) for axis, text in self.values)


def _default(name: str):
    return get_field(Config(), name)


def _is_list_field(name: str) -> bool:
    return name != RATIO and isinstance(_default(name), tuple)


def parse_axis(spec: str) -> Axis:
    """`name:v1,v2,...` (`name:a,b;c,d` for list-valued flags) -> Axis; a UserError says what is wrong."""
    name, sep, text = spec.partition(":")
    name = name.strip().lstrip("-")
    if not sep or not name:
        raise UserError(f"--sweep={spec!r} must look like NAME:VALUE,VALUE,... e.g. --sweep=ratio:1e-4,1e-3.")
    if name not in sweepable():
        raise UserError(f"--sweep={spec!r}: {name!r} cannot be swept; use one of {', '.join(sweepable())}.")
    separator = ";" if _is_list_field(name) else ("," if ";" not in text else ";")
    values = tuple(v.strip() for v in text.split(separator))
    if any(not v for v in values):
        raise UserError(f"--sweep={spec!r} has an empty value; separate values with {separator!r}"
                        + (" and layers inside a value with ','" if separator == ";" else "") + ".")
    if len(set(values)) != len(values):
        raise UserError(f"--sweep={spec!r} lists a value twice.")
    for v in values:
        _value(name, v)   # fail now on a value that does not parse
    return Axis(name, values)


def parse_axes(specs: tuple[str, ...]) -> tuple[Axis, ...]:
    axes = tuple(parse_axis(s) for s in specs)
    names = [a.name for a in axes]
    for name in set(names):
        if names.count(name) > 1:
            raise UserError(f"--sweep names {name!r} twice; give all its values in one --sweep.")
    if RATIO in names and "style_weight" in names:
        raise UserError("--sweep over both ratio and style_weight: ratio sets style_weight; sweep one of them.")
    return axes


def _value(name: str, text: str):
    if name == RATIO:
        try:
            ratio = float(text)
        except ValueError:
            raise UserError(f"--sweep=ratio: {text!r} is not a number.") from None
        if not ratio > 0 or ratio == float("inf"):
            raise UserError(f"--sweep=ratio: {text} must be a positive number (alpha/beta).")
        return ratio
    return parse_field(name, text)


def apply(config: Config, name: str, text: str) -> Config:
    """`config` with axis `name` set to the value `text`."""
    value = _value(name, text)
    if name == RATIO:   # alpha/beta by hand (the automatic balance off): alpha as given, else 1
        alpha = config.loss.content_weight if config.loss.content_weight is not None else 1.0
        return with_field(with_field(config, "content_weight", alpha), "style_weight", alpha / value)
    return with_field(config, name, value)


def expand(base: Config) -> list[Cell]:
    """Every cell of `base.sweep` (and of the photos of a many-photo job), in order, each config validated
    (a bad one is named in the error)."""
    axes = job_axes(base)
    if not axes:
        return []
    if any(a.name == RATIO for a in axes) and base.mode != "transfer":
        raise UserError(f"--sweep=ratio needs both terms, but --mode={base.mode}; sweep style_weight or "
                        "content_weight instead.")
    plain = dataclasses.replace(base, sweep=(), sweep_batch=0)
    n_cols = grid_columns(axes)
    cells = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes))):
        values = tuple((a.name, v) for a, v in zip(axes, combo))
        config = plain
        for name, text in values:
            config = apply(config, name, text)
        cell = Cell(index, index // n_cols, index % n_cols, values, config)
        try:
            validate(config)
        except UserError as e:
            raise UserError(f"sweep cell {cell.label}: {e}") from None
        cells.append(cell)
    return cells


def content_per_image(config: Config) -> bool:
    """Whether cells with other content images (of one shape) can share a batch: each image then has its
    own content targets, and the style targets must not depend on the content (no masks, no --regions; no
    colour mode that takes the style to the content's colours or luminance first)."""
    return (not config.images.content_mask and config.images.regions == "none"
            and config.images.preserve_colors in ("none", "swap"))


def batch_key(config: Config, shape: tuple | None = None):
    """What cells must share to be optimized as one batch: the config with its per-image fields blanked.
    Given the image `shape` a cell will have, its content image is per image too (`content_per_image`),
    so the photos of a many-photo job that share a size share batches.

    With `--weights=random` the seed also draws the network's weights, so it splits batches too; so does
    an --init whose default gradient blur differs (`Config.blur_passes`).
    """
    key = config
    for name in PER_IMAGE_FIELDS:
        if name == "seed" and config.model.weights == "random":
            continue
        key = with_field(key, name, _default(name))
    # the batch shares one optimizer, whose gradient blur --init=auto|noise|... may resolve differently
    key = with_field(key, "gradient_blur", config.blur_passes)
    if shape is None:
        return key
    if content_per_image(config):
        key = with_field(key, "content", None)
    return key, tuple(shape)


def auto_batch_size(config: Config) -> int:
    """Cells per batch for `--sweep_batch=0`: as many as keep a batch within AUTO_BATCH_PIXELS, counting
    each cell as max_size^2 pixels (16 cells at 256 px, 4 at 512, 1 from 1024 on)."""
    return max(1, AUTO_BATCH_PIXELS // config.images.max_size ** 2)


def batches(cells: list[Cell], batch_size: int = 0, shapes: dict[int, tuple] | None = None) -> list[list[Cell]]:
    """Cells grouped by `batch_key` (in order of first appearance), each group cut into batches of at
    most `batch_size` cells (0: `auto_batch_size`). With `shapes` ({cell index: its image's shape, as
    planned}) cells with other content images of one shape group together."""
    groups: dict[object, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(batch_key(cell.config, None if shapes is None else shapes[cell.index]), []).append(cell)
    out = []
    for group in groups.values():
        size = batch_size or auto_batch_size(group[0].config)
        out.extend(group[i:i + size] for i in range(0, len(group), size))
    return out
