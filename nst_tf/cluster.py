"""Running a list of tasks on a Ray cluster, each task owning one output folder (issue 17's cluster layer).

This module owns the transport between a driver and Ray workers and nothing about style transfer: it
imports neither TensorFlow nor the engine, and imports Ray only when a cluster is asked for (importing
`nst_tf.cluster` imports neither Ray nor TensorFlow).

A task is `Task(folder, payload, cells)` plus one top-level function shared by all tasks:

    fn(payload, workdir: str, sync: Callable[[], None], progress: Callable[[int, int], None]) -> result

`fn` writes its outputs under `workdir`, calls `sync()` whenever the folder is consistent (the engine: right
after it writes state.npz at a snapshot) and `progress(step, total)` as it goes; it returns a small
picklable result. Semantics of `run_tasks(fn, tasks, dest, cluster=...)`:

- Files. `dest/<task.folder>` mirrors the task's workdir as of its last sync: the worker sends the files that
  changed since its previous sync (and the names of the ones it deleted) to a store actor; the driver
  collects them and writes each one atomically (`image_io.atomic_write`), so every file in dest is whole.
  `sync()` returns once the store holds the files, so what was synced survives the worker. When `fn`
  returns (or raises), a final sync happens before its result goes back. No shared filesystem is needed;
  with `shared_fs=True` the workers work in `dest/<folder>` itself and `sync()` sends nothing.
- Resume. A worker starts each attempt in a fresh local temporary folder filled with the store's files
  for the task: the files already in `dest/<folder>` when `run_tasks` began (an interrupted run being
  resumed), updated by every sync of earlier attempts. `fn` decides how to resume from them (the engine:
  from state.npz).
- Failures. A worker that dies (SIGKILL, out-of-memory killer, a lost node) is retried by Ray up to
  `max_retries` times, and the retry resumes as above. A `UserError` raised by `fn` is not retried: that
  task's `TaskResult.error` is its one-line message, and the other tasks go on. A task whose worker died
  more than `max_retries` times gets an error too. Any other exception is a bug: the other tasks are
  cancelled (keeping what they synced) and the exception is raised with the worker's traceback.
- Ctrl-C on the driver cancels the tasks with a KeyboardInterrupt inside `fn` (so it can save its state),
  waits up to `grace_s` for their final syncs, writes every file it has and raises KeyboardInterrupt.
- Progress: one tqdm bar for the whole job, in cells (each task's cells times its step / total), with
  the cells done, running and failed, and the time left.

Clusters: `cluster=None` runs the tasks one after another in this process, in `dest/<folder>` directly,
without Ray. `cluster="ray"` joins `RAY_ADDRESS` when it is set, otherwise starts a local Ray bound to
127.0.0.1 only (`local_cluster`) and stops it at the end. Any other string ("ray://HOST:PORT", or
"HOST:PORT" from a cluster node) is the address of a cluster to join, which is left running. If this
process is already connected to Ray, that connection is used and left open. Workers import `fn` and this
module by name, so nst_tf (and what fn needs: TensorFlow) must be installed on every node, or shipped with
`runtime_env`. The store holds each running task's latest files in the actor's memory (a task's folder,
as large as its state and snapshots) and drops them once the driver has written them.

Each task's CPU threads: TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS and OMP_NUM_THREADS are set to the
CPUs it asked for (Ray's runtime_env), so tasks sharing a machine do not oversubscribe its cores. Store
calls inside a task are waited for on a helper thread, because a task blocked in `ray.get` on its main
thread lends its CPUs back to Ray, which then starts more tasks than workers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterator

from nst_tf.errors import UserError

LOOPBACK = "127.0.0.1"
# Ray turns a loopback node address into the machine's routable one (ray.init(_node_ip_address="127.0.0.1")
# still listens on every interface and connects over eth0); this switch, read when ray is imported, is the
# one Ray itself uses to keep a single-machine Ray on 127.0.0.1 (its default on macOS and Windows).
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
RPC_TIMEOUT_S = 300.0   # any one call to the store; a store that stops answering fails the job, not hangs it
POLL_S = 0.1            # how often the driver collects files and progress while tasks run
PROGRESS_EVERY_S = 0.5  # workers report progress at most this often


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: `fn(payload, ...)` writing `dest/<folder>`; `cells` weighs it on the progress bar."""
    folder: str
    payload: Any
    cells: int = 1


@dataclasses.dataclass
class TaskResult:
    """What a task gave back: fn's return value, or `error` (a one-line message); `attempts` Ray made."""
    folder: str
    value: Any = None
    error: str | None = None
    attempts: int = 0


# ------------------------------------------------------------------------------------------ files

def _is_temp(name: str) -> bool:
    # image_io.atomic_write's temporary files: half-written by definition, never part of a consistent folder
    return name.startswith(".") and name.endswith(".tmp")


def read_folder(root: str) -> dict[str, bytes]:
    """{relative path: bytes} of every file under `root` ({} if it does not exist), temporary files left out."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            if _is_temp(name):
                continue
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root).replace(os.sep, "/")] = f.read()
    return files


def _check_relative(rel: str) -> str:
    """`rel` if it is a plain relative path inside its folder; the driver writes nothing anywhere else."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
        raise ValueError(f"not a relative path inside a task folder: {rel!r}")
    return rel


def write_files(root: str, changed: dict[str, bytes], deleted: list[str] = ()) -> None:
    """Writes `changed` under `root`, each file atomically, and removes `deleted`."""
    from nst_tf.image_io import atomic_write   # numpy and PIL, no TensorFlow; only when files are written
    for rel, data in changed.items():
        path = os.path.join(root, *_check_relative(rel).split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda f: f.write(data))
    for rel in deleted:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(root, *_check_relative(rel).split("/")))


class _Tracker:
    """What a worker has already sent: a digest per file, so each sync sends only what changed since.

    Digests rather than mtimes: a file rewritten within the filesystem's timestamp granularity with the
    same size (state.npz at every snapshot) would look unchanged by its stat."""

    def __init__(self, root: str, known: dict[str, bytes]):
        self.root = root
        self.digests = {rel: hashlib.blake2b(data).digest() for rel, data in known.items()}

    def changes(self) -> tuple[dict[str, bytes], list[str]]:
        current = read_folder(self.root)
        changed = {}
        for rel, data in current.items():
            digest = hashlib.blake2b(data).digest()
            if self.digests.get(rel) != digest:
                changed[rel] = data
                self.digests[rel] = digest
        deleted = [rel for rel in self.digests if rel not in current]
        for rel in deleted:
            del self.digests[rel]
        return changed, deleted


# ------------------------------------------------------------------------------------------ store

class _Store:
    """The driver-side store, run as a Ray actor: the latest files of every task, for retries, and what
    the driver has not yet written. An actor rather than callbacks into the driver because workers cannot
    call the driver; the driver polls it (`drain`), which also works through Ray Client (ray://), where the
    actor lives on the cluster and the driver's disk is reachable only from the driver."""

    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}
        self.dirty: dict[str, set[str]] = {}      # changed since the last drain
        self.deleted: dict[str, set[str]] = {}
        self.attempts: dict[str, int] = {}
        self.progress: dict[str, tuple[int, int]] = {}

    def seed(self, folder: str, files: dict[str, bytes]) -> None:
        self.files[folder] = dict(files)

    def begin(self, folder: str, with_files: bool = True) -> tuple[int, dict[str, bytes]]:
        """A new attempt of `folder`'s task: (its number, from 1; the files it starts from)."""
        self.attempts[folder] = self.attempts.get(folder, 0) + 1
        return self.attempts[folder], (dict(self.files.get(folder, {})) if with_files else {})

    def sync(self, folder: str, attempt: int, changed: dict[str, bytes], deleted: list[str]) -> bool:
        """Takes an attempt's changes; False (and nothing taken) if a newer attempt has begun, so a
        worker that Ray gave up on cannot overwrite its successor's files."""
        if attempt != self.attempts.get(folder):
            return False
        files = self.files.setdefault(folder, {})
        files.update(changed)
        self.dirty.setdefault(folder, set()).update(changed)
        for rel in deleted:
            files.pop(rel, None)
            self.dirty.setdefault(folder, set()).discard(rel)
            self.deleted.setdefault(folder, set()).add(rel)
        for rel in changed:
            self.deleted.get(folder, set()).discard(rel)
        return True

    def report(self, folder: str, attempt: int, step: int, total: int) -> None:
        if attempt == self.attempts.get(folder):
            self.progress[folder] = (step, total)

    def drain(self) -> tuple[dict, dict, dict]:
        """({folder: (changed files, deleted names)} since the last drain, progress, attempts)."""
        updates = {}
        for folder in set(self.dirty) | set(self.deleted):
            files = self.files.get(folder, {})
            changed = {rel: files[rel] for rel in self.dirty.get(folder, ()) if rel in files}
            updates[folder] = (changed, sorted(self.deleted.get(folder, ())))
        self.dirty, self.deleted = {}, {}
        return updates, dict(self.progress), dict(self.attempts)

    def forget(self, folder: str) -> None:
        """A finished task's files are written by the driver: the store need not hold them any longer."""
        self.files.pop(folder, None)


class _Superseded(Exception):
    """This attempt's worker was given up on and a newer attempt runs: stop quietly."""


# ------------------------------------------------------------------------------------------ worker

def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _outcome(f, *args, **kwargs) -> tuple[bool, Any]:
    try:
        return True, f(*args, **kwargs)
    except Exception as e:   # handed to the calling thread, which raises it
        return False, e


def _attempt(fn: Callable, folder: str, payload: Any, store, shared_dir: str | None) -> tuple[str, Any]:
    """One attempt of one task, on a worker: ("ok", fn's result) or ("error", UserError's message)."""
    import ray

    def call(method, *args):
        # waited for on a helper thread: a task blocked in ray.get on its main thread lends its CPUs back to
        # Ray, which then starts another task beside it, so the machine runs more tasks than workers
        # (measured: 4 tasks on 1 worker ran two at a time). Ray does not do that for other threads.
        box = []
        waiter = threading.Thread(target=lambda: box.append(_outcome(ray.get, getattr(store, method).remote(*args),
                                                                     timeout=RPC_TIMEOUT_S)), daemon=True)
        waiter.start()
        waiter.join()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    if shared_dir is not None:
        workdir = os.path.join(shared_dir, *folder.split("/"))
        os.makedirs(workdir, exist_ok=True)
        attempt, _ = call("begin", folder, False)
        tracker = None
    else:
        attempt, files = call("begin", folder)
        workdir = tempfile.mkdtemp(prefix="nst_tf_task_")
        write_files(workdir, files)
        tracker = _Tracker(workdir, files)

    def sync() -> None:
        if tracker is None:
            return
        changed, deleted = tracker.changes()
        if (changed or deleted) and not call("sync", folder, attempt, changed, deleted):
            raise _Superseded(folder)

    last = [0.0]

    def progress(step: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or step >= total:
            last[0] = now
            store.report.remote(folder, attempt, int(step), int(total))   # fire and forget: only a display

    try:
        try:
            outcome = ("ok", fn(payload, workdir, sync, progress))
        except UserError as e:
            outcome = ("error", _one_line(e))
        except BaseException:
            # a bug or a cancel (KeyboardInterrupt): keep what fn left (its last state) before it propagates
            with contextlib.suppress(Exception):
                sync()
            raise
        sync()
        return outcome
    except _Superseded:
        return "superseded", None
    finally:
        if shared_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ cluster

def _import_ray(local: bool):
    """Imports Ray; for a local cluster with its loopback switch set first (Ray reads it on import)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no usage report to anyone
    if local:
        if "ray" in sys.modules and os.environ.get(_LOCAL_ONLY_ENV) != "0":
            from ray._private import ray_constants
            if ray_constants.ENABLE_RAY_CLUSTER:
                raise RuntimeError(f"ray was imported before nst_tf.cluster could set {_LOCAL_ONLY_ENV}=0, so a "
                                   "local Ray would listen on every interface; set it before importing ray")
        os.environ[_LOCAL_ONLY_ENV] = "0"
    import ray
    return ray


@contextlib.contextmanager
def local_cluster(workers: int | None = None, cpus_per_task: int | None = None) -> Iterator[Any]:
    """Starts a Ray on this machine bound to 127.0.0.1 only (no dashboard, no usage stats, its own
    session folder, never an existing cluster) and stops it on exit; yields the `ray` module.

    `workers` tasks run at once: by default one per GPU, or one when there is none. Ray gets
    `workers * cpus_per_task` CPUs; `cpus_per_task` defaults to this machine's cores / workers."""
    ray = _import_ray(local=True)
    cores = os.cpu_count() or 1
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    cpus = cores if workers is None else workers * (cpus_per_task or max(1, cores // workers))
    temp_dir = tempfile.mkdtemp(prefix="ray_nst_", dir="/tmp")   # short: Ray's socket paths must fit 107 bytes
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, _temp_dir=temp_dir,
             log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    global _local_cpus_per_task
    if workers is None:
        workers = int(ray.cluster_resources().get("GPU", 0)) or 1
    _local_cpus_per_task = cpus_per_task or max(1, cpus // workers)
    try:
        yield ray
    finally:
        _local_cpus_per_task = None
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


# what each task asks for on the cluster `local_cluster` started (run_tasks inside its `with` uses it)
_local_cpus_per_task: int | None = None


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _threads_env(cpus: int) -> dict[str, str]:
    """The environment that keeps a task's TensorFlow (and NumPy's BLAS) to the CPUs Ray gave it; TF 2.21
    reads TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS when it creates its thread pools."""
    n = str(max(1, int(cpus)))
    return {"TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n, "OMP_NUM_THREADS": n}


@contextlib.contextmanager
def _connected(cluster: str, workers: int | None, cpus_per_task: int | None):
    """Yields (ray, cpus per task) on the cluster `run_tasks` was asked for."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        yield sys.modules["ray"], cpus_per_task or _local_cpus_per_task or 1
        return
    address = os.environ.get("RAY_ADDRESS") if cluster == "ray" else cluster
    if not address:
        with local_cluster(workers, cpus_per_task) as ray:
            yield ray, _local_cpus_per_task
        return
    # a cluster on this machine (`ray start --head --node-ip-address=127.0.0.1`): without the switch Ray would
    # rewrite 127.0.0.1 into the machine's routable address before connecting
    ray = _import_ray(local=_is_loopback(address))
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    except ConnectionError as e:
        raise UserError(f"could not join the Ray cluster at {address} ({_one_line(e)[:200]}); is it running, and "
                        "if it uses token authentication, is RAY_AUTH_MODE=token set here with its token (ray "
                        "get-auth-token on the head) in ~/.ray/auth_token or RAY_AUTH_TOKEN?") from None
    try:
        yield ray, cpus_per_task or 1
    finally:
        ray.shutdown()   # disconnects this driver; the cluster keeps running


def run_tasks(fn: Callable, tasks: list[Task], dest: str, cluster: str | None = None, workers: int | None = None,
              cpus_per_task: int | None = None, max_retries: int = 3, shared_fs: bool = False,
              show_progress: bool = True, timeout_s: float | None = None, grace_s: float = 30.0,
              runtime_env: dict | None = None) -> list[TaskResult]:
    """Runs `fn` on every task (see the module docstring); returns a TaskResult per task, in order.

    `workers`, `cpus_per_task`: for a local cluster (`local_cluster`); on a joined cluster each task asks
    for `cpus_per_task` CPUs (default 1) and TensorFlow in it uses that many threads. Each task also asks
    for one GPU when the cluster has any (Ray then sets its CUDA_VISIBLE_DEVICES). `runtime_env` is Ray's
    (e.g. py_modules or working_dir to ship code to workers); `timeout_s` bounds the whole job (the tasks
    are cancelled and TimeoutError raised, files kept).
    """
    folders = [_check_relative(t.folder) for t in tasks]
    if len(set(folders)) != len(folders):
        raise ValueError("two tasks share a folder")
    dest = os.path.abspath(dest)
    bar = _Bar(tasks, show_progress)
    try:
        if cluster is None:
            return _run_in_process(fn, tasks, dest, bar)
        with _connected(cluster, workers, cpus_per_task) as (ray, cpus):
            return _run_on_ray(ray, fn, tasks, dest, cpus, max_retries, shared_fs, bar, timeout_s, grace_s,
                               runtime_env)
    finally:
        bar.close()


def _run_in_process(fn: Callable, tasks: list[Task], dest: str, bar: "_Bar") -> list[TaskResult]:
    results = []
    for task in tasks:
        workdir = os.path.join(dest, *task.folder.split("/"))
        os.makedirs(workdir, exist_ok=True)
        bar.progress[task.folder] = (0, 1)

        def progress(step, total, folder=task.folder):
            bar.progress[folder] = (step, total)
            bar.refresh()
        try:
            results.append(TaskResult(task.folder, fn(task.payload, workdir, lambda: None, progress), attempts=1))
        except UserError as e:
            results.append(TaskResult(task.folder, error=_one_line(e), attempts=1))
        bar.finish(task.folder, results[-1].error is not None)
    return results


def _run_on_ray(ray, fn, tasks, dest, cpus, max_retries, shared_fs, bar, timeout_s, grace_s, runtime_env):
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    store = ray.remote(num_cpus=0)(_Store).remote()
    try:
        if not shared_fs:
            # what an earlier, interrupted run left: the first attempt of each task starts from it
            ray.get([store.seed.remote(t.folder, read_folder(os.path.join(dest, *t.folder.split("/"))))
                     for t in tasks], timeout=RPC_TIMEOUT_S)
        env = dict(runtime_env or {})
        env["env_vars"] = {**_threads_env(cpus), **env.get("env_vars", {})}
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        remote = ray.remote(_attempt).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                                              retry_exceptions=False, runtime_env=env)
        refs = {remote.remote(fn, t.folder, t.payload, store, dest if shared_fs else None): t for t in tasks}
        collector = _Collector(ray, store, dest, bar)
        results: dict[str, TaskResult] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S, fetch_local=False)
                collector.collect()
                for ref in done:
                    results[refs[ref].folder] = _result(ray, refs[ref], ref, collector, max_retries)
                    bar.finish(refs[ref].folder, results[refs[ref].folder].error is not None)
                    store.forget.remote(refs[ref].folder)
                if deadline is not None and pending and time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} of {len(tasks)} tasks were still running after {timeout_s:g} s")
        except BaseException:
            _stop(ray, pending, grace_s, collector)
            raise
        collector.collect()
        return [results[t.folder] for t in tasks]
    finally:
        ray.kill(store)


def _result(ray, task: Task, ref, collector: "_Collector", max_retries: int) -> TaskResult:
    attempts = collector.attempts.get(task.folder, 0)
    try:
        kind, value = ray.get(ref, timeout=RPC_TIMEOUT_S)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError) as e:
        tries = max_retries + 1
        return TaskResult(task.folder, error=f"its worker died in each of its {tries} attempt{'s' * (tries > 1)} "
                                             f"(the last: {_one_line(e)[:200]})", attempts=attempts)
    # a bug in fn is not caught here: ray.get raises it (a RayTaskError that is also an instance of the
    # bug's own class, with the worker's traceback in its message) and run_tasks stops the other tasks
    if kind == "superseded":
        return TaskResult(task.folder, error="a newer attempt replaced this one", attempts=attempts)
    if kind == "error":
        return TaskResult(task.folder, error=value, attempts=attempts)
    return TaskResult(task.folder, value=value, attempts=attempts)


def _stop(ray, pending: list, grace_s: float, collector: "_Collector") -> None:
    """Cancels `pending` with a KeyboardInterrupt in each fn, gives their final syncs up to `grace_s`
    (a second Ctrl-C cuts that short), writes every file the store has, then force-stops what is left."""
    for ref in pending:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    end = time.monotonic() + grace_s
    try:
        while pending and time.monotonic() < end:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S, fetch_local=False)
            collector.collect()
    except KeyboardInterrupt:
        pass
    with contextlib.suppress(Exception):
        collector.collect()
    for ref in pending:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


class _Collector:
    """The driver's side of the store: writes the files that arrived into dest and feeds the bar."""

    def __init__(self, ray, store, dest: str, bar: "_Bar"):
        self.ray, self.store, self.dest, self.bar = ray, store, dest, bar
        self.attempts: dict[str, int] = {}

    def collect(self) -> None:
        updates, progress, self.attempts = self.ray.get(self.store.drain.remote(), timeout=RPC_TIMEOUT_S)
        for folder, (changed, deleted) in updates.items():
            write_files(os.path.join(self.dest, *folder.split("/")), changed, deleted)
        for folder, step_total in progress.items():
            if folder not in self.bar.finished:
                self.bar.progress[folder] = step_total
        for folder in self.attempts:
            if folder not in self.bar.progress and folder not in self.bar.finished:
                self.bar.progress[folder] = (0, 1)
        self.bar.refresh()


class _Bar:
    """One progress bar for the whole job, counted in cells: finished tasks count whole, running ones by
    their step / total, so tqdm's rate and time left cover the job."""

    def __init__(self, tasks: list[Task], show: bool):
        self.cells = {t.folder: max(1, t.cells) for t in tasks}
        self.progress: dict[str, tuple[int, int]] = {}
        self.finished: dict[str, bool] = {}   # folder -> failed?
        self.tqdm, self.shown = None, None
        if show:
            from tqdm import tqdm
            self.tqdm = tqdm(total=sum(self.cells.values()), unit="cell", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n:.1f}/{total} cells [{elapsed}<{remaining}{postfix}]")

    def finish(self, folder: str, failed: bool) -> None:
        self.finished[folder] = failed
        self.progress.pop(folder, None)
        self.refresh()

    def refresh(self) -> None:
        if self.tqdm is None:
            return
        done = sum(self.cells[f] for f in self.finished)
        running = sum(self.cells[f] * min(1.0, s / t) for f, (s, t) in self.progress.items() if t > 0)
        failed = sum(self.cells[f] for f, bad in self.finished.items() if bad)
        postfix = (f"done {done - failed}, running {sum(self.cells[f] for f in self.progress)}"
                   + (f", failed {failed}" if failed else ""))
        if (done + running, postfix) != self.shown:   # the driver polls 10 times a second; redraw on change
            self.shown = (done + running, postfix)
            self.tqdm.n = done + running
            self.tqdm.set_postfix_str(postfix, refresh=False)
            self.tqdm.refresh()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
