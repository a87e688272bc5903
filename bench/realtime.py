#!/usr/bin/env python
"""Benchmark: a trained stylizer (--mode=apply) against the optimization (--mode=transfer), in one run.

  python bench/realtime.py --model=outputs/<run>/stylizer.keras            # the tables, printed
  python bench/realtime.py --model=... --readme --figure=docs/realtime.jpg  # into docs/realtime.md, and the figure

Measured on this machine, in this process:
  speed      milliseconds per image of the stylizer (Keras, compiled; and the exported TFLite file) at 256,
             512 and 1024 px (the median of --repeats after one warm-up pass), and the seconds of the
             optimization (the transfer defaults, the stylizer's style) at the same sizes, and of a quick
             setting (--quick_steps Adam steps instead of 200); the default at 1024 px only with
             --with_1024_default (~20 min).
  quality    the content, style and TV terms (weighted, as minimized) that each reaches under the
             stylizer's objective (its run.flags: backbone, layers, weights) at the training size: the
             stylizer, and the optimization of that same objective; on photos not in its training set (the
             stylizer's held-out photos, and tubingen from ../shared/images or $NST_TF_IMAGES when present).
  figure     those photos: the stylizer, the optimization of the same objective, the optimization with the
             transfer defaults (docs/realtime.md's figure leaves out the shared images, which stay out of the repo).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", None, "The stylizer.keras of a --mode=train run.", required=True)
flags.DEFINE_list("sizes", ["256", "512", "1024"], "Longest sides timed.")
flags.DEFINE_integer("repeats", 5, "Stylizer passes per size (median).")
flags.DEFINE_integer("quick_steps", 50, "Adam steps of the quick optimization setting (default: 200).")
flags.DEFINE_bool("with_1024_default", False, "Also time the default optimization at 1024 px (about 20 min).")
flags.DEFINE_bool("readme", False, "Write the tables into docs/realtime.md between the realtime-benchmark markers.")
flags.DEFINE_string("figure", None, "Write the figure (held-out photos only) to this JPEG.")
flags.DEFINE_string("sheet", None, "Write the full sheet (with the shared photos) to this PNG, outside the repo.")
FLAGS = flags.FLAGS

IMAGES = os.environ.get("NST_TF_IMAGES", os.path.join(ROOT, "..", "shared", "images"))


def unseen_photos(summary: dict) -> list[tuple[str, str, bool]]:
    """(name, path, shown in the repo's figure) of the photos the stylizer never trained on."""
    held_out = summary.get("details", {}).get("held_out", [])   # summary.json: rundir.summary's schema
    photos = [(os.path.splitext(os.path.basename(p))[0], p, True) for p in held_out]
    tubingen = os.path.join(IMAGES, "tubingen.jpg")
    if os.path.exists(tubingen):
        photos.append(("tubingen", tubingen, False))
    return photos


def transfer_config(config, default: bool):
    """The optimization's config for the stylizer's style: the transfer defaults (`default`), or the
    stylizer's own objective (its run.flags' loss options, backbone and seed)."""
    import dataclasses

    from nst_tf.config import Config, ImageConfig, ModelConfig, OptimConfig, StylizerConfig
    if default:
        return Config(images=ImageConfig(style=config.images.style), model=ModelConfig(backbone=config.model.backbone),
                      optim=OptimConfig(seed=config.optim.seed))
    return dataclasses.replace(config, mode="transfer", stylizer=StylizerConfig())


def optimize(config, content: str, size: int, steps: int | None, out: str):
    """(result image, seconds) of the optimization `config` describes for `content` at `size`."""
    from nst_tf import image_io, stylize
    from nst_tf.config import with_field
    cfg = config
    for name, value in (("content", content), ("max_size", size), ("output_dir", out), ("run_name", None)):
        cfg = with_field(cfg, name, value)
    if steps is not None:
        cfg = with_field(cfg, "num_steps", steps)
    start = time.perf_counter()
    run_dir = stylize.run(cfg, show_progress=False, say=lambda *a: None)
    return image_io.load_image(os.path.join(run_dir, "result.png")), time.perf_counter() - start


class Objective:
    """The stylizer's objective at one size: `terms(image, photo)` -> the weighted terms as minimized."""

    def __init__(self, config, size: int):
        from nst_tf import backbones, image_io
        from nst_tf.plan import EffectiveWeights, resolve
        self.config = resolve(config, say=lambda *a: None)
        m = self.config.model
        self.backbone = backbones.load_backbone(m.backbone, m.pooling, m.weights, padding=m.padding,
                                                padding_scope=m.padding_scope)
        self.size = size
        self.style = image_io.load_resized(self.config.style_paths[0], round(size * self.config.images.style_scale))
        self.weights_of = lambda shape: EffectiveWeights.of(self.config, shape)

    def terms(self, image: np.ndarray, photo: np.ndarray) -> dict[str, float]:
        import tensorflow as tf

        from nst_tf import backbones
        from nst_tf.evaluate import make_loss
        from nst_tf.inputs import Inputs
        from nst_tf.objective import loss_weights
        weights = self.weights_of(photo.shape)
        layers = (tuple(weights.layers["content"]), tuple(weights.layers["style"]))
        extractor = backbones.build_extractor(self.backbone, layers[0] + layers[1], self.config.model.feature_transform)
        loss = self.config.loss
        evaluate = make_loss(extractor, *layers, Inputs(photo, [self.style]), loss.content_loss, loss.gram_norm,
                             normalize_terms=loss.normalize_terms, style_loss=loss.style_loss)
        _, terms = evaluate(tf.constant(image[None]), loss_weights([weights.flat()]))
        return {k: float(terms[k][0]) for k in ("weighted/content", "weighted/style", "weighted/tv", "total")}


def main(argv):
    import tensorflow as tf

    from nst_tf import image_io, rundir
    from nst_tf.stylizer import apply, export
    run_dir = os.path.dirname(os.path.abspath(FLAGS.model))
    config = rundir.read_config(run_dir)
    summary = rundir.read_summary(run_dir)
    model = apply.load(FLAGS.model)
    stylizer = apply.Stylizer(model)
    tflite = export.tflite_bytes(model)
    photos = unseen_photos(summary)
    timing_photo = photos[-1][1]
    sizes = [int(s) for s in FLAGS.sizes]
    work = tempfile.mkdtemp(prefix="nst_realtime_")
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, TF {tf.__version__}, load average {load:.1f} at start; stylizer: {FLAGS.model} "
          f"({model.count_params():,} weights, {summary.get('steps')} steps, {summary.get('wall_time_s', 0) / 60:.0f} "
          "min of training)\n", flush=True)

    defaults, same = transfer_config(config, default=True), transfer_config(config, default=False)
    rows = []
    for size in sizes:
        photo = image_io.load_resized(timing_photo, size)
        stylizer(photo)   # warm-up: traces and compiles for this size
        keras_ms = []
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            stylizer(photo)
            keras_ms.append(1000 * (time.perf_counter() - start))
        weights = stylizer.style_weights
        export.run_tflite(tflite, photo[None], weights)
        lite_ms = []
        for _ in range(FLAGS.repeats):   # includes building the interpreter for the size, as an app would once
            start = time.perf_counter()
            export.run_tflite(tflite, photo[None], weights)
            lite_ms.append(1000 * (time.perf_counter() - start))
        _, quick_s = optimize(defaults, timing_photo, size, FLAGS.quick_steps, work)
        default_s = None
        if size < 1024 or FLAGS.with_1024_default:
            _, default_s = optimize(defaults, timing_photo, size, None, work)
        rows.append((size, photo.shape, statistics.median(keras_ms), statistics.median(lite_ms), quick_s, default_s))
        print(f"{size}px: stylizer {rows[-1][2]:.0f} ms, tflite {rows[-1][3]:.0f} ms, quick {quick_s:.1f} s, "
              f"default {default_s if default_s is None else round(default_s, 1)} s", flush=True)
    speed = ["| size (px) | stylizer, Keras (ms) | stylizer, TFLite (ms) | optimization, quick (s) | "
             "optimization, default (s) | default / stylizer |", "|---|---|---|---|---|---|"]
    for size, shape, keras_ms, lite_ms, quick_s, default_s in rows:
        ratio = "–" if default_s is None else f"{1000 * default_s / keras_ms:,.0f}x"
        default = "not run" if default_s is None else f"{default_s:.1f}"
        speed.append(f"| {size} ({shape[1]}x{shape[0]}) | {keras_ms:.0f} | {lite_ms:.0f} | {quick_s:.1f} | "
                     f"{default} | {ratio} |")

    size = config.stylizer.train_size
    objective = Objective(config, size)
    quality = ["| photo | method | weighted content | weighted style | weighted TV | total |",
               "|---|---|---|---|---|---|"]
    sheet = []
    for name, path, shown in photos:
        photo = image_io.load_resized(path, size)
        results = [("stylizer", stylizer(photo)),
                   ("optimization, same objective", optimize(same, path, size, None, work)[0]),
                   (f"optimization, same objective, {FLAGS.quick_steps} steps",
                    optimize(same, path, size, FLAGS.quick_steps, work)[0])]
        for method, image in results:
            t = objective.terms(image, photo)
            quality.append(f"| {name} | {method} | {t['weighted/content']:.3g} | {t['weighted/style']:.3g} | "
                           f"{t['weighted/tv']:.3g} | {t['total']:.3g} |")
        sheet.append((name, shown, [photo] + [image for _, image in results[:2]]
                      + [optimize(defaults, path, size, None, work)[0]]))
        print(quality[-3:], flush=True)
    note = (f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} cores, load average {load:.1f} "
            f"at the start), one run of `bench/realtime.py`: the stylizer's time is one forward pass (median of "
            f"{FLAGS.repeats}, compiled, after a warm-up), the optimization's the whole run (loading, pyramid, writing).")
    text = "\n".join(speed) + "\n\n" + f"The terms each reaches under the stylizer's objective at {size} px, on photos " \
        "not in its training set (the optimization run with that objective, 200 steps from the photo):\n\n" \
        + "\n".join(quality) + "\n\n" + note
    print("\n" + text)
    if FLAGS.readme:
        path = os.path.join(ROOT, "docs/realtime.md")
        readme = open(path).read()
        begin, end = "<!-- realtime-benchmark:begin -->", "<!-- realtime-benchmark:end -->"
        head, rest = readme.split(begin, 1)
        open(path, "w").write(head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1])
    columns = ["photo (not trained on)", "stylizer (one forward pass)", "optimization of the same objective",
               "optimization, transfer defaults"]
    for target, keep in ((FLAGS.figure, lambda shown: shown), (FLAGS.sheet, lambda shown: True)):
        if not target:
            continue
        from nst_tf.grid import render_grid
        chosen = [(name, images) for name, shown, images in sheet if keep(shown)]
        tiles = {(r, c): image for r, (_, images) in enumerate(chosen) for c, image in enumerate(images)}
        png = render_grid(tiles, len(chosen), len(columns), [name for name, _ in chosen], columns)
        import io

        from PIL import Image
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.save(target, quality=90) if target.endswith(".jpg") else image.save(target)
        print(f"wrote {target}")


if __name__ == "__main__":
    app.run(main)
