#!/usr/bin/env python
"""Benchmark: a 5-ratio sweep batched vs its cells one after another, measured in one run.

  python bench/sweep_batch.py                       # examples/ images, 128 px, 30 steps, this machine
  python bench/sweep_batch.py --max_size=256 --num_steps=50 --readme   # also writes the table into docs/sweeps.md

Three ways to get the same five images, timed end to end (start-up, tracing and writing outputs included):
  run.py x5         five `python run.py` processes, one per ratio (what a user does without --sweep)
  sweep, one by one `--sweep=ratio:... --sweep_batch=1`: one process, the cells one after another
  sweep, batched    `--sweep=ratio:... --sweep_batch=5`: the five cells as one batch in one compiled step
The table gives each one's wall time and its speed-up over run.py x5, and the device it ran on.
"""
from __future__ import annotations

import os
import platform
import re
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
flags.DEFINE_integer("max_size", 128, "Image size (longest side).")
flags.DEFINE_integer("num_steps", 30, "Adam steps per cell.")
flags.DEFINE_list("ratios", ["1e-9", "1e-8", "1e-7", "1e-6", "1e-5"], "The alpha/beta values of the sweep.")
flags.DEFINE_string("backbone", "vgg16_hed", "Backbone (vgg16_hed works offline).")
flags.DEFINE_bool("readme", False, "Write the table into docs/sweeps.md between the sweep-benchmark markers.")
FLAGS = flags.FLAGS

BEGIN, END = "<!-- sweep-benchmark:begin -->", "<!-- sweep-benchmark:end -->"


def common_flags(out: str) -> list[str]:
    return [f"--content={FLAGS.content}", f"--style={FLAGS.style}", f"--max_size={FLAGS.max_size}",
            f"--num_steps={FLAGS.num_steps}", f"--backbone={FLAGS.backbone}", "--seed=0", "--save_every=0",
            "--log_every=10", "--progress=false", f"--output_dir={out}"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run.py failed: {proc.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def device_name() -> str:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def main(argv):
    del argv
    k = len(FLAGS.ratios)
    with tempfile.TemporaryDirectory() as tmp:
        base = common_flags(tmp)
        times = {}
        times["run.py x%d" % k] = sum(timed([*base, f"--style_weight={1 / float(r)}"]) for r in FLAGS.ratios)
        sweep = f"--sweep=ratio:{','.join(FLAGS.ratios)}"
        times["sweep, one by one"] = timed([*base, sweep, "--sweep_batch=1"])
        times["sweep, batched"] = timed([*base, sweep, f"--sweep_batch={k}"])
    first = times[f"run.py x{k}"]
    size = f"{FLAGS.max_size} px"
    lines = [f"{k}-ratio sweep, {FLAGS.backbone}, {size}, {FLAGS.num_steps} Adam steps per cell, on "
             f"{device_name()}; measured together by `python bench/sweep_batch.py "
             f"--max_size={FLAGS.max_size} --num_steps={FLAGS.num_steps}` on {time.strftime('%Y-%m-%d')}:",
             "", "| how | wall time (s) | speed-up vs run.py x%d |" % k, "|---|---|---|"]
    for name, t in times.items():
        lines.append(f"| {name} | {t:.1f} | {first / t:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if FLAGS.readme:
        path = os.path.join(ROOT, "docs/sweeps.md")
        text = open(path).read()
        if BEGIN not in text:
            raise SystemExit(f"docs/sweeps.md has no {BEGIN} marker")
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print(f"written into {path}")


if __name__ == "__main__":
    app.run(main)
