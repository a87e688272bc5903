"""The Python API: what `import nst_tf` gives a notebook or a script.

  nst_tf.transfer(content, style, **options)            content + style (Gatys et al. 2016)
  nst_tf.reconstruct(content, layer="conv4_2", **options) content reconstruction from noise
  nst_tf.texture(style, **options)                      texture synthesis from noise
  nst_tf.sweep(content, style, axes={...}, **options)   a comparison grid, e.g. axes={"ratio": [1e-4, 1e-3]}
  nst_tf.resume(run_dir, **overrides)                   continue a stopped run, sweep, training or clip
  nst_tf.train_stylizer(style, train_images=None, **options) a feed-forward stylizer (Johnson et al. 2016)
  nst_tf.apply_stylizer(model, content, **options)      stylize photos with it, one forward pass each
  nst_tf.load_stylizer(path)                            a stylizer.keras as a Keras model
  nst_tf.run(config, images)                            any mode from a `nst_tf.config.Config` (as run.py)

Images may be file paths, PIL images, numpy arrays or tensors (HxWx3 or 1xHxWx3; floats in [0, 1] or
uint8). An image given in memory is saved as a PNG in `<run folder>/inputs/` and the run reads it from
there, so the folder's run.flags reproduces the run. Options are the flag names of run.py
(`max_size=512`, `style_weight=1e8`, `style_layers=("conv1_1", "conv2_1")`, `max_size="auto"`, ...);
`progress=False` hides the progress bar and `say=None` the one-line messages. Each call returns a
`Result` (or `SweepResult`): the image as float32 RGB in [0, 1], the run folder and the final named terms.
Every call runs through `nst_tf.lifecycle.run`, as run.py does.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from nst_tf import image_io, rundir
from nst_tf.config import Config, config_with, get_field, parse_field, with_field
from nst_tf.errors import UserError


@dataclasses.dataclass
class Result:
    """A finished run: `image` float32 RGB [H, W, 3] in [0, 1] (result.png), `run_dir`, and `terms`, the
    final named terms ({"total": ..., "style/conv1_1": ...})."""
    image: np.ndarray
    run_dir: str
    terms: dict[str, float]

    @classmethod
    def of(cls, run_dir: str) -> "Result":
        return cls(image_io.load_image(os.path.join(run_dir, "result.png")), run_dir,
                   rundir.read_summary(run_dir).get("final", {}))

    def _repr_png_(self) -> bytes:   # a notebook shows the result itself
        return _png(self.image)


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: `grid` (grid.png as float32 RGB), `run_dir`, and `cells`: one dict per cell with its
    axis values, status and final terms (results.csv), plus its `image` and `run_dir`."""
    grid: np.ndarray
    run_dir: str
    cells: list[dict]

    @classmethod
    def of(cls, sweep_dir: str) -> "SweepResult":
        import csv
        with open(os.path.join(sweep_dir, "results.csv"), newline="") as f:
            cells = list(csv.DictReader(f))
        for cell in cells:
            cell["run_dir"] = os.path.join(sweep_dir, cell["cell"])
            path = os.path.join(cell["run_dir"], "result.png")
            cell["image"] = image_io.load_image(path) if os.path.exists(path) else None
        return cls(image_io.load_image(os.path.join(sweep_dir, "grid.png")), sweep_dir, cells)

    def _repr_png_(self) -> bytes:
        return _png(self.grid)


@dataclasses.dataclass
class StylizerResult:
    """A trained stylizer: `model` (the Keras model), `path` (its stylizer.keras), `run_dir`, `samples` (the
    held-out photos stylized, samples.png) and `terms`, the last logged named terms (batch means)."""
    model: object
    path: str
    run_dir: str
    samples: np.ndarray
    terms: dict[str, float]

    @classmethod
    def of(cls, run_dir: str) -> "StylizerResult":
        from nst_tf.stylizer import apply, train
        path = os.path.join(run_dir, train.MODEL_FILE)
        return cls(apply.load(path), path, run_dir, image_io.load_image(os.path.join(run_dir, "samples.png")),
                   rundir.read_summary(run_dir).get("final", {}))

    def _repr_png_(self) -> bytes:
        return _png(self.samples)


def _png(image: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(image_io.to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def _as_array(image) -> np.ndarray:
    """An in-memory image (PIL, numpy, tensor) as float32 RGB [H, W, 3] in [0, 1]."""
    if isinstance(image, Image.Image):
        return image_io.from_pil(image)
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise UserError(f"an image must be HxWx3 (or 1xHxWx3), not an array of shape {array.shape}.")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UserError("the image holds non-finite values (NaN or infinity); pass pixels in [0, 1].")
    return np.clip(array, 0.0, 1.0)


def _say(say):
    return (lambda *a: None) if say is None else say


def _in_memory(images: dict) -> tuple[dict, dict]:
    """({kind: path} of the images given as paths, {kind: float32 [H, W, 3]} of those given in memory)."""
    paths = {k: os.fspath(v) for k, v in images.items() if isinstance(v, (str, os.PathLike))}
    arrays = {k: _as_array(v) for k, v in images.items() if v is not None and k not in paths}
    return paths, arrays


def _video(folder: str):
    from nst_tf.video import VideoResult   # no TensorFlow
    return VideoResult(folder)


# The result of each lifecycle mode, read back from its run folder.
RESULTS = {"sweep": lambda folder: SweepResult.of(folder), "train": lambda folder: StylizerResult.of(folder),
           "apply": lambda folder: _applied(folder), "video": _video, "clips": _video}


def run(config: Config, images: dict | None = None, *, say=print, progress: bool = True):
    """Runs `config` (any mode) through `nst_tf.lifecycle.run` and reads its result back: a Result, a
    SweepResult, a StylizerResult or, for --mode=apply, a Result per photo. `images`: {"content" or "style":
    a path or an in-memory image}."""
    from nst_tf import lifecycle
    paths, arrays = _in_memory(images or {})
    for kind, path in paths.items():
        config = with_field(config, kind, path)
    folder = lifecycle.run(config, show_progress=progress, say=_say(say), images=arrays)
    return RESULTS.get(lifecycle.mode_of(config).name, Result.of)(folder)


def _applied(folder: str):
    """One Result for one photo, a list for several (results/<name>.png)."""
    outputs = os.path.join(folder, "results")
    if not os.path.isdir(outputs):
        return Result(image_io.load_image(os.path.join(folder, "result.png")), folder, {})
    return [Result(image_io.load_image(os.path.join(outputs, name)), folder, {})
            for name in sorted(os.listdir(outputs))]


def _run(mode: str, images: dict, options: dict, say, progress: bool) -> Result | SweepResult:
    return run(config_with(Config(mode=mode), **options), images, say=say, progress=progress)


def transfer(content, style, *, say=print, progress: bool = True, **options) -> Result | SweepResult:
    """Content + style: the image of `content` painted with the style of `style` (several style images:
    a list, blended by `style_blend_weights`). A folder or a pattern (`photos/*.jpg`) as `content` stylizes
    every photo in it: a SweepResult whose grid is the contact sheet."""
    styles = style if isinstance(style, (list, tuple)) else [style]
    if len(styles) > 1 and any(not isinstance(s, (str, os.PathLike)) for s in styles):
        raise UserError("several style images must be given as file paths.")
    style = ",".join(os.fspath(s) for s in styles) if len(styles) > 1 else styles[0]
    return _run("transfer", {"content": content, "style": style}, options, say, progress)


def reconstruct(content, layer: str | None = None, *, say=print, progress: bool = True, **options) -> Result:
    """Content reconstruction from noise: the image that `layer`'s features of `content` describe
    (Gatys et al. 2016, Fig. 1); default the backbone's content layer."""
    if layer is not None:
        options = {**options, "content_layers": (layer,)}
    return _run("content", {"content": content}, options, say, progress)


def texture(style, *, say=print, progress: bool = True, **options) -> Result:
    """Texture synthesis from noise: a new image with the Gram statistics of `style` (Gatys et al. 2015)."""
    return _run("texture", {"style": style}, options, say, progress)


def sweep(content, style, axes: dict, *, say=print, progress: bool = True, **options) -> SweepResult:
    """A comparison grid: every combination of `axes` ({option or "ratio": [values]}; the last axis runs
    across the grid), e.g. axes={"ratio": [1e-4, 1e-3, 1e-2]}."""
    from nst_tf.comparison.axes import RATIO, sweepable
    from nst_tf.comparison.runner import run_sweep
    specs = []
    for name, values in axes.items():
        if name not in sweepable():
            raise UserError(f"cannot sweep {name!r}; sweep one of {', '.join(sweepable())}.")
        list_valued = name != RATIO and isinstance(parse_field(name, ""), tuple)
        texts = [",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in values]
        specs.append(f"{name}:{(';' if list_valued else ',').join(texts)}")
    base = dataclasses.replace(config_with(Config(mode="transfer"), **options), sweep=tuple(specs))
    return run(base, {"content": content, "style": style}, say=say, progress=progress)


def resume(run_dir: str, *, say=print, progress: bool = True, **overrides):
    """Continues the run, sweep, training or clip stopped in `run_dir` with its own options, `overrides` on
    top (e.g. num_steps=500 to extend a finished run; a clip goes on at its first missing frame); returns
    what the run's own call returns: a Result, a SweepResult, a StylizerResult, a VideoResult for a clip."""
    from nst_tf import lifecycle
    values = config_with(Config(), **overrides)
    folder = lifecycle.resume(run_dir, {name: get_field(values, name) for name in overrides},
                              show_progress=progress, say=_say(say))
    # the kind of result by the run's config, as `run` picks it (a clip's summary may predate the lifecycle's)
    return RESULTS.get(lifecycle.mode_of(rundir.read_config(folder)).name, Result.of)(folder)


def train_stylizer(style, train_images: str | None = None, *, say=print, progress: bool = True,
                   **options) -> StylizerResult:
    """Trains a feed-forward stylizer on `style` (a path, or a list of paths: one network with a set of
    normalization weights per style) over `train_images` (a folder; default the bundled photos), with the
    run's objective; options as for `transfer` plus train_size, train_steps, batch_size, stylizer_width,
    train_learning_rate, export (("saved_model", "tflite"))."""
    styles = style if isinstance(style, (list, tuple)) else [style]
    if any(not isinstance(s, (str, os.PathLike)) for s in styles):
        raise UserError("train_stylizer takes its style images as file paths.")
    options = {**options, "style": ",".join(os.fspath(s) for s in styles)}
    if train_images is not None:
        options["train_images"] = os.fspath(train_images)
    return run(config_with(Config(mode="train"), **options), say=say, progress=progress)


def apply_stylizer(model, content, *, say=print, **options):
    """Stylizes `content` with a trained stylizer (`model`: a stylizer.keras path or a StylizerResult) in one
    forward pass: a Result for one image (a path or an in-memory image), a list of Results (one per photo)
    for a folder or a pattern. Options as for `transfer`: max_size, preserve_colors (none, luminance, swap),
    style_blend_weights (one per style of the network)."""
    path = model.path if isinstance(model, StylizerResult) else os.fspath(model)
    return run(config_with(Config(mode="apply"), **{**options, "model": path}), {"content": content}, say=say,
               progress=False)


def load_stylizer(path):
    """The stylizer saved at `path` (the stylizer.keras of a --mode=train run) as a Keras model taking
    [image [B, H, W, 3] in [0, 1], style weights [B, styles]]; a one-line UserError for a file that is not
    one. After `import nst_tf`, `keras.saving.load_model(path)` loads it too (`nst_tf.__init__`)."""
    from nst_tf.stylizer import apply
    return apply.load(os.fspath(path))
