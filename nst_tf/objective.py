"""The objective: feature extractor + precomputed targets + weights -> (total, named terms).

Targets (content features, style Gram matrices) are computed once, when the objective is made. Everything
that may change between steps or between the images of a batch (alpha, beta, the TV weight, per-layer
weights) lives in `LossWeights` variables that the compiled step receives as arguments, never as Python
values frozen at trace time.

Term names (one vocabulary for the progress line, TensorBoard, the CSV and the plot):
  content/<layer>, style/<layer>, tv          raw per-layer terms (E_l for style)
  content, style                              layer-weighted sums: sum_l w_l * term_l
  weighted/content/<layer>, weighted/style/<layer>, weighted/content, weighted/style, weighted/tv
                                              the same times alpha, beta or the TV weight
  total                                       alpha * content + beta * style + tv_weight * tv
"""
from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from nst_tf import losses


class LossWeights(NamedTuple):
    """Per-image weights, one row per image of the batch (all float32 `tf.Variable`s).

    content, style, tv: [B] (alpha, beta, TV weight); content_layers: [B, Lc]; style_layers: [B, Ls].
    A zero per-layer weight switches that layer off for that image.
    """
    content: tf.Variable
    style: tf.Variable
    tv: tf.Variable
    content_layers: tf.Variable
    style_layers: tf.Variable

    @classmethod
    def create(cls, batch: int, content: float, style: float, tv: float,
               content_layers: tuple[float, ...], style_layers: tuple[float, ...]) -> "LossWeights":
        """The same weights for each of `batch` images."""
        def rows(value):   # a scalar becomes [B], a per-layer tuple [B, L]
            return np.broadcast_to(np.asarray(value, np.float32), (batch, *np.shape(value)))
        return cls.from_rows(rows(content), rows(style), rows(tv), rows(content_layers), rows(style_layers))

    @classmethod
    def from_rows(cls, content, style, tv, content_layers, style_layers) -> "LossWeights":
        """Weights from arrays with one row per image: [B], [B], [B], [B, Lc], [B, Ls]."""
        def var(value, name):
            return tf.Variable(np.array(value, np.float32), trainable=False, name=name)
        return cls(var(content, "content_weight"), var(style, "style_weight"), var(tv, "tv_weight"),
                   var(content_layers, "content_layer_weights"), var(style_layers, "style_layer_weights"))


def term_names(content_layers: tuple[str, ...], style_layers: tuple[str, ...]) -> list[str]:
    """Every term name an objective with these layers reports, in a stable order."""
    raw = ([f"content/{n}" for n in content_layers] + [f"style/{n}" for n in style_layers]
           + ["tv", "content", "style"])
    return raw + ["weighted/" + name for name in raw] + ["total"]


class Objective:
    """Callable `(images [B,H,W,3] in [0,1], LossWeights) -> (total [B], terms {name: [B]})`."""

    def __init__(self, extractor: keras.Model, content_layers: tuple[str, ...], style_layers: tuple[str, ...],
                 content_image: np.ndarray | None, style_image: np.ndarray | None,
                 content_loss: str = "l2", gram_norm: str = "paper"):
        """
        Args:
          extractor: model returning {paper layer name: [B, H, W, C]} for images in [0, 1].
          content_layers, style_layers: paper layer names; empty where the mode does not use the term.
          content_image, style_image: [H, W, 3] float32 in [0, 1], or None when unused.
        """
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.content_loss = content_loss
        self.gram_norm = gram_norm
        self.content_targets = {}
        self.style_targets = {}
        if self.content_layers:
            features = extractor(tf.constant(content_image[None]))
            self.content_targets = {name: tf.constant(features[name]) for name in self.content_layers}
        if self.style_layers:
            features = extractor(tf.constant(style_image[None]))
            self.style_targets = {name: tf.constant(losses.gram_matrix(features[name]))
                                  for name in self.style_layers}

    def term_names(self) -> list[str]:
        """Every term name the objective reports, in a stable order."""
        return term_names(self.content_layers, self.style_layers)

    def __call__(self, images: tf.Tensor, weights: LossWeights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        features = self.extractor(images)
        batch = tf.shape(images)[0]
        terms = {}
        content = tf.zeros([batch])
        style = tf.zeros([batch])
        for i, name in enumerate(self.content_layers):
            raw = losses.content_loss(features[name], self.content_targets[name], self.content_loss)
            terms[f"content/{name}"] = raw
            terms[f"weighted/content/{name}"] = weights.content * weights.content_layers[:, i] * raw
            content += weights.content_layers[:, i] * raw
        for i, name in enumerate(self.style_layers):
            raw = losses.style_layer_loss(losses.gram_matrix(features[name]), self.style_targets[name],
                                          self.gram_norm)
            terms[f"style/{name}"] = raw
            terms[f"weighted/style/{name}"] = weights.style * weights.style_layers[:, i] * raw
            style += weights.style_layers[:, i] * raw
        tv = losses.total_variation(images)
        terms.update({"tv": tv, "content": content, "style": style,
                      "weighted/tv": weights.tv * tv, "weighted/content": weights.content * content,
                      "weighted/style": weights.style * style})
        total = terms["weighted/content"] + terms["weighted/style"] + terms["weighted/tv"]
        terms["total"] = total
        return total, terms
