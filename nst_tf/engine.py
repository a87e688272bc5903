"""The engine: jobs (one image each) optimized together as one batch, coarse to fine.

`optimize(jobs, network, device)` is all a run (`nst_tf.stylize`) and a sweep (`nst_tf.comparison`) need: each
job is a resolved config, its inputs and its run folder; the jobs of one call share the image size, the
network, the targets and the optimizer settings (`comparison.batch_key`) and may differ in loss weights, layer
sets (a zero weight masks a layer out), init and seed. The pyramid (`config.schedule`) is a loop around
`optimize_scale`: each scale but the last runs in `<run_dir>/scales/<size>/` (a run folder of its own) and
its result, upsampled, starts the next.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from nst_tf import backbones, color, image_io, normalize, registry, rundir
from nst_tf.config import AUTO_STEPS, Config, schedule
from nst_tf.errors import Interrupted, OutOfMemory, UserError
from nst_tf.evaluate import make_loss
from nst_tf.inputs import Inputs, initial_image
from nst_tf.objective import loss_weights, term_names
from nst_tf.optimize import make_optimizer
from nst_tf.plan import EffectiveWeights
from nst_tf.summaries import NonFiniteLoss, RunLogger

# --jit_compile applies from this size up: compiling takes seconds, which small images do not win back.
XLA_MIN_SIZE = 256


@dataclasses.dataclass
class Network:
    """A loaded backbone and, with --normalize_features, its channels' mean activations."""
    model: keras.Model
    channel_means: dict[str, np.ndarray] | None = None


def load_network(config: Config, say=print) -> Network:
    """The backbone of a resolved config, with its weights (and its feature means, when normalized)."""
    m = config.model
    model = backbones.load_backbone(m.backbone, m.pooling, m.weights, seed=config.optim.seed, precision=m.precision,
                                    padding=m.padding, padding_scope=m.padding_scope)
    if not m.normalize_features:
        return Network(model)
    return Network(model, normalize.feature_scales(model, m.pooling, m.weights, config.optim.seed,
                                                   m.normalize_images, say, (m.padding, m.padding_scope)))


@dataclasses.dataclass
class Job:
    """One image to optimize: its resolved config, inputs and run folder; `status` and `message` say how
    it ended (done, diverged, interrupted, out of memory, crashed) and `logger` holds its losses and last
    image."""
    config: Config
    inputs: Inputs                  # as loaded; `working` is what the network sees
    run_dir: str
    init: np.ndarray | None = None  # the start image, if not the config's init (the previous scale's result)
    balance: object | None = None   # for summary.json: what --strength found or the floor did (balance.Balance, Floor)
    changes: list = dataclasses.field(default_factory=list)   # (step, mean |pixel change| per step, 1/255)
    converged_at: int | None = None   # --num_steps=auto: the step where the image stopped changing
    status: str = "pending"
    message: str = ""
    logger: RunLogger | None = None
    working: Inputs = dataclasses.field(init=False)

    def __post_init__(self):
        im = self.config.images
        self.working = self.inputs.working(im.preserve_colors, im.color_match)

    @property
    def weights(self) -> EffectiveWeights:
        return EffectiveWeights.of(self.config, self.working.shape)

    def output(self, image: np.ndarray) -> np.ndarray:
        """The image written as the result: the optimized one, with the content's colours put back for
        --preserve_colors=luminance or swap."""
        return color.final_image(self.config.images.preserve_colors, image, self.inputs.content)

    def stage(self, size: int) -> "Job":
        """This job at one earlier scale of its pyramid, run in `<run_dir>/scales/<size>`."""
        config = dataclasses.replace(self.config, images=dataclasses.replace(self.config.images, max_size=size))
        return Job(config, self.inputs.at(size), os.path.join(self.run_dir, "scales", str(size)))

    def start_image(self) -> np.ndarray:
        if self.init is not None:
            return image_io.resize(self.init, self.working.shape[:2])
        return initial_image(self.config, self.working, self.config.optim.seed)

    def stop(self, device: str, status: str) -> str:
        """Saves what a stopped job has (last good image, logs, summary); returns where the image went."""
        path = os.path.join(self.run_dir, "result.png")
        if self.logger.last_good_image is None:
            saved = "no step completed, so there is no image to keep"
        else:
            image_io.save_image(self.output(self.logger.last_good_image), path)
            saved = f"the last good image (step {self.logger.last_good_step}) is saved as {path}"
        self.logger.close()
        self.status = status
        self.write_summary(device)
        return saved

    def finish(self, device: str) -> None:
        result = self.output(self.logger.last_good_image)
        image_io.save_image(result, os.path.join(self.run_dir, "result.png"))
        self.logger.close(final_image=result)
        self.status = "done"
        self.write_summary(device)

    def record(self) -> dict:
        """What the job's summary.json says (`rundir.summary`'s fields); also what a one-image run records
        (`nst_tf.lifecycle.Run.record`)."""
        logger = self.logger
        if logger is None:
            return {"steps": 0, "details": self.details()}
        last = logger.rows[-1] if logger.rows else {}
        return {"steps": last.get("step", 0), "wall_time_s": logger.elapsed,
                "final": {k: v for k, v in last.items() if k not in ("step", "wall_s")}, "details": self.details()}

    def details(self) -> dict:
        return {"objective": self.config.mode, "backbone": self.config.model.backbone,
                "effective_weights": dataclasses.asdict(self.weights),
                "balance": dataclasses.asdict(self.balance) if self.balance else None,
                "converged_at": self.converged_at, "image_change_per_step": self.changes}

    def write_summary(self, device: str) -> None:
        fields = self.record()
        rundir.write_summary(self.run_dir, rundir.summary(
            self.status, "optimize", fields["steps"], fields.get("wall_time_s", 0.0), device, fields.get("final"),
            fields["details"], "" if self.status == "done" else self.message))


def optimize(jobs: list[Job], network: Network, device: str, show_progress: bool = True,
             desc: str = "steps", resume: bool = False, on_save: Callable[[], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> None:
    """Optimizes `jobs` together as one batch, coarse to fine, then saves each job's outputs.

    With `resume`, each job continues from the `state.npz` and logs of the scale where it stopped; finished
    scales are not run again. `on_save` is called after each time the jobs' states are saved (each
    snapshot, the end, a stop): the folders are consistent then. `on_progress(step, total)` counts the
    steps of every scale together. Each job's status ends as "done" or
    "diverged". Raises `Interrupted` on Ctrl-C and UserError when memory runs out, after every job has
    saved its last good image and logs.
    """
    plan = schedule(jobs[0].config)
    alive, previous = list(jobs), None
    total = sum(steps for _, steps in plan)
    for k, (size, steps) in enumerate(plan):
        done = sum(s for _, s in plan[:k])
        progress = None if on_progress is None else (lambda step, _, done=done: on_progress(done + step, total))
        final = k == len(plan) - 1
        stage = alive if final else [job.stage(size) for job in alive]
        if previous is not None:
            for job, image in zip(stage, previous):
                job.init = image
        resumed = resume and all(rundir.has_state(j.run_dir) for j in stage)
        margin = canvas_margin(jobs[0].config.optim.canvas_margin, size, plan[-1][0], stage[0].working.shape)
        if not final and resumed and all(rundir.finished(j.run_dir) for j in stage):
            # a saved state holds the canvas
            previous = [crop_canvas(rundir.load_state(j.run_dir)["images"], margin) for j in stage]
            continue
        for job in stage:
            os.makedirs(job.run_dir, exist_ok=True)
        optimize_scale(stage, network, device, steps, show_progress,
                       desc if len(plan) == 1 else f"{desc} {size}px", resumed, on_save, progress, margin)
        if final:
            return
        for job, scaled in zip(alive, stage):
            if scaled.status != "done":
                job.status, job.message = scaled.status, scaled.message
        previous = [scaled.logger.last_good_image for scaled in stage if scaled.status == "done"]
        alive = [job for job, scaled in zip(alive, stage) if scaled.status == "done"]
        if not alive:
            return


def canvas_margin(margin: int, size: int, final_size: int, shape: tuple[int, ...]) -> int:
    """The --canvas_margin of one scale of a pyramid: `margin` px at the result's size, scaled with the size
    (at least 1 px where it is on), and less than the image's short side."""
    if not margin:
        return 0
    return max(1, min(round(margin * size / final_size), min(shape[:2]) - 1))


def pad_canvas(image: np.ndarray | None, margin: int) -> np.ndarray | None:
    """[H, W, 3] mirrored out by `margin` px on each side (--canvas_margin): the canvas optimized."""
    if image is None or not margin:
        return image
    if min(image.shape[:2]) <= margin:
        raise UserError(f"--canvas_margin={margin} needs an image larger than {margin} px at every scale.")
    return np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")


def canvas_inputs(inputs: Inputs, margin: int) -> Inputs:
    """`inputs` for a canvas: the content, and the content mask's regions, mirrored out by `margin` px (in
    texture mode, where there is no content, the canvas's shape)."""
    if not margin:
        return inputs
    if inputs.content is None:
        height, width = inputs.shape[:2]
        return dataclasses.replace(inputs, canvas=(height + 2 * margin, width + 2 * margin))
    guides = inputs.guides
    if guides is not None:
        guides = dataclasses.replace(guides, content=np.pad(guides.content, ((0, 0), (margin, margin),
                                                                             (margin, margin)), mode="reflect"))
    return dataclasses.replace(inputs, content=pad_canvas(inputs.content, margin), guides=guides)


def crop_canvas(images: np.ndarray, margin: int) -> np.ndarray:
    """The centre of canvases [..., H + 2m, W + 2m, 3]: the images the canvases were made from."""
    return images[..., margin:-margin, margin:-margin, :] if margin else images


class _AllStopped(Exception):
    """Every job of the batch has stopped (diverged): nothing left to optimize."""


# --num_steps=auto: a scale stops once every image of the batch has stopped changing (`stopped_changing`): it
# changes by less than CONVERGED per step (mean absolute change of its pixels over the last log interval, in
# 1/255), or that change fell by less than PLATEAU_DROP over the last PLATEAU_STEPS steps (Adam's steady jitter:
# at 128 px it stays near 0.11 from step 250 on), after at least CONVERGED_MIN_STEPS steps. 0.15 stopped too
# early (blind judges preferred 200 steps); at 0.10 they could not tell the stopped picture from 200 steps'; the
# plateau stopped none of those runs earlier (docs/balance.md, "Steps until the image stops changing").
CONVERGED = 0.10
CONVERGED_MIN_STEPS = 40
PLATEAU_STEPS, PLATEAU_DROP = 50, 0.15


def stopped_changing(changes: list[tuple[int, float]]) -> bool:
    """Whether an image whose change per step at each log row was `changes` [(step, 1/255 per step)] has stopped
    changing: its last change under CONVERGED, or above (1 - PLATEAU_DROP) times the change PLATEAU_STEPS steps
    earlier; never before CONVERGED_MIN_STEPS."""
    rows = list(changes[-1:])
    for row in reversed(changes[:-1]):   # this scale's rows only: the steps count up within a scale
        if row[0] >= rows[0][0]:
            break
        rows.insert(0, row)
    if not rows or rows[-1][0] < CONVERGED_MIN_STEPS:
        return False
    step, change = rows[-1]
    earlier = [c for s, c in rows if CONVERGED_MIN_STEPS <= s <= step - PLATEAU_STEPS]
    return change < CONVERGED or bool(earlier) and change > (1 - PLATEAU_DROP) * earlier[-1]


class _Converged(Exception):
    """Every running image of the batch has stopped changing visibly (--num_steps=auto)."""


class _BatchLog:
    """The `on_log` callback of a batch: feeds each running job's logger its own row; a job whose loss
    becomes non-finite stops alone (images of a batch do not share gradients) and keeps its last image.
    When a logger takes a snapshot, every running job's optimizer state is saved with it. Each job's image
    change per step between log rows is kept in `job.changes`; with `converge`, the batch stops (`_Converged`)
    when every image has stopped changing (`stopped_changing`)."""

    def __init__(self, jobs: list[Job], device: str, save, num_steps: int, progress=None, margin: int = 0,
                 converge: bool = False):
        self.jobs, self.device, self.save = jobs, device, save
        self.num_steps, self.progress, self.margin = num_steps, progress, margin
        self.converge, self.previous = converge, None

    def changes(self, step: int, images: np.ndarray) -> None:
        """Records each job's mean absolute pixel change per step (in 1/255) since the last row."""
        if self.previous is not None and step > self.previous[0]:
            per_step = np.abs(images - self.previous[1]).mean(axis=(1, 2, 3)) * 255 / (step - self.previous[0])
            for i, job in enumerate(self.jobs):
                job.changes.append((step, round(float(per_step[i]), 4)))
        self.previous = (step, images.copy())

    def __call__(self, step: int, images: np.ndarray, terms: dict) -> None:
        images = crop_canvas(images, self.margin)   # loggers, snapshots, the result and the next scale: the centre
        if self.progress is not None:
            self.progress(step, self.num_steps)
        self.changes(step, images)
        snapshots = {id(job): job.logger.last_snapshot for job in self.running()}
        for job in self.running():
            try:
                job.logger(step, images, terms)
            except NonFiniteLoss as e:
                job.message = f"{e}; {job.stop(self.device, 'diverged')}"
        if not self.running():
            raise _AllStopped
        # the states go with a snapshot, which has just written the losses so far: a run killed later resumes
        # from a folder whose state, snapshots and losses.csv agree
        if any(job.logger.last_snapshot != snapshots[id(job)] for job in self.running()):
            self.save()
        if self.converge and step < self.num_steps and all(
                job.changes and job.changes[-1][0] == step and stopped_changing(job.changes) for job in self.running()):
            raise _Converged

    def running(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "running"]

    def stop_all(self, status: str) -> str:
        """Stops every running job; what they kept, in words."""
        saved = [job.stop(self.device, status) for job in self.running()]
        return saved[0] if len(saved) == 1 else f"each of the {len(saved)} runs kept its last good image"


def _extractor_and_layers(jobs: list[Job], network: Network):
    first = jobs[0].config
    spec = registry.BACKBONES[first.model.backbone]
    layers = {}   # {term: the layers some job's term reads, in network order}
    for job in jobs:
        for term, names in job.weights.term_layers().items():
            layers[term] = registry.order_layers([*layers.get(term, ()), *names], spec)
    extractor = backbones.build_extractor(network.model, registry.order_layers(
        [n for names in layers.values() for n in names], spec), first.model.feature_transform,
        network.channel_means, first.model.softmax_temperature, first.blur_passes)
    return extractor, layers


def loss_of(job: Job, network: Network):
    """(loss, weights) of one job at its working size, whole image, without a canvas: what the automatic
    balance measures (nst_tf/balance.py)."""
    return batch_loss([job], network, job.working, normalize_gradients=False), loss_weights([job.weights.flat()])


def batch_loss(jobs: list[Job], network: Network, working: Inputs, tile_size: int = 0, contents: list | None = None,
               normalize_gradients: bool | None = None):
    """The objective (`evaluate.Loss`) of a batch of `jobs` whose images have the inputs `working` (the jobs'
    own, or on a canvas), with the first job's loss options: every term on the layers the batch's jobs use,
    the targets computed once here. `contents`: one content image per job where they differ; None where they
    share `working.content`. `normalize_gradients`: the config's unless given."""
    extractor, layers = _extractor_and_layers(jobs, network)
    content_layers, style_layers = layers.pop("content"), layers.pop("style")
    lc = jobs[0].config.loss
    normalize = lc.normalize_gradients if normalize_gradients is None else normalize_gradients
    return make_loss(extractor, content_layers, style_layers, working, lc.content_loss, lc.gram_norm, normalize,
                     tile_size, lc.normalize_terms, lc.style_loss, contents, layers)


def optimize_scale(jobs: list[Job], network: Network, device: str, num_steps: int, show_progress: bool = True,
                   desc: str = "steps", resume: bool = False, on_save: Callable[[], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None, margin: int = 0) -> None:
    """`optimize` at one scale: `num_steps` updates of every job's image from its start (or saved state).
    `margin` > 0: the images optimized are canvases, the content mirrored out by that many px, and the
    result is their centre (--canvas_margin)."""
    first = jobs[0].config
    optim = first.optim
    if len({job.config.blur_passes for job in jobs}) > 1:   # comparison.batch_key keeps sweeps from this
        raise ValueError("one batch shares one optimizer: its jobs must resolve --gradient_blur alike")
    working = canvas_inputs(jobs[0].working, margin)
    shape = working.shape
    keras.utils.set_random_seed(optim.seed)
    with tf.device(device):
        tile_size = optim.tile_size if optim.tile_size < max(shape[:2]) else 0   # coarse scales: one tile
        contents = [pad_canvas(job.working.content, margin) for job in jobs]
        same = all(c is None or c is contents[0] or np.array_equal(c, contents[0]) for c in contents)
        loss = batch_loss(jobs, network, working, tile_size, None if same else contents)
        weights = loss_weights([j.weights.flat() for j in jobs])
        images = tf.Variable(np.stack([pad_canvas(j.start_image(), margin) for j in jobs]), name="image")
        optimizer = make_optimizer(optim.optimizer, optim.learning_rate,
                                   optim.jit_compile and max(shape[:2]) >= XLA_MIN_SIZE, optim.average_decay,
                                   first.blur_passes)
        start = _restore(jobs, images, optimizer, num_steps) if resume else 0
        for i, job in enumerate(jobs):
            job.status = "running"
            job.logger = RunLogger(job.run_dir, term_names(job.weights.term_layers()),
                                   num_steps, first.output.save_every, index=i, desc=desc,
                                   show_progress=show_progress and i == 0)
            if resume:
                job.logger.resume(start, crop_canvas(images[i].numpy(), margin))
            else:
                job.logger.log_inputs(job.working.named_images())

        def save():
            if optimizer.steps:
                for i, job in enumerate(jobs):
                    if job.status == "running":
                        rundir.save_state(job.run_dir, optimizer.state(images, i))
            if on_save is not None:
                on_save()

        log = _BatchLog(jobs, device, save, num_steps, on_progress, margin, converge=optim.num_steps == AUTO_STEPS)
        try:
            optimizer.run(loss, images, weights, num_steps, log, first.output.log_every)
        except _AllStopped:
            return
        except _Converged:
            for job in log.running():
                job.converged_at = log.previous[0]
        except KeyboardInterrupt:
            save()
            raise Interrupted("interrupted; " + log.stop_all("interrupted")) from None
        except tf.errors.ResourceExhaustedError:
            hint = " or --sweep_batch" if len(jobs) > 1 else ""
            raise OutOfMemory(f"out of memory at {shape[1]}x{shape[0]} pixels x {len(jobs)} images on {device}; "
                            f"lower --max_size{hint}; " + log.stop_all("out of memory")) from None
        except Exception:   # a bug: keep what the run has before the traceback
            save()
            for job in log.running():
                job.message = job.stop(device, "crashed")
            raise
    save()   # a finished run can be continued with a larger --num_steps
    for job in log.running():
        job.finish(device)


def _restore(jobs: list[Job], images: tf.Variable, optimizer, num_steps: int) -> int:
    """Loads each job's saved state into `images` and `optimizer`; returns the step they continue from."""
    states = [rundir.load_state(job.run_dir) for job in jobs]
    try:
        step = optimizer.restore(images, states)
    except (ValueError, KeyError) as e:
        raise UserError(f"the saved state in {jobs[0].run_dir!r} does not fit this run ({e}); resume with the "
                        "run's own flags (its run.flags).") from None
    check_unfinished(jobs[0].run_dir, step, num_steps)
    return step


def check_unfinished(run_dir: str, step: int, num_steps: int) -> None:
    if step >= num_steps:
        raise UserError(f"{run_dir!r} is already at step {step} of {num_steps}; pass a larger --num_steps "
                        "(or --scale_steps) to continue it.")


def resume_point(run_dir: str, plan: tuple[tuple[int, int], ...]) -> str:
    """Where a stopped run continues ("step N", or "N px, step M" in a pyramid); UserError if nowhere."""
    for size, _ in plan[:-1]:
        scale_dir = os.path.join(run_dir, "scales", str(size))
        if rundir.has_state(scale_dir) and not rundir.finished(scale_dir):
            return f"{size} px, step {rundir.saved_step(scale_dir)}"
    step = int(rundir.load_state(run_dir)["step"])
    check_unfinished(run_dir, step, plan[-1][1])
    return f"step {step}" if len(plan) == 1 else f"{plan[-1][0]} px, step {step}"
