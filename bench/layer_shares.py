"""Each loss term of one pair, layer by layer, at a flat mean-grey image and at the photo, on any backbone.

  PYTHONPATH=. python bench/layer_shares.py --content=tubingen.jpg --style=seated-nude.jpg --size=512 \
      --backbone=vgg19 --pooling=max

Prints the unweighted terms (the run's own normalization, `--gram_norm`) and each style layer's share of the
style term. The mean-grey image is where jcjohnson/neural-style starts (Gaussian noise of standard deviation
0.001 around the mean pixel), so its README's log of iteration 1 (tubingen + seated-nude, 512 px, VGG-19,
max pooling, content weight 5, style weight 100 per layer) is the same measurement on VGG-19; JCJOHNSON_VGG19
holds it, converted to these terms. On vgg16_hed the shares are far from VGG-19's (docs/quality.md, "the
networks' magnitudes"): which layers carry the style is the network's magnitudes' choice, not the weights'.
Nothing is optimized; two forward passes.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# jcjohnson/neural-style README, iteration 1 of its default run: Style l loss = 100 * E_l (the same E_l as
# --gram_norm=elements); Content loss = 5 * mean (F - P)^2 at relu4_2.
JCJOHNSON_VGG19 = {"content mean (F-P)^2": 2091178.59 / 5,
                   "style/conv1_1": 30021.29 / 100, "style/conv2_1": 700349.56 / 100,
                   "style/conv3_1": 153033.20 / 100, "style/conv4_1": 12404635.16 / 100,
                   "style/conv5_1": 656.86 / 100}
# The ImageNet mean pixel (RGB) in [0, 1]: every VGG preprocessing maps it to zero.
MEAN_PIXEL = np.array([123.68, 116.779, 103.939], np.float32) / 255


def terms_at(content: str, style: str, size: int, backbone: str, pooling: str) -> dict[str, dict[str, float]]:
    """{"grey": {term: value}, "photo": {term: value}} with every weight 1 and no style octaves."""
    import tensorflow as tf
    from nst_tf import engine
    from nst_tf.config import config_with
    from nst_tf.plan import make_plan
    config = config_with(content=content, style=style, max_size=size, backbone=backbone, pooling=pooling,
                         content_weight=1.0, style_weight=1.0, style_octaves=0, seed=0)
    plan = make_plan(config, say=lambda *a: None)
    network = engine.load_network(plan.config, say=lambda *a: None)
    loss, weights = engine.loss_of(engine.Job(plan.config, plan.inputs, ""), network)
    photo = plan.inputs.content
    grey = np.broadcast_to(MEAN_PIXEL, photo.shape).astype(np.float32)
    out = {}
    for name, image in (("grey", grey), ("photo", photo)):
        _, terms = loss(tf.constant(image[None]), weights)
        out[name] = {k: float(v.numpy()[0]) for k, v in terms.items()
                     if k.startswith(("content/", "style/"))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backbone", default="vgg16_hed")
    ap.add_argument("--pooling", default="max")
    args = ap.parse_args()
    found = terms_at(args.content, args.style, args.size, args.backbone, args.pooling)
    print(f"| term | at mean grey | share of style | at the photo | share of style |")
    print("| --- | --- | --- | --- | --- |")
    totals = {k: sum(v for n, v in t.items() if n.startswith("style/")) for k, t in found.items()}
    for name in found["grey"]:
        cells = []
        for where in ("grey", "photo"):
            value = found[where][name]
            share = f"{value / totals[where]:.4f}" if name.startswith("style/") else ""
            cells += [f"{value:.4g}", share]
        print(f"| {name} | " + " | ".join(cells) + " |")
    vgg = {k: v for k, v in JCJOHNSON_VGG19.items() if k.startswith("style/")}
    print("\nVGG-19's shares at its start (jcjohnson/neural-style's log, tubingen + seated-nude, 512 px, max pooling): "
          + ", ".join(f"{k[6:]} {v / sum(vgg.values()):.4f}" for k, v in vgg.items()))


if __name__ == "__main__":
    main()
