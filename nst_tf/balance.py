"""The automatic balance (--strength): alpha and beta found for this pair, from the pair itself.

A fixed beta means something else on every pair, size and network: how hard the style pulls depends on how
far the photo's statistics are from the painting's (on the tuning corpus the style term of the photo varies
35x between paintings) and on the network's feature magnitudes (VGG-19's are not HED's). Here each term is
measured against its own size for this pair, on the network the run uses:

  C0 = content term of the painting (resized to the photo's shape): what "nothing of the photo left" costs
  S0 = style term of the photo: what "nothing of the painting's statistics reached" costs

both scale-free (--normalize_terms: each layer's term divided by its target's own magnitude, so a layer whose
features are c times larger, as another network's are, gives the same value), and the objective is

  L = (1/C0) * content + (R(s)/S0) * style + tv_weight * tv,        R(s) = RATIO_AT_HALF * RANGE^(2s - 1)

so that strength s in [0, 1] means the same pull of the painting against the photo on every pair and network:
s = 0.5 weighs the two distances alike times RATIO_AT_HALF, each 0.1 of s multiplies the style's pull by
RANGE^0.2. The anchors cost two forward passes at the pyramid's first size. The weights found are written
into the run's config (run.flags, config.json, summary.json), so a resumed or repeated run uses them as they
are; explicit --content_weight or --style_weight switch the balance off.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from nst_tf import image_io
from nst_tf.config import Config, DEFAULT_STRENGTH, schedule
from nst_tf.errors import UserError
from nst_tf.inputs import Inputs

# R(0.5): the style distance weighed this many times the content distance at the default strength, chosen by
# eye and blind comparison on the tuning corpus (docs/balance.md).
RATIO_AT_HALF = 40.0
# R(1) / R(0.5) = R(0.5) / R(0): the dial spans RANGE^2 of balance.
RANGE = 30.0


def style_ratio(strength: float) -> float:
    """R(s): the weight of the style distance relative to the content distance at strength s."""
    return RATIO_AT_HALF * RANGE ** (2.0 * strength - 1.0)


@dataclasses.dataclass(frozen=True)
class Balance:
    """What the automatic balance found for one run: the anchors and the weights they give."""
    strength: float
    content_anchor: float   # C0
    style_anchor: float     # S0
    content_weight: float   # alpha = 1 / C0
    style_weight: float     # beta = R(s) / S0

    def describe(self) -> str:
        return (f"balance: --strength={self.strength:g} gives --content_weight={self.content_weight:.4g} "
                f"--style_weight={self.style_weight:.4g} (content of the painting {self.content_anchor:.3g}, style "
                f"of the photo {self.style_anchor:.3g}; explicit weights switch this off)")


def weights_for(strength: float, content_anchor: float, style_anchor: float) -> Balance:
    """The weights of `strength` from the two anchors (both > 0)."""
    return Balance(strength, content_anchor, style_anchor, 1.0 / content_anchor, style_ratio(strength) / style_anchor)


def anchors(loss, weights, content: np.ndarray, style: np.ndarray) -> tuple[float, float]:
    """(C0, S0) of one pair through `loss` (the run's objective, `evaluate.Loss`, with scale-free terms) and
    `weights` (its per-layer weights, alpha = beta = 1): the content term of the style image resized to the
    content's shape, and the style term of the content image."""
    painting = image_io.resize(style, content.shape[:2])
    _, at_painting = loss(tf.constant(painting[None]), weights)
    _, at_photo = loss(tf.constant(content[None]), weights)
    return float(at_painting["content"].numpy()[0]), float(at_photo["style"].numpy()[0])


def check_anchors(content_anchor: float, style_anchor: float) -> None:
    """A flat, single-colour photo or painting makes an anchor zero (nothing to measure a distance with)."""
    for value, what in ((style_anchor, "the photo already has the painting's statistics (or one of them is a flat "
                                       "single colour)"),
                        (content_anchor, "the painting has the photo's features (or one of them is a flat single "
                                         "colour)")):
        if not (math.isfinite(value) and value > 1e-6):
            raise UserError(f"--strength cannot balance this pair: {what}; give --content_weight and "
                            "--style_weight instead.")


def resolve(config: Config, inputs: Inputs, network, say=print) -> tuple[Config, Balance | None]:
    """`config` with the weights of its strength for `inputs`, found at the pyramid's first size on `network`
    (`engine.Network`), or unchanged (and None) where the balance is off (explicit weights, one-term modes)."""
    if not config.automatic_balance:
        return config, None
    from nst_tf import engine   # the engine imports this module's users; import it late
    first = dataclasses.replace(config, loss=dataclasses.replace(config.loss, content_weight=1.0, style_weight=1.0))
    job = engine.Job(first, inputs.at(schedule(config)[0][0]), "")
    loss, weights = engine.loss_of(job, network)
    working = job.working
    c0, s0 = anchors(loss, weights, working.content, working.styles[0] if len(working.styles) == 1 else
                     _blend(working))
    check_anchors(c0, s0)
    found = weights_for(config.loss.strength if config.loss.strength is not None else DEFAULT_STRENGTH, c0, s0)
    say(found.describe())
    return dataclasses.replace(config, loss=dataclasses.replace(
        config.loss, strength=None, content_weight=found.content_weight, style_weight=found.style_weight)), found


def _blend(inputs: Inputs) -> np.ndarray:
    """Several style images: their blend (each resized to the content's shape) stands for "the painting"."""
    shape = inputs.content.shape[:2]
    return sum(b * image_io.resize(s, shape) for b, s in zip(inputs.blend, inputs.styles)).astype(np.float32)
