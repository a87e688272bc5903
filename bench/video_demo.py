#!/usr/bin/env python
"""The README's video demo: a clip the project makes from its bundled astronaut.jpg (a slow pan and zoom),
stylized with swirls.jpg by temporal optimization, saved as docs/video_demo.gif (the clip above, the result
below) and docs/video_demo.png (six frames).

  python bench/video_demo.py                           # what made the files in docs/

At the defaults (12 frames of 128x96, 100 steps for frame 0, 25 for each later one) it took 13.5 minutes on
2 CPU cores shared with another benchmark (2026-12-03); a later frame's 25 steps took 8 s when the machine
was free.

The clip is made here with known motion (OpenCV's warpAffine, bicubic): each frame zooms in by --zoom and
moves the view by --pan px (at the clip's size) from the frame before, so the camera glides toward the
astronaut's face. Nothing outside the repository is read. The run folder (result.mp4, frames/, summary.json
with the temporal error) is left in --out.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(ROOT, "nst_tf", "data", "images", "astronaut.jpg")
SWIRLS = os.path.join(ROOT, "examples", "swirls.jpg")


def make_clip(count: int, height: int, width: int, zoom: float, pan: tuple[float, float]) -> list[np.ndarray]:
    """`count` float32 RGB frames [height, width, 3] in [0, 1]: astronaut.jpg seen through a camera that
    zooms by `zoom` and moves by `pan` (dx, dy px of the output) per frame, from a view of the whole photo."""
    from nst_tf import image_io
    photo = image_io.load_image(ASTRONAUT)
    ph, pw = photo.shape[:2]
    scale0 = max(height / ph, width / pw) * 1.15   # a little more than the photo's width: room to move
    frames = []
    for k in range(count):
        scale = scale0 * zoom ** k
        # the view's centre in photo pixels: from the centre, moving toward the face (upper left) as it zooms
        cx = pw / 2 - k * pan[0] / scale0
        cy = ph / 2 - k * pan[1] / scale0
        matrix = np.float32([[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]])
        frame = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(frame, 0, 1).astype(np.float32))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=128, help="the clip's width; its height is 3/4 of it")
    parser.add_argument("--zoom", type=float, default=1.02)
    parser.add_argument("--pan", default="1.5,0.8", help="dx,dy px per frame at the clip's size")
    parser.add_argument("--num_steps", type=int, default=100)
    parser.add_argument("--frame_steps", type=int, default=None)
    parser.add_argument("--temporal_weight", type=float, default=None, help="default: the option's default")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="outputs/video_demo")
    parser.add_argument("--gif", default=os.path.join(ROOT, "docs", "video_demo.gif"))
    parser.add_argument("--strip", default=os.path.join(ROOT, "docs", "video_demo.png"))
    args = parser.parse_args()

    import nst_tf
    from nst_tf import image_io
    from nst_tf.video import clip_io
    width, height = args.size, args.size * 3 // 4
    frames = make_clip(args.frames, height, width, args.zoom, tuple(float(v) for v in args.pan.split(",")))
    os.makedirs(args.out, exist_ok=True)
    source = os.path.join(args.out, "astronaut_pan.mp4")
    from fractions import Fraction
    clip_io.write_mp4(frames, source, Fraction(args.fps))
    options = dict(max_size=args.size, num_steps=args.num_steps, frame_steps=args.frame_steps, seed=args.seed,
                   output_dir=args.out, run_name="astronaut_swirls")
    if args.temporal_weight is not None:
        options["temporal_weight"] = args.temporal_weight
    result = nst_tf.video(source, SWIRLS, show_progress=True, **options)
    contents = list(clip_io.open_clip(source).frames((height, width)))
    results = [image_io.load_image(os.path.join(result.frames, name)) for name in sorted(os.listdir(result.frames))]
    gap = 2
    sheets = []
    for content, styled in zip(contents, results):   # the clip above, the result below
        sheet = np.ones((2 * height + gap, width, 3), np.float32)
        sheet[:height], sheet[height + gap:] = content, styled
        sheets.append(Image.fromarray(image_io.to_uint8(sheet)))
    sheets[0].save(args.gif, save_all=True, append_images=sheets[1:], duration=1000 // args.fps, loop=0,
                   optimize=True)
    image_io.save_image(clip_io.preview_strip([contents, results]), args.strip)
    details = result.summary.get("details", {})
    print(f"{args.gif} ({os.path.getsize(args.gif) / 1024:.0f} KB), {args.strip}; run folder {result.run_dir}; "
          f"temporal error {details.get('temporal_error')}, {details.get('seconds_per_frame_after_first')} s "
          "per frame after the first")


if __name__ == "__main__":
    main()
