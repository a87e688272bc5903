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

from nst_tf.objective import LossWeights, Objective

LogCallback = Callable[[int, np.ndarray, dict], None]


def make_adam_step(objective: Objective, optimizer: keras.optimizers.Optimizer):
    """A compiled step `(images: tf.Variable [B,H,W,3], weights: LossWeights) -> (total [B], terms)`.

    Computes every term under a GradientTape, applies one optimizer update to the images (the sum over
    the batch is the loss, so each image gets the gradient of its own total), then clips the pixels to
    [0, 1]. The returned losses are those of the images before the update. Only the images are trained;
    the extractor is frozen.
    """
    @tf.function
    def step(images: tf.Variable, weights: LossWeights):
        with tf.GradientTape() as tape:
            total, terms = objective(images, weights)
            loss = tf.reduce_sum(total)
        grad = tape.gradient(loss, images)
        optimizer.apply_gradients([(grad, images)])
        images.assign(tf.clip_by_value(images, 0.0, 1.0))
        return total, terms

    return step


def run_adam(objective: Objective, images: tf.Variable, weights: LossWeights, num_steps: int,
             optimizer: keras.optimizers.Optimizer, on_log: LogCallback, log_every: int = 10) -> None:
    """Adam updates of `images` in place until `optimizer.iterations` reaches `num_steps`, reporting to
    `on_log` (see module docstring). A fresh optimizer starts at step 0; one restored by `restore_state`
    continues where its run stopped, and gives the same images as a run that never stopped.

    On a log step the images are copied to the host before the update, so the callback receives exactly
    the images whose loss it is given; that copy is what an interrupted or diverging run falls back on.
    """
    step = make_adam_step(objective, optimizer)
    for i in range(int(optimizer.iterations), num_steps):
        if i % log_every == 0:
            before = images.numpy()
            _, terms = step(images, weights)
            on_log(i, before, terms)
        else:
            step(images, weights)
    _, terms = objective(images, weights)   # once, eagerly: compiling it would cost more than it saves
    on_log(num_steps, images.numpy(), terms)


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
