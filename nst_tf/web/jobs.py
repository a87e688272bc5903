"""The queue of runs the page started: one child process `python run.py ...` at a time. No web library.

A run is run.py itself in a child process (its own session, so a Ctrl-C in the server's terminal reaches
only the server), writing its folder under the outputs folder: it goes on whatever the browser does, it is
stopped like a run in a terminal (SIGINT: the run saves its last image and state.npz and exits with status
130), resumed with `--resume=<folder>` and extended with `--resume=<folder> --num_steps=N`. What the page
shows of a run comes from its folder (`nst_tf.web.store`), so runs of earlier servers and of the command
line look the same; the queue adds only what a folder cannot say yet: queued, starting, the live step and
speed from the progress bar, and the child's `error: ...` line.
"""
from __future__ import annotations

import collections
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time

# The progress bar's tail, e.g. "| 40/200 [00:05<00:20, 7.91step/s]" (or "s/step" when slower than 1/s).
PROGRESS = re.compile(r"(\d+)/(\d+) \[[^<\]]*<([^,\]]*), *([\d.]+) ?(step/s|s/step|it/s|s/it)")
RUN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "run.py")


class Job:
    """One command of the queue: a new run, a resume or an extension of the run folder `name`."""

    def __init__(self, job_id: int, name: str, args: list[str], action: str):
        self.id, self.name, self.args, self.action = job_id, name, args, action
        self.state = "queued"           # queued, running, then done, stopped, failed or cancelled
        self.returncode: int | None = None
        self.error: str | None = None   # the child's "error: ..." line
        self.log: collections.deque[str] = collections.deque(maxlen=40)
        self.step = self.total = None
        self.rate: float | None = None   # steps per second
        self.left: str | None = None     # time left as the progress bar says it
        self.started = self.ended = None
        self.process: subprocess.Popen | None = None
        self.stop_requested = False

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "action": self.action, "state": self.state,
                "returncode": self.returncode, "error": self.error, "step": self.step, "total": self.total,
                "rate": self.rate, "left": self.left, "started": self.started, "ended": self.ended,
                "log": list(self.log)[-12:]}


class Queue:
    """Runs the jobs one at a time, in order, each as `python run.py <args>` in `cwd`."""

    def __init__(self, python: str = sys.executable, run_py: str = RUN_PY, env: dict | None = None):
        self.python, self.run_py, self.env = python, run_py, env
        self.jobs: list[Job] = []
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.ids = itertools.count(1)
        self.closing = False
        self.worker = threading.Thread(target=self._work, name="nst-serve-queue", daemon=True)
        self.worker.start()

    def add(self, name: str, args: list[str], action: str) -> Job:
        with self.lock:
            job = Job(next(self.ids), name, args, action)
            self.jobs.append(job)
            self.wake.notify_all()
            return job

    def active(self, name: str) -> Job | None:
        """The queued or running job of the run folder `name`, if any."""
        with self.lock:
            return next((j for j in self.jobs if j.name == name and j.state in ("queued", "running")), None)

    def latest(self, name: str) -> Job | None:
        with self.lock:
            return next((j for j in reversed(self.jobs) if j.name == name), None)

    def listing(self) -> list[dict]:
        with self.lock:
            return [j.as_dict() for j in self.jobs]

    def stop(self, name: str) -> bool:
        """Stops the run `name`: a queued job is dropped, a running child gets SIGINT (it saves and exits)."""
        with self.lock:
            job = next((j for j in self.jobs if j.name == name and j.state in ("queued", "running")), None)
            if job is None:
                return False
            job.stop_requested = True
            if job.state == "queued":
                job.state = "cancelled"
            elif job.process is not None:
                job.process.send_signal(signal.SIGINT)
            return True

    def close(self, timeout: float = 60.0) -> None:
        """Drops the queued jobs and stops the running one (it saves its state for a later resume)."""
        with self.lock:
            self.closing = True
            for job in self.jobs:
                if job.state == "queued":
                    job.state = "cancelled"
            running = [j for j in self.jobs if j.state == "running" and j.process is not None]
            self.wake.notify_all()
        for job in running:
            job.stop_requested = True
            job.process.send_signal(signal.SIGINT)
            try:
                job.process.wait(timeout)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
        self.worker.join(timeout=5)

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.closing and not any(j.state == "queued" for j in self.jobs):
                    self.wake.wait()
                if self.closing:
                    return
                job = next(j for j in self.jobs if j.state == "queued")
                job.state, job.started = "running", time.time()
                # unbuffered: the "run folder: ..." and "error: ..." lines arrive as they are printed
                env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
                try:
                    job.process = subprocess.Popen(
                        [self.python, self.run_py, *job.args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, start_new_session=True, env=env)
                except OSError as e:
                    job.state, job.error, job.ended = "failed", f"error: cannot start run.py ({e})", time.time()
                    continue
            self._follow(job)

    def _follow(self, job: Job) -> None:
        """Reads the child's output until it ends: progress, the last lines, the error line."""
        buf = b""
        stream = job.process.stdout
        while True:
            chunk = stream.read1(4096)
            if not chunk:
                break
            buf += chunk
            *lines, buf = re.split(rb"[\r\n]", buf)
            for raw in lines:
                self._line(job, raw.decode("utf-8", "replace").strip())
        self._line(job, buf.decode("utf-8", "replace").strip())
        code = job.process.wait()
        with self.lock:
            job.returncode, job.ended = code, time.time()
            job.state = "done" if code == 0 else "stopped" if code == 130 else "failed"
            if code not in (0, 130) and not job.error:
                job.error = (job.log[-1] if job.log else f"error: run.py ended with status {code}")

    def _line(self, job: Job, line: str) -> None:
        if not line:
            return
        match = PROGRESS.search(line)
        with self.lock:
            if match:
                step, total, left, number, unit = match.groups()
                job.step, job.total, job.left = int(step), int(total), left.strip() or None
                value = float(number)
                job.rate = value if unit.startswith("step/") or unit.startswith("it/") else (1 / value if value else None)
                return
            job.log.append(line[:400])
            if line.startswith("error:"):
                job.error = line
