"""How hard the fixed-weight default pulls toward the style, pair by pair, in the automatic balance's terms.

  PYTHONPATH=. python bench/balance_ratio.py                          # the tuning corpus, 256 px
  PYTHONPATH=. python bench/balance_ratio.py --photos=tubingen --paintings=starry_night --style_loss=gram

For each corpus pair (bench/quality.py's corpus), the ratio that `--strength` sets to R(s) (nst_tf/balance.py):

  R = beta * sum_l w_l S0_l / (alpha * sum_c w_c C0_c)

with the default's own weights (alpha and beta as resolved at --size, the layer weights, octave copies as layers)
and its raw anchors on the run's network: S0_l, style layer l's term at the photo; C0_c, content layer c's term
at the painting resized to the photo. That is the style's whole pull at the photo over the content's at the
painting. Its median over the corpus is what balance.RATIO_AT_HALF takes for the middle strength; its spread is
how differently one fixed beta treats the pairs. Also each style layer's share of that pull (w_l S0_l over the
sum), the median over the pairs: which layers carry the default's style on this network. Forward passes only: a
few seconds per pair.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import quality  # noqa: E402  (bench/quality.py: the corpus)

from nst_tf import balance, engine  # noqa: E402
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig  # noqa: E402
from nst_tf.plan import make_plan  # noqa: E402


def pull_ratio(config: Config, network=None) -> tuple[float, dict, object]:
    """(R of the default `config`'s pair, {style layer: its share of the style's pull at the photo}, the network
    loaded for it)."""
    plan = make_plan(config, say=lambda *a: None)
    network = network or engine.load_network(plan.config, say=lambda *a: None)
    return (*balance.pull_ratio(plan.config, plan.inputs, network), network)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", default="")
    ap.add_argument("--paintings", default="")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--style_loss", default="auto")
    ap.add_argument("--backbone", default="vgg16_hed")
    args = ap.parse_args(argv)
    pairs = quality.corpus(args.photos, args.paintings)
    if not pairs:
        print("no corpus pairs found (bench/quality.py looks in ../shared/images)", file=sys.stderr)
        return 1
    network, ratios, shares = None, [], []
    print("| pair | R |\n| --- | --- |")
    for pair in pairs:
        content, _, style = pair.partition(":")
        config = Config(images=ImageConfig(content=content, style=style, max_size=args.size),
                        model=ModelConfig(backbone=args.backbone), loss=LossConfig(style_loss=args.style_loss),
                        optim=OptimConfig(seed=0))
        ratio, share, network = pull_ratio(config, network)
        ratios.append(ratio)
        shares.append(share)
        print(f"| {quality.pair_label(pair)} | {ratio:.4g} |", flush=True)
    r = np.array(ratios)
    print(f"\n{len(r)} pairs: median {np.median(r):.4g}, geometric mean {np.exp(np.log(r).mean()):.4g}, "
          f"min {r.min():.4g}, max {r.max():.4g} ({r.max() / r.min():.1f}x)")
    layers = [n for n in shares[0] if all(n in s for s in shares)]
    print("\neach style layer's share of the style's pull at the photo, median over the pairs (min - max):")
    for n in layers:
        v = np.array([s[n] for s in shares])
        print(f"  {n:12s} {np.median(v):.4f} ({v.min():.4f} - {v.max():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
