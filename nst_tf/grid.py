"""Labelled image grids (matplotlib), each image drawn at its own pixel size.

`render_grid` lays out a row of input images, then rows x columns of result tiles, with row labels on
the left, column labels on top and a caption under each tile; it returns PNG bytes. Images are float32
RGB (or grey) arrays in [0, 1], the project's one convention.
"""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image
from matplotlib.figure import Figure   # not pyplot: a notebook's own backend stays as it is
# the PNG renderer now, not at the first plot: a SIGTERM during that first import left a half-initialized
# extension behind, and the plot in the stop handler then failed ("RendererAgg is already registered")
import matplotlib.backends.backend_agg  # noqa: E402,F401

from nst_tf.image_io import atomic_write  # noqa: E402

DPI = 100
GAP = 8            # pixels between tiles
CAPTION = 30       # pixels under each tile for its caption (two short lines)
FONT = 9


def _wrap(text: str, width: int) -> str:
    """Wraps a label after its separators ('+', ',', '=', ' ') so long layer lists stay inside the margin."""
    lines, line = [], ""
    parts = re.findall(r"[^+,= ]+[+,= ]?|[+,= ]", text)
    parts = [p[i:i + width] for p in parts for i in range(0, len(p), width)]   # break overlong names
    for part in parts:
        if line and len(line + part) > width:
            lines.append(line.rstrip())
            line = ""
        line += part
    return "\n".join(lines + [line.rstrip()])


def render_grid(tiles: dict[tuple[int, int], np.ndarray], n_rows: int, n_cols: int,
                row_labels: list[str], col_labels: list[str], captions: dict[tuple[int, int], str] | None = None,
                inputs: list[tuple[str, np.ndarray]] = (), title: str = "") -> bytes:
    """A PNG of the grid.

    Args:
      tiles: {(row, col): image [H, W, 3] or [H, W]}; a missing cell is left blank (its caption still shows).
      row_labels, col_labels: one per row / column ("" for none).
      captions: {(row, col): text} under each tile (e.g. its final loss or "diverged").
      inputs: [(label, image)] drawn in a first row above the grid (e.g. the content and style images).
      title: across the top; may have several lines.
    """
    captions = captions or {}
    shapes = [im.shape[:2] for im in list(tiles.values()) + [im for _, im in inputs]]
    tile_h = max([h for h, _ in shapes] or [64])
    tile_w = max([w for _, w in shapes] or [64])
    col_text = [_wrap(label, max(10, tile_w // 8)) for label in col_labels]
    left = 190 if any(row_labels) else GAP
    slot_h = tile_h + CAPTION
    n_cols_total = max(n_cols, len(inputs))
    title_h = 8 + 18 * (title.count("\n") + 1) if title else 0
    inputs_h = slot_h + GAP if inputs else 0
    labels_h = max([t.count("\n") + 1 for t in col_text if t] or [0]) * 13 + 4
    width = left + n_cols_total * (tile_w + GAP)
    height = GAP + title_h + inputs_h + labels_h + n_rows * (slot_h + GAP)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    fig.patch.set_facecolor("white")

    def text(x, y, s, **kw):
        fig.text(x / width, 1 - y / height, s, **{"fontsize": FONT, **kw})

    def place(image, x, y, caption):
        h, w = image.shape[:2]
        ax = fig.add_axes([x / width, 1 - (y + h) / height, w / width, h / height])
        grey = image.ndim == 2 or image.shape[-1] == 1
        ax.imshow(np.clip(image.squeeze(), 0, 1), cmap="gray" if grey else None, vmin=0, vmax=1,
                  interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        text(x + w / 2, y + h + 3, caption, ha="center", va="top")

    y = GAP
    if title:
        text(width / 2, y, title, ha="center", va="top", fontsize=FONT + 2, weight="bold")
        y += title_h
    if inputs:
        if left > GAP:
            text(8, y + tile_h / 2, "inputs", ha="left", va="center", weight="bold")
        for j, (label, image) in enumerate(inputs):
            place(image, left + j * (tile_w + GAP), y, label)
        y += inputs_h
    y += labels_h
    for j, label in enumerate(col_text):
        text(left + j * (tile_w + GAP) + tile_w / 2, y - 2, label, ha="center", va="bottom", weight="bold")
    for i in range(n_rows):
        row_y = y + i * (slot_h + GAP)
        if i < len(row_labels) and row_labels[i]:
            text(8, row_y + tile_h / 2, "\n".join(_wrap(line, 21) for line in row_labels[i].split("\n")),
                 ha="left", va="center", weight="bold")
        for j in range(n_cols):
            x = left + j * (tile_w + GAP)
            if (i, j) in tiles:
                place(tiles[(i, j)], x, row_y, captions.get((i, j), ""))
            elif (i, j) in captions:
                text(x + tile_w / 2, row_y + tile_h / 2, captions[(i, j)], ha="center", va="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_grid(png: bytes, path: str, jpeg: str | None = None) -> None:
    """Writes a grid's PNG bytes (`render_grid`) to `path`, and a JPEG copy (quality 88, e.g. for docs/) to
    `jpeg` when given; each written whole or not at all."""
    atomic_write(path, lambda f: f.write(png))
    if jpeg:
        atomic_write(jpeg, lambda f: Image.open(io.BytesIO(png)).convert("RGB").save(f, "JPEG", quality=88))
