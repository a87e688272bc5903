"""The automatic balance against a fixed beta on the tuning corpus: does one strength mean the same on every pair?

  PYTHONPATH=. python bench/balance.py                                   # every photo x every painting, 256 px
  PYTHONPATH=. python bench/balance.py --photos=tubingen,chicago --paintings=starry_night,wave,candy

Runs each corpus pair (bench/quality.py --corpus, ../shared/images) twice at 256 px: with a fixed beta (the
default of commit 8d208fa: raw terms, beta 2.5e7, the same flags on every pair; or another checkout with
--fixed_checkout) and with the automatic balance at the default strength. For each result, two figures
computed from pixels only (bench/quality.py):
  structure kept   SSIM of the result's luminance against the photo's
  style reached    1 - style distance(result, painting) / style distance(photo, painting)
and their spread across the pairs (standard deviation, and max - min). One strength means the same on every
pair when both spreads are small. Writes <out>/balance.md (per pair and the spreads) and <out>/balance.png (a
contact sheet: each pair's photo, painting, fixed-beta and automatic results).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quality  # noqa: E402  (bench/quality.py: the runs, the figures, the corpus)

FIXED = "--content_weight=1 --style_weight=2.5e7"   # today's fixed beta, the balance off (the rest default)


def spreads(rows: list[dict], variant: str) -> dict:
    kept = np.array([r["ssim"] for r in rows if r["variant"] == variant])
    reached = np.array([r["reached"] for r in rows if r["variant"] == variant])
    return {"pairs": len(kept), "kept_mean": kept.mean(), "kept_std": kept.std(), "kept_range": np.ptp(kept),
            "reached_mean": reached.mean(), "reached_std": reached.std(), "reached_range": np.ptp(reached)}


def report(rows: list[dict], variants: list[str]) -> str:
    lines = ["| pair | " + " | ".join(f"{v}: kept / reached" for v in variants) + " |",
             "| --- |" + " --- |" * len(variants)]
    by = {(r["pair"], r["variant"]): r for r in rows}
    for pair in dict.fromkeys(r["pair"] for r in rows):
        cells = [f"{by[(pair, v)]['ssim']:.3f} / {by[(pair, v)]['reached']:.2f}" if (pair, v) in by else "-"
                 for v in variants]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | pairs | kept: mean, std, range | reached: mean, std, range |", "| --- | --- | --- | --- |"]
    for v in variants:
        s = spreads(rows, v)
        lines.append(f"| {v} | {s['pairs']} | {s['kept_mean']:.3f}, {s['kept_std']:.3f}, {s['kept_range']:.3f} | "
                     f"{s['reached_mean']:.2f}, {s['reached_std']:.3f}, {s['reached_range']:.2f} |")
    return "\n".join(lines)


def contact_sheet(rows: list[dict], variants: list[str], path: str, height: int = 160) -> None:
    from PIL import Image
    by = {(r["pair"], r["variant"]): r for r in rows}
    pairs = [p for p in dict.fromkeys(r["pair"] for r in rows) if all((p, v) in by for v in variants)]
    tiles = []
    for pair in pairs:
        first = by[(pair, variants[0])]
        row = [first["content"], first["style_path"]] + [by[(pair, v)]["path"] for v in variants]
        ims = [Image.open(p).convert("RGB") for p in row]
        ims = [im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS) for im in ims]
        tiles.append(ims)
    width = max(sum(im.width + 4 for im in ims) for ims in tiles)
    sheet = Image.new("RGB", (width, len(tiles) * (height + 4)), "white")
    for i, ims in enumerate(tiles):
        x = 0
        for im in ims:
            sheet.paste(im, (x, i * (height + 4)))
            x += im.width + 4
    sheet.save(path, quality=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="")
    ap.add_argument("--paintings", default="")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--fixed", default=FIXED, help="run.py flags of the fixed-beta variant")
    ap.add_argument("--fixed_checkout", default="", help="run the fixed variant with this clone's run.py")
    ap.add_argument("--auto", default="", help="run.py flags of the automatic variant (default: none)")
    ap.add_argument("--out", default=os.path.join(quality.ROOT, "outputs", "balance"))
    args = ap.parse_args(argv)
    fixed = args.fixed + (f" --checkout={args.fixed_checkout}" if args.fixed_checkout else "")
    quality.main(["--corpus", f"--photos={args.photos}", f"--paintings={args.paintings}", f"--size={args.size}",
                  f"--out={args.out}", "--no_reference", "--no_figure_sheet",
                  f"--variants=fixed={fixed};auto={args.auto}"])
    with open(os.path.join(args.out, "quality.json")) as f:
        rows = json.load(f)
    md = report(rows, ["fixed", "auto"])
    print(md)
    with open(os.path.join(args.out, "balance.md"), "w") as f:
        f.write(md + "\n")
    contact_sheet(rows, ["fixed", "auto"], os.path.join(args.out, "balance.jpg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
