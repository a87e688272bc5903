"""Evaluators: how an objective's sums are computed from images, and the loss the optimizers minimize.

An evaluator turns images into the per-layer sums of an `Objective` (objective.py) and back into image
gradients. Two implement the same interface:

  WholeImage (here)       the whole image through the extractor at once; the step compiles into one graph.
  Tiled (nst_tf.tiling)   tiles with a halo, for images whose backward pass does not fit in memory; the
                          same values and gradients, tile by tile from Python.

The interface: `feature_shape(layer, height, width)`, `feature_maps(image, layers)` (whole maps, for the
content targets), `sums(images, fn)` (fn(features, window) summed over the image, forward only),
`evaluate(objective, images, weights)`, `value_and_gradient(objective, images, weights)`, and
`whole_graph` (whether one compiled function can hold a whole step).

`Loss` binds an objective to an evaluator: what `nst_tf.optimize` receives. `make_loss` builds the three.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from nst_tf.inputs import Inputs
from nst_tf.objective import WHOLE, Objective, Weights, compute_targets


class WholeImage:
    """Evaluates whole images: one forward pass of the extractor, one backward pass for the gradient."""

    whole_graph = True

    def __init__(self, extractor: keras.Model):
        self.extractor = extractor

    def feature_shape(self, name: str, height: int, width: int) -> tuple[int, int]:
        shapes = self.extractor.compute_output_shape((1, height, width, 3))
        return tuple(shapes[name][1:3])

    def feature_maps(self, image: np.ndarray, names) -> dict[str, tf.Tensor]:
        """{layer: [1, h, w, C]} of one image [H, W, 3]."""
        features = self.extractor(tf.constant(image[None]))
        return {name: features[name] for name in names}

    def sums(self, images: tf.Tensor, fn):
        """fn(features, window) for the whole images (the window covers everything)."""
        return fn(self.extractor(images), WHOLE)

    def evaluate(self, objective: Objective, images: tf.Tensor,
                 weights: Weights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return objective.terms(objective.sums(self.extractor(images), WHOLE, weights), images, weights)

    def value_and_gradient(self, objective: Objective, images, weights: Weights):
        """(total [B], terms, d sum(total) / d images): each image's gradient of its own total."""
        with tf.GradientTape() as tape:
            tape.watch(images)
            total, terms = self.evaluate(objective, images, weights)
            loss = tf.reduce_sum(total)
        return total, terms, tape.gradient(loss, images)


class Loss:
    """An objective evaluated by an evaluator: `loss(images, weights) -> (total [B], terms)` and
    `value_and_gradient`, what the optimizers minimize."""

    def __init__(self, objective: Objective, evaluator):
        self.objective = objective
        self.evaluator = evaluator

    @property
    def whole_graph(self) -> bool:
        return self.evaluator.whole_graph

    @property
    def step(self) -> tf.Variable | None:
        """The step that draws the sliced term's directions (the optimizer sets it), or None (`Objective.step`)."""
        return self.objective.step

    def __call__(self, images: tf.Tensor, weights: Weights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return self.evaluator.evaluate(self.objective, images, weights)

    def value_and_gradient(self, images, weights: Weights):
        return self.evaluator.value_and_gradient(self.objective, images, weights)


def make_evaluator(extractor: keras.Model, tile_size: int = 0):
    """`WholeImage`, or `tiling.Tiled` with tiles of about `tile_size` px when it is not 0."""
    if not tile_size:
        return WholeImage(extractor)
    from nst_tf import tiling
    return tiling.Tiled(extractor, tile_size)


def make_loss(extractor: keras.Model, content_layers: tuple[str, ...], style_layers: tuple[str, ...],
              inputs: Inputs, content_loss: str = "l2", gram_norm: str = "paper",
              normalize_gradients: bool = False, tile_size: int = 0, normalize_terms: bool = False,
              style_loss: str = "gram", contents: list | None = None,
              feature_terms: dict[str, tuple[str, ...]] | None = None) -> Loss:
    """The loss of `inputs` (targets computed here, once) through `extractor`, whole or in tiles.

    Args:
      extractor: model returning {paper layer name: [B, H, W, C]} for images in [0, 1].
      content_layers, style_layers: paper layer names; empty where the mode does not use the term.
      inputs: the content image, the style images with their blend weights, and the masks (guides).
      tile_size: 0 evaluates whole images; N > 0 in tiles of about N pixels (`nst_tf.tiling`), which needs
        a chain backbone (VGG) and no gradient normalization (ValueError otherwise).
      contents: one content image per image of the batch (each its own content targets), instead of
        `inputs.content` for all.
      feature_terms: {term of `losses.FEATURE_TERMS`: its layers}; they need whole images (ValueError with tiles).
    """
    evaluator = make_evaluator(extractor, tile_size)
    if normalize_gradients and not evaluator.whole_graph:
        raise ValueError("tiles cannot normalize gradients (that needs whole feature maps)")
    if feature_terms and not evaluator.whole_graph:
        raise ValueError(f"tiles cannot evaluate the {', '.join(feature_terms)} term (it needs whole feature maps)")
    targets = compute_targets(evaluator, inputs, tuple(content_layers), tuple(style_layers), style_loss, content_loss,
                              contents, feature_terms)
    objective = Objective(content_layers, style_layers, targets, content_loss, gram_norm, normalize_gradients,
                          normalize_terms, style_loss, feature_terms)
    objective.step = tf.Variable(0, dtype=tf.int32, trainable=False, name="objective_step")
    return Loss(objective, evaluator)
