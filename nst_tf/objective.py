"""The objective: precomputed targets + per-image weights -> (total, named terms), from per-layer sums.

Every term is a function of sums over the feature positions of its layer: a content term is
sum_k d(F_k, P_k), a style term depends on the Gram sum G = sum_k F_k F_k^T (per region with masks). An
evaluator (`nst_tf.evaluate.WholeImage`, `nst_tf.tiling.Tiled`) computes the sums, over the whole image at
once or tile by tile, and hands them to `Objective.terms`; the objective never sees how they were made.
A new term is one entry in `Objective.sums` and one in `Objective.terms`.

Targets (content features, style statistics) are computed once, by `compute_targets`. Everything that may
change between steps or between the images of a batch (alpha, beta, the TV weight, per-layer weights)
lives in `LossWeights` variables that the compiled step receives as arguments, never as Python values
frozen at trace time.

Term names (one vocabulary for the progress line, TensorBoard, the CSV and the plot):
  content/<layer>, style/<layer>, tv          raw per-layer terms (E_l for style)
  content, style                              layer-weighted sums: sum_l w_l * term_l
  weighted/content/<layer>, weighted/style/<layer>, weighted/content, weighted/style, weighted/tv
                                              the same times alpha, beta or the TV weight
  total                                       alpha * content + beta * style + tv_weight * tv
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from nst_tf import losses, masks
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


def is_layer_term(name: str) -> bool:
    """Whether `name` is a raw per-layer term (content/<layer>, style/<layer>), not a sum or a weighted one."""
    kind, _, layer = name.partition("/")
    return kind in ("content", "style") and bool(layer)


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


class Window:
    """Which part of each layer's whole feature map a batch of features covers: the whole map (this
    class), or one tile's interior (`tiling.TileWindow`).

    `features(layer, f)` keeps the positions of `f` that count; `whole(layer, t)` cuts the same positions
    out of a whole-map tensor on axes 1 and 2 (content targets [1, h, w, C], region masks [R, h, w])."""

    def features(self, layer: str, features: tf.Tensor) -> tf.Tensor:
        return features

    def whole(self, layer: str, tensor: tf.Tensor) -> tf.Tensor:
        return tensor


WHOLE = Window()


@dataclasses.dataclass
class Targets:
    """What the image is compared with, computed once.

    content: {layer: [1, h, w, C]} the content image's features P ([B, ...]: one content image per image).
    style: {layer: [1, C, C]} normalized Gram matrices a (blended over the style images), or with guides
      [1, K, C, C], one per region of the content mask.
    regions: with guides, {layer: [K, h, w]} the content mask's regions at the layer's size.
    region_weights: with guides, [K]: 1/K for a styled region, 0 for a region no style image has.
    counts: {style layer: what its Gram sum is divided by}: the positions M, or each region's size.
    content_scales: {content layer: [1]} its target's own magnitude (`losses.content_scale`), what the term
      is divided by with --normalize_terms.
    With a style statistic other than the Gram (--style_loss), the "Gram" is that of the features with a
    channel of ones (`losses.with_ones`): its blocks are the mean and the second moments.
    """
    content: dict[str, tf.Tensor]
    style: dict[str, tf.Tensor]
    regions: dict[str, tf.Tensor]
    region_weights: tf.Tensor | None
    counts: dict[str, tf.Tensor]
    content_scales: dict[str, tf.Tensor] = dataclasses.field(default_factory=dict)


def statistic_features(features: tf.Tensor, style_loss: str) -> tf.Tensor:
    """What a style layer's Gram sum is taken of: the features, or for a statistic style loss the features
    and a channel of ones (so the sum holds their mean and second moments, `losses.moments`)."""
    return features if style_loss == "gram" else losses.with_ones(features)


def compute_targets(evaluator, inputs: Inputs, content_layers: tuple[str, ...],
                    style_layers: tuple[str, ...], style_loss: str = "gram", content_loss: str = "l2",
                    contents: list[np.ndarray] | None = None) -> Targets:
    """The targets of `inputs` through `evaluator` (whole or tiled: the same values).

    Style targets: the Gram matrices of the style images blended, a = sum_s b_s a_s. With guides, one per
    region r of the content mask, from the pixels of region r of each style image that has it (the blend
    weights renormalized over those), and the style term of a layer is E = 1/K sum_r E(g^r, a^r) over the
    K regions (the seeds' report); a region that no style image has adds nothing (content only there).
    """
    content = {}
    if content_layers:   # [1, h, w, C], or [B, h, w, C] with one content image per image of the batch
        maps = [evaluator.feature_maps(c, content_layers) for c in (contents or [inputs.content])]
        content = {name: tf.constant(tf.concat([m[name] for m in maps], axis=0)) for name in content_layers}
    targets = Targets(content, {}, {}, None, {},
                      {name: losses.content_scale(t, content_loss) for name, t in content.items()})
    if not style_layers:
        return targets
    shape = inputs.shape[:2]

    def grams_of(image: np.ndarray, regions: dict[str, tf.Tensor] | None) -> dict[str, tf.Tensor]:
        def gram_sums(features, window):
            return {name: losses.gram_sum(statistic_features(window.features(name, features[name]), style_loss),
                                          None if regions is None else window.whole(name, regions[name]))
                    for name in style_layers}
        sums = evaluator.sums(tf.constant(image[None]), gram_sums)
        return {name: sums[name] / losses.gram_count(evaluator.feature_shape(name, *image.shape[:2]),
                                                     None if regions is None else regions[name])
                for name in style_layers}

    guides = inputs.guides
    if guides is None:
        per_style = [grams_of(style, None) for style in inputs.styles]
        for name in style_layers:
            targets.style[name] = tf.constant(sum(b * g[name] for b, g in zip(inputs.blend, per_style)))
            targets.counts[name] = losses.gram_count(evaluator.feature_shape(name, *shape))
        return targets
    per_style = [grams_of(style, {name: masks.resize_to(m, evaluator.feature_shape(name, *style.shape[:2]))
                                  for name in style_layers})
                 for style, m in zip(inputs.styles, guides.styles)]
    # share[s, r]: style s's part of region r's target (its blend weight, renormalized over the styles that
    # have region r; zero where it does not)
    share = guides.present * np.asarray(inputs.blend)[:, None]
    share = np.divide(share, share.sum(0), out=np.zeros_like(share), where=share.sum(0) > 0)
    styled = guides.styled
    targets.region_weights = tf.constant(styled / len(styled), tf.float32)
    for name in style_layers:
        targets.style[name] = tf.constant(
            sum(tf.constant(share[s], tf.float32)[None, :, None, None] * g[name] for s, g in enumerate(per_style)))
        targets.regions[name] = masks.resize_to(guides.content, evaluator.feature_shape(name, *shape))
        targets.counts[name] = losses.gram_count(None, targets.regions[name])
    return targets


class Objective:
    """Targets, loss choices and layers -> the named terms of a batch, from its per-layer sums."""

    def __init__(self, content_layers: tuple[str, ...], style_layers: tuple[str, ...], targets: Targets,
                 content_loss: str = "l2", gram_norm: str = "paper", normalize_gradients: bool = False,
                 normalize_terms: bool = False, style_loss: str = "gram"):
        """
        Args:
          content_layers, style_layers: paper layer names; empty where the mode does not use the term.
          targets: `compute_targets` of the run's inputs.
          content_loss: "l2" or "l1" (`losses.content_loss`); gram_norm: `losses.style_layer_loss`'s norm.
          normalize_gradients: each term's feature gradient normalized (`normalized_gradient`); needs whole
            feature maps, so only `WholeImage` evaluates such an objective.
          normalize_terms: each content and style term divided by its target's own magnitude
            (`losses.content_scale`, `losses.relative_style_loss`, the `relative` statistics) and the TV term
            by its number of terms (`losses.mean_total_variation`): scale-free terms.
          style_loss: gram, or a statistic of `losses.style_statistics_loss` (mean_cov, wasserstein, mean_std).
        """
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.targets = targets
        self.content_loss = content_loss
        self.gram_norm = gram_norm
        self.normalize_gradients = normalize_gradients
        self.normalize_terms = normalize_terms
        self.style_loss = style_loss

    @property
    def layers(self) -> tuple[str, ...]:
        return self.content_layers + self.style_layers

    def sums(self, features: dict[str, tf.Tensor], window: Window = WHOLE,
             weights: LossWeights | None = None) -> dict[str, tf.Tensor]:
        """Each term's sums over the positions that `window` covers: {"content/<layer>": [B] the content
        term, "style/<layer>": [B, C, C] (or [B, K, C, C]) the Gram sum}. Sums of the parts of an image
        add up to the sums of the image. With --normalize_gradients (whole images only), each term's
        features pass through `normalized_gradient` with the term's weight in `weights` as strength."""
        def seen(name, strength):
            f = window.features(name, features[name])
            return normalized_gradient(f, strength) if self.normalize_gradients else f
        out = {}
        for i, name in enumerate(self.content_layers):
            strength = None if weights is None else weights.content * weights.content_layers[:, i]
            target = window.whole(name, self.targets.content[name])
            out[f"content/{name}"] = losses.content_loss(seen(name, strength), target, self.content_loss)
        for i, name in enumerate(self.style_layers):
            strength = None if weights is None else weights.style * weights.style_layers[:, i]
            regions = self.targets.regions.get(name)
            out[f"style/{name}"] = losses.gram_sum(statistic_features(seen(name, strength), self.style_loss),
                                                   None if regions is None else window.whole(name, regions))
        return out

    def style_term(self, name: str, gram_sum: tf.Tensor) -> tf.Tensor:
        """E_l [B] of one layer from its Gram sum: unguided, or 1/K times the sum over the styled regions."""
        gram = gram_sum / self.targets.counts[name]
        target = self.targets.style[name]
        if self.style_loss != "gram":
            term = losses.style_statistics_loss(gram, target, self.style_loss, self.normalize_terms)
        elif self.normalize_terms:
            term = losses.relative_style_loss(gram, target)
        else:
            term = losses.style_layer_loss(gram, target, self.gram_norm)
        if name not in self.targets.regions:
            return term
        return tf.reduce_sum(term * self.targets.region_weights, axis=-1)   # [B, K] -> [B]

    def terms(self, sums: dict[str, tf.Tensor], images: tf.Tensor,
              weights: LossWeights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """(total [B], named terms) from the whole image's `sums` and the images (for TV)."""
        batch = tf.shape(images)[0]
        terms = {}
        content_sum = tf.zeros([batch])
        style_sum = tf.zeros([batch])
        for i, name in enumerate(self.content_layers):
            raw = sums[f"content/{name}"]
            if self.normalize_terms:
                raw = raw / self.targets.content_scales[name]
            terms[f"content/{name}"] = raw
            terms[f"weighted/content/{name}"] = weights.content * weights.content_layers[:, i] * raw
            content_sum += weights.content_layers[:, i] * raw
        for i, name in enumerate(self.style_layers):
            raw = self.style_term(name, sums[f"style/{name}"])
            terms[f"style/{name}"] = raw
            terms[f"weighted/style/{name}"] = weights.style * weights.style_layers[:, i] * raw
            style_sum += weights.style_layers[:, i] * raw
        tv = losses.mean_total_variation(images) if self.normalize_terms else losses.total_variation(images)
        terms.update({"tv": tv, "content": content_sum, "style": style_sum,
                      "weighted/tv": weights.tv * tv, "weighted/content": weights.content * content_sum,
                      "weighted/style": weights.style * style_sum})
        total = terms["weighted/content"] + terms["weighted/style"] + terms["weighted/tv"]
        terms["total"] = total
        return total, terms
