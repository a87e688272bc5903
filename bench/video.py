#!/usr/bin/env python
"""Flicker and speed of the ways to stylize a clip: per-frame optimization, temporal optimization (Ruder et
al. 2016), the trained stylizer, the stylizer with flow-guided blending.

  python bench/video.py --clip=../shared/video/cockatoo.mp4 --frames=20 --size=256 \
      --style=nst_tf/data/images/hubble_deep_field.jpg --methods=perframe,temporal [--model=.../stylizer.keras]

For each method: the temporal error (`nst_tf.video.measure.temporal_error`: the mean over frames of the
reliability-masked squared difference between each result and the previous one warped to it, pixels in
[0, 1]) and the seconds per frame (after the first, which optimization spends --num_steps on). Prints a
markdown table and writes it, with the run folders, to --out/bench_video.json. The clip is read from where
it lies; nothing of it enters the repository. Runtime: minutes per method at 256 px on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf import rundir  # noqa: E402
from nst_tf.config import config_from_values, options  # noqa: E402


def config_of(**values):
    all_values = {opt.name: opt.default for opt in options()}
    all_values.update(values)
    all_values["max_size"] = str(all_values["max_size"])
    return config_from_values(all_values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="../shared/video/cockatoo.mp4")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style", default="nst_tf/data/images/hubble_deep_field.jpg")
    parser.add_argument("--methods", default="perframe,temporal")
    parser.add_argument("--model", default=None, help="stylizer.keras for the stylizer methods")
    parser.add_argument("--num_steps", type=int, default=200)
    parser.add_argument("--frame_steps", type=int, default=None)
    parser.add_argument("--temporal_weight", type=float, default=None)
    parser.add_argument("--flow_blend", type=float, default=0.5)
    parser.add_argument("--backbone", default="vgg16_hed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="outputs/bench_video")
    args = parser.parse_args()

    from nst_tf import video
    from nst_tf.video import apply, transfer
    common = dict(content=args.clip, frames=f":{args.frames}", max_size=args.size, output_dir=args.out,
                  seed=args.seed)
    rows = []
    for method in args.methods.split(","):
        if method in ("perframe", "temporal"):
            extra = {} if args.temporal_weight is None else {"temporal_weight": args.temporal_weight}
            config = config_of(**common, style=args.style, backbone=args.backbone, num_steps=args.num_steps,
                               frame_steps=args.frame_steps, run_name=f"{method}_{time.strftime('%H%M%S')}", **extra)
        else:
            config = config_of(**common, mode="apply", model=args.model,
                               flow_blend=args.flow_blend if method == "stylizer_flow" else 0.0,
                               run_name=f"{method}_{time.strftime('%H%M%S')}")
        clip = video.open_clip(config)
        run_dir = rundir.create(args.out, config.output.run_name)
        start = time.monotonic()
        if method in ("perframe", "temporal"):
            numbers = transfer.stylize_clip(config, clip, run_dir, show_progress=False,
                                            independent=method == "perframe")
        else:
            numbers = apply.stylize_clip(config, clip, run_dir)
        video.finish(config, clip, run_dir, numbers, time.monotonic() - start)
        with open(os.path.join(run_dir, rundir.SUMMARY_FILE)) as f:
            summary = json.load(f)
        rows.append({"method": method, "run_dir": run_dir, "temporal_error": summary["temporal_error"],
                     "s_per_frame_after_first": summary.get("seconds_per_frame_after_first"),
                     "s_first_frame": summary.get("seconds_first_frame"), "frames": clip.count,
                     "frame_steps": summary.get("frame_steps"), "wall_s": summary["wall_time_s"]})
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["temporal_error"] for r in rows if r["method"] == "perframe"), None)
    lines = ["| method | temporal error | vs per-frame | s per frame (after the first) | first frame (s) |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['temporal_error'] / base:.2f}" if base else ""
        lines.append(f"| {r['method']} | {r['temporal_error']:.5f} | {ratio} | {r['s_per_frame_after_first']} | "
                     f"{r['s_first_frame']} |")
    print("\n".join(lines))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_video.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows, "table": lines,
                   "date": time.strftime("%Y-%m-%d %H:%M")}, f, indent=1)


if __name__ == "__main__":
    main()
