"""One run end to end: resolve the config, load the images, build the objective, optimize, save.

`run(config)` is what `run.py` calls and what the end-to-end test calls. A run writes
`<output_dir>/<run_name>/`:
  result.png        the final image
  snapshots/        step_NNNNN.png every `save_every` steps
  run.flags         a flagfile that reproduces the run (`python run.py --flagfile=.../run.flags`)
  config.json       the resolved config
  losses.csv        every named term at every logged step, with the wall time
  losses.png        the loss curves (log scale)
  events.out.tfevents.*  TensorBoard scalars and images
  summary.json      wall time, steps/s, device, final terms
Every file is written whole or not at all. A run that fails or is interrupted saves its last good image
as result.png (and says so) before it stops.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
from datetime import datetime

import keras
import numpy as np
import tensorflow as tf

from nst_tf import backbones, image_io
from nst_tf.config import Config, layer_weights, to_dict, to_flags, validate
from nst_tf.errors import UserError
from nst_tf.objective import LossWeights, Objective
from nst_tf.optimize import run_adam
from nst_tf.summaries import NonFiniteLoss, RunLogger


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after saving its last image."""


def _stem(path: str | None) -> str:
    return os.path.splitext(os.path.basename(path))[0] if path else ""


def default_run_name(config: Config) -> str:
    """<content>_<style>_<timestamp> (texture_<style>_..., content_<content>_... in the other modes)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stems = {"transfer": [_stem(config.images.content), _stem(config.images.style)],
             "content": ["content", _stem(config.images.content)],
             "texture": ["texture", _stem(config.images.style)]}[config.mode]
    return "_".join([*stems, stamp])


def make_run_dir(output_dir: str, name: str) -> str:
    """Creates a new folder `output_dir/name` (suffix -2, -3, ... if taken): never reuses one.

    `os.mkdir` fails if the folder exists, so two runs started at the same moment cannot share one.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {output_dir!r} ({e.strerror}); "
                        "choose another with --output_dir.") from None
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"the output folder {output_dir!r} is not writable; choose another with --output_dir.")
    for k in range(1, 10_000):
        path = os.path.join(output_dir, name if k == 1 else f"{name}-{k}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise UserError(f"too many runs named {name!r} in {output_dir!r}; pass another --run_name.")


def load_inputs(config: Config) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The content and style images at their working sizes (None where the mode does not use one).

    The content image's longest side becomes `max_size`; the style image's longest side becomes
    `style_scale` times the content's (times `max_size` in texture mode, where the result takes the style
    image's aspect ratio).
    """
    im, paths = config.images, config.image_paths
    content = style = None
    if "content" in paths:
        content = image_io.load_resized(paths["content"], im.max_size)
    if "style" in paths:
        base = max(content.shape[:2]) if content is not None else im.max_size
        style = image_io.load_resized(paths["style"], max(16, round(base * im.style_scale)))
    return content, style


def initial_image(config: Config, content: np.ndarray | None, style: np.ndarray | None,
                  shape: tuple[int, int, int]) -> np.ndarray:
    """The starting image, [H, W, 3] in [0, 1]: white noise from the seed, the content, or the style."""
    if config.init == "content":
        return content.copy()
    if config.init == "style":
        return image_io.resize(style, shape[:2])
    return image_io.noise_like(shape, config.optim.seed)


def resolve(config: Config, say=print) -> Config:
    """The config made concrete: `backbone=auto` resolved (and said in one line), layer names in the
    paper's spelling (an unknown name is a UserError), an unset seed drawn."""
    model = config.model
    name, why = backbones.resolve_backbone(model.backbone, model.weights)
    if model.backbone == "auto":
        say(f"backbone: {name} ({why})")
    spec = backbones.BACKBONES[name]
    loss = dataclasses.replace(
        config.loss, content_layers=tuple(backbones.resolve_layer(n, spec) for n in config.loss.content_layers),
        style_layers=tuple(backbones.resolve_layer(n, spec) for n in config.loss.style_layers))
    seed = config.optim.seed if config.optim.seed is not None else random.SystemRandom().randrange(2**31)
    return validate(dataclasses.replace(config, model=dataclasses.replace(model, backbone=name), loss=loss,
                                        optim=dataclasses.replace(config.optim, seed=seed)))


def _write_text(path: str, text: str) -> None:
    image_io.atomic_write(path, lambda f: f.write(text), mode="w")


def run(config: Config, show_progress: bool = True, say=print) -> str:
    """Runs one stylization (or reconstruction, or texture synthesis); returns the run folder.

    Raises UserError (with a one-line message) for bad input or a diverging run, and `Interrupted` on
    Ctrl-C; in both cases after the run's last good image and its logs are saved.
    """
    content, style = load_inputs(validate(config))   # bad images fail first, before any slow work
    config = resolve(config, say)
    keras.utils.set_random_seed(config.optim.seed)
    device = backbones.pick_device(config.optim.device)

    loss = config.loss
    content_layers = loss.content_layers if config.uses_content else ()
    style_layers = loss.style_layers if config.uses_style else ()
    shape = (content if content is not None else style).shape

    with tf.device(device):
        backbone = backbones.load_backbone(config.model.backbone, config.model.pooling, config.model.weights,
                                           seed=config.optim.seed)
        extractor = backbones.build_extractor(backbone, content_layers + style_layers)
        objective = Objective(extractor, content_layers, style_layers, content, style,
                              loss.content_loss, loss.gram_norm)
        weights = LossWeights.create(
            1, content=loss.content_weight if config.uses_content else 0.0,
            style=loss.style_weight if config.uses_style else 0.0, tv=loss.tv_weight,
            content_layers=layer_weights(content_layers, loss.content_layer_weights),
            style_layers=layer_weights(style_layers, loss.style_layer_weights))

        run_dir = make_run_dir(config.output.output_dir, config.output.run_name or default_run_name(config))
        _write_text(os.path.join(run_dir, "run.flags"),
                    f"# Reproduces run {os.path.basename(run_dir)}: python run.py --flagfile={run_dir}/run.flags\n"
                    + "\n".join(to_flags(config)) + "\n")
        _write_text(os.path.join(run_dir, "config.json"), json.dumps(to_dict(config), indent=2) + "\n")
        say(f"run folder: {run_dir}")
        images = tf.Variable(initial_image(config, content, style, shape)[None], name="image")

        logger = RunLogger(run_dir, objective.term_names(), config.optim.num_steps, config.output.save_every,
                           show_progress=show_progress)
        logger.log_inputs({name: im for name, im in (("0_content", content), ("1_style", style))
                           if im is not None})
        result_path = os.path.join(run_dir, "result.png")
        try:
            run_adam(objective, images, weights, config.optim.num_steps, config.optim.learning_rate,
                     logger, config.output.log_every)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {_stop_early(run_dir, config, device, logger, 'interrupted')}") from None
        except NonFiniteLoss as e:
            raise UserError(f"{e}; {_stop_early(run_dir, config, device, logger, 'diverged')}") from None
        except tf.errors.ResourceExhaustedError:
            saved = _stop_early(run_dir, config, device, logger, "out of memory")
            raise UserError(f"out of memory at {shape[1]}x{shape[0]} pixels on {device}; lower --max_size; "
                            f"{saved}") from None
    image_io.save_image(logger.last_good_image, result_path)
    logger.close(final_image=logger.last_good_image)
    _write_summary(run_dir, config, device, logger, status="done")
    say(f"result: {result_path} ({logger.elapsed:.1f} s)")
    return run_dir


def _stop_early(run_dir: str, config: Config, device: str, logger: RunLogger, status: str) -> str:
    """Saves what a stopped run has (last good image, logs, summary); returns where the image went."""
    path = os.path.join(run_dir, "result.png")
    if logger.last_good_image is None:
        saved = "no step completed, so there is no image to keep"
    else:
        image_io.save_image(logger.last_good_image, path)
        saved = f"the last good image (step {logger.last_good_step}) is saved as {path}"
    logger.close()
    _write_summary(run_dir, config, device, logger, status=status)
    return saved


def _write_summary(run_dir: str, config: Config, device: str, logger: RunLogger, status: str) -> None:
    last = logger.rows[-1] if logger.rows else {}
    steps = last.get("step", 0)
    summary = {"status": status, "steps": steps, "wall_time_s": round(logger.elapsed, 3),
               "steps_per_s": round(steps / logger.elapsed, 4) if logger.elapsed > 0 else None,
               "device": device, "backbone": config.model.backbone,
               "tensorflow": tf.__version__, "keras": keras.__version__, "python": sys.version.split()[0],
               "final": {k: v for k, v in last.items() if k not in ("step", "wall_s")},
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
