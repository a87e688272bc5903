"""Temporally consistent style transfer on a clip (Ruder, Dosovitskiy & Brox 2016) through the engine's loss.

The first frame is optimized as a still (the engine's objective, start image and settings, --num_steps).
Each next frame starts from the previous result warped by the optical flow and is optimized for
--frame_steps with the engine's loss plus the temporal term (`temporal.temporal_loss`, times
--temporal_weight times the style weight beta), which pulls it toward the earlier results (--long_term
frames back) warped to it, weighted per pixel by the warp's reliability (`flow.reliability`). The style targets are computed once per
clip; each frame's content targets are assigned to variables the compiled step reads, so one compiled step
serves the whole clip.

A run folder holds frames/NNNNN.png (each frame's result, written as it finishes), result.mp4, preview.png,
run.flags, config.json, frames.csv and summary.json. A stopped clip resumes at its first unfinished frame;
each frame starts from the saved (8-bit) result of the one before, in a resumed run as in one that never
stopped, so both give the same frames.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import io
import os
import time

import keras
import numpy as np
import tensorflow as tf

from nst_tf import balance, engine, image_io, losses, rundir
from nst_tf.blur import blur_gradient
from nst_tf.config import Config
from nst_tf.errors import Interrupted, UserError, stop_if_requested
from nst_tf.inputs import Inputs, initial_image, load_inputs
from nst_tf.objective import loss_weights
from nst_tf.plan import pick_device, resolve, resolve_precision
from nst_tf.video import clip_io, flow, temporal

FRAMES_DIR = "frames"


def frame_path(run_dir: str, index: int) -> str:
    return os.path.join(run_dir, FRAMES_DIR, f"{index:05d}.png")


def frame_steps(config: Config) -> int:
    """Steps of each frame after the first: --frame_steps, or an eighth of --num_steps (the warped start is
    close; 25 steps gave the picture of 50 at half the time, docs/video.md)."""
    return config.video.frame_steps or max(1, config.optim.num_steps // 8)


class _FrameOptimizer:
    """The compiled step of every frame: the engine's loss of the frame's canvas plus the temporal term."""

    def __init__(self, config: Config, network: engine.Network, first: Inputs, margin: int, device: str):
        job = engine.Job(config, first, "")
        self.job, self.margin, self.config = job, margin, config
        working = engine.canvas_inputs(job.working, margin)
        # the style targets, once per clip; the content targets become variables that each frame assigns
        self.loss = engine.batch_loss([job], network, working)
        targets = self.loss.objective.targets
        for table in (targets.content, targets.content_scales):
            for name in table:
                table[name] = tf.Variable(table[name], trainable=False)
        self.content_layers = tuple(targets.content)   # the layers whose targets each frame assigns
        self.weights = loss_weights([job.weights.flat()])
        shape = working.shape
        self.images = tf.Variable(np.zeros((1, *shape), np.float32), name="image")
        k = len(config.video.long_term)
        h, w = first.content.shape[:2]
        self.warped = tf.Variable(np.zeros((1, k, h, w, 3), np.float32), trainable=False)
        self.reliable = tf.Variable(np.zeros((1, k, h, w), np.float32), trainable=False)
        self.temporal_weight = tf.Variable(0.0, trainable=False)
        self.optimizer = keras.optimizers.Adam(config.optim.learning_rate)
        self.optimizer.build([self.images])
        self._step = tf.function(self._update)

    def _centre(self, images):
        m = self.margin
        return images[:, m:-m, m:-m, :] if m else images

    def objective(self, images):
        """(total [B], terms): the engine's total plus temporal_weight times the temporal term."""
        total, terms = self.loss(images, self.weights)
        term = temporal.temporal_loss(self._centre(images), self.warped, self.reliable)
        return total + self.temporal_weight * term, {**terms, "temporal": term,
                                                     "weighted/temporal": self.temporal_weight * term}

    def _update(self):
        with tf.GradientTape() as tape:
            total, terms = self.objective(self.images)
            loss = tf.reduce_sum(total)
        grad = tape.gradient(loss, self.images)
        self.optimizer.apply_gradients([(blur_gradient(grad, self.config.blur_passes), self.images)])
        self.images.assign(tf.clip_by_value(self.images, 0.0, 1.0))
        return total, terms

    def set_frame(self, content: np.ndarray, start: np.ndarray, warped: list[np.ndarray],
                  reliable: list[np.ndarray], temporal_weight: float) -> None:
        """Points the step at one frame: its content targets, its start image, the earlier results warped to
        it with their reliabilities (fewer than --long_term near the start: the rest weigh 0), a fresh Adam."""
        canvas = engine.pad_canvas(content, self.margin)
        maps = self.loss.evaluator.feature_maps(canvas, self.content_layers)
        targets = self.loss.objective.targets
        for name in self.content_layers:
            targets.content[name].assign(maps[name])
            if name in targets.content_scales:
                targets.content_scales[name].assign(losses.content_scale(maps[name], self.config.loss.content_loss))
        self.images.assign(engine.pad_canvas(start, self.margin)[None])
        k = self.warped.shape[1]
        w = np.zeros(self.warped.shape, np.float32)
        c = np.zeros(self.reliable.shape, np.float32)
        for j, (image, weight) in enumerate(zip(warped[:k], reliable[:k])):
            w[0, j], c[0, j] = image, weight
        self.warped.assign(w)
        self.reliable.assign(c)
        # relative to beta: the style term's pull on a pixel is what the temporal term's is weighed against; with
        # the automatic balance beta is that pull at the photo on any network (its own default weight, plan.resolve)
        self.temporal_weight.assign(temporal_weight * self.job.weights.terms["style"])
        for var in self.optimizer.variables:   # a fresh Adam: step 0, no moments (the learning rate kept)
            if "learning_rate" not in var.path:
                var.assign(tf.zeros_like(var))

    def step(self):
        return self._step()

    def result(self) -> np.ndarray:
        return self._centre(self.images)[0].numpy()


def quantized(image: np.ndarray) -> np.ndarray:
    """The image as its 8-bit PNG holds it: what the next frame starts from, in a resumed run as in one that
    never stopped."""
    return image_io.to_uint8(image).astype(np.float32) / 255.0


def stylize_clip(config: Config, clip: clip_io.Clip, run_dir: str, show_progress: bool = True, say=print,
                 resume: bool = False, independent: bool = False, on_frame=None) -> dict:
    """Optimizes every frame of `clip` into `run_dir/frames/`; returns the summary's numbers. `independent`:
    every frame as a still, from its own start image for --num_steps without the temporal term (the
    per-frame baseline of bench/video.py). `on_frame(done, count)` is called after each frame is saved."""
    config = resolve(config, say, clip=True)
    size = image_io.fit_size(clip.height, clip.width, config.images.max_size)
    device = pick_device(config.optim.device)
    config = resolve_precision(config, (*size, 3), device, say)
    rundir.write_config(config, run_dir)
    styles = load_inputs(dataclasses.replace(config, images=dataclasses.replace(config.images, content=None)))
    margin = engine.canvas_margin(config.optim.canvas_margin, max(size), max(size), (*size, 3))
    later_steps = config.optim.num_steps if independent else frame_steps(config)
    total_steps = config.optim.num_steps + (clip.count - 1) * later_steps
    done = [os.path.exists(frame_path(run_dir, i)) for i in range(clip.count)]
    first_todo = done.index(False) if False in done else clip.count
    if resume:
        say(f"resuming {run_dir} at frame {first_todo} of {clip.count}")
    os.makedirs(os.path.join(run_dir, FRAMES_DIR), exist_ok=True)
    keras.utils.set_random_seed(config.optim.seed)
    back = max(config.video.long_term)
    contents = collections.deque(maxlen=back)   # the last frames' content and results, nearest last
    results = collections.deque(maxlen=back)
    rows, optimizer, bar = _read_rows(os.path.join(run_dir, "frames.csv")) if resume else [], None, None
    seconds = []
    with tf.device(device):
        network = engine.load_network(config, say) if first_todo < clip.count else None
        if network is not None and config.automatic_balance:   # once per clip, from its first frame
            config, _ = balance.resolve(config, Inputs(next(iter(clip.frames(size))), styles.styles, styles.blend),
                                        network, say)
            rundir.write_config(config, run_dir, note=" (--strength found its weights on the first frame)")
        try:
            for i, content in enumerate(clip.frames(size)):
                if done[i]:
                    contents.append(content)
                    results.append(image_io.load_image(frame_path(run_dir, i)))
                    continue
                start_time = time.monotonic()
                inputs = Inputs(content, styles.styles, styles.blend)
                if optimizer is None:
                    optimizer = _FrameOptimizer(config, network, inputs, margin, device)
                    if show_progress:
                        from tqdm import tqdm
                        bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True,
                                   initial=config.optim.num_steps * (i > 0) + max(0, i - 1) * later_steps)
                working = inputs.working(config.images.preserve_colors, config.images.color_match)
                if i == 0 or independent:
                    start, warped, reliable, steps, weight = (initial_image(config, working, config.optim.seed),
                                                              [], [], config.optim.num_steps, 0.0)
                else:
                    earlier = [k for k in config.video.long_term if k <= len(contents)]
                    motion = flow.Motion.between(content, [contents[-k] for k in earlier])
                    warped = [flow.warp(results[-k], f) for k, f in zip(earlier, motion.flows)]
                    start, reliable, steps = warped[0], motion.weights, later_steps
                    weight = config.video.temporal_weight
                optimizer.set_frame(working.content, start, warped, reliable, weight)
                for s in range(steps):
                    stop_if_requested()
                    total, terms = optimizer.step()
                    if bar is not None:
                        bar.update(1)
                        bar.set_description(f"frame {i + 1}/{clip.count}")
                    if i == first_todo and s == 9:   # the time of the whole clip, from its first steps
                        per_step = (time.monotonic() - start_time) / 10
                        left = per_step * (steps - 10 + (clip.count - i - 1) * later_steps)
                        say(f"{clip.count - i} frames to go, about {_duration(left)} at {per_step:.2f} s per step "
                            "(--frames=START:END cuts the clip)")
                if not np.all(np.isfinite(total.numpy())):
                    raise UserError(f"the loss of frame {i} became {float(total.numpy()[0])}; lower "
                                    "--learning_rate or --temporal_weight.")
                result = quantized(optimizer.result())
                image_io.save_image(result, frame_path(run_dir, i))
                seconds.append(time.monotonic() - start_time)
                rows.append({"frame": i, "steps": steps, "seconds": round(seconds[-1], 3),
                             **{k: float(v.numpy()[0]) for k, v in sorted(terms.items())
                                if k in ("total", "content", "style", "tv", "temporal")}})
                _append_rows(os.path.join(run_dir, "frames.csv"), rows)
                contents.append(content)
                results.append(result)
                if on_frame:
                    on_frame(i + 1, clip.count)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; the finished frames are kept in {os.path.join(run_dir, FRAMES_DIR)} "
                              f"(--resume={run_dir} goes on at the first missing one)") from None
        finally:
            if bar is not None:
                bar.close()
    return {"frames": clip.count, "frame_steps": later_steps, "first_frame_steps": config.optim.num_steps,
            "seconds_first_frame": round(seconds[0], 2) if seconds and first_todo == 0 else None,
            "seconds_per_frame_after_first": round(float(np.mean(seconds[1:] if first_todo == 0 else seconds)), 3)
            if len(seconds) > (first_todo == 0) else None,
            "device": device, "backbone": config.model.backbone, "size": list(size)}


def _read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _append_rows(path: str, rows: list[dict]) -> None:
    """frames.csv: one row per frame optimized in this process (rewritten whole, atomically)."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, names)
    writer.writeheader()
    writer.writerows(rows)
    image_io.atomic_write(path, lambda f: f.write(buffer.getvalue()), mode="w")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
