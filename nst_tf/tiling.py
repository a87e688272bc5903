"""Tiled evaluation: the objective and its exact gradient for images too large for one backward pass.

A backward pass through the backbone keeps every layer's activations, so memory grows with the pixels times
the backbone's widest layers (several GB per megapixel for VGG). But every term is a sum over positions:
a Gram matrix is sum_k F_ik F_jk (per region with masks), the content term sums over positions, and the
TV term is local. So the image is cut into tiles; each is run through the backbone with a halo around it
that covers the backbone's receptive field, and only the tile's own (interior) feature positions count.
Those equal the untiled features exactly, so the sums, the Grams and the losses are the untiled ones.

`Tiled` is the evaluator (the interface of `nst_tf.evaluate`) that does this. It knows nothing of the
terms: an objective's `sums(features, window)` gives its per-layer sums over a window's positions
(`TileWindow`: the tile's interior), and two passes per evaluation do the rest:
  1. forward only, tile by tile: the objective's sums, added up over the tiles;
  2. the terms from the global sums under a tape, giving dTotal/dS for each (small) sum S; then per tile,
     with a tape, the surrogate sum_S <dTotal/dS, S(tile)>, whose gradient with respect to the tile's
     pixels (halo included) is added into the image's gradient.
The gradient equals the untiled one because the total is a function of the sums only (chain rule); a
test checks both against whole-image evaluation. Memory is that of one tile's
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

from nst_tf.objective import Weights, Window


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


class Tile(NamedTuple):
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

    def windows(self, height: int, width: int) -> list[Tile]:
        """The tiles of a height x width image, row by row."""
        def spans(n):
            return [(a, min(a + self.size, n)) for a in range(0, n, self.size)]
        return [Tile(y0, y1, x0, x1, max(0, y0 - self.halo), min(height, y1 + self.halo),
                       max(0, x0 - self.halo), min(width, x1 + self.halo))
                for y0, y1 in spans(height) for x0, x1 in spans(width)]

    def feature_shape(self, name: str, height: int, width: int) -> tuple[int, int]:
        return height // self.strides[name], width // self.strides[name]

    def offsets(self, window: Tile, names) -> dict[str, tf.Tensor]:
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


class TileWindow(Window):
    """The `objective.Window` of one tile: per layer, the tile's interior (`Tiles.offsets`)."""

    def __init__(self, offsets: dict[str, tf.Tensor]):
        self.offsets = offsets

    def features(self, layer: str, features: tf.Tensor) -> tf.Tensor:
        return _interior(features, self.offsets[layer])

    def whole(self, layer: str, tensor: tf.Tensor) -> tf.Tensor:
        return _slice(tensor, self.offsets[layer])


class Tiled:
    """The evaluator interface of `nst_tf.evaluate` (module docstring there) by tiles (this module's docstring)."""

    whole_graph = False

    def __init__(self, extractor: keras.Model, size: int):
        self.tiles = Tiles(extractor, size)
        self._compiled_for = None   # (objective, its compiled tile passes)

    def feature_shape(self, name: str, height: int, width: int) -> tuple[int, int]:
        return self.tiles.feature_shape(name, height, width)

    def feature_maps(self, image: np.ndarray, names) -> dict[str, tf.Tensor]:
        return self.tiles.features(image, names)

    def _sums_of_tiles(self, images: tf.Tensor, compiled):
        """(tiles, sum over the tiles of compiled(crop, offsets)): pass 1, forward only."""
        height, width = int(images.shape[1]), int(images.shape[2])
        windows = self.tiles.windows(height, width)
        total = None
        for w in windows:
            part = compiled(images[:, w.cy0:w.cy1, w.cx0:w.cx1], self.tiles.offsets(w, self.tiles.strides))
            total = part if total is None else {k: total[k] + part[k] for k in total}
        return windows, total

    def sums(self, images: tf.Tensor, fn):
        """fn(features, window) summed over the tiles of `images` (fn must be additive over positions)."""
        compiled = tf.function(lambda crop, offsets: fn(self.tiles.forward(crop), TileWindow(offsets)),
                               reduce_retracing=True)
        return self._sums_of_tiles(images, compiled)[1]

    def _compiled(self, objective):
        """objective.sums of one tile, and its surrogate's gradient, as compiled functions (cached)."""
        if self._compiled_for is None or self._compiled_for[0] is not objective:
            def tile_sums(crop, offsets):
                return objective.sums(self.tiles.forward(crop), TileWindow(offsets))

            def tile_gradient(crop, offsets, d_sums):
                with tf.GradientTape() as tape:
                    tape.watch(crop)
                    sums = tile_sums(crop, offsets)
                    surrogate = sum(tf.reduce_sum(d_sums[k] * sums[k]) for k in sums)
                return tape.gradient(surrogate, crop)
            self._compiled_for = (objective, tf.function(tile_sums, reduce_retracing=True),
                                  tf.function(tile_gradient, reduce_retracing=True))
        return self._compiled_for[1:]

    def evaluate(self, objective, images: tf.Tensor, weights: Weights):
        """(total [B], terms): the objective's values, untiled-equal."""
        tile_sums, _ = self._compiled(objective)
        _, sums = self._sums_of_tiles(tf.convert_to_tensor(images), tile_sums)
        return objective.terms(sums, images, weights)

    def value_and_gradient(self, objective, images, weights: Weights):
        """(total [B], terms, d sum(total) / d images): pass 1 sums the tiles; the terms and dTotal/dsums come
        from the global sums; pass 2 adds each tile's gradient of <dTotal/dsums, sums(tile)>."""
        tile_sums, tile_gradient = self._compiled(objective)
        images = tf.convert_to_tensor(images)
        windows, sums = self._sums_of_tiles(images, tile_sums)
        with tf.GradientTape() as tape:
            tape.watch([images, sums])
            total, terms = objective.terms(sums, images, weights)
            loss = tf.reduce_sum(total)
        grad, d_sums = tape.gradient(loss, [images, sums], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        height, width = int(images.shape[1]), int(images.shape[2])
        for w in windows:
            crop_grad = tile_gradient(images[:, w.cy0:w.cy1, w.cx0:w.cx1], self.tiles.offsets(w, self.tiles.strides),
                                      d_sums)
            grad += tf.pad(crop_grad, [[0, 0], [w.cy0, height - w.cy1], [w.cx0, width - w.cx1], [0, 0]])
        return total, terms, grad
