"""The automatic balance (--strength): alpha, beta and the layer weights found for this pair, from the pair itself.

A fixed beta means something else on every pair, size and network: how hard the style pulls depends on how
far the photo's statistics are from the painting's (on the tuning corpus the style term of the photo varies
35x between paintings) and on the network's feature magnitudes, which also decide which layers carry the
style (on vgg16_hed with raw terms, conv1_1 and conv2_1 alone; VGG-19's are others). Here every layer is
measured against its own size for this pair, on the network the run uses (scale-free terms, --normalize_terms):

  C0_c = content layer c's term at the painting (resized to the photo's shape)
  S0_l = style layer l's term at the photo (each octave copy a layer of its own)

and the objective is

  L = sum_c (w_c / C0_c) content_c + R(s) sum_l (w_l / (W S0_l)) style_l + tv_weight tv,
  R(s) = RATIO_AT_HALF[term] * RANGE[term]^(2s - 1),  W = sum_l w_l  (RANGE: one below s = 0.5, one above),

so every layer pulls alike at the start whatever its magnitude, and strength s in [0, 1] sets the style's
whole pull at the photo against the content's at the painting. The anchors cost two forward passes at the
pyramid's first size (a stylizer's: per held-out photo and style, averaged; `resolve_training`). The weights
found are written into the run's config (run.flags, config.json; the anchors in summary.json), so a resumed
or repeated run uses them as they are. On vgg16_hed off unless --strength is given (blind judges preferred the
fixed beta's pictures with Gram terms and split with the sliced term); on any other network a transfer without
explicit weights is balanced at the default strength (plan.balanced_by_default; docs/balance.md). A pair with
nothing to measure (an anchor of 0: the same image twice) weighs every layer's scale-free term 1 and says so.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from nst_tf import image_io, registry
from nst_tf.config import Config, DEFAULT_STRENGTH, schedule
from nst_tf.inputs import Inputs
from nst_tf.plan import EffectiveWeights

# R(0.5) for each style term: the style's pull at the photo this many times the content's at the painting.
# Gram: 30 (30 and 300 gave nearly the same tubingen + starry_night at 256 px; docs/quality.md). Sliced: the
# median over the tuning corpus's 56 pairs of that ratio in the fixed-weight default (alpha 1, beta 1e7/3 at
# 256 px on vgg16_hed; docs/balance.md, "The sliced term"); blind judges preferred it on 11 of 12 pairs to R 30,
# whose skies keep a fine knit (docs/balance.md, "Below the knee").
RATIO_AT_HALF = {"gram": 30.0, "sliced": 1000.0}
# (R(0.5) / R(0), R(1) / R(0.5)) for each style term. Sliced: the picture moves toward the photo from R 30 down
# to R 0.03 on six corpus pairs, and from 1000 up hardly at all, so the lower half of the dial reaches R 0.33 and
# the upper half 30000. Gram: not measured.
RANGE = {"gram": (30.0, 30.0), "sliced": (3000.0, 30.0)}


def style_ratio(strength: float, style_loss: str = "gram") -> float:
    """R(s): the weight of the style distance relative to the content distance at strength s, for the style
    term `style_loss` (gram or sliced; the statistics of losses.style_statistics_loss take the Gram's)."""
    term = style_loss if style_loss in RATIO_AT_HALF else "gram"
    below, above = RANGE[term]
    return RATIO_AT_HALF[term] * (below if strength < 0.5 else above) ** (2.0 * strength - 1.0)


@dataclasses.dataclass(frozen=True)
class Balance:
    """What the automatic balance found for one run: the anchors and the weights they give."""
    strength: float
    content_anchor: float   # C0, the mean of the content layers' anchors
    style_anchor: float     # S0, the mean of the style layers' anchors
    content_weight: float   # alpha (the layers carry their anchors)
    style_weight: float     # beta = R(s)

    def note(self) -> str:
        """What run.flags' first line says of the weights."""
        return f" (--strength={self.strength:g} found its weights)"

    def describe(self) -> str:
        return (f"balance: --strength={self.strength:g}: each layer weighed by its own distance between the photo "
                f"and the painting (content of the painting {self.content_anchor:.3g}, style of the photo "
                f"{self.style_anchor:.3g}), --style_weight={self.style_weight:.4g}; run.flags holds the layer weights "
                "found; explicit weights switch this off")


def layer_anchors(loss, weights, content: np.ndarray, style: np.ndarray) -> tuple[dict, dict]:
    """({content layer: C0_l}, {style layer: S0_l}) of one pair through `loss` (the run's objective with
    scale-free terms) and `weights` (alpha = beta = 1): each content layer's term at the style image resized to
    the content's shape, each style layer's term (octave copies included) at the content image."""
    painting = image_io.resize(style, content.shape[:2])
    _, at_painting = loss(tf.constant(painting[None]), weights)
    _, at_photo = loss(tf.constant(content[None]), weights)
    def per_layer(terms, kind):
        return {name.split("/", 1)[1]: float(v.numpy()[0]) for name, v in terms.items()
                if name.startswith(kind + "/")}
    return per_layer(at_painting, "content"), per_layer(at_photo, "style")


def degenerate(content_anchor: float, style_anchor: float) -> str | None:
    """Why the pair leaves nothing to measure the terms' pull by, or None: the photo already has the painting's
    statistics (the same image, or both one flat colour), or the painting has the photo's features."""
    for value, why in ((style_anchor, "the photo already has the painting's statistics (the same image, or both "
                                      "one flat colour?)"),
                       (content_anchor, "the painting has the photo's features (the same image?)")):
        if not (math.isfinite(value) and value > 1e-6):
            return why
    return None


# A layer whose photo is already (nearly) at the painting's statistics would take a huge weight from its tiny
# anchor; each anchor is at least this fraction of the largest of its kind.
ANCHOR_FLOOR = 1e-3


def resolve(config: Config, inputs: Inputs, network, say=print,
            floor: bool = False) -> tuple[Config, Balance | Floor | None]:
    """`config` with the weights of its strength for `inputs`, found at the pyramid's first size on `network`
    (`engine.Network`); with `floor` (`plan.Plan.floor`: the fixed default sliced beta) that beta raised where the
    pair needs it (`floored`); else unchanged (and None): explicit weights, one-term modes."""
    if not config.automatic_balance:
        return floored(config, inputs, network, say) if floor else (config, None)
    content_anchors, style_anchors = measure(config, inputs.at(schedule(config)[0][0]), network)
    return weighed(config, content_anchors, style_anchors, say)


def resolve_training(config: Config, photos: list[np.ndarray], styles: list[np.ndarray], network,
                     say=print) -> tuple[Config, Balance | None]:
    """--mode=train: the weights of its strength from the anchors of every (photo, style) pair of `photos` (a
    sample of the training photos at the training size) and `styles`, each layer's anchor their mean, so that
    one strength means for the stylizer what it means for an optimization. Unchanged (and None) when off."""
    if not config.automatic_balance:
        return config, None
    measured = [measure(config, Inputs(photo, [style], (1.0,)), network) for photo in photos for style in styles]
    content, style = ({name: float(np.mean([m[k][name] for m in measured])) for name in measured[0][k]} for k in (0, 1))
    return weighed(config, content, style, say)


def measure(config: Config, inputs: Inputs, network) -> tuple[dict, dict]:
    """({content layer: C0_c}, {style layer: S0_l}, octave copies as layers of their own) of one pair, at the
    size of `inputs`, through the run's objective with alpha = beta = 1."""
    from nst_tf import engine   # the engine imports this module's users; import it late
    first = dataclasses.replace(config, mode="transfer", loss=dataclasses.replace(
        config.loss, content_weight=1.0, style_weight=1.0))
    job = engine.Job(first, inputs, "")
    loss, weights = engine.loss_of(job, network)
    working = job.working
    style = working.styles[0] if len(working.styles) == 1 else _blend(working)
    return layer_anchors(loss, weights, working.content, style)


def weighed(config: Config, content_anchors: dict, style_anchors: dict, say=print) -> tuple[Config, Balance]:
    """`config` with every layer measured against its own anchor, so each pulls alike at the start whatever its
    magnitude: content layer c weighs w_c / C0_c; style layer l (octave copies listed as layers of their own)
    weighs R(s) w_l / (W S0_l), W = sum of the w_l, so that the style's pull at the photo is R(s) times the
    content's at the painting."""
    layers = EffectiveWeights.of(config, (1, 1)).layers   # an octave copy takes its layer's weight
    w_content, w_style = ({n: layers[kind][registry.split_octave(n)[0]] for n in anchors}
                          for kind, anchors in (("content", content_anchors), ("style", style_anchors)))
    c0 = sum(w_content[n] * v for n, v in content_anchors.items()) / sum(w_content.values())
    s0 = sum(w_style[n] * v for n, v in style_anchors.items()) / sum(w_style.values())
    why = degenerate(c0, s0)
    if why:   # any finite weights serve: the photo is already (nearly) where both terms are least
        say(f"balance: {why}; each layer's scale-free term weighs 1 instead of 1 / its anchor")
        content_anchors, style_anchors = dict.fromkeys(content_anchors, 1.0), dict.fromkeys(style_anchors, 1.0)
        c0 = s0 = 1.0
    strength = config.loss.strength if config.loss.strength is not None else DEFAULT_STRENGTH
    found = Balance(strength, c0, s0, 1.0, style_ratio(strength, config.loss.style_loss))
    floor_c = ANCHOR_FLOOR * max(content_anchors.values())
    floor_s = ANCHOR_FLOOR * max(style_anchors.values())
    total = sum(w_style.values())
    layers = tuple(style_anchors)
    loss_config = dataclasses.replace(
        config.loss, strength=None, content_weight=1.0, style_weight=found.style_weight, style_octaves=0,
        content_layers=tuple(content_anchors),
        content_layer_weights=tuple(w_content[n] / max(v, floor_c) for n, v in content_anchors.items()),
        style_layers=layers,
        style_layer_weights=tuple(w_style[n] / (total * max(style_anchors[n], floor_s)) for n in layers))
    say(found.describe())
    return dataclasses.replace(config, loss=loss_config), found


# The fixed default's floor: where the fixed sliced beta pulls less than the balance's middle (R below
# RATIO_AT_HALF["sliced"]: half the tuning corpus at 256 px on vgg16_hed, and the scenes users bring), it is raised
# to it. Blind judges preferred the raised beta's pictures on 12 of 15 such pairs, 3 split, none lost: less fine
# knit and fewer rainbow fringes in skies (docs/quality.md, "The fixed beta's floor").
FIXED_FLOOR = RATIO_AT_HALF["sliced"]


@dataclasses.dataclass(frozen=True)
class Floor:
    """What the fixed default's floor did in one run: the pull it measured and the beta it ran with."""
    ratio: float          # R of the fixed default for this pair (`pull_ratio`)
    floor: float          # FIXED_FLOOR
    style_weight: float   # beta, raised where R < floor

    @property
    def raised(self) -> bool:
        return self.ratio < self.floor

    def note(self) -> str:
        """What run.flags' first line says of the weights."""
        return f" (the default beta raised to a pull of {self.floor:.0f}x)" if self.raised else ""

    def describe(self) -> str:
        """The line a run says where the beta was raised (`raised`; `floored` says nothing otherwise)."""
        return (f"style weight: the default beta pulls {self.ratio:.0f}x the content here, below "
                f"{self.floor:.0f}x: --style_weight={self.style_weight:.4g} (--style_weight or --strength set it)")


def pull_ratio(config: Config, inputs: Inputs, network) -> tuple[float, dict]:
    """(R, {style layer: its share of the style's pull}) of `config`'s own weights for the pair of `inputs`:

      R = beta * sum_l w_l S0_l / (alpha * sum_c w_c C0_c),

    alpha and beta as the engine uses them at this size (plan.EffectiveWeights), S0_l style layer l's raw term at
    the photo (octave copies as layers), C0_c content layer c's at the painting: the style's whole pull at the
    photo over the content's at the painting, what `--strength` sets to R(s)."""
    content_anchors, style_anchors = measure(config, inputs, network)
    w = EffectiveWeights.of(config, inputs.content.shape)
    pulls = {n: w.layers["style"][n] * v for n, v in style_anchors.items()}
    style = w.terms["style"] * sum(pulls.values())
    content = w.terms["content"] * sum(w.layers["content"][n] * v for n, v in content_anchors.items())
    total = sum(pulls.values()) or 1.0
    return style / content, {n: v / total for n, v in pulls.items()}


def floored(config: Config, inputs: Inputs, network, say=print) -> tuple[Config, Floor | None]:
    """`config` (the fixed default's weights with the sliced term: `plan.Plan.floor`) with beta raised so that
    its R at the pyramid's first size is at least FIXED_FLOOR; the record (None where R is not finite: a pair
    with nothing to measure keeps the default beta)."""
    ratio, _ = pull_ratio(config, inputs.at(schedule(config)[0][0]), network)
    if not (math.isfinite(ratio) and ratio > 0):
        return config, None
    beta = config.loss.style_weight * max(1.0, FIXED_FLOOR / ratio)
    found = Floor(ratio, FIXED_FLOOR, beta)
    if found.raised:
        say(found.describe())
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_weight=beta)), found


def _blend(inputs: Inputs) -> np.ndarray:
    """Several style images: their blend (each resized to the content's shape) stands for "the painting"."""
    shape = inputs.content.shape[:2]
    return sum(b * image_io.resize(s, shape) for b, s in zip(inputs.blend, inputs.styles)).astype(np.float32)
