#!/usr/bin/env python
"""Benchmark: what running tasks through Ray (nst_tf.cluster) costs on this machine, beyond the work.

  python bench/scaleout.py                  # 3 repeats, payloads of 1, 10 and 30 MB
  python bench/scaleout.py --repeats=5 --sizes_mb=1,30

Measured, each the median of --repeats, on a local Ray bound to 127.0.0.1 (nothing else is contacted):
  start, stop      `local_cluster()`: ray.init of a fresh local Ray, and its ray.shutdown
  first call       the first `run_tasks` call (one empty task) on a fresh cluster: Ray starts the store
                   actor's process and a worker for the task's runtime_env
  one call         a `run_tasks` call with one empty task: the store actor's start and stop, the poll
  empty task       per-task overhead of `run_tasks` (begin, final sync, result, driver poll): the wall
                   time of --tasks empty tasks on 1 worker, divided by their number; and a bare
                   `ray.get(f.remote())` round trip for comparison
  N MB both ways   a task that gets an N MB payload (driver -> worker, like an image) and writes and syncs
                   an N MB state file (worker -> store -> driver, written into dest): time above the
                   one-empty-task call, and the time of the sync() call alone inside the task
and a sweep-shaped comparison (`sweep_timings`): the same tasks in-process and on 1 and 2 workers, here
with a synthetic NumPy task of fixed work. Prints Markdown tables.

The engine's real cells plug in at `sweep_timings(tasks, fn)` (marked HOOK below).
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

# the synthetic sweep task is single-threaded everywhere (its BLAS reads these when NumPy loads), so its
# in-process and per-worker timings compare the same work
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(SINGLE_THREAD)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from nst_tf import cluster  # noqa: E402

flags.DEFINE_integer("repeats", 3, "Repeats of each measurement; the median is reported.")
flags.DEFINE_integer("tasks", 20, "Empty tasks per per-task-overhead measurement.")
flags.DEFINE_list("sizes_mb", ["1", "10", "30"], "Payload / state sizes for the transfer measurement.")
flags.DEFINE_integer("sweep_tasks", 4, "Tasks of the synthetic sweep comparison (0: skip it).")
flags.DEFINE_integer("cells", 8, "Cells of the real sweep (chelsea + swirls, a style_weight axis), one batch "
                     "each, in-process and on 1 and 2 workers (0: skip it).")
flags.DEFINE_integer("cell_size", 128, "Longest side of the real sweep's cells.")
flags.DEFINE_integer("cell_steps", 30, "Adam steps of each real cell.")
flags.DEFINE_bool("readme", False, "Write the real sweep's table into docs/scaleout.md between its markers.")
flags.DEFINE_float("work_s", 2.0, "Single-core seconds of NumPy work per synthetic sweep task (calibrated "
                   "once here; the table reports what it took).")
FLAGS = flags.FLAGS


def empty_fn(payload, workdir, sync, progress):
    return 0


def transfer_fn(payload, workdir, sync, progress):
    """Receives `payload` (an array), writes a state of the same size, syncs it; returns sync()'s seconds."""
    np.save(os.path.join(workdir, "state.npy"), payload + 1)
    t = time.perf_counter()
    sync()
    return time.perf_counter() - t


def busy_fn(payload, workdir, sync, progress):
    """Fixed NumPy work (matrix products in one thread), a stand-in for one cell's optimization."""
    rng = np.random.default_rng(payload["seed"])
    a = rng.standard_normal((256, 256)).astype(np.float32)
    for step in range(payload["steps"]):
        a = np.tanh(a @ a.T / 256)
        if (step + 1) % 50 == 0:
            np.save(os.path.join(workdir, "state.npy"), a)
            sync()
        progress(step + 1, payload["steps"])
    return float(a.sum())


def median_s(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(fn, tasks, **kwargs) -> float:
    with tempfile.TemporaryDirectory() as dest:
        t = time.perf_counter()
        results = cluster.run_tasks(fn, tasks, dest, show_progress=False, timeout_s=600, **kwargs)
        wall = time.perf_counter() - t
    failed = [r for r in results if r.error]
    if failed:
        raise RuntimeError(f"{failed[0].folder}: {failed[0].error}")
    return wall


# ------------------------------------------------------------------------------------------ HOOK
def sweep_timings(tasks: list[cluster.Task], fn, workers=(1, 2), repeats: int = 1,
                  **run_kwargs) -> list[tuple[str, float]]:
    """HOOK for the engine's integration: [(how, wall seconds)] for `tasks` run by `fn` in-process and
    on a fresh local Ray with each number of `workers` (cluster start included, as a user sees it);
    `run_kwargs` go to run_tasks on Ray (e.g. runtime_env).

    The engine passes its real cells here: one Task per batch of cells, and the engine's task function."""
    rows = [("in-process", median_s(lambda: run(fn, tasks, cluster=None), repeats))]
    for n in workers:
        def on_ray(n=n):
            with cluster.local_cluster(workers=n):
                run(fn, tasks, cluster="ray", **run_kwargs)
        rows.append((f"Ray, {n} worker{'s' if n > 1 else ''}", median_s(on_ray, repeats)))
    return rows
# ------------------------------------------------------------------------------------------ /HOOK


def real_sweep(cells: int, size: int, steps: int) -> str:
    """The engine's real cells: a sweep of `cells` style weights, one batch each, in-process and with
    --cluster=ray on 1 and 2 CPU workers (one thread each), each on a fresh local Ray; a Markdown table
    with the per-cell figures and a projection for N devices."""
    import dataclasses
    from nst_tf.comparison import runner
    from nst_tf.config import Config, ImageConfig, ModelConfig, OptimConfig, OutputConfig
    weights = ",".join(f"{w:g}" for w in np.geomspace(1e5, 1e8, cells))
    rows = []
    with tempfile.TemporaryDirectory() as out:
        base = Config(images=ImageConfig(content=os.path.join(ROOT, "examples", "chelsea.jpg"),
                                         style=os.path.join(ROOT, "examples", "swirls.jpg"), max_size=size),
                      model=ModelConfig(backbone="vgg16_hed"), optim=OptimConfig(num_steps=steps, seed=1),
                      output=OutputConfig(output_dir=out, save_every=10), sweep=(f"style_weight:{weights}",),
                      sweep_batch=1)
        for how, cluster_name, workers in (("in-process (2 threads)", None, 0), ("Ray, 1 worker", "ray", 1),
                                           ("Ray, 2 workers", "ray", 2)):
            output = dataclasses.replace(base.output, run_name=f"{cluster_name or 'here'}{workers}")
            config = dataclasses.replace(base, cluster=cluster_name, ray_workers=workers, output=output)
            t = time.perf_counter()
            runner.run_sweep(config, show_progress=False, say=lambda *a: None)
            rows.append((how, time.perf_counter() - t))
    lines = [f"{cells} cells of chelsea + swirls at {size} px, {steps} Adam steps each, one batch each "
             f"(`python bench/scaleout.py --cells={cells} --cell_size={size} --cell_steps={steps}`), vgg16_hed, "
             f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}; Ray's start and stop included:", "",
             "| how | wall time (s) | per cell (s) | vs in-process |", "|---|---|---|---|"]
    for how, seconds in rows:
        lines.append(f"| {how} | {seconds:.1f} | {seconds / cells:.1f} | {rows[0][1] / seconds:.2f}x |")
    one_worker = rows[1][1]
    lines += ["", "Projection for N devices, each as fast as one worker here, from the 1-worker run (its "
              f"{one_worker:.0f} s hold about {START_S:.0f} s of Ray start and stop): "
              + ", ".join(f"N={n}: {START_S + (one_worker - START_S) / n:.0f} s" for n in (2, 4, 8)) + ". "
              "Cells are independent, so the batches divide over the devices; the start, the first worker's "
              "TensorFlow import and the last batch do not."]
    return "\n".join(lines)


START_S = 9.0   # a local Ray's start and stop here (the overhead table above measures it)


def calibrate_steps(work_s: float) -> int:
    with tempfile.TemporaryDirectory() as d:
        busy_fn({"seed": 0, "steps": 20}, d, lambda: None, lambda s, t: None)   # warm up BLAS and the caches
        t = time.perf_counter()
        busy_fn({"seed": 0, "steps": 200}, d, lambda: None, lambda s, t: None)
        per_step = (time.perf_counter() - t) / 200
    return max(50, int(work_s / per_step))


def main(argv):
    del argv
    r = FLAGS.repeats
    rows = []
    starts, firsts, stops = [], [], []
    for _ in range(r):
        t0 = time.perf_counter()
        with cluster.local_cluster(workers=1) as ray:
            t1 = time.perf_counter()
            run(empty_fn, [cluster.Task("first", None)], cluster="ray")
            t2 = time.perf_counter()
        starts.append(t1 - t0)
        firsts.append(t2 - t1)
        stops.append(time.perf_counter() - t2)
    rows.append(("start a local Ray (`local_cluster`: ray.init)", statistics.median(starts)))
    rows.append(("first `run_tasks` call, 1 empty task, on the fresh cluster", statistics.median(firsts)))
    rows.append(("stop it (ray.shutdown)", statistics.median(stops)))

    with cluster.local_cluster(workers=1) as ray:
        run(empty_fn, [cluster.Task("warm", None)], cluster="ray")   # the worker exists from here on
        noop = ray.remote(num_cpus=1)(empty_fn)
        ray.get(noop.remote(None, "", None, None), timeout=60)
        bare = median_s(lambda: ray.get(noop.remote(None, "", None, None), timeout=60), max(5, r))
        n = FLAGS.tasks
        call = median_s(lambda: run(empty_fn, [cluster.Task("t", None)], cluster="ray"), r)
        empty = median_s(lambda: run(empty_fn, [cluster.Task(f"t{i}", None) for i in range(n)],
                                     cluster="ray"), r) / n
        in_process = median_s(lambda: run(empty_fn, [cluster.Task(f"t{i}", None) for i in range(n)]), r) / n
        rows.append(("bare Ray task round trip (`ray.get(f.remote())`)", bare))
        rows.append(("a `run_tasks` call with 1 empty task (store actor start and stop, poll)", call))
        rows.append((f"empty task through `run_tasks`, 1 worker ({n} tasks, per task)", empty))
        rows.append(("empty task in-process (`cluster=None`, per task)", in_process))
        for mb in [float(s) for s in FLAGS.sizes_mb]:
            payload = np.zeros(int(mb * 2**20) // 4, np.float32)
            syncs = []

            def one():
                with tempfile.TemporaryDirectory() as dest:
                    syncs.append(cluster.run_tasks(transfer_fn, [cluster.Task("x", payload)], dest, cluster="ray",
                                                   show_progress=False, timeout_s=600)[0].value)
            per_task = median_s(one, r)
            rows.append((f"{mb:g} MB payload in + {mb:g} MB state synced back and written, above the "
                         "1-empty-task call", per_task - call))
            rows.append((f"  of which the {mb:g} MB sync() call inside the task", statistics.median(syncs)))

    print(f"\nnst_tf.cluster overhead, Ray {ray.__version__}, {os.cpu_count()} CPU cores "
          f"({platform.processor() or platform.machine()}), median of {r}, loopback only:\n")
    print("| what | seconds |\n|---|---|")
    for what, s in rows:
        print(f"| {what} | {s:.3f} |")

    if FLAGS.cells:
        table = real_sweep(FLAGS.cells, FLAGS.cell_size, FLAGS.cell_steps)
        print("\n" + table)
        if FLAGS.readme:
            path = os.path.join(ROOT, "docs/scaleout.md")
            text = open(path).read()
            begin, end = "<!-- scaleout-benchmark:begin -->", "<!-- scaleout-benchmark:end -->"
            if begin in text:
                head, rest = text.split(begin, 1)
                text = head + begin + "\n" + table + "\n" + end + rest.split(end, 1)[1]
                open(path, "w").write(text)

    if FLAGS.sweep_tasks:
        steps = calibrate_steps(FLAGS.work_s)
        tasks = [cluster.Task(f"cell{i}", {"seed": i, "steps": steps}) for i in range(FLAGS.sweep_tasks)]
        rows = sweep_timings(tasks, busy_fn, runtime_env={"env_vars": SINGLE_THREAD})
        print(f"\n{FLAGS.sweep_tasks} synthetic tasks of single-threaded NumPy work ({rows[0][1] / len(tasks):.2f} s "
              "each in-process), start and stop of the cluster included:\n")
        print("| how | wall time (s) |\n|---|---|")
        for how, s in rows:
            print(f"| {how} | {s:.2f} |")


if __name__ == "__main__":
    app.run(main)
