"""A trained stylizer on a clip (--mode=apply --model=... --content=clip.mp4): frames in batches, one
forward pass each, and with --flow_blend each output blended with the previous output warped along the
optical flow where the warp is reliable:

  y_i = (1 - b c_i) s(x_i) + b c_i warp(y_{i-1}),   b = --flow_blend, c_i = flow.reliability

so a still region keeps its strokes from frame to frame (the stylizer's own flicker averaged away) and a
moving or newly seen one takes the stylizer's output.
"""
from __future__ import annotations

import os
import time

import numpy as np

from nst_tf import color, image_io
from nst_tf.config import Config
from nst_tf.errors import stop_if_requested
from nst_tf.stylizer import apply as stylizer_apply
from nst_tf.video import clip_io, flow
from nst_tf.video.transfer import FRAMES_DIR, frame_path

BATCH = 8   # frames per forward pass: 256 px frames of a 16-channel stylizer in a few hundred MB


def stylize_clip(config: Config, clip: clip_io.Clip, run_dir: str, say=print, batch: int = BATCH,
                 on_frame=None) -> dict:
    """Stylizes every frame of `clip` into `run_dir/frames/`; returns the summary's numbers. `on_frame(done,
    count)` is called after each batch of frames is saved."""
    from nst_tf import rundir
    im, blend = config.images, config.video.flow_blend
    stylizer = stylizer_apply.open_stylizer(config, say)
    rundir.write_config(config, run_dir)
    size = image_io.fit_size(clip.height, clip.width, im.max_size)
    os.makedirs(os.path.join(run_dir, FRAMES_DIR), exist_ok=True)
    seconds, previous, previous_content, index = [], None, None, 0
    pending = []

    def run_batch(frames):
        nonlocal previous, previous_content, index
        start = time.perf_counter()
        outputs = stylizer.batch(np.stack(frames))
        seconds.append((time.perf_counter() - start) / len(frames))
        for content, out in zip(frames, outputs):
            out = color.final_image(im.preserve_colors, np.clip(out, 0, 1), content)
            if blend and previous is not None:
                motion = flow.Motion.between(content, [previous_content])
                c = blend * motion.weights[0][..., None]
                out = (1 - c) * out + c * flow.warp(previous, motion.flows[0])
            image_io.save_image(out, frame_path(run_dir, index))
            previous, previous_content, index = out, content, index + 1
        if on_frame:
            on_frame(index, clip.count)

    for frame in clip.frames(size):
        stop_if_requested()
        pending.append(frame)
        if len(pending) == batch:
            run_batch(pending)
            pending = []
    if pending:
        run_batch(pending)
    # the first batch includes compiling; the median batch is the steady state
    per_frame = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
    return {"frames": clip.count, "ms_per_frame_median": round(1000 * per_frame, 2), "flow_blend": blend,
            "seconds_per_frame_after_first": round(per_frame, 4), "device": stylizer.device, "size": list(size),
            "model": config.stylizer.model}
