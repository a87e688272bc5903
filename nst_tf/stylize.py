"""One run end to end: resolve the config, load the images, build the objective, optimize, save.

`run(config)` is what `run.py` calls for one run and what the end-to-end test calls; `optimize(jobs)` is
the engine under it, which also optimizes the cells of a sweep together (`nst_tf.comparison`). A run writes
`<output_dir>/<run_name>/`:
  result.png        the final image
  snapshots/        step_NNNNN.png every `save_every` steps
  run.flags         a flagfile that reproduces the run (`python run.py --flagfile=.../run.flags`)
  config.json       the resolved config
  losses.csv        every named term at every logged step, with the wall time
  losses.png        the loss curves (log scale)
  events.out.tfevents.*  TensorBoard scalars and images
  summary.json      wall time, steps/s, device, final terms
  scales/<size>/    coarse to fine: each scale before the last, with files of its own as above
Every file is written whole or not at all. A run that fails or is interrupted saves its last good image
as result.png (and says so) before it stops.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
import time
from datetime import datetime

import keras
import numpy as np
import tensorflow as tf

from nst_tf import backbones, color, image_io, memory, normalize
from nst_tf.config import (AUTO_SIZE, REFERENCE_SIZE, Config, layer_weights, schedule, split_list, to_dict, to_flags,
                           validate)
from nst_tf.inputs import Inputs, initial_image, load_inputs
from nst_tf.errors import UserError
from nst_tf.objective import LossWeights, Objective, term_names
from nst_tf.optimize import Adam, Lbfgs, make_optimizer
from nst_tf.summaries import NonFiniteLoss, RunLogger


# --jit_compile applies from this size up: XLA's step was 11% faster at 256 px and 1.4x at 1024 px
# (bench/speed.py), but compiling takes seconds, which small images do not win back.
XLA_MIN_SIZE = 256


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after saving its last image."""


def _stem(paths: str | None) -> str:
    """"a" for "dir/a.jpg"; "a+b" for several images "dir/a.jpg,b.png"."""
    return "+".join(os.path.splitext(os.path.basename(p))[0] for p in split_list(paths))


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


def output_bytes(config: Config, shape: tuple[int, ...]) -> int:
    """An upper bound on what a run writes: PNGs (result, snapshots, their TensorBoard copies) at most
    3 bytes per pixel each, state.npz (image and two Adam moments, float32), 1 MB of logs and plots."""
    pixels = shape[0] * shape[1]
    period = config.output.save_every
    images = 2 + (2 * (config.optim.num_steps // period) if period else 0)
    return pixels * (3 * images + 3 * 4 * 3) + 2**20


def check_free_space(output_dir: str, needed: int) -> None:
    """UserError up front when the disk holding `output_dir` has less free space than `needed` bytes."""
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UserError(f"only {free / 2**20:.0f} MB free under {output_dir!r} and the outputs need up to "
                        f"{needed / 2**20:.0f} MB; free some space or choose another --output_dir.")


def resolve(config: Config, say=print) -> Config:
    """The config made concrete: `backbone=auto` resolved (and said in one line), the backbone's defaults
    filled in (layers, feature transform, style weight), layer names in our spelling (an unknown name is
    a UserError), an unset seed drawn."""
    model, loss = config.model, config.loss
    name, why = backbones.resolve_backbone(model.backbone, model.weights)
    if model.backbone == "auto":
        say(f"backbone: {name} ({why})")
    spec = backbones.BACKBONES[name]
    transform = spec.feature_transform if model.feature_transform == "auto" else model.feature_transform
    style_weight = loss.style_weight
    if style_weight is None:
        style_weight = backbones.default_style_weight(spec, transform, model.normalize_features,
                                                      loss.normalize_gradients)
        if config.images.preserve_colors == "luminance" and not loss.normalize_gradients:
            style_weight *= color.LUMINANCE_STYLE_FACTOR
    loss = dataclasses.replace(
        loss, style_weight=style_weight,
        content_layers=tuple(backbones.resolve_layer(n, spec) for n in loss.content_layers or spec.content_layers),
        style_layers=tuple(backbones.resolve_layer(n, spec) for n in loss.style_layers or spec.style_layers))
    seed = config.optim.seed if config.optim.seed is not None else random.SystemRandom().randrange(2**31)
    model = dataclasses.replace(model, backbone=name, feature_transform=transform)
    images = config.images
    if images.scales:   # the last scale is the result's size
        images = dataclasses.replace(images, max_size=images.scales[-1])
    return validate(dataclasses.replace(config, images=images, model=model, loss=loss,
                                        optim=dataclasses.replace(config.optim, seed=seed)))


def _write_text(path: str, text: str) -> None:
    image_io.atomic_write(path, lambda f: f.write(text), mode="w")


def prepare(config: Config, say=print) -> tuple[Config, Inputs]:
    """(resolved config, its inputs); bad images and masks fail first, before any slow work. The memory a
    step will need is predicted here (`nst_tf.memory`): --max_size=auto becomes the largest size that
    fits, a size whose whole-image step does not fit is tiled, and one that does not fit at all is
    refused with the size that would."""
    auto = validate(config).images.max_size == AUTO_SIZE
    inputs = None if auto else load_inputs(config)
    config = resolve(config, say)
    free = memory.available(backbones.pick_device(config.optim.device))
    if auto:
        size = memory.auto_size(config, free, say)
        config = dataclasses.replace(config, images=dataclasses.replace(config.images, max_size=size))
        inputs = load_inputs(config)
    tile_size = memory.fit_tiles(config, inputs.shape[:2], free, say)
    return validate(dataclasses.replace(config, optim=dataclasses.replace(config.optim, tile_size=tile_size))), inputs


@dataclasses.dataclass
class Network:
    """A loaded backbone and, with --normalize_features, its channels' mean activations."""
    model: keras.Model
    scales: dict[str, np.ndarray] | None = None


def load_model(config: Config, say=print) -> Network:
    """The backbone of a resolved config, with its weights (and its feature means, when normalized)."""
    m = config.model
    model = backbones.load_backbone(m.backbone, m.pooling, m.weights, seed=config.optim.seed, precision=m.precision)
    if not m.normalize_features:
        return Network(model)
    return Network(model, normalize.feature_scales(model, m.pooling, m.weights, config.optim.seed,
                                                   m.normalize_images, say))


def start_run_dir(config: Config, run_dir: str) -> None:
    """Writes run.flags (reproduces the run) and config.json into a new run folder."""
    _write_text(os.path.join(run_dir, "run.flags"),
                f"# Reproduces run {os.path.basename(run_dir)}: python run.py --flagfile={run_dir}/run.flags\n"
                + "\n".join(to_flags(config)) + "\n")
    _write_text(os.path.join(run_dir, "config.json"), json.dumps(to_dict(config), indent=2) + "\n")


@dataclasses.dataclass
class Job:
    """One image to optimize: its resolved config, inputs and run folder; `status` and `message` say how
    it ended (done, diverged, interrupted, out of memory) and `logger` holds its losses and last image."""
    config: Config
    inputs: Inputs                  # as loaded; `working` is what the network sees
    run_dir: str
    init: np.ndarray | None = None  # the start image, if not the config's init (the previous scale's result)
    status: str = "pending"
    message: str = ""
    logger: RunLogger | None = None
    working: Inputs = dataclasses.field(init=False)

    def __post_init__(self):
        im = self.config.images
        self.working = self.inputs.working(im.preserve_colors, im.color_match)

    def output(self, image: np.ndarray) -> np.ndarray:
        """The image written as the result: the optimized one, with the content's colours put back for
        --preserve_colors=luminance or swap."""
        return color.final_image(self.config.images.preserve_colors, image, self.inputs.content)

    def stage(self, size: int) -> "Job":
        """This job at one earlier scale of its pyramid, run in `<run_dir>/scales/<size>`."""
        config = dataclasses.replace(self.config, images=dataclasses.replace(self.config.images, max_size=size))
        return Job(config, self.inputs.at(size), os.path.join(self.run_dir, "scales", str(size)))

    def start_image(self) -> np.ndarray:
        shape = self.working.shape
        if self.init is not None:
            return image_io.resize(self.init, shape[:2])
        return initial_image(self.config, self.working, self.config.optim.seed)

    @property
    def content_layers(self) -> tuple[str, ...]:
        return self.config.loss.content_layers if self.config.uses_content else ()

    @property
    def style_layers(self) -> tuple[str, ...]:
        return self.config.loss.style_layers if self.config.uses_style else ()

    def weight_row(self, content_layers: tuple[str, ...], style_layers: tuple[str, ...]):
        """This job's loss weights as one row of a batch whose objective has the given (union) layers:
        its own per-layer weights at its layers' positions, zero at the others (the layer mask). With
        --resolution_invariant, alpha is scaled by (REFERENCE_SIZE / longest side)^2: the content term is
        a sum over positions and grows with the size, the Gram terms are means and do not."""
        loss = self.config.loss
        def row(own, weights, union):
            table = dict(zip(own, layer_weights(own, weights))) if own else {}
            return [table.get(name, 0.0) for name in union]
        alpha = loss.content_weight if self.config.uses_content else 0.0
        if loss.resolution_invariant:
            alpha *= (REFERENCE_SIZE / max(self.working.shape[:2])) ** 2
        return (alpha, loss.style_weight if self.config.uses_style else 0.0, loss.tv_weight,
                row(self.content_layers, loss.content_layer_weights, content_layers),
                row(self.style_layers, loss.style_layer_weights, style_layers))


class _AllStopped(Exception):
    """Every job of the batch has stopped (diverged): nothing left to optimize."""


STATE_FILE = "state.npz"


def save_states(jobs: list[Job], images: tf.Variable, optimizer: Adam | Lbfgs) -> None:
    """Writes each running job's `state.npz` (its image and optimizer state), what `--resume` reads."""
    if optimizer.step == 0:
        return
    for i, job in enumerate(jobs):
        if job.status == "running":
            state = optimizer.state(images, i)
            image_io.atomic_write(os.path.join(job.run_dir, STATE_FILE), lambda f: np.savez(f, **state))


def load_state(run_dir: str) -> dict[str, np.ndarray]:
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.exists(path):
        raise UserError(f"{run_dir!r} has no {STATE_FILE}: it is written at each snapshot, at the end and when "
                        "a run is stopped, so this run stopped before its first; start it again instead.")
    try:
        with np.load(path) as f:
            state = dict(f)
    except Exception as e:   # a truncated or foreign file: zipfile, zlib, numpy and pickle errors alike
        problem = "unreadable: " + (" ".join(str(e).split())[:120] or type(e).__name__)
    else:
        missing = [key for key in ("images", "step") if key not in state]
        problem = f"it lacks {' and '.join(repr(k) for k in missing)}" if missing else None
        if not problem and (state["step"].shape != () or state["images"].ndim != 3):
            problem = "its 'step' or 'images' has the wrong shape"
    if problem:
        raise UserError(f"{path} is damaged ({problem}), so the run cannot continue from it; start it again "
                        f"(python run.py --flagfile={os.path.join(run_dir, 'run.flags')}); its last image is "
                        "kept in result.png and snapshots/.")
    return state


class _BatchLog:
    """The `on_log` callback of a batch: feeds each running job's logger its own row; a job whose loss
    becomes non-finite stops alone (images of a batch do not share gradients) and keeps its last image.
    When a logger takes a snapshot, every running job's optimizer state is saved with it."""

    def __init__(self, jobs: list[Job], device: str, save):
        self.jobs, self.device, self.save = jobs, device, save

    def __call__(self, step: int, images: np.ndarray, terms: dict) -> None:
        for job in self.jobs:
            if job.status != "running":
                continue
            try:
                job.logger(step, images, terms)
            except NonFiniteLoss as e:
                job.message = f"{e}; {_stop_early(job, self.device, 'diverged')}"
        if all(job.status != "running" for job in self.jobs):
            raise _AllStopped
        if any(job.status == "running" and job.logger.last_snapshot == step for job in self.jobs):
            self.save()


def optimize(jobs: list[Job], network: Network, device: str, show_progress: bool = True,
             desc: str = "steps", resume: bool = False) -> None:
    """Optimizes `jobs` together as one batch in one compiled step, then saves each job's outputs.

    Coarse to fine (`config.schedule`): each scale but the last runs in `<run_dir>/scales/<size>/` (a run
    folder of its own) and its result, upsampled, starts the next; the last scale runs in the run folder.
    With `resume`, each job continues from the `state.npz` and logs of the scale where it stopped; finished
    scales are not run again.

    The jobs must share `sweep.batch_key` (the images' sizes, the network, the targets, the optimizer
    settings); they may differ in loss weights, layer sets (a zero weight masks a layer out), init and seed.
    Each job's status ends as "done" or "diverged". Raises `Interrupted` on Ctrl-C and UserError when
    memory runs out, after every job has saved its last good image and logs.
    """
    plan = schedule(jobs[0].config)
    alive, previous = list(jobs), None
    for k, (size, steps) in enumerate(plan):
        final = k == len(plan) - 1
        stage = alive if final else [job.stage(size) for job in alive]
        if previous is not None:
            for job, image in zip(stage, previous):
                job.init = image
        resumed = resume and all(os.path.exists(os.path.join(j.run_dir, STATE_FILE)) for j in stage)
        if not final and resumed and all(_finished(j.run_dir) for j in stage):
            previous = [load_state(j.run_dir)["images"] for j in stage]
            continue
        for job in stage:
            os.makedirs(job.run_dir, exist_ok=True)
        _optimize_scale(stage, network, device, steps, show_progress,
                        desc if len(plan) == 1 else f"{desc} {size}px", resumed)
        if final:
            return
        for job, scaled in zip(alive, stage):
            if scaled.status != "done":
                job.status, job.message = scaled.status, scaled.message
        previous = [scaled.logger.last_good_image for scaled in stage if scaled.status == "done"]
        alive = [job for job, scaled in zip(alive, stage) if scaled.status == "done"]
        if not alive:
            return


def read_summary(run_dir: str) -> dict:
    """The run folder's summary.json ({} if it has none, or an unreadable one)."""
    try:
        with open(os.path.join(run_dir, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _finished(run_dir: str) -> bool:
    return read_summary(run_dir).get("status") == "done"


def _optimize_scale(jobs: list[Job], network: Network, device: str, num_steps: int, show_progress: bool,
                    desc: str, resume: bool) -> None:
    """`optimize` at one scale: `num_steps` updates of every job's image from its start (or saved state)."""
    first = jobs[0].config
    loss, optim = first.loss, first.optim
    spec = backbones.BACKBONES[first.model.backbone]
    content_layers = backbones.order_layers([n for j in jobs for n in j.content_layers], spec)
    style_layers = backbones.order_layers([n for j in jobs for n in j.style_layers], spec)
    shape = jobs[0].working.shape
    keras.utils.set_random_seed(optim.seed)

    with tf.device(device):
        extractor = backbones.build_extractor(network.model, content_layers + style_layers,
                                              first.model.feature_transform, network.scales,
                                              first.model.softmax_temperature)
        tile_size = optim.tile_size if optim.tile_size < max(shape[:2]) else 0   # coarse scales: one tile
        objective = Objective(extractor, content_layers, style_layers, jobs[0].working, loss.content_loss,
                              loss.gram_norm, loss.normalize_gradients, tile_size)
        weights = LossWeights.from_rows(*zip(*(j.weight_row(content_layers, style_layers) for j in jobs)))
        images = tf.Variable(np.stack([j.start_image() for j in jobs]), name="image")
        jit = optim.jit_compile and max(shape[:2]) >= XLA_MIN_SIZE
        optimizer = make_optimizer(optim.optimizer, optim.learning_rate, jit)
        start = _restore(jobs, images, optimizer, num_steps) if resume else 0
        for i, job in enumerate(jobs):
            job.status = "running"
            job.logger = RunLogger(job.run_dir, term_names(job.content_layers, job.style_layers),
                                   num_steps, first.output.save_every, index=i, desc=desc,
                                   show_progress=show_progress and i == 0)
            if resume:
                job.logger.resume(start, images[i].numpy())
            else:
                job.logger.log_inputs(job.working.named_images())
        save = lambda: save_states(jobs, images, optimizer)  # noqa: E731
        try:
            optimizer.run(objective, images, weights, num_steps, _BatchLog(jobs, device, save),
                          first.output.log_every)
        except _AllStopped:
            pass
        except KeyboardInterrupt:
            save()
            saved = [_stop_early(job, device, "interrupted") for job in jobs if job.status == "running"]
            raise Interrupted("interrupted; " + (saved[0] if len(saved) == 1 else
                                                 f"each of the {len(saved)} runs kept its last good image")) from None
        except tf.errors.ResourceExhaustedError:
            saved = [_stop_early(job, device, "out of memory") for job in jobs if job.status == "running"]
            hint = " or --sweep_batch" if len(jobs) > 1 else ""
            raise UserError(f"out of memory at {shape[1]}x{shape[0]} pixels x {len(jobs)} images on {device}; "
                            f"lower --max_size{hint}; " + (saved[0] if len(saved) == 1 else
                                                          "each run kept its last good image")) from None
        except Exception:   # a bug: keep what the run has before the traceback
            save()
            for job in jobs:
                if job.status == "running":
                    job.message = _stop_early(job, device, "crashed")
            raise
    save()   # a finished run can be continued with a larger --num_steps
    for job in jobs:
        if job.status == "running":
            result = job.output(job.logger.last_good_image)
            image_io.save_image(result, os.path.join(job.run_dir, "result.png"))
            job.logger.close(final_image=result)
            job.status = "done"
            _write_summary(job, device)


def _restore(jobs: list[Job], images: tf.Variable, optimizer: Adam | Lbfgs, num_steps: int) -> int:
    """Loads each job's saved state into `images` and `optimizer`; returns the step they continue from."""
    states = [load_state(job.run_dir) for job in jobs]
    try:
        step = optimizer.restore(images, states)
    except (ValueError, KeyError) as e:
        raise UserError(f"the saved state in {jobs[0].run_dir!r} does not fit this run ({e}); resume with the "
                        "run's own flags (its run.flags).") from None
    _check_unfinished(jobs[0].run_dir, step, num_steps)
    return step


def _check_unfinished(run_dir: str, step: int, num_steps: int) -> None:
    if step >= num_steps:
        raise UserError(f"{run_dir!r} is already at step {step} of {num_steps}; pass a larger --num_steps "
                        "(or --scale_steps) to continue it.")


def run(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None) -> str:
    """Runs one stylization (or reconstruction, or texture synthesis); returns the run folder.

    With `resume_dir`, continues the run stopped in that folder (from its state.npz) instead of starting
    a new one; the result equals that of a run that never stopped.
    Raises UserError (with a one-line message) for bad input or a diverging run, and `Interrupted` on
    Ctrl-C; in both cases after the run's last good image, its optimizer state and its logs are saved.
    """
    if config.images.color_only:   # no network, no optimization
        return _color_only(config, load_inputs(validate(config)), say)
    config, inputs = prepare(config, say)
    device = backbones.pick_device(config.optim.device)
    with tf.device(device):
        network = load_model(config, say)
    check_free_space(config.output.output_dir, output_bytes(config, inputs.shape))
    if resume_dir:   # refused before run.flags is rewritten with the new flags
        run_dir = resume_dir
        say(f"resuming {run_dir} at {_resume_point(run_dir, schedule(config))}")
    else:
        run_dir = make_run_dir(config.output.output_dir, config.output.run_name or default_run_name(config))
        say(f"run folder: {run_dir}")
    start_run_dir(config, run_dir)
    job = Job(config, inputs, run_dir)
    start = time.monotonic()
    optimize([job], network, device, show_progress, resume=bool(resume_dir))
    if job.status == "diverged":
        raise UserError(job.message)
    say(f"result: {os.path.join(run_dir, 'result.png')} ({time.monotonic() - start:.1f} s)")
    return run_dir


def _resume_point(run_dir: str, plan: tuple[tuple[int, int], ...]) -> str:
    """Where a stopped run continues ("step N", or "N px, step M" in a pyramid); UserError if nowhere."""
    for size, _ in plan[:-1]:
        scale_dir = os.path.join(run_dir, "scales", str(size))
        if os.path.exists(os.path.join(scale_dir, STATE_FILE)) and not _finished(scale_dir):
            return f"{size} px, step {int(load_state(scale_dir)['step'])}"
    step = int(load_state(run_dir)["step"])
    _check_unfinished(run_dir, step, plan[-1][1])
    return f"step {step}" if len(plan) == 1 else f"{plan[-1][0]} px, step {step}"


def _color_only(config: Config, inputs: Inputs, say) -> str:
    """--color_only: the content image with the (first) style's colour mean and covariance, no optimization."""
    run_dir = make_run_dir(config.output.output_dir, config.output.run_name or default_run_name(config))
    start_run_dir(config, run_dir)
    result = np.clip(color.match_colors(inputs.content, inputs.style, config.images.color_match), 0.0, 1.0)
    image_io.save_image(result, os.path.join(run_dir, "result.png"))
    say(f"result: {os.path.join(run_dir, 'result.png')} (the content in the style's colours)")
    return run_dir


def _stop_early(job: Job, device: str, status: str) -> str:
    """Saves what a stopped job has (last good image, logs, summary); returns where the image went."""
    logger = job.logger
    path = os.path.join(job.run_dir, "result.png")
    if logger.last_good_image is None:
        saved = "no step completed, so there is no image to keep"
    else:
        image_io.save_image(job.output(logger.last_good_image), path)
        saved = f"the last good image (step {logger.last_good_step}) is saved as {path}"
    logger.close()
    job.status = status
    _write_summary(job, device)
    return saved


def _write_summary(job: Job, device: str) -> None:
    logger, config = job.logger, job.config
    last = logger.rows[-1] if logger.rows else {}
    steps = last.get("step", 0)
    summary = {"status": job.status, "steps": steps, "wall_time_s": round(logger.elapsed, 3),
               "steps_per_s": round(steps / logger.elapsed, 4) if logger.elapsed > 0 else None,
               "device": device, "backbone": config.model.backbone,
               "tensorflow": tf.__version__, "keras": keras.__version__, "python": sys.version.split()[0],
               "final": {k: v for k, v in last.items() if k not in ("step", "wall_s")},
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_text(os.path.join(job.run_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
