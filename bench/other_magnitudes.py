"""What the fixed weights and the balance do on a network with VGG-19's magnitudes, which nobody here can run.

  PYTHONPATH=. python bench/other_magnitudes.py                        # R over the corpus, forward passes only
  PYTHONPATH=. python bench/other_magnitudes.py --photos=tubingen --paintings=starry_night --run=out/mag
  PYTHONPATH=. python bench/other_magnitudes.py --clip=../shared/video/cockatoo.mp4 --style=examples/swirls.jpg \
      --size=128 --run=out/mag_clip                                    # a clip's first frames, both networks

The offline vgg16_hed with every conv layer's kernel and bias rescaled so that each layer's features are those of
vgg16_hed times VGG-19's feature amplitude over vgg16_hed's at that layer (docs/quality.md, "How far vgg16_hed's
magnitudes are from VGG-19's": conv1_1 1.7x, conv2_1 4.4x, conv3_1 9.6x, conv4_1 79x, conv4_2 95x, conv5_1 15x;
the layers no default term reads take geometric steps between them). ReLU and average pooling commute with
positive factors, so this is vgg16_hed's network at VGG-19's magnitudes: what changes between the two networks'
balance, and nothing else (VGG-19's features differ in more than their size).

For each pair: R, the style's pull at the photo over the content's at the painting in the fixed-weight default
(bench/balance_ratio.py), on vgg16_hed and on the rescaled network; with --run, the default run (fixed weights)
and --strength=0.5 on both networks, written to --run/<pair>/<variant>/result.png. With --clip, the clip's first
--frames frames against --style instead (100 steps for the first frame, 25 for each next, as bench/video.py's
ladders; each variant at its own default --temporal_weight), and each frame of the rescaled network's result
compared with vgg16_hed's (mean absolute difference in 1/255, SSIM of the luminance).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import balance_ratio  # noqa: E402
import quality  # noqa: E402  (bench/quality.py: the corpus)

from nst_tf import engine, lifecycle  # noqa: E402
from nst_tf.plan import make_plan  # noqa: E402
from nst_tf.config import (Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig,  # noqa: E402
                           VideoConfig)

# VGG-19's feature amplitude over vgg16_hed's at the layers the default terms read (docs/quality.md).
MEASURED = {"conv1_1": 1.7, "conv2_1": 4.4, "conv3_1": 9.6, "conv4_1": 79.0, "conv4_2": 95.0, "conv5_1": 15.0}
VGG16_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
               "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")


def amplitudes() -> list[float]:
    """The cumulative factor of each of VGG-16's 13 convs: MEASURED where measured, geometric steps between."""
    known = [(i, MEASURED[n]) for i, n in enumerate(VGG16_CONVS) if n in MEASURED]
    out = []
    for i in range(len(VGG16_CONVS)):
        before = max((k for k in known if k[0] <= i), key=lambda k: k[0])
        after = min((k for k in known if k[0] >= i), key=lambda k: k[0], default=before)
        t = 0.0 if after[0] == before[0] else (i - before[0]) / (after[0] - before[0])
        out.append(math.exp((1 - t) * math.log(before[1]) + t * math.log(after[1])))
    return out


def rescale(model, cumulative: list[float]):
    """Conv k's kernel times c_k / c_(k-1) and its bias times c_k: its output is c_k times the original's."""
    convs = [layer for layer in model.layers if layer.__class__.__name__.endswith("Conv2D")]
    assert len(convs) == len(cumulative)
    previous = 1.0
    for layer, c in zip(convs, cumulative):
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * (c / previous), bias * c])
        previous = c
    return model


def config_of(content: str, style: str, size: int, out: str = "outputs", name: str = "magnitudes",
              strength=None, frames: int = 0, precision: str = "auto") -> Config:
    """A still's default run, or with `frames` a clip's first frames (short steps, as bench/video.py's ladders)."""
    clip = dict(optim=OptimConfig(seed=0, num_steps=100), video=VideoConfig(frames=f":{frames}", frame_steps=25)
                ) if frames else dict(optim=OptimConfig(seed=0))
    return Config(images=ImageConfig(content=content, style=style, max_size=size),
                  model=ModelConfig(backbone="vgg16_hed", precision=precision), loss=LossConfig(strength=strength),
                  output=OutputConfig(output_dir=out, run_name=name), **clip)


def frame_differences(a_dir: str, b_dir: str) -> list[tuple[float, float]]:
    """(mean |a - b| in 1/255, SSIM of the luminance) of each frame two clip runs share."""
    names = sorted(set(os.listdir(os.path.join(a_dir, "frames"))) & set(os.listdir(os.path.join(b_dir, "frames"))))
    out = []
    for name in names:
        a, b = (quality.load(os.path.join(d, "frames", name)) for d in (a_dir, b_dir))
        out.append((float(np.abs(a - b).mean() * 255), quality.ssim(quality.luminance(a), quality.luminance(b))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", default="")
    ap.add_argument("--paintings", default="")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--run", default="", help="a folder: also run the default and --strength=0.5 on both networks")
    ap.add_argument("--clip", default="", help="with --run and --style: this clip's first --frames frames")
    ap.add_argument("--style", default="", help="with --clip: the painting")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--variants", default="fixed,strength", help="with --run: fixed (the default weights), strength")
    ap.add_argument("--precision", default="auto", help="with --run: float32 leaves only float32's rounding between "
                    "the two networks")
    args = ap.parse_args(argv)
    if args.clip:
        if not (args.run and args.style):
            ap.error("--clip needs --run=FOLDER and --style=PAINTING")
        return run_clip(args)
    pairs = quality.corpus(args.photos, args.paintings)
    if not pairs:
        print("no corpus pairs found (bench/quality.py looks in ../shared/images)", file=sys.stderr)
        return 1
    cumulative = amplitudes()
    print("cumulative factors:", " ".join(f"{n}={c:.3g}" for n, c in zip(VGG16_CONVS, cumulative)))
    plain = scaled = None
    ratios = {"vgg16_hed": [], "rescaled": []}
    for pair in pairs:
        config = config_of(*pair.split(":", 1), args.size)
        r_plain, _, plain = balance_ratio.pull_ratio(config, plain)
        if scaled is None:
            scaled = engine.load_network(make_plan(config, say=lambda *a: None).config, say=lambda *a: None)
            rescale(scaled.model, cumulative)
        r_scaled, shares, _ = balance_ratio.pull_ratio(config, scaled)
        ratios["vgg16_hed"].append(r_plain)
        ratios["rescaled"].append(r_scaled)
        top = max(shares, key=shares.get)
        print(f"{quality.pair_label(pair)}: R on vgg16_hed {r_plain:.4g}, at VGG-19's magnitudes {r_scaled:.4g} "
              f"(largest share {top} {shares[top]:.2f})", flush=True)
    for name, rs in ratios.items():
        print(f"{name}: median R {np.median(rs):.4g} (range {min(rs):.3g} to {max(rs):.3g}, {len(rs)} pairs)")
    if args.run:
        variants = args.variants.split(",")
        for pair in pairs:
            runs = run_both(args.run, quality.pair_label(pair), *pair.split(":", 1), args.size, cumulative,
                            variants=variants, precision=args.precision)
            for variant in variants:
                a, b = (quality.load(os.path.join(runs[n, variant], "result.png")) for n in ("vgg16_hed", "rescaled"))
                ssim = quality.ssim(quality.luminance(a), quality.luminance(b))
                print(f"{quality.pair_label(pair)} {variant}: rescaled against vgg16_hed: mean |diff| "
                      f"{np.abs(a - b).mean() * 255:.1f}/255, SSIM {ssim:.3f}", flush=True)
    return 0


def run_both(folder: str, label: str, content: str, style: str, size: int, cumulative: list[float],
             frames: int = 0, variants=("fixed", "strength"), precision: str = "auto") -> dict:
    """The fixed-weight default and --strength=0.5 (`variants`) on vgg16_hed and on the rescaled network:
    {(network, variant): run folder}."""
    real, runs = engine.load_network, {}
    try:
        for network, factors in (("vgg16_hed", None), ("rescaled", cumulative)):
            def load(config, say=print, factors=factors):
                loaded = real(config, say)
                if factors:
                    rescale(loaded.model, factors)
                return loaded
            engine.load_network = load
            for variant in variants:
                strength = {"fixed": None, "strength": 0.5}[variant]
                out = os.path.join(folder, label, f"{network}_{variant}")
                config = config_of(content, style, size, os.path.dirname(out), os.path.basename(out), strength,
                                   frames, precision)
                runs[network, variant] = lifecycle.run(config, show_progress=False, say=lambda *a: None)
                print(f"{label} {network} {variant}: {runs[network, variant]}", flush=True)
    finally:
        engine.load_network = real
    return runs


def run_clip(args) -> int:
    """--clip: both variants on both networks; each frame of the rescaled network's against vgg16_hed's."""
    label = os.path.splitext(os.path.basename(args.clip))[0]
    runs = run_both(args.run, label, args.clip, args.style, args.size, amplitudes(), args.frames)
    for variant in ("fixed", "strength"):
        diffs = frame_differences(runs["vgg16_hed", variant], runs["rescaled", variant])
        print(f"{variant}: rescaled against vgg16_hed, frame by frame: mean |diff| (1/255) "
              + " ".join(f"{d:.1f}" for d, _ in diffs) + "; SSIM " + " ".join(f"{s:.3f}" for _, s in diffs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
