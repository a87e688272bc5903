"""The Python API: what `import nst_tf` gives a notebook or a script, and what run.py is a client of.

  nst_tf.transfer(content, style, **options)            content + style (Gatys et al. 2016)
  nst_tf.reconstruct(content, layer="conv4_2", **options) content reconstruction from noise
  nst_tf.texture(style, **options)                      texture synthesis from noise
  nst_tf.sweep(content, style, axes={...}, **options)   a comparison grid, e.g. axes={"ratio": [1e-4, 1e-3]}
  nst_tf.resume(run_dir, **overrides)                   continue a stopped run, sweep or training
  nst_tf.train_stylizer(style, train_images=None, **options) a feed-forward stylizer (Johnson et al. 2016)
  nst_tf.apply_stylizer(model, content, **options)      stylize photos with it, one forward pass each

Images may be file paths, PIL images, numpy arrays or tensors (HxWx3 or 1xHxWx3; floats in [0, 1] or
uint8). An image given in memory is saved as a PNG in `<run folder>/inputs/` and the run reads it from
there, so the folder's run.flags reproduces the run. Options are the flag names of run.py
(`max_size=512`, `style_weight=1e8`, `style_layers=("conv1_1", "conv2_1")`, `max_size="auto"`, ...);
`progress=False` hides the progress bar and `say=None` the one-line messages. Each call returns a
`Result` (or `SweepResult`): the image as float32 RGB in [0, 1], the run folder and the final named terms.
"""
from __future__ import annotations

import dataclasses
import difflib
import os

import numpy as np
from PIL import Image

from nst_tf import image_io, rundir
from nst_tf.config import Config, get_field, parse_field, validate, with_field
from nst_tf.config import options as options_of_config
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


def _options(config: Config, options: dict) -> Config:
    """`config` with each option (a flag name) set; values as Python values, or as a flag's text."""
    schema = {opt.name: opt for opt in options_of_config()}
    for name, value in options.items():
        if name not in schema:
            close = difflib.get_close_matches(name, schema, n=3)
            hint = (f"; did you mean {', '.join(close)}?" if close
                    else "; the options are run.py's flag names (python run.py --help).")
            raise UserError(f"unknown option {name!r}{hint}")
        opt = schema[name]
        if isinstance(value, str) and (opt.is_tuple or opt.text or opt.kind is not str):
            value = parse_field(name, value)   # "1e8", "conv1_1,conv2_1", "auto" ... as on the command line
        elif isinstance(value, list):
            value = tuple(value)
        config = with_field(config, name, value)
    return config


class _Session:
    """The inputs of one API call: paths as given, in-memory images saved into the run folder first."""

    def __init__(self, config: Config, images: dict[str, object], prefix: str = ""):
        self.run_dir = None
        in_memory = {k: v for k, v in images.items() if v is not None and not isinstance(v, (str, os.PathLike))}
        paths = {k: os.fspath(v) for k, v in images.items() if isinstance(v, (str, os.PathLike))}
        if in_memory:   # the run folder exists before the run, so its inputs can live in it
            named = config
            for kind in in_memory:   # the folder is named after "content" / "style" for in-memory images
                named = with_field(named, kind, kind)
            name = config.output.run_name or prefix + rundir.default_name(named)
            self.run_dir = rundir.create(config.output.output_dir, name)
            os.makedirs(os.path.join(self.run_dir, "inputs"))
            for kind, image in in_memory.items():
                path = os.path.join(self.run_dir, "inputs", f"{kind}.png")
                image_io.save_image(_as_array(image), path)
                paths[kind] = path
        self.config = config
        for kind, path in paths.items():
            self.config = with_field(self.config, kind, path)


def _say(say):
    return (lambda *a: None) if say is None else say


def _run(mode: str, images: dict, options: dict, say, progress: bool) -> Result | SweepResult:
    from nst_tf import stylize   # TensorFlow loads here, not at `import nst_tf`
    from nst_tf.comparison.axes import photo_files
    base = _options(Config(mode=mode), options)
    session = _Session(base, images)
    config = validate(session.config)
    if photo_files(config.images.content) is not None:   # a folder or pattern of photos: a contact sheet
        from nst_tf.comparison.runner import run_sweep
        return SweepResult.of(run_sweep(config, show_progress=progress, say=_say(say), sweep_dir=session.run_dir))
    return Result.of(stylize.run(config, show_progress=progress, say=_say(say), run_dir=session.run_dir))


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
    base = dataclasses.replace(_options(Config(mode="transfer"), options), sweep=tuple(specs))
    session = _Session(base, {"content": content, "style": style}, prefix="sweep_")
    return SweepResult.of(run_sweep(validate(session.config), show_progress=progress, say=_say(say),
                                    sweep_dir=session.run_dir))


def resume(run_dir: str, *, say=print, progress: bool = True, **overrides):
    """Continues the run or sweep stopped in `run_dir` with its own options, `overrides` on top (e.g.
    num_steps=500 to extend a finished run); returns its Result (SweepResult for a sweep)."""
    from nst_tf import stylize
    values = _options(Config(), overrides)
    folder = stylize.resume(run_dir, {name: get_field(values, name) for name in overrides},
                            show_progress=progress, say=_say(say))
    if os.path.exists(os.path.join(folder, "sweep.flags")):
        return SweepResult.of(folder)
    if rundir.read_config(folder).mode == "train":
        return StylizerResult.of(folder)
    return Result.of(folder)


def train_stylizer(style, train_images: str | None = None, *, say=print, progress: bool = True,
                   **options) -> StylizerResult:
    """Trains a feed-forward stylizer on `style` (a path, or a list of paths: one network with a set of
    normalization weights per style) over `train_images` (a folder; default the bundled photos), with the
    run's objective; options as for `transfer` plus train_size, train_steps, batch_size, stylizer_width,
    train_learning_rate, export (("saved_model", "tflite"))."""
    from nst_tf.stylizer import train
    styles = style if isinstance(style, (list, tuple)) else [style]
    if any(not isinstance(s, (str, os.PathLike)) for s in styles):
        raise UserError("train_stylizer takes its style images as file paths.")
    options = {**options, "style": ",".join(os.fspath(s) for s in styles)}
    if train_images is not None:
        options["train_images"] = os.fspath(train_images)
    config = validate(_options(Config(mode="train"), options))
    return StylizerResult.of(train.train(config, show_progress=progress, say=_say(say)))


def apply_stylizer(model, content, *, say=print, **options):
    """Stylizes `content` with a trained stylizer (`model`: a stylizer.keras path or a StylizerResult) in one
    forward pass: a Result for one image (a path or an in-memory image), a list of Results (one per photo)
    for a folder or a pattern. Options as for `transfer`: max_size, preserve_colors (none, luminance, swap),
    style_blend_weights (one per style of the network)."""
    from nst_tf.comparison.axes import photo_files
    from nst_tf.stylizer import apply
    path = model.path if isinstance(model, StylizerResult) else os.fspath(model)
    session = _Session(_options(Config(mode="apply"), {**options, "model": path}), {"content": content})
    config = validate(session.config)
    folder = apply.apply(config, say=_say(say), run_dir=session.run_dir)
    photos = photo_files(config.images.content)
    if photos is None:
        return Result(image_io.load_image(os.path.join(folder, "result.png")), folder, {})
    outputs = os.path.join(folder, "results")
    return [Result(image_io.load_image(os.path.join(outputs, name)), folder, {}) for name in sorted(os.listdir(outputs))]
