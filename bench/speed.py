#!/usr/bin/env python
"""Benchmark: seconds per step against the FLOP floor, where a step's time goes, peak memory and time
to quality, measured in one run.

  python bench/speed.py --readme                           # the tables of docs/speed.md (about 50 minutes here)
  python bench/speed.py --sizes=512 --quality_size=0 --profile_size=0 --memory=false   # one size, 2 min

1. Per step (one Adam update: forward, backward to the image, update) at each of --sizes: this
   project's step without XLA (the default) and with it (--jit_compile), and a reference loop written
   the way the TensorFlow tutorial writes it (a Keras model of the VGG outputs, einsum Grams, a
   tf.function train step), with the same backbone, layers and image. The three run in one process, one
   step of each in turn, so that a busy or throttled machine slows them alike; each figure is a median.
   The FLOP floor is the step's FLOPs (counted from the layers' shapes) divided by the best rate of warm
   4096 x 4096 float32 matmuls measured in the same process, before and between the rounds of steps.
   With --bfloat16 (default on) our step in bfloat16 (--precision=mixed_bfloat16) is timed in the same
   rounds, against its own floor: the convolutions at the bfloat16 matmul rate, the Grams at float32's.
2. A profile of our step at --profile_size (TensorFlow's profiler): milliseconds per step by kind of op.
3. Peak memory of each way in a fresh process of its own (peak resident set on the CPU; TensorFlow's
   peak on a GPU), beside nst_tf/memory.py's prediction, and of a tiled step (--tile_size) at each size.
4. Time to quality at --quality_size: the seconds until the total loss reaches what run.py's default
   schedule reaches at its end, for that schedule, single-scale Adam and L-BFGS, L-BFGS on the default
   pyramid and crowsonkb's sqrt(2) pyramid from 128 px (run.py on the bundled images; the optimizing
   time of every scale, model loading excluded, the same for each).
Everything is measured in this run; the tables give ratios between rows measured together.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("content", os.path.join(ROOT, "examples", "chelsea.jpg"), "Content image.")
flags.DEFINE_string("style", os.path.join(ROOT, "examples", "swirls.jpg"), "Style image.")
flags.DEFINE_string("backbone", "vgg16_hed", "Backbone (vgg16_hed works offline).")
flags.DEFINE_list("sizes", ["256", "512", "1024"], "Sizes (longest side, px) for the per-step table.")
flags.DEFINE_integer("steps", 3, "Timed steps per measurement (after one untimed step that traces).")
flags.DEFINE_integer("tile_size", 512, "Tile size of the tiled memory measurement (0: none).")
flags.DEFINE_list("tiled_sizes", [], "Larger sizes measured tiled only (a whole-image step would not fit or "
                  "take too long), e.g. 2048,4096.")
flags.DEFINE_integer("quality_size", 512, "Size of the time-to-quality runs (0: skip them).")
flags.DEFINE_integer("quality_steps", 300, "Steps of single-scale Adam in the time-to-quality table (L-BFGS: "
                     "half as many iterations).")
flags.DEFINE_string("quality_dir", None, "Keep the time-to-quality runs here, to look at their images "
                    "(default: a temporary folder).")
flags.DEFINE_integer("profile_size", 512, "Size of the op profile (0: none).")
flags.DEFINE_bool("bfloat16", True, "Also time our step in bfloat16 (--precision=mixed_bfloat16) against a floor "
                  "of its convolutions at the bfloat16 matmul rate and its float32 Grams at the float32 rate.")
flags.DEFINE_bool("memory", True, "Measure each way's peak memory in a process of its own.")
flags.DEFINE_bool("readme", False, "Write the tables into docs/speed.md between the speed-benchmark markers.")
flags.DEFINE_string("child", None, "Internal: measure one way in this process and print JSON.")
FLAGS = flags.FLAGS

BEGIN, END = "<!-- speed-benchmark:begin -->", "<!-- speed-benchmark:end -->"
CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


# ------------------------------------------------------------------------------------- one process
def matmul_rate(repeats: int = 5, dtype: str = "float32") -> float:
    """FLOP/s of a 4096 x 4096 matmul in `dtype` on this device: the best of `repeats` warm products."""
    import tensorflow as tf
    a = tf.cast(tf.random.normal([4096, 4096]), dtype)
    (a @ a).numpy()
    best = min(_time(lambda: (a @ a).numpy()) for _ in range(repeats))
    return 2 * 4096 ** 3 / best


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops(extractor, height: int, width: int) -> tuple[float, float]:
    """FLOPs of one step, (convolutions, Grams): each convolution forward (2 * positions * k^2 * C_in *
    C_out) and its gradient with respect to its input (as many); each style layer's Gram (2 * M * C^2) and
    its gradient (as many). Pools, ReLUs and the loss are left out (memory-bound, few FLOPs)."""
    import keras
    conv, gram, stride = 0.0, 0.0, 1
    for layer in extractor.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k_h, k_w, c_in, c_out = layer.kernel.shape
            conv += 2 * 2 * (height // stride) * (width // stride) * k_h * k_w * c_in * c_out
        stride *= max(getattr(layer, "strides", (1,)))
    for name, (_, h, w, c) in extractor.compute_output_shape((1, height, width, 3)).items():
        if name in STYLE_LAYERS:
            gram += 2 * 2 * h * w * c * c
    return conv, gram


def peak_memory() -> int:
    """Bytes: TensorFlow's peak on the GPU, or this process's peak resident set on the CPU."""
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def images_at(size: int):
    from nst_tf import image_io
    content = image_io.load_image(FLAGS.content)
    h, w = image_io.fit_size(*content.shape[:2], size)
    style = image_io.load_image(FLAGS.style)
    hs, ws = image_io.fit_size(*style.shape[:2], size)
    return image_io.resize(content, (h, w)), image_io.resize(style, (hs, ws))


def ours(backbone, content, style, jit: bool, tile_size: int):
    """This project's step: `make_loss` + `make_adam_step`, the paper's weights at this size."""
    import keras
    import tensorflow as tf
    from nst_tf import backbones
    from nst_tf.evaluate import make_loss
    from nst_tf.inputs import Inputs
    from nst_tf.objective import loss_weights
    from nst_tf.optimize import make_adam_step
    extractor = backbones.build_extractor(backbone, CONTENT_LAYERS + STYLE_LAYERS)
    loss = make_loss(extractor, CONTENT_LAYERS, STYLE_LAYERS, Inputs(content, [style]), tile_size=tile_size)
    weights = loss_weights([{"content": 1.0, "style": 1e4, "tv": 10.0, **{f"content/{n}": 1.0 for n in CONTENT_LAYERS},
                             **{f"style/{n}": 0.2 for n in STYLE_LAYERS}}])
    images = tf.Variable(content[None])
    step = make_adam_step(loss, keras.optimizers.Adam(0.02), jit_compile=jit)
    return extractor, lambda: float(step(images, weights)[0][0])


def tutorial(backbone, content, style):
    """A reference loop the way the TensorFlow tutorial ("Neural style transfer") writes it."""
    import tensorflow as tf
    from nst_tf import registry
    spec = registry.BACKBONES[backbone.name]
    names = STYLE_LAYERS + CONTENT_LAYERS
    vgg = tf.keras.Model([backbone.input], [backbone.get_layer(registry.keras_name(n, spec)).output for n in names])
    vgg.trainable = False

    def gram_matrix(x):
        result = tf.linalg.einsum("bijc,bijd->bcd", x, x)
        return result / tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)

    def extract(image):
        outputs = vgg(image)
        return [gram_matrix(o) for o in outputs[:len(STYLE_LAYERS)]], outputs[len(STYLE_LAYERS):]

    style_targets = extract(tf.constant(style[None]))[0]
    content_targets = extract(tf.constant(content[None]))[1]
    image = tf.Variable(content[None])
    opt = tf.keras.optimizers.Adam(learning_rate=0.02)

    @tf.function()
    def train_step(image):
        with tf.GradientTape() as tape:
            grams, features = extract(image)
            loss = 1e4 * tf.add_n([tf.reduce_mean((g - t) ** 2) for g, t in zip(grams, style_targets)]) / 5
            loss += tf.add_n([tf.reduce_mean((f - t) ** 2) for f, t in zip(features, content_targets)])
            loss += 10.0 * tf.image.total_variation(image)
        grad = tape.gradient(loss, image)
        opt.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    return vgg, lambda: float(train_step(image)[0])


def interleaved(size: int) -> dict:
    """Seconds per step of the tutorial loop, ours, ours with XLA and ours in bfloat16 (--precision=
    mixed_bfloat16, what run.py's --precision=auto picks from 256 px on a CPU with bfloat16 units), in turn
    in this one process, with the float32 and bfloat16 matmul rates measured between the rounds (the floors
    come from the same minutes)."""
    import numpy as np
    from nst_tf import backbones
    backbone = backbones.load_backbone(FLAGS.backbone)
    content, style = images_at(size)
    steps = {"tutorial": tutorial(backbone, content, style)[1],
             "ours": ours(backbone, content, style, jit=False, tile_size=0)[1],
             "xla": ours(backbone, content, style, jit=True, tile_size=0)[1]}
    if FLAGS.bfloat16:
        bf16 = backbones.load_backbone(FLAGS.backbone, precision="mixed_bfloat16")
        steps["bf16"] = ours(bf16, content, style, jit=False, tile_size=0)[1]
    for step in steps.values():   # traces
        step()
    rates, bf16_rates = [matmul_rate()], [matmul_rate(dtype="bfloat16")] if FLAGS.bfloat16 else []
    times = {way: [] for way in steps}
    for _ in range(FLAGS.steps):
        for way, step in steps.items():
            times[way].append(_time(step))
        rates.append(matmul_rate(2))
        if FLAGS.bfloat16:
            bf16_rates.append(matmul_rate(2, "bfloat16"))
    extractor = backbones.build_extractor(backbone, CONTENT_LAYERS + STYLE_LAYERS)
    conv, gram = step_flops(extractor, *content.shape[:2])
    return {"size": size, "shape": list(content.shape[:2]), "flops": conv + gram, "conv_flops": conv,
            "step_s": {way: float(np.median(t)) for way, t in times.items()}, "matmul_flops_per_s": max(rates),
            **({"bf16_matmul_flops_per_s": max(bf16_rates)} if bf16_rates else {})}


# Op types of a step, by what they do (TensorFlow's CPU kernels with oneDNN; the first match counts).
CATEGORIES = (("convolutions, forward (with bias and ReLU fused)", ("Conv2D",), ("Backprop",)),
              ("convolutions, gradient to their input", ("Conv2DBackpropInput",), ()),
              ("ReLU and pooling gradients", ("ReluGrad", "AvgPoolGrad", "MaxPoolGrad"), ()),
              ("pooling, forward", ("AvgPool", "MaxPool"), ()),
              ("Gram matrices and their gradients", ("MatMul", "Einsum"), ()),
              ("copies and layout changes", ("Transpose", "Reshape", "Identity", "Copy", "Concat", "Tile", "Pad",
                                             "Slice", "ToTf", "Reverse", "Pack"), ()))


def category(op_type: str) -> str:
    for name, has, lacks in CATEGORIES:
        if any(h in op_type for h in has) and not any(x in op_type for x in lacks):
            return name
    return "element-wise and reductions (losses, TV, Adam, clipping)"


def profile(size: int) -> dict:
    """Milliseconds per step by kind of op, from TensorFlow's profiler over --steps steps of ours (no XLA).

    Ops run one at a time here (one inter-op thread, each op still using every core), so their times add
    up to the step's: what the ops leave of the wall time is host-side work and the gaps between ops and
    steps. One inter-op thread measured as fast as the default (1.25 against 1.23 s at 512 px, 2026-12-02)."""
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # The profiler's own converter (TensorBoard's profile plugin calls the same): XSpace -> op table.
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as converter
    from nst_tf import backbones
    backbone = backbones.load_backbone(FLAGS.backbone)
    content, style = images_at(size)
    step = ours(backbone, content, style, jit=False, tile_size=0)[1]
    for _ in range(2):
        step()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        wall = _time(lambda: [step() for _ in range(FLAGS.steps)])
        tf.profiler.experimental.stop()
        data, ok = converter.xspace_to_tools_data(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True),
                                                  "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"the profiler's op table: {data[:200]!r}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    ms: dict[str, float] = {}
    for row in table["rows"]:
        r = dict(zip(columns, (c.get("v") for c in row["c"])))
        if r["type"] != "IDLE":
            key = category(r["type"])
            ms[key] = ms.get(key, 0.0) + r["total_self_time"] / 1e3 / FLAGS.steps
    return {"size": size, "step_ms": 1e3 * wall / FLAGS.steps, "ms": ms}


def measure(way: str, size: int) -> dict:
    import numpy as np
    from nst_tf import backbones
    backbone = backbones.load_backbone(FLAGS.backbone)
    content, style = images_at(size)
    if way == "tutorial":
        model, step = tutorial(backbone, content, style)
    else:
        model, step = ours(backbone, content, style, jit=way == "xla", tile_size=FLAGS.tile_size if way == "tiled" else 0)
    rate = matmul_rate()
    first = _time(step)
    times = [_time(step) for _ in range(FLAGS.steps)]
    extractor = backbones.build_extractor(backbone, CONTENT_LAYERS + STYLE_LAYERS)
    return {"way": way, "size": size, "shape": list(content.shape[:2]), "first_s": first,
            "step_s": float(np.median(times)), "flops": sum(step_flops(extractor, *content.shape[:2])),
            "matmul_flops_per_s": max(rate, matmul_rate()), "peak_bytes": peak_memory()}


# ---------------------------------------------------------------------------------------- the parent
def child(way: str, size: int, steps: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), f"--child={way}:{size}", f"--backbone={FLAGS.backbone}",
           f"--content={FLAGS.content}", f"--style={FLAGS.style}", f"--steps={steps}",
           f"--tile_size={FLAGS.tile_size}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"way": way, "size": size, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {way} at {size} px: {result.get('step_s', result.get('step_ms'))}"
          + (f" s/step, peak {gib(result['peak_bytes'])} GiB" if "peak_bytes" in result else ""), flush=True)
    return result


def run_py(out: str, name: str, *args: str) -> str:
    cmd = [sys.executable, os.path.join(ROOT, "run.py"), f"--content={FLAGS.content}", f"--style={FLAGS.style}",
           f"--backbone={FLAGS.backbone}", f"--max_size={FLAGS.quality_size}", "--seed=0", "--save_every=0",
           "--log_every=5", "--progress=false", f"--output_dir={out}", f"--run_name={name}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run.py {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return os.path.join(out, name)


def rows(run_dir: str) -> list[dict]:
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(os.path.join(run_dir, "losses.csv")))]


def seconds_to(run_dir: str, target: float) -> tuple[float | None, float]:
    """(wall seconds at the first logged step of the final scale whose total is at most `target`, plus the
    coarser scales' times; None if never) and the run's whole time."""
    before = sum(json.load(open(path))["wall_time_s"]
                 for path in glob.glob(os.path.join(run_dir, "scales", "*", "summary.json")))
    logged = rows(run_dir)
    hit = [r["wall_s"] for r in logged if r["total"] <= target * (1 + 1e-6)]
    return (before + hit[0] if hit else None), before + logged[-1]["wall_s"]


def time_to_quality(out: str) -> list[tuple[str, float | None, float, str]]:
    """(how, seconds to the target or None, seconds of the whole run, run.py flags) for each way. The target
    is the total loss run.py's default schedule reaches at its end at --quality_size (the same objective at
    that size for every way: run.py's defaults, canvas included)."""
    size, steps = FLAGS.quality_size, FLAGS.quality_steps
    print(f"time to quality at {size} px (target: the default schedule's final loss)", flush=True)
    ways = [("Adam, the default pyramid (half size, then full; 200 + 100 steps)", []),
            (f"Adam, single scale ({steps} steps)", [f"--num_steps={steps}", f"--scales={size}"]),
            (f"L-BFGS, single scale ({steps // 2} iterations)",
             ["--optimizer=lbfgs", f"--num_steps={steps // 2}", f"--scales={size}"]),
            ("L-BFGS, the default pyramid (100 + 50 iterations)", ["--optimizer=lbfgs", "--num_steps=100"]),
            ("Adam, pyramid from 128 px by √2 (crowsonkb's)", ["--min_scale=128", "--scale_ratio=1.41"])]
    results, target = [], None
    for i, (name, args) in enumerate(ways):
        run_dir = run_py(out, f"way{i}", *args)
        if target is None:
            target = rows(run_dir)[-1]["total"]
        results.append((name, *seconds_to(run_dir, target), " ".join(args) or "(run.py's defaults)"))
        print(f"  {name}: {results[-1][1]} s of {results[-1][2]} s", flush=True)
    return results


def device_name() -> str:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def predicted(shape, tile_size: int) -> float:
    from nst_tf import memory
    return memory.predict(FLAGS.backbone, "avg", CONTENT_LAYERS + STYLE_LAYERS, *shape, tile_size=tile_size)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def tables(timing: dict[int, dict], per_step: list[dict], prof: dict | None, quality) -> str:
    by = {(r["way"], r["size"]): r for r in per_step}
    rates = [r["matmul_flops_per_s"] for r in [*timing.values(), *per_step] if "matmul_flops_per_s" in r]
    rate = max(rates, default=None)   # the floor: the best rate this machine showed in this run
    lines = [f"{FLAGS.backbone}, conv4_2 + conv1_1..conv5_1, bundled chelsea + swirls, on {device_name()}; "
             f"`python bench/speed.py --sizes={','.join(FLAGS.sizes)} --tiled_sizes={','.join(FLAGS.tiled_sizes)} "
             f"--tile_size={FLAGS.tile_size} --profile_size={FLAGS.profile_size} --quality_size={FLAGS.quality_size} "
             f"--quality_steps={FLAGS.quality_steps}` on {time.strftime('%Y-%m-%d')}. Seconds per step: the "
             f"median of {FLAGS.steps} steps of each way, taken in turn in one process after each has traced.", "",
             "| size | tutorial loop (s/step) | ours: the default, no XLA (s/step) | ours, XLA (s/step) | "
             "tutorial / ours | FLOP floor (s) | ours / floor | XLA / floor | GFLOP per step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size in map(int, FLAGS.sizes):
        r = timing.get(size, {})
        if "step_s" not in r:
            lines.append(f"| {size} | failed: {r.get('error')} |")
            continue
        t, o, x = (r["step_s"][w] for w in ("tutorial", "ours", "xla"))
        floor = r["flops"] / rate
        lines.append(f"| {size} | {t:.2f} | {o:.2f} | {x:.2f} | {t / o:.2f}x | {floor:.2f} | {o / floor:.2f}x | "
                     f"{x / floor:.2f}x | {r['flops'] / 1e9:.0f} |")
    bf16_rows = [(size, timing[size]) for size in map(int, FLAGS.sizes)
                 if "bf16" in timing.get(size, {}).get("step_s", {})]
    if bf16_rows:
        bf16_rate = max(r["bf16_matmul_flops_per_s"] for _, r in bf16_rows)
        lines += ["", "In bfloat16 (`--precision=mixed_bfloat16`, what `--precision=auto` runs from 256 px on this "
                  "CPU): its floor counts the convolutions at the best bfloat16 4096² matmul rate and the Grams "
                  "(float32 here) at the float32 rate.", "",
                  "| size | ours, float32 (s/step) | ours, bfloat16 (s/step) | float32 / bfloat16 | bfloat16 floor (s) "
                  "| bfloat16 / its floor |", "|---|---|---|---|---|---|"]
        for size, r in bf16_rows:
            o, b = r["step_s"]["ours"], r["step_s"]["bf16"]
            floor = r["conv_flops"] / bf16_rate + (r["flops"] - r["conv_flops"]) / rate
            lines.append(f"| {size} | {o:.2f} | {b:.2f} | {o / b:.2f}x | {floor:.2f} | {b / floor:.2f}x |")
        lines += ["", f"bfloat16 matmul rate: {min(r['bf16_matmul_flops_per_s'] for _, r in bf16_rows) / 1e9:.0f} "
                  f"to {bf16_rate / 1e9:.0f} GFLOP/s."]
    if rates:
        lines += ["", f"Matmul rate (4096², float32, the best of warm products before and between the rounds "
                  f"of steps): {min(rates) / 1e9:.0f} to {max(rates) / 1e9:.0f} GFLOP/s across the processes; "
                  "the floor uses the highest."]
    if prof and "ms" in prof:
        ops = sum(prof["ms"].values())
        lines += ["", f"Where a step's time goes at {prof['size']} px (ours, no XLA; TensorFlow's profiler over "
                  f"{FLAGS.steps} steps, ops one at a time; ms per step):", "",
                  "| what | ms per step | share |", "|---|---|---|"]
        for name, ms in sorted(prof["ms"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {ms:.0f} | {100 * ms / prof['step_ms']:.1f}% |")
        rest = prof["step_ms"] - ops
        lines += [f"| host-side work and gaps between ops and steps | {rest:.0f} | "
                  f"{100 * rest / prof['step_ms']:.1f}% |", f"| the whole step | {prof['step_ms']:.0f} | 100% |"]
    lines += ["", "Peak memory (GiB; resident set on the CPU) beside `nst_tf/memory.py`'s prediction, and the "
              f"tiled step (`--tile_size={FLAGS.tile_size}`):", "",
              "| size | whole, XLA | whole, no XLA | tutorial loop | predicted whole | tiled | predicted tiled | "
              "tiled s/step |", "|---|---|---|---|---|---|---|---|"]
    for size in map(int, FLAGS.sizes + FLAGS.tiled_sizes):
        x, o, t, tl = (by.get((w, size), {}) for w in ("xla", "ours", "tutorial", "tiled"))
        shape = next((r["shape"] for r in (x, o, t, tl) if "shape" in r), None)
        cells = [gib(r["peak_bytes"]) if "peak_bytes" in r else "-" for r in (x, o, t)]
        cells.append(gib(predicted(shape, 0)) if shape else "-")
        cells.append(gib(tl["peak_bytes"]) if "peak_bytes" in tl else "-")
        cells.append(gib(predicted(shape, FLAGS.tile_size)) if shape and FLAGS.tile_size else "-")
        cells.append(f"{tl['step_s']:.1f}" if "step_s" in tl else "-")
        lines.append(f"| {size} | {' | '.join(cells)} |")
    if quality:
        base = quality[0][1]
        lines += ["", f"Time to quality at {FLAGS.quality_size} px: seconds until the total loss at "
                  f"{FLAGS.quality_size} px reaches what run.py's default schedule reaches at its end (run.py, "
                  "the optimizing time of every scale, model loading and targets excluded):", "",
                  "| how | seconds to the default's loss | speed-up | whole run (s) | flags |",
                  "|---|---|---|---|---|"]
        for name, seconds, whole, args in quality:
            reached = "not reached | -" if seconds is None else f"{seconds:.0f} | {base / seconds:.2f}x"
            lines.append(f"| {name} | {reached} | {whole:.0f} | `{args}` |")
    return "\n".join(lines)


def write_readme(table: str) -> None:
    path = os.path.join(ROOT, "docs/speed.md")
    text = open(path).read()
    if BEGIN not in text:
        raise SystemExit(f"docs/speed.md has no {BEGIN} marker")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"written into {path}")


def main(argv):
    del argv
    if FLAGS.child:
        way, size = FLAGS.child.split(":")
        run = {"timing": interleaved, "profile": profile}.get(way, lambda s: measure(way, s))
        print(json.dumps(run(int(size))))
        return
    timing, per_step = {}, []
    for size in map(int, FLAGS.sizes):
        print(f"per step at {size} px", flush=True)
        timing[size] = child("timing", size, FLAGS.steps)
        if FLAGS.memory:   # peak memory: each way alone
            per_step += [child(way, size, 1) for way in ["tutorial", "ours", "xla"]]
        if FLAGS.tile_size:
            per_step.append(child("tiled", size, FLAGS.steps))
    for size in map(int, FLAGS.tiled_sizes):
        print(f"tiled step at {size} px", flush=True)
        per_step.append(child("tiled", size, 1))
    prof = None
    if FLAGS.profile_size:
        print(f"profile at {FLAGS.profile_size} px", flush=True)
        prof = child("profile", FLAGS.profile_size, FLAGS.steps)
    quality = None
    if FLAGS.quality_size:
        if FLAGS.quality_dir:
            quality = time_to_quality(FLAGS.quality_dir)
        else:
            with tempfile.TemporaryDirectory() as out:
                quality = time_to_quality(out)
    table = tables(timing, per_step, prof, quality)
    print(table)
    if FLAGS.readme:
        write_readme(table)


if __name__ == "__main__":
    app.run(main)
