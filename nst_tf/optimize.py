"""Optimization of the image variable: the compiled Adam step and the loop around it.

The loop calls one callback, `on_log(step, images, terms)`, every `log_every` steps and after the last
update; `step` counts the updates applied to the image whose loss `terms` holds. The callback owns all
I/O (progress, CSV, TensorBoard, snapshots) and may raise to stop the run.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from nst_tf.blur import blur_gradient
from nst_tf.evaluate import Loss
from nst_tf.objective import Weights

LogCallback = Callable[[int, np.ndarray, dict], None]


def make_adam_step(loss: Loss, optimizer: keras.optimizers.Optimizer, jit_compile: bool = False,
                   average: "IterateAverage | None" = None, gradient_blur: int = 0):
    """A step `(images: tf.Variable [B,H,W,3], weights: Weights) -> (total [B], terms)`.

    Computes every term and each image's gradient of its own total (`Loss.value_and_gradient`), blurs the
    gradient `gradient_blur` times (`blur_gradient`), applies one optimizer update to the images, then clips
    the pixels to [0, 1]. The returned losses are those of the images before the update. Only the images
    are trained; the extractor is frozen.

    The whole step is one compiled function (with XLA when `jit_compile`) where the evaluator allows it
    (`Loss.whole_graph`); a tiled loss runs its tiles from Python, each tile's passes compiled, and only
    the update is compiled here.
    """
    def update(images: tf.Variable, grad: tf.Tensor):
        optimizer.apply_gradients([(blur_gradient(grad, gradient_blur), images)])
        images.assign(tf.clip_by_value(images, 0.0, 1.0))
        if average is not None:
            average.update(images)

    apply = update if loss.whole_graph else tf.function(update)

    def step(images: tf.Variable, weights: Weights):
        total, terms, grad = loss.value_and_gradient(images, weights)
        apply(images, grad)
        return total, terms

    return tf.function(step, jit_compile=jit_compile) if loss.whole_graph else step


class IterateAverage:
    """A bias-corrected exponential moving average of the iterates (crowsonkb/style-transfer-pytorch; the
    debiasing of Kingma & Ba's Adam): after t updates, with decay d,

      avg_t = sum_{s=1..t} (1 - d) d^(t-s) x_s / (1 - d^t)

    Adam's iterates jitter by about a learning rate around the optimum from step to step, and that jitter
    is fine noise (grain, a mesh at the pooling periods) in the image; their average keeps what the
    iterates share. Kept in a variable, updated inside the compiled step."""

    def __init__(self, images: tf.Variable, decay: float):
        self.decay = float(decay)
        self.value = tf.Variable(tf.zeros_like(images), trainable=False, name="iterate_average")
        self.weight = tf.Variable(0.0, trainable=False, name="iterate_average_weight")   # 1 - d^t

    def update(self, images: tf.Variable) -> None:
        self.value.assign(self.decay * self.value + (1.0 - self.decay) * images)
        self.weight.assign(self.decay * self.weight + (1.0 - self.decay))

    def get(self) -> np.ndarray:
        return (self.value / tf.maximum(self.weight, 1e-12)).numpy()

    @property
    def empty(self) -> bool:
        """No update averaged yet (the start image is then what there is to show)."""
        return float(self.weight.numpy()) == 0.0


def run_adam(loss: Loss, images: tf.Variable, weights: Weights, num_steps: int,
             optimizer: keras.optimizers.Optimizer, on_log: LogCallback, log_every: int = 10,
             jit_compile: bool = False, average: IterateAverage | None = None, gradient_blur: int = 0) -> None:
    """Adam updates of `images` in place until `optimizer.iterations` reaches `num_steps`, reporting to
    `on_log` (see module docstring). A fresh optimizer starts at step 0; one restored by `restore_state`
    continues where its run stopped, and gives the same images as a run that never stopped.

    On a log step the images are copied to the host before the update, so the callback receives exactly
    the images whose loss it is given; that copy is what an interrupted or diverging run falls back on.

    With an `average` the callback receives instead the `IterateAverage` of the iterates so far (the start
    image before the first update), so snapshots and the result are the average; the losses logged stay
    those of the raw iterate.
    """
    step = make_adam_step(loss, optimizer, jit_compile, average, gradient_blur)
    seed = loss.step
    for i in range(int(optimizer.iterations), num_steps):
        if seed is not None:
            seed.assign(i)   # draws the sliced term's directions for this step
        if i % log_every == 0:
            before = images.numpy() if average is None or average.empty else average.get()
            _, terms = step(images, weights)
            on_log(i, before, terms)
        else:
            step(images, weights)
    _, terms = loss(images, weights)   # once, eagerly: compiling it would cost more than it saves
    on_log(num_steps, images.numpy() if average is None or average.empty else average.get(), terms)


# ------------------------------------------------------------------------------------ optimizer state
# The state of image `index` of a batch: its pixels, its rows of Adam's moments, and the shared step count
# and learning rate. Images and `iterations` change inside one compiled step, so they are always
# consistent with each other, even when Ctrl-C arrives between steps.

def image_state(images: tf.Variable, optimizer: keras.optimizers.Optimizer, index: int) -> dict[str, np.ndarray]:
    """{"images": [H, W, 3], "step": updates applied, "optimizer/<k>": each optimizer variable (its row
    for image `index` where it has one per image)}: what resuming image `index` needs."""
    state = {"images": images[index].numpy(), "step": np.int64(optimizer.iterations.numpy())}
    for k, var in enumerate(optimizer.variables):   # iterations, learning rate, then each moment
        value = var.numpy()
        state[f"optimizer/{k}"] = value[index] if value.shape == tuple(images.shape) else value
    return state


def restore_state(images: tf.Variable, optimizer: keras.optimizers.Optimizer, states: list[dict]) -> int:
    """Sets `images` and the optimizer (all but its learning rate) from one saved state per image; returns
    the step they are at.

    Raises ValueError if the states do not fit (another image size, another optimizer, other step counts).
    """
    optimizer.build([images])
    images.assign(np.stack([s["images"] for s in states]))
    if any(len([k for k in s if k.startswith("optimizer/")]) != len(optimizer.variables) for s in states):
        raise ValueError("the saved state is from another optimizer")
    for k, var in enumerate(optimizer.variables):
        if var.path.endswith("learning_rate"):
            continue   # the run's own --learning_rate, which a resumed run may change
        values = [s[f"optimizer/{k}"] for s in states]
        if tuple(var.shape) == tuple(images.shape):
            var.assign(np.stack(values))
        elif any(not np.array_equal(v, values[0]) for v in values):
            raise ValueError(f"the saved states disagree on {var.path}")
        else:
            var.assign(values[0])
    return int(optimizer.iterations)


class Adam:
    """Adam on the image variable (the default), behind the interface `Lbfgs` shares: `steps`, `run`,
    `state`, `restore`."""

    def __init__(self, learning_rate: float, jit_compile: bool = False, average_decay: float = 0.0,
                 gradient_blur: int = 0):
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.jit_compile = jit_compile
        self.average_decay = average_decay
        self.gradient_blur = gradient_blur
        self.average = None   # the IterateAverage of this optimizer's images (one per scale of a pyramid)

    def _average(self, images: tf.Variable) -> IterateAverage | None:
        if self.average is None and self.average_decay > 0:
            self.average = IterateAverage(images, self.average_decay)
        return self.average

    @property
    def steps(self) -> int:
        """Updates applied so far."""
        return int(self.optimizer.iterations)

    def run(self, loss: Loss, images: tf.Variable, weights: Weights, num_steps: int,
            on_log: LogCallback, log_every: int = 10) -> None:
        run_adam(loss, images, weights, num_steps, self.optimizer, on_log, log_every, self.jit_compile,
                 self._average(images), self.gradient_blur)

    def state(self, images: tf.Variable, index: int) -> dict[str, np.ndarray]:
        """`image_state`, and with an iterate average its row and weight (so a resumed run averages on)."""
        state = image_state(images, self.optimizer, index)
        if self.average is not None:
            state["average/value"] = self.average.value[index].numpy()
            state["average/weight"] = np.float32(self.average.weight.numpy())
        return state

    def restore(self, images: tf.Variable, states: list[dict]) -> int:
        step = restore_state(images, self.optimizer, states)
        average = self._average(images)
        if average is not None:
            if any("average/value" not in s for s in states):
                raise ValueError("the saved state has no iterate average (--average_decay)")
            average.value.assign(np.stack([s["average/value"] for s in states]))
            average.weight.assign(float(states[0]["average/weight"]))
        return step


def make_optimizer(name: str, learning_rate: float, jit_compile: bool = False, average_decay: float = 0.0,
                   gradient_blur: int = 0):
    """`Adam(learning_rate)` or `Lbfgs()` (which has no learning rate: its line search finds the step);
    `jit_compile`: their objective and gradient compiled with XLA; `average_decay` > 0: Adam's output is
    the average of its iterates (`IterateAverage`; L-BFGS converges without jitter and takes none);
    `gradient_blur`: Adam's gradient blurred (`blur_gradient`); L-BFGS takes none (`Config.blur_passes` is 0
    for it)."""
    if name == "lbfgs":
        return Lbfgs(jit_compile)
    return Adam(learning_rate, jit_compile, average_decay, gradient_blur)


# ------------------------------------------------------------------------------------------- L-BFGS
# The paper's optimizer, from TensorFlow Probability, on all images of the batch at once: TFP's L-BFGS
# is batched, so each image has its own line search and curvature history and runs as if alone. It runs
# in the graph in chunks of `log_every` iterations (`previous_optimizer_results` carries its state from
# one chunk to the next), so progress, snapshots and TensorBoard work as with Adam.
#
# Pixel range: clipping between iterations would break L-BFGS's curvature pairs, so pixels may leave
# [0, 1] and pay a soft quadratic penalty for it (RANGE_PENALTY); the losses see the unclipped image, and
# snapshots, the result and the next scale of a pyramid are clipped to [0, 1]. Without the penalty the
# image wandered to [-1.7, 1.6] at 128 px, and at 256 px the line search failed at the second iteration.
#
# A "step" is one L-BFGS iteration; each costs one or more evaluations (the line search; 26 evaluations
# in the first 10 iterations of chelsea + swirls at 256 px).

LBFGS_MEMORY = 10   # correction pairs kept (TFP's default; jcjohnson/neural-style uses 100)
# L-BFGS starts from the identity as its inverse Hessian, so its first step is the raw gradient, which
# here is in the millions: the line search then failed (at 32 and at 256 px). Each image's objective is
# scaled by FIRST_STEP / max|gradient at the start| (as Torch's optim.lbfgs scales its first step by the
# gradient's norm); later steps do not depend on the scale, the curvature pairs take it out.
FIRST_STEP = 0.05
# Pixels outside [0, 1] cost RANGE_PENALTY * (distance)^2 each, on the scaled objective. Chelsea + swirls,
# 256 px, 10 iterations: 10 held the range but crawled (-8% loss); 0.1 let it wander to [-0.7, 2.2] and back
# to [-0.2, 1.3] while the loss fell 25x; with either, the line search no longer failed.
RANGE_PENALTY = 0.1


def _tfp_optimizers():
    import tensorflow_probability as tfp   # imported here: it is slow to import and Adam runs need none of it
    return tfp.optimizer


class Lbfgs:
    """L-BFGS state for one batch of images: `results` (TFP's LBfgsOptimizerResults) once started."""

    def __init__(self, jit_compile: bool = False):
        self.jit_compile = jit_compile
        self.results = None
        self.restored = None   # saved fields ({name: tensor}) that `run` starts from
        self.scale = None      # [B]: each image's objective scale (FIRST_STEP)

    @property
    def steps(self) -> int:
        """Iterations done so far."""
        if self.results is None:
            return 0 if self.restored is None else int(self.restored["num_iterations"])
        return int(self.results.num_iterations)

    @property
    def stopped(self) -> bool:
        """Every image has converged or its line search failed: more iterations would not move it."""
        return self.results is not None and bool(tf.reduce_all(self.results.converged | self.results.failed))

    def run(self, loss: Loss, images: tf.Variable, weights: Weights, num_steps: int,
            on_log: LogCallback, log_every: int = 10) -> None:
        """Iterations until `num_steps` (or until every image has stopped), reporting to `on_log` as
        `run_adam` does; `images` holds the current positions after each chunk."""
        optimizer = _tfp_optimizers()
        shape = tuple(images.shape)

        @tf.function(jit_compile=self.jit_compile)
        def raw_value_and_gradients(x):
            total, _, gradient = loss.value_and_gradient(tf.reshape(x, shape), weights)
            return total, tf.reshape(gradient, tf.shape(x))   # row b: the gradient of image b's own total

        if self.scale is None:
            _, gradient = raw_value_and_gradients(tf.reshape(images, [shape[0], -1]))
            self.scale = tf.Variable(FIRST_STEP / (tf.reduce_max(tf.abs(gradient), axis=1) + 1e-30), trainable=False)

        def value_and_gradients(x):
            total, gradient = raw_value_and_gradients(x)
            outside = tf.nn.relu(x - 1.0) - tf.nn.relu(-x)   # how far each pixel is outside [0, 1]
            penalty = RANGE_PENALTY * tf.reduce_sum(tf.square(outside), axis=1)
            return self.scale * total + penalty, self.scale[:, None] * gradient + 2 * RANGE_PENALTY * outside

        @tf.function
        def chunk(results, until):
            return optimizer.lbfgs_minimize(value_and_gradients, None, previous_optimizer_results=results,
                                            max_iterations=until, num_correction_pairs=LBFGS_MEMORY, tolerance=0.0)

        terms_of = tf.function(loss.__call__)
        if self.results is None:   # evaluates the start; a restored state then replaces every field
            self.results = optimizer.lbfgs_minimize(value_and_gradients, tf.reshape(images, [shape[0], -1]),
                                                    max_iterations=0, num_correction_pairs=LBFGS_MEMORY)
            if self.restored is not None:
                self.results = self.results._replace(**self.restored)
                images.assign(tf.reshape(self.results.position, shape))
        while self.steps < num_steps and not self.stopped:
            step = self.steps
            if step % log_every == 0:
                on_log(step, images.numpy(), terms_of(images, weights)[1])
            until = min(num_steps, (step // log_every + 1) * log_every)
            self.results = chunk(self.results, tf.constant(until))
            images.assign(tf.reshape(self.results.position, shape))
        on_log(self.steps, images.numpy(), terms_of(images, weights)[1])

    def state(self, images: tf.Variable, index: int) -> dict[str, np.ndarray]:
        """Image `index`'s part of the state: its position and history, the shared iteration count."""
        state = {"images": images[index].numpy(), "step": np.int64(self.steps),
                 "lbfgs_scale": self.scale.numpy()[index]}
        for name, value in self.results._asdict().items():
            value = np.asarray(value)
            if name in ("position_deltas", "gradient_deltas"):   # [memory, B, n]
                value = value[:, index]
            elif name not in ("num_iterations", "num_objective_evaluations"):   # one row per image
                value = value[index]
            state[f"lbfgs/{name}"] = value
        return state

    def restore(self, images: tf.Variable, states: list[dict]) -> int:
        """The state of a batch from one saved state per image; returns the step it continues from.
        Raises ValueError if the states are not L-BFGS states or disagree on the step."""
        if any("lbfgs/position" not in s for s in states):
            raise ValueError("the saved state is from another optimizer")
        if any(int(s["step"]) != int(states[0]["step"]) for s in states):
            raise ValueError("the saved states are at different steps")
        fields = {}
        for name in [k[len("lbfgs/"):] for k in states[0] if k.startswith("lbfgs/")]:
            values = [s[f"lbfgs/{name}"] for s in states]
            if name in ("position_deltas", "gradient_deltas"):
                fields[name] = tf.constant(np.stack(values, axis=1))
            elif name in ("num_iterations", "num_objective_evaluations"):
                fields[name] = tf.constant(values[0])
            else:
                fields[name] = tf.constant(np.stack(values))
        self.results, self.restored = None, fields
        self.scale = tf.Variable(np.stack([s["lbfgs_scale"] for s in states]), trainable=False)
        images.assign(np.stack([s["images"] for s in states]))
        return self.steps
