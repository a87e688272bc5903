#!/usr/bin/env python
"""Flicker and speed of the ways to stylize a clip: per-frame optimization, temporal optimization (Ruder et
al. 2016) at one or several --temporal_weight values, the trained stylizer, the stylizer with flow-guided
blending.

  python bench/video.py --clip=../shared/video/cockatoo.mp4 --frames=20 --size=256 \
      --style=nst_tf/data/images/hubble_deep_field.jpg --methods=perframe,temporal [--model=.../stylizer.keras]
  python bench/video.py --frames=10 --size=128 --num_steps=100 --temporal_weight=0,100,1000,10000   # a ladder

For each method: the temporal error (`nst_tf.video.measure.temporal_error`: the mean over frames of the
reliability-masked squared difference between each result and the previous one warped to it, pixels in
[0, 1]), the seconds per frame (after the first, which optimization spends --num_steps on), and for the
optimizations the price of consistency: the mean over frames after the first of the engine's content and
style terms (frames.csv, unweighted), which rise when the temporal term holds a frame away from its content
(smearing, ghosting). --perframe_frames runs the per-frame baseline on fewer frames than the others (its
temporal error is then a mean over those frames only: the table says so). Frame 0 is optimized the same way
(--num_steps, no temporal term, the same seed) by every optimization method, so it is optimized once and the
other runs start at frame 1 from its PNG (as `--resume` does; their "first frame" column is then empty);
--first_frame=RUN takes it from an earlier run of the same clip, size, style, seed and --num_steps. Prints a markdown table and writes
it, with the run folders (preview.png: six frames, content above result), to --out/bench_video.json. The
clip is read from where it lies; nothing of it enters the repository. Runtime: minutes per method at 128 px,
tens of minutes at 256 px on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf import rundir  # noqa: E402
from nst_tf.config import config_with  # noqa: E402


def later_terms(run_dir: str) -> dict:
    """The mean content and style terms (unweighted) of the frames after the first, from frames.csv."""
    path = os.path.join(run_dir, "frames.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["frame"]) > 0]
    return {k: sum(float(r[k]) for r in rows) / len(rows) for k in ("content", "style") if rows and k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="../shared/video/cockatoo.mp4")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--perframe_frames", type=int, default=None,
                        help="frames of the per-frame baseline (default --frames)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style", default="nst_tf/data/images/hubble_deep_field.jpg")
    parser.add_argument("--methods", default="perframe,temporal")
    parser.add_argument("--model", default=None, help="stylizer.keras for the stylizer methods")
    parser.add_argument("--num_steps", type=int, default=200)
    parser.add_argument("--frame_steps", type=int, default=None)
    parser.add_argument("--temporal_weight", default=None,
                        help="one value, or several separated by commas: one temporal row each (default: the "
                             "option's default)")
    parser.add_argument("--flow_blend", type=float, default=0.5)
    parser.add_argument("--backbone", default="vgg16_hed")
    parser.add_argument("--strength", type=float, default=None,
                        help="the automatic balance at this strength (found on the first frame) for the optimizations")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first_frame", default=None,
                        help="a run folder of an earlier bench (same clip, size, style, seed, --num_steps) whose "
                             "frames/00000.png every optimization starts from")
    parser.add_argument("--out", default="outputs/bench_video")
    args = parser.parse_args()

    from nst_tf import video
    from nst_tf.video import apply, transfer
    weights = [None] if args.temporal_weight is None else [float(w) for w in args.temporal_weight.split(",")]
    runs = []
    for method in args.methods.split(","):
        runs += [(method, w) for w in weights] if method == "temporal" else [(method, None)]
    rows = []
    first = os.path.join(args.first_frame, "frames", "00000.png") if args.first_frame else None
    for method, weight in runs:
        frames = args.perframe_frames if method == "perframe" and args.perframe_frames else args.frames
        common = dict(content=args.clip, frames=f":{frames}", max_size=args.size, output_dir=args.out,
                      seed=args.seed)
        label = method if weight is None else f"temporal_w{weight:g}"
        name = f"{label}_{time.strftime('%H%M%S')}"
        if method in ("perframe", "temporal"):
            extra = {} if weight is None else {"temporal_weight": weight}
            if args.strength is not None:
                extra["strength"] = args.strength
            config = config_with(**common, style=args.style, backbone=args.backbone, num_steps=args.num_steps,
                               frame_steps=args.frame_steps, run_name=name, **extra)
        else:
            config = config_with(**common, mode="apply", model=args.model,
                               flow_blend=args.flow_blend if method == "stylizer_flow" else 0.0, run_name=name)
        clip = video.open_clip(config)
        run_dir = rundir.create(args.out, config.output.run_name)
        start = time.monotonic()
        if method in ("perframe", "temporal"):
            if first:   # frame 0 as an earlier run optimized it: this run goes on at frame 1
                os.makedirs(os.path.join(run_dir, "frames"))
                shutil.copyfile(first, os.path.join(run_dir, "frames", "00000.png"))
            numbers = transfer.stylize_clip(config, clip, run_dir, show_progress=False, resume=bool(first),
                                            independent=method == "perframe")
            first = first or os.path.join(run_dir, "frames", "00000.png")
        else:
            numbers = apply.stylize_clip(config, clip, run_dir)
        video.finish(config, clip, run_dir, numbers, time.monotonic() - start)
        summary = rundir.read_summary(run_dir)
        rows.append({"method": label, "run_dir": run_dir, "temporal_error": summary["temporal_error"],
                     "temporal_weight": config.video.temporal_weight if method == "temporal" else None,
                     "s_per_frame_after_first": summary.get("seconds_per_frame_after_first"),
                     "s_first_frame": summary.get("seconds_first_frame"), "frames": clip.count,
                     "frame_steps": summary.get("frame_steps"), "wall_s": summary["wall_time_s"],
                     **later_terms(run_dir)})
        print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["method"] == "perframe"), None)
    lines = ["| method | frames | temporal error | vs per-frame | content term | style term "
             "| s per frame (after the first) | first frame (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['temporal_error'] / base['temporal_error']:.2f}" if base else ""
        terms = [f"{r[k]:.3g}" + (f" ({r[k] / base[k]:.2f}x)" if base and base.get(k) else "")
                 if k in r else "" for k in ("content", "style")]
        lines.append(f"| {r['method']} | {r['frames']} | {r['temporal_error']:.5f} | {ratio} | {terms[0]} | "
                     f"{terms[1]} | {r['s_per_frame_after_first']} | {r['s_first_frame']} |")
    print("\n".join(lines))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_video.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows, "table": lines,
                   "date": time.strftime("%Y-%m-%d %H:%M")}, f, indent=1)


if __name__ == "__main__":
    main()
