"""The objective: precomputed targets + per-image weights -> (total, named terms), from per-layer sums.

Every content and style term is a function of sums over the feature positions of its layer: a content term
is sum_k d(F_k, P_k), a Gram style term depends on the Gram sum G = sum_k F_k F_k^T (per region with masks);
the sliced style term (--style_loss=sliced) compares the whole feature map's distribution, so it is its own
"sum" and needs whole images. An evaluator (`nst_tf.evaluate.WholeImage`, `nst_tf.tiling.Tiled`) computes the sums, over the whole image at
once or tile by tile, and hands them to `Objective.terms`; the objective never sees how they were made.
A feature term (`losses.FEATURE_TERMS`, e.g. mrf) compares a layer's whole feature map with its target at
once, so only `WholeImage` evaluates an objective that has one.

Targets (content features, style statistics, feature terms' targets) are computed once, by
`compute_targets`. Everything that may change between steps or between the images of a batch lives in the
weights: a mapping from term name to a per-image `tf.Variable` [B] (`loss_weights`), which the compiled
step receives as an argument, never as Python values frozen at trace time:

  "<term>"          the term's weight: content (alpha), style (beta), tv, mrf, ...
  "<term>/<layer>"  the layer's weight w_l within the term; 0 (or absent) switches the layer off for that image

Term names (one vocabulary for the progress line, TensorBoard, the CSV, the plot and the sweeps' reports):
  <term>/<layer>, tv             raw per-layer terms (content/conv4_2, style/conv1_1 (E_l), mrf/conv3_1)
  <term>                         layer-weighted sums: sum_l w_l * <term>/<layer>
  weighted/<term>/<layer>, weighted/<term>, weighted/tv
                                 the same times the term's weight
  total                          the sum of weighted/<term> over the terms (alpha * content + beta * style
                                 + ... + tv_weight * tv)
A new weighted term is a config field `<term>_weight` (and `<term>_layers`: `config.weighted_terms`) and
its math in `losses.FEATURE_TERMS`; the names, weights, reports and sweeps follow.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from nst_tf import losses, masks
from nst_tf.inputs import Inputs

Weights = Mapping[str, tf.Variable]


def loss_weights(rows: Sequence[Mapping[str, float]]) -> dict[str, tf.Variable]:
    """Per-image weights by term name: one mapping per image of the batch ({"content": alpha,
    "content/conv4_2": w_l, "style": beta, ...}, e.g. `plan.EffectiveWeights.flat`) -> {name: float32
    `tf.Variable` [B]}, over every name some image has; 0 for an image that lacks it (the layer mask)."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: tf.Variable(np.array([row.get(name, 0.0) for row in rows], np.float32), trainable=False,
                              name=name.replace("/", "_") + "_weight")
            for name in names}


def weight(weights: Weights, name: str, batch) -> tf.Tensor:
    """weights[name] [B], or zeros where no image has that entry."""
    return weights[name] if name in weights else tf.zeros([batch])


def term_names(layers: Mapping[str, Sequence[str]]) -> list[str]:
    """Every term name an objective reports, in a stable order, from {term: its layers} (content and style
    first, then the feature terms; tv is always there), e.g. `plan.EffectiveWeights.term_layers()`."""
    kinds = [kind for kind in layers if kind != "tv"]
    raw = [f"{kind}/{n}" for kind in kinds for n in layers[kind]] + ["tv"] + kinds
    return raw + ["weighted/" + name for name in raw] + ["total"]


def is_layer_term(name: str) -> bool:
    """Whether `name` is a raw per-layer term (content/<layer>, style/<layer>, mrf/<layer>), not a sum or a
    weighted one."""
    kind, _, layer = name.partition("/")
    return kind != "weighted" and bool(layer)


def summary_terms(names: Sequence[str]) -> list[str]:
    """The terms that sum up a run, among `names`: total, weighted/<term> for each term (tv last), then
    the layer-weighted sums <term> and tv; what the progress line and the sweeps' tables show."""
    kinds = [n for n in names if "/" not in n and n != "tv" and f"weighted/{n}" in names]
    kinds += ["tv"] if "tv" in names else []
    return ["total"] * ("total" in names) + [f"weighted/{k}" for k in kinds if f"weighted/{k}" in names] + kinds


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
    style_scales: with the sliced term, {style layer: []} its samples' magnitude (`losses.sliced_scale`), what
      the term is divided by with --normalize_terms.
    features: {feature term: {layer: its target}} (`losses.FeatureTerm.target` of the style images).
    With a style statistic other than the Gram (--style_loss), the "Gram" is that of the features with a
    channel of ones (`losses.with_ones`): its blocks are the mean and the second moments.
    """
    content: dict[str, tf.Tensor]
    style: dict[str, tf.Tensor]
    regions: dict[str, tf.Tensor]
    region_weights: tf.Tensor | None
    counts: dict[str, tf.Tensor]
    content_scales: dict[str, tf.Tensor] = dataclasses.field(default_factory=dict)
    style_scales: dict[str, tf.Tensor] = dataclasses.field(default_factory=dict)
    features: dict[str, dict[str, tf.Tensor]] = dataclasses.field(default_factory=dict)


def statistic_features(features: tf.Tensor, style_loss: str) -> tf.Tensor:
    """What a style layer's Gram sum is taken of: the features, or for a statistic style loss the features
    and a channel of ones (so the sum holds their mean and second moments, `losses.moments`)."""
    return features if style_loss == "gram" else losses.with_ones(features)


def compute_targets(evaluator, inputs: Inputs, content_layers: tuple[str, ...],
                    style_layers: tuple[str, ...], style_loss: str = "gram", content_loss: str = "l2",
                    contents: list[np.ndarray] | None = None,
                    feature_terms: Mapping[str, Sequence[str]] | None = None) -> Targets:
    """The targets of `inputs` through `evaluator` (whole or tiled: the same values).

    Style targets: the Gram matrices of the style images blended, a = sum_s b_s a_s. With guides, one per
    region r of the content mask, from the pixels of region r of each style image that has it (the blend
    weights renormalized over those), and the style term of a layer is E = 1/K sum_r E(g^r, a^r) over the
    K regions (the seeds' report); a region that no style image has adds nothing (content only there).
    Feature terms ({term: its layers}): each layer's target from the style images' whole feature maps
    (`losses.FEATURE_TERMS[term].target`); they see no guides.
    """
    content = {}
    if content_layers:   # [1, h, w, C], or [B, h, w, C] with one content image per image of the batch
        maps = [evaluator.feature_maps(c, content_layers) for c in (contents or [inputs.content])]
        content = {name: tf.constant(tf.concat([m[name] for m in maps], axis=0)) for name in content_layers}
    targets = Targets(content, {}, {}, None, {},
                      {name: losses.content_scale(t, content_loss) for name, t in content.items()})
    for term, names in (feature_terms or {}).items():
        maps = [evaluator.feature_maps(style, names) for style in inputs.styles]
        targets.features[term] = {name: losses.FEATURE_TERMS[term].target([m[name] for m in maps], inputs.blend)
                                  for name in names}
    if not style_layers:
        return targets
    if style_loss == "sliced":   # samples of the styles' feature vectors, not Gram matrices
        if inputs.guides is not None:
            raise ValueError("the sliced style term compares whole feature maps, not regions of a mask")
        maps = [evaluator.feature_maps(style, style_layers) for style in inputs.styles]
        targets.style = {name: losses.sliced_target([m[name] for m in maps], inputs.blend) for name in style_layers}
        targets.style_scales = {name: losses.sliced_scale(t) for name, t in targets.style.items()}
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
                 normalize_terms: bool = False, style_loss: str = "gram",
                 feature_terms: Mapping[str, Sequence[str]] | None = None):
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
          style_loss: gram, a statistic of `losses.style_statistics_loss` (mean_cov, wasserstein, mean_std), or
            sliced (`losses.sliced_loss`, on whole feature maps: whole images, no guides).
          feature_terms: {term of `losses.FEATURE_TERMS`: its layers}; whole images only.
        """
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.feature_terms = {term: tuple(names) for term, names in (feature_terms or {}).items()}
        self.targets = targets
        self.content_loss = content_loss
        self.gram_norm = gram_norm
        self.normalize_gradients = normalize_gradients
        self.normalize_terms = normalize_terms
        self.style_loss = style_loss
        # the optimizer's step, a tf.Variable that evaluate.make_loss gives an optimized image's objective and
        # optimize.run_adam sets before each step: it draws the sliced style term's random directions, the
        # same for every image of a batch and in a resumed run (None: fixed directions, seed 0)
        self.step = None

    @property
    def seed(self):
        """What draws the sliced term's directions: the step, or 0."""
        return 0 if self.step is None else self.step

    @property
    def term_layers(self) -> dict[str, tuple[str, ...]]:
        """{term: its layers}: content, style, then the feature terms (`term_names`)."""
        return {"content": self.content_layers, "style": self.style_layers, **self.feature_terms}

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer a term reads, without repeats."""
        return tuple(dict.fromkeys(n for names in self.term_layers.values() for n in names))

    def sums(self, features: dict[str, tf.Tensor], window: Window = WHOLE,
             weights: Weights | None = None) -> dict[str, tf.Tensor]:
        """Each term's sums over the positions that `window` covers: {"content/<layer>": [B] the content
        term, "style/<layer>": [B, C, C] (or [B, K, C, C]) the Gram sum (sliced: [B] the term itself),
        "<feature term>/<layer>": [B] its
        value (whole images only)}. Sums of the parts of an image add up to the sums of the image. With
        --normalize_gradients (whole images only), each term's features pass through `normalized_gradient`
        with the term's weight times the layer's as strength."""
        def seen(kind, name):
            f = window.features(name, features[name])
            if not self.normalize_gradients:
                return f
            batch = tf.shape(f)[0]
            return normalized_gradient(f, weight(weights, kind, batch) * weight(weights, f"{kind}/{name}", batch))
        out = {}
        for name in self.content_layers:
            target = window.whole(name, self.targets.content[name])
            out[f"content/{name}"] = losses.content_loss(seen("content", name), target, self.content_loss)
        if self.style_loss == "sliced" and self.style_layers and window is not WHOLE:
            raise ValueError("the sliced style term compares whole feature maps, not tiles")
        for name in self.style_layers:
            if self.style_loss == "sliced":
                out[f"style/{name}"] = losses.sliced_loss(seen("style", name), self.targets.style[name], self.seed)
                continue
            regions = self.targets.regions.get(name)
            out[f"style/{name}"] = losses.gram_sum(statistic_features(seen("style", name), self.style_loss),
                                                   None if regions is None else window.whole(name, regions))
        if self.feature_terms and window is not WHOLE:
            raise ValueError(f"the {', '.join(self.feature_terms)} term compares whole feature maps, not tiles")
        for kind, names in self.feature_terms.items():
            for name in names:
                term = losses.FEATURE_TERMS[kind]
                out[f"{kind}/{name}"] = term.loss(seen(kind, name), self.targets.features[kind][name],
                                                  *((self.seed,) if term.seeded else ()))
        return out

    def style_term(self, name: str, gram_sum: tf.Tensor) -> tf.Tensor:
        """E_l [B] of one layer from its Gram sum: unguided, or 1/K times the sum over the styled regions.
        The sliced term is its own value (`sums`), with --normalize_terms divided by `losses.sliced_scale`."""
        if self.style_loss == "sliced":
            return gram_sum / self.targets.style_scales[name] if self.normalize_terms else gram_sum
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

    def raw_term(self, kind: str, name: str, sums: dict[str, tf.Tensor]) -> tf.Tensor:
        """The raw term <kind>/<name> [B] from the whole image's sums."""
        value = sums[f"{kind}/{name}"]
        if kind == "style":
            return self.style_term(name, value)
        if kind == "content" and self.normalize_terms:
            return value / self.targets.content_scales[name]
        return value

    def terms(self, sums: dict[str, tf.Tensor], images: tf.Tensor,
              weights: Weights) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """(total [B], named terms) from the whole image's `sums` and the images (for TV)."""
        batch = tf.shape(images)[0]
        terms = {}
        for kind, names in self.term_layers.items():
            layer_sum = tf.zeros([batch])
            for name in names:
                raw = self.raw_term(kind, name, sums)
                w_layer = weight(weights, f"{kind}/{name}", batch)
                terms[f"{kind}/{name}"] = raw
                terms[f"weighted/{kind}/{name}"] = weight(weights, kind, batch) * w_layer * raw
                layer_sum += w_layer * raw
            terms[kind] = layer_sum
            terms[f"weighted/{kind}"] = weight(weights, kind, batch) * layer_sum
        tv = losses.mean_total_variation(images) if self.normalize_terms else losses.total_variation(images)
        terms["tv"] = tv
        terms["weighted/tv"] = weight(weights, "tv", batch) * tv
        total = terms["weighted/content"] + terms["weighted/style"]
        for kind in self.feature_terms:
            total += terms[f"weighted/{kind}"]
        terms["total"] = total + terms["weighted/tv"]
        return terms["total"], terms
