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

from nst_tf import losses, masks, tiling
from nst_tf.inputs import Inputs


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


@tf.custom_gradient
def normalized_gradient(features: tf.Tensor, strength: tf.Tensor):
    """Identity forward; backward, each image's incoming gradient divided by its L1 norm and times its
    `strength` [B] (the term's weight): dy_b -> strength_b * dy_b / (sum |dy_b| + 1e-8). So each term
    pulls on its layer with the same force per unit of weight, whatever its raw size (jcjohnson/neural-
    style's -normalize_gradients)."""
    def grad(dy):
        norm = tf.reduce_sum(tf.abs(dy), axis=[1, 2, 3], keepdims=True)
        return dy / (norm + 1e-8) * tf.reshape(strength, [-1, 1, 1, 1]), tf.zeros_like(strength)
    return tf.identity(features), grad


class Objective:
    """Callable `(images [B,H,W,3] in [0,1], LossWeights) -> (total [B], terms {name: [B]})`."""

    def __init__(self, extractor: keras.Model, content_layers: tuple[str, ...], style_layers: tuple[str, ...],
                 inputs: Inputs, content_loss: str = "l2", gram_norm: str = "paper",
                 normalize_gradients: bool = False, tile_size: int = 0):
        """
        Args:
          extractor: model returning {paper layer name: [B, H, W, C]} for images in [0, 1].
          content_layers, style_layers: paper layer names; empty where the mode does not use the term.
          inputs: the content image, the style images with their blend weights, and the masks (guides).
          normalize_gradients: each term's feature gradient normalized (`normalized_gradient`).
          tile_size: 0 evaluates whole images; N > 0 evaluates them in tiles of about N pixels with a halo
            (`nst_tf.tiling`): the same values and gradients in the memory of one tile. Needs a chain
            backbone (VGG) and no gradient normalization (which needs each whole feature map's gradient).

        Style targets: the Gram matrices of the style images blended, a = sum_s b_s a_s. With guides, one
        per region r of the content mask, from the pixels of region r of each style image that has it
        (the blend weights renormalized over those), and the style term of a layer is
        E = 1/K sum_r E(g^r, a^r) over the K regions (the seeds' report); a region that no style image has
        adds nothing (content only there). A single region covering everything equals the unguided term.
        """
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.content_loss = content_loss
        self.gram_norm = gram_norm
        self.normalize_gradients = normalize_gradients
        self.tiles = tiling.Tiles(extractor, tile_size) if tile_size else None
        if self.tiles is not None and normalize_gradients:
            raise ValueError("tiles cannot normalize gradients (that needs whole feature maps)")
        self.tiled = None if self.tiles is None else tiling.TiledEvaluation(self, self.tiles)
        self.content_targets = {}
        self.style_targets = {}
        self.regions = {}          # with guides: {layer: [K, h, w] content masks at the layer's size}
        self.region_weights = None   # with guides: [K], 1/K for a styled region, 0 for the others
        if self.content_layers:
            self.content_targets = {name: tf.constant(f) for name, f in
                                    self._features(inputs.content, self.content_layers).items()}
        if self.style_layers:
            self._style_targets(inputs)

    def _features(self, image: np.ndarray, names) -> dict[str, tf.Tensor]:
        """{layer: [1, h, w, C]} of one image [H, W, 3], whole or assembled from tiles."""
        if self.tiles is not None:
            return self.tiles.features(image, names)
        features = self.extractor(tf.constant(image[None]))
        return {name: features[name] for name in names}

    def _layer_shapes(self, image: np.ndarray) -> dict[str, tuple[int, int]]:
        """{style layer: (h, w)} of its feature map for one image [H, W, 3]."""
        if self.tiles is not None:
            return {name: self.tiles.feature_shape(name, *image.shape[:2]) for name in self.style_layers}
        shapes = self.extractor.compute_output_shape((1, *image.shape))
        return {name: tuple(shapes[name][1:3]) for name in self.style_layers}

    def _grams(self, image: np.ndarray, regions: dict[str, tf.Tensor] | None) -> dict[str, tf.Tensor]:
        """{style layer: g} of one image: `gram_matrix`, or with `regions` ({layer: [R, h, w]}) `masked_gram`."""
        if self.tiles is not None:
            return tiling.image_grams(self.tiles, image, self.style_layers, regions)
        features = self.extractor(tf.constant(image[None]))
        if regions is None:
            return {name: losses.gram_matrix(features[name]) for name in self.style_layers}
        return {name: losses.masked_gram(features[name], regions[name]) for name in self.style_layers}

    def _style_targets(self, inputs: Inputs) -> None:
        guides = inputs.guides
        if guides is None:
            per_style = [self._grams(style, None) for style in inputs.styles]
            for name in self.style_layers:
                self.style_targets[name] = tf.constant(sum(b * g[name] for b, g in zip(inputs.blend, per_style)))
            return
        per_style = [self._grams(style, {name: masks.resize_to(m, shape) for name, shape in
                                         self._layer_shapes(style).items()})
                     for style, m in zip(inputs.styles, guides.styles)]
        # share[s, r]: style s's part of region r's target (its blend weight, renormalized over the styles
        # that have region r; zero where it does not)
        share = guides.present * np.asarray(inputs.blend)[:, None]
        share = np.divide(share, share.sum(0), out=np.zeros_like(share), where=share.sum(0) > 0)
        styled = guides.styled
        self.region_weights = tf.constant(styled / len(styled), tf.float32)
        content_shapes = self._layer_shapes(inputs.content)
        for name in self.style_layers:
            self.style_targets[name] = tf.constant(
                sum(tf.constant(share[s], tf.float32)[None, :, None, None] * g[name] for s, g in enumerate(per_style)))
            self.regions[name] = masks.resize_to(guides.content, content_shapes[name])

    def term_names(self) -> list[str]:
        """Every term name the objective reports, in a stable order."""
        return term_names(self.content_layers, self.style_layers)

    def _normalized(self, features: tf.Tensor, strength: tf.Tensor) -> tf.Tensor:
        return normalized_gradient(features, strength) if self.normalize_gradients else features

    def gram(self, name: str, features: tf.Tensor) -> tf.Tensor:
        """g of one layer's features: `gram_matrix`, or per region `masked_gram` [B, K, C, C] with guides."""
        if name not in self.regions:
            return losses.gram_matrix(features)
        return losses.masked_gram(features, self.regions[name])

    def style_term(self, name: str, gram: tf.Tensor) -> tf.Tensor:
        """E_l of one layer from its Gram g, per image: unguided, or 1/K times the sum over the styled regions."""
        term = losses.style_layer_loss(gram, self.style_targets[name], self.gram_norm)
        if name not in self.regions:
            return term
        return tf.reduce_sum(term * self.region_weights, axis=-1)   # [B, K] -> [B]

    def __call__(self, images: tf.Tensor, weights: LossWeights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        if self.tiled is not None:
            return self.tiled(images, weights)
        features = self.extractor(images)
        content = {}
        for i, name in enumerate(self.content_layers):
            strength = weights.content * weights.content_layers[:, i]
            content[name] = losses.content_loss(self._normalized(features[name], strength),
                                                self.content_targets[name], self.content_loss)
        grams = {}
        for i, name in enumerate(self.style_layers):
            strength = weights.style * weights.style_layers[:, i]
            grams[name] = self.gram(name, self._normalized(features[name], strength))
        return self.terms(content, grams, images, weights)

    def value_and_gradient(self, images: tf.Tensor | tf.Variable, weights: LossWeights):
        """(total [B], terms, d sum(total) / d images): each image's gradient of its own total."""
        if self.tiled is not None:
            return self.tiled.value_and_gradient(images, weights)
        with tf.GradientTape() as tape:
            tape.watch(images)
            total, terms = self(images, weights)
            loss = tf.reduce_sum(total)
        return total, terms, tape.gradient(loss, images)

    def terms(self, content: dict[str, tf.Tensor], grams: dict[str, tf.Tensor], images: tf.Tensor,
              weights: LossWeights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """(total [B], named terms) from each content layer's raw term [B], each style layer's Gram g and
        the images (for TV): what whole and tiled evaluation share."""
        batch = tf.shape(images)[0]
        terms = {}
        content_sum = tf.zeros([batch])
        style_sum = tf.zeros([batch])
        for i, name in enumerate(self.content_layers):
            raw = content[name]
            terms[f"content/{name}"] = raw
            terms[f"weighted/content/{name}"] = weights.content * weights.content_layers[:, i] * raw
            content_sum += weights.content_layers[:, i] * raw
        for i, name in enumerate(self.style_layers):
            raw = self.style_term(name, grams[name])
            terms[f"style/{name}"] = raw
            terms[f"weighted/style/{name}"] = weights.style * weights.style_layers[:, i] * raw
            style_sum += weights.style_layers[:, i] * raw
        tv = losses.total_variation(images)
        terms.update({"tv": tv, "content": content_sum, "style": style_sum,
                      "weighted/tv": weights.tv * tv, "weighted/content": weights.content * content_sum,
                      "weighted/style": weights.style * style_sum})
        total = terms["weighted/content"] + terms["weighted/style"] + terms["weighted/tv"]
        terms["total"] = total
        return total, terms
