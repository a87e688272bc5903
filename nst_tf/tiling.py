"""Tiled evaluation: the objective and its exact gradient for images too large for one backward pass.

A backward pass through the backbone keeps every layer's activations, so memory grows with the pixels times
the backbone's widest layers (several GB per megapixel for VGG). But every term is a sum over positions:
a Gram matrix is sum_k F_ik F_jk (per region with masks), the content term sums over positions, and the
TV term is local. So the image is cut into tiles; each is run through the backbone with a halo around it
that covers the backbone's receptive field, and only the tile's own (interior) feature positions count.
Those equal the untiled features exactly, so the sums, the Grams and the losses are the untiled ones.

Two passes per evaluation:
  1. forward only, tile by tile: each style layer's Gram sum and each content layer's term;
  2. the terms from the global Grams under a tape, giving dTotal/dg for each (small) Gram matrix; then per
     tile, with a tape, the surrogate <dTotal/dg, g_tile> + alpha_l * content_tile, whose gradient with
     respect to the tile's pixels (halo included) is added into the image's gradient.
The gradient equals the untiled one because the total is a function of the Grams and the content sums
only (chain rule); a test checks both against the untiled objective. Memory is that of one tile's
backward pass, plus the image-sized arrays (image, gradient, optimizer moments, content targets).

Tiling needs a backbone that is a chain of convolutions and pools (the VGGs): its receptive field and
stride give the halo and the tile grid. Tile corners sit on multiples of the total stride, so every tile's
pooling windows line up with the whole image's.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from nst_tf import losses


def receptive_field(extractor: keras.Model) -> tuple[int, int]:
    """(radius, stride) in pixels of a chain of convolutions and pools: no output position depends on
    pixels more than `radius` beyond its own window (the `stride` x `stride` pixels it sits on), and the
    deepest layer has stride `stride`.

    A centred k x k convolution at input stride j reaches (k - 1) / 2 * j further on each side; a pool
    of size k and stride s reaches (k - s) * j further (nothing for VGG's 2 x 2 pools). Raises ValueError
    for a layer that joins branches (residual networks are not chains) or is dilated.
    """
    radius, stride = 0, 1
    for layer in extractor.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(keras.tree.flatten(layer.input)) > 1:
            raise ValueError(f"tiling needs a chain of convolutions and pools; {layer.name} joins branches")
        if getattr(layer, "dilation_rate", (1, 1)) not in ((1, 1), 1):
            raise ValueError(f"tiling does not support the dilated layer {layer.name}")
        if hasattr(layer, "kernel_size"):
            radius += math.ceil((max(layer.kernel_size) - 1) / 2) * stride
        elif hasattr(layer, "pool_size"):
            radius += (max(layer.pool_size) - max(layer.strides)) * stride
        else:
            continue   # per position: input, preprocessing, feature transforms
        stride *= max(layer.strides)
    return radius, stride


class Window(NamedTuple):
    """One tile: its interior rows y0:y1 and columns x0:x1, and the crop cy0:cy1, cx0:cx1 (interior plus
    halo, cut at the image's edges) that is run through the backbone. All in pixels."""
    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


class Tiles:
    """The tile grid of an extractor: interiors of about `size` pixels on multiples of the stride, and a
    halo of at least the receptive field's radius (also a multiple of the stride)."""

    def __init__(self, extractor: keras.Model, size: int):
        radius, self.stride = receptive_field(extractor)
        self.halo = math.ceil(radius / self.stride) * self.stride
        self.size = max(self.stride, size // self.stride * self.stride)
        probe = 64 * self.stride   # a size every stride divides: each layer's stride is probe / its size
        shapes = extractor.compute_output_shape((1, probe, probe, 3))
        self.strides = {name: probe // shape[1] for name, shape in shapes.items()}
        self.forward = tf.function(extractor, reduce_retracing=True)

    def windows(self, height: int, width: int) -> list[Window]:
        """The tiles of a height x width image, row by row."""
        def spans(n):
            return [(a, min(a + self.size, n)) for a in range(0, n, self.size)]
        return [Window(y0, y1, x0, x1, max(0, y0 - self.halo), min(height, y1 + self.halo),
                       max(0, x0 - self.halo), min(width, x1 + self.halo))
                for y0, y1 in spans(height) for x0, x1 in spans(width)]

    def feature_shape(self, name: str, height: int, width: int) -> tuple[int, int]:
        return height // self.strides[name], width // self.strides[name]

    def offsets(self, window: Window, names) -> dict[str, tf.Tensor]:
        """{layer: [gy0, gy1, gx0, gx1, ly0, lx0]}: the tile's interior in the layer's whole feature map
        (g) and where it starts in the crop's feature map (l). Tensors, so one compiled function serves
        every tile of a shape."""
        out = {}
        for name in names:
            j = self.strides[name]
            gy0, gx0 = window.y0 // j, window.x0 // j
            out[name] = tf.constant([gy0, window.y1 // j, gx0, window.x1 // j,
                                     gy0 - window.cy0 // j, gx0 - window.cx0 // j], tf.int32)
        return out

    def features(self, image: np.ndarray, names) -> dict[str, tf.Tensor]:
        """The whole feature maps {layer: [1, h, w, C]} of one image [H, W, 3], assembled from the tiles'
        interiors (for the content targets: forward only, so no tape holds the activations)."""
        height, width = image.shape[:2]
        rows: dict[str, list[list[tf.Tensor]]] = {name: [] for name in names}
        for w in self.windows(height, width):
            crop = self.forward(tf.constant(image[None, w.cy0:w.cy1, w.cx0:w.cx1]))
            for name, off in self.offsets(w, names).items():
                if w.x0 == 0:
                    rows[name].append([])
                rows[name][-1].append(_interior(crop[name], off))
        return {name: tf.concat([tf.concat(r, axis=2) for r in rows[name]], axis=1) for name in names}


def _interior(features: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    gy0, gy1, gx0, gx1, ly0, lx0 = tf.unstack(offsets)
    return features[:, ly0:ly0 + gy1 - gy0, lx0:lx0 + gx1 - gx0]


def _slice(whole: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """The tile's interior of a whole-map tensor, on axes 1 and 2: [B, h, w, C] features or [R, h, w] masks."""
    gy0, gy1, gx0, gx1 = tf.unstack(offsets[:4])
    return whole[:, gy0:gy1, gx0:gx1]


def image_grams(tiles: Tiles, image: np.ndarray, names, regions: dict[str, np.ndarray] | None = None):
    """The normalized Grams {layer: g} of one image [H, W, 3] (with `regions`, {layer: [R, h, w]} masks at
    each layer's size, the guided ones), summed over the tiles: `losses.gram_matrix` / `masked_gram` of
    the untiled features."""
    height, width = image.shape[:2]
    sums = {name: 0.0 for name in names}
    for w in tiles.windows(height, width):
        crop = tiles.forward(tf.constant(image[None, w.cy0:w.cy1, w.cx0:w.cx1]))
        for name, off in tiles.offsets(w, names).items():
            masks = None if regions is None else _slice(tf.constant(regions[name]), off)
            sums[name] += losses.gram_sum(_interior(crop[name], off), masks)
    return {name: sums[name] / _count(tiles, name, height, width, None if regions is None else regions[name]) for name in names}


def _count(tiles: Tiles, name: str, height: int, width: int, regions) -> tf.Tensor:
    """What a Gram sum is divided by: the layer's positions M, or each region's size [1, R, 1, 1]."""
    if regions is None:
        h, w = tiles.feature_shape(name, height, width)
        return tf.constant(float(h * w))
    return tf.maximum(tf.reduce_sum(tf.constant(regions, tf.float32), axis=[1, 2]), 1e-8)[None, :, None, None]


class TiledEvaluation:
    """`objective`'s terms and gradient by tiles (module docstring). Built by the Objective itself."""

    def __init__(self, objective, tiles: Tiles):
        self.objective = objective
        self.tiles = tiles
        self._sums = tf.function(self._tile_sums, reduce_retracing=True)
        self._backward = tf.function(self._tile_gradient, reduce_retracing=True)

    def _regions(self, name):
        return self.objective.regions.get(name)

    def _tile_sums(self, crop, offsets):
        """Pass 1 on one tile: {style layer: Gram sum}, {content layer: content term [B]}."""
        o = self.objective
        features = self.tiles.forward(crop)
        grams, content = {}, {}
        for name in o.style_layers:
            regions = self._regions(name)
            grams[name] = losses.gram_sum(_interior(features[name], offsets[name]),
                                   None if regions is None else _slice(regions, offsets[name]))
        for name in o.content_layers:
            content[name] = losses.content_loss(_interior(features[name], offsets[name]),
                                                _slice(o.content_targets[name], offsets[name]), o.content_loss)
        return grams, content

    def _tile_gradient(self, crop, offsets, d_grams, d_content):
        """Pass 2 on one tile: the gradient of sum_l <dTotal/dS_l, S_l(tile)> + sum_l dTotal/dc_l * c_l(tile)
        with respect to the crop's pixels."""
        with tf.GradientTape() as tape:
            tape.watch(crop)
            grams, content = self._tile_sums(crop, offsets)
            surrogate = sum(tf.reduce_sum(d_grams[n] * grams[n]) for n in grams)
            surrogate += sum(tf.reduce_sum(d_content[n] * content[n]) for n in content)
        return tape.gradient(surrogate, crop)

    def _pass1(self, images: tf.Tensor):
        o = self.objective
        height, width = int(images.shape[1]), int(images.shape[2])
        names = o.style_layers + o.content_layers
        grams = {name: 0.0 for name in o.style_layers}
        content = {name: 0.0 for name in o.content_layers}
        windows = self.tiles.windows(height, width)
        for w in windows:
            g, c = self._sums(images[:, w.cy0:w.cy1, w.cx0:w.cx1], self.tiles.offsets(w, names))
            for name in g:
                grams[name] += g[name]
            for name in c:
                content[name] += c[name]
        counts = {name: _count(self.tiles, name, height, width, self._regions(name)) for name in o.style_layers}
        return windows, grams, content, counts

    def __call__(self, images: tf.Tensor, weights):
        """(total [B], terms): the objective's values, untiled-equal."""
        _, grams, content, counts = self._pass1(images)
        return self.objective.terms(content, {n: grams[n] / counts[n] for n in grams}, images, weights)

    def value_and_gradient(self, images: tf.Tensor, weights):
        """(total [B], terms, d sum(total) / d images)."""
        o = self.objective
        images = tf.convert_to_tensor(images)
        windows, sums, content, counts = self._pass1(images)
        with tf.GradientTape() as tape:
            tape.watch([images, sums, content])
            total, terms = o.terms(content, {n: sums[n] / counts[n] for n in sums}, images, weights)
            loss = tf.reduce_sum(total)
        grad, d_sums, d_content = tape.gradient(loss, [images, sums, content],
                                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
        names = o.style_layers + o.content_layers
        height, width = int(images.shape[1]), int(images.shape[2])
        for w in windows:
            crop_grad = self._backward(images[:, w.cy0:w.cy1, w.cx0:w.cx1], self.tiles.offsets(w, names),
                                       d_sums, d_content)
            grad += tf.pad(crop_grad, [[0, 0], [w.cy0, height - w.cy1], [w.cx0, width - w.cx1], [0, 0]])
        return total, terms, grad
