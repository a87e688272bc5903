"""The outputs folder as the web page sees it: which names are runs, what a run holds, and the one place
that turns a name the client sent into a path. No TensorFlow, no web library.

Every path the server reads for a client starts from a name checked here: a run (or a sweep, or a cell of
a sweep) is a plain folder directly under the outputs folder (or one level below, for a sweep's cells), its
name made of letters, digits and `._+-=,` only, not starting with a dot; a file in it is one of FILE_SUFFIXES.
Symbolic links are refused wherever they are, so nothing outside the outputs folder is ever read or served.
"""
from __future__ import annotations

import csv
import os
import re

from nst_tf import rundir
from nst_tf.config import field_sections

# A folder or file name: no separators, no "..", no leading dot (hidden: the uploads live in .uploads).
NAME = re.compile(r"^[A-Za-z0-9_+=,\-][A-Za-z0-9._+=,\-]{0,200}$")
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".flags", ".json", ".csv", ".md", ".keras", ".mp4")
UPLOADS = ".uploads"


class NotFound(Exception):
    """A name that is not a run, or a file the server will not serve (the client gets 404, no detail)."""


def checked_parts(relative: str) -> list[str]:
    """The components of a client-sent relative path, each a plain NAME; NotFound for anything else
    ("..", ".", empty parts, absolute paths, backslashes, NUL)."""
    parts = relative.split("/")
    if not parts or any(not NAME.match(p) for p in parts):
        raise NotFound(relative)
    return parts


def resolve(outputs: str, relative: str, suffixes: tuple[str, ...] | None = None, folder: bool = False) -> str:
    """The real path of `outputs/relative`, a file (with one of `suffixes`) or a folder, checked to be a
    plain file or folder inside `outputs` reached through no symbolic link; NotFound otherwise."""
    parts = checked_parts(relative)
    if not folder and not parts[-1].lower().endswith(suffixes or FILE_SUFFIXES):
        raise NotFound(relative)
    root = os.path.realpath(outputs)
    path = root
    for part in parts:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise NotFound(relative)
    if os.path.realpath(path) != path or not (os.path.isdir(path) if folder else os.path.isfile(path)):
        raise NotFound(relative)
    return path


def is_sweep(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "sweep.flags"))


def is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "run.flags")) or is_sweep(path)


def run_names(outputs: str) -> list[str]:
    """The runs and sweeps directly under `outputs`, newest first."""
    try:
        entries = list(os.scandir(outputs))
    except OSError:
        return []
    found = [e for e in entries if NAME.match(e.name) and e.is_dir(follow_symlinks=False) and is_run(e.path)]
    return [e.name for e in sorted(found, key=lambda e: e.stat().st_mtime, reverse=True)]


def read_flags(path: str) -> dict[str, str]:
    """{option: text} of the run.flags (or sweep.flags) in the folder `path`, as written (repeated flags
    such as --sweep joined by ' | '); {} if it has none."""
    try:
        lines = open(rundir.flagfile_of(path), encoding="utf-8").read().splitlines()
    except Exception:
        return {}
    flags: dict[str, str] = {}
    for line in lines:
        if line.startswith("--") and "=" in line:
            name, _, value = line[2:].partition("=")
            flags[name] = f"{flags[name]} | {value}" if name in flags else value
        elif line.startswith("--"):   # a boolean: --name or --noname
            name = line[2:]
            if name.startswith("no") and name[2:] in field_sections():
                flags[name[2:]] = "false"
            else:
                flags[name] = "true"
    return flags


def read_losses(path: str) -> dict:
    """losses.csv of a run folder as columns: {"columns": [...], "rows": [[...], ...]} (empty if none)."""
    try:
        with open(os.path.join(path, "losses.csv"), newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return {"columns": [], "rows": []}
    if not rows:
        return {"columns": [], "rows": []}
    out = []
    for row in rows[1:]:
        try:
            out.append([float(v) for v in row])
        except ValueError:
            continue
    return {"columns": rows[0], "rows": out}


def snapshots(path: str) -> list[str]:
    """The snapshot files of a run folder, in step order (names like step_00050.png)."""
    try:
        return sorted(n for n in os.listdir(os.path.join(path, "snapshots")) if NAME.match(n) and n.endswith(".png"))
    except OSError:
        return []


def latest_image(path: str) -> str | None:
    """The newest picture of a run folder, relative to it: result.png when the run has ended or stopped at
    or after its last snapshot (its summary.json's steps), else the last snapshot (a resumed run paints on)."""
    shots = snapshots(path)
    if os.path.isfile(os.path.join(path, "result.png")):
        steps = rundir.read_summary(path).get("steps")
        last = int(re.sub(r"\D", "", shots[-1]) or 0) if shots else -1
        if steps is not None and last <= steps:
            return "result.png"
        if steps is None and (not shots or os.path.getmtime(os.path.join(path, "result.png")) >= os.path.getmtime(
                os.path.join(path, "snapshots", shots[-1]))):
            return "result.png"
    return f"snapshots/{shots[-1]}" if shots else None


def _folders_holding(path: str, file: str) -> list[str]:
    """The sub-folders of `path` (safe names, not links) that hold `file`, in name order; [] if it can't be read."""
    try:
        return sorted(e.name for e in os.scandir(path) if NAME.match(e.name) and e.is_dir(follow_symlinks=False)
                      and os.path.isfile(os.path.join(e.path, file)))
    except OSError:
        return []


def clip_preview(path: str) -> str | None:
    """A clip run's preview.png (content frames above their results), relative to it; for a run of several
    clips the first one's that has one (clips/<name>/preview.png); None if there is none yet."""
    if os.path.isfile(os.path.join(path, "preview.png")):
        return "preview.png"
    return next((f"clips/{n}/preview.png" for n in _folders_holding(os.path.join(path, "clips"), "preview.png")), None)


def cells(path: str) -> list[str]:
    """The cell folders of a sweep (each a run folder), in name order."""
    return _folders_holding(path, "run.flags")


def status_of(path: str) -> str:
    """done, interrupted, diverged, ... as the run's summary.json says; `incomplete` when it has none yet
    (running elsewhere, or killed before it could write one)."""
    summary = rundir.read_summary(path)
    return str(summary.get("status") or "incomplete")


def describe(outputs: str, name: str, detail: bool = False) -> dict:
    """What the page shows of the run or sweep `name`: settings, status, times, pictures (paths relative to
    `outputs`), and with `detail` its snapshots, loss rows and a sweep's cells."""
    path = resolve(outputs, name, folder=True)
    if not is_run(path):
        raise NotFound(name)
    summary = rundir.read_summary(path)
    sweep = is_sweep(path)
    info = {"name": name, "kind": "sweep" if sweep else "run", "flags": read_flags(path),
            "status": status_of(path), "summary": summary, "modified": os.path.getmtime(path),
            "resumable": os.path.isfile(os.path.join(path, rundir.STATE_FILE)),
            "stylizer": os.path.isfile(os.path.join(path, "stylizer.keras"))}
    image = "grid.png" if sweep and os.path.isfile(os.path.join(path, "grid.png")) else latest_image(path)
    if sweep and image is None:
        image = next((f"{c}/{latest_image(os.path.join(path, c))}" for c in cells(path)
                      if latest_image(os.path.join(path, c))), None)
    image = image or clip_preview(path)
    info["image"] = f"{name}/{image}" if image else None
    if sweep:   # a sweep folder has no summary of its own: its cells' say how far it is
        states = [status_of(os.path.join(path, c)) for c in cells(path)]
        finished = os.path.isfile(os.path.join(path, "grid.png")) and states and all(s == "done" for s in states)
        info["status"] = "done" if finished else next((s for s in states if s != "done"), "incomplete")
        info["resumable"] = info["status"] != "done"
    if detail:
        info["snapshots"] = [f"{name}/snapshots/{s}" for s in snapshots(path)]
        info["losses"] = read_losses(path)
        info["files"] = [f for f in ("result.png", "result.mp4", "preview.png", "run.flags", "sweep.flags", "losses.csv",
                                     "losses.png", "grid.png", "results.md", "stylizer.keras")
                         if os.path.isfile(os.path.join(path, f))]
        if sweep:
            info["cells"] = []
            for cell in cells(path):
                cell_path = os.path.join(path, cell)
                shot = latest_image(cell_path)
                info["cells"].append({"name": cell, "status": status_of(cell_path),
                                      "image": f"{name}/{cell}/{shot}" if shot else None})
    return info
