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
             learning_rate: float, on_log: LogCallback, log_every: int = 10) -> None:
    """`num_steps` Adam updates of `images` in place, reporting to `on_log` (see module docstring).

    On a log step the images are copied to the host before the update, so the callback receives exactly
    the images whose loss it is given; that copy is what an interrupted or diverging run falls back on.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    step = make_adam_step(objective, optimizer)
    for i in range(num_steps):
        if i % log_every == 0:
            before = images.numpy()
            _, terms = step(images, weights)
            on_log(i, before, terms)
        else:
            step(images, weights)
    _, terms = objective(images, weights)   # once, eagerly: compiling it would cost more than it saves
    on_log(num_steps, images.numpy(), terms)
