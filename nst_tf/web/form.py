"""The run form: which options a client may set, and the command line of the child run they make.
No TensorFlow, no web library.

The client sends option values as text, upload ids for the pictures and, for --mode=apply, the name of a
run holding a stylizer.keras; it never sends a path or a flag of its own. Only the options in FIELDS pass
(nothing that names where files go: --output_dir, --run_name, --flagfile, --resume, --weights, masks are
set here or not at all), the pictures become paths under the uploads folder, and the whole is checked by
`nst_tf.config.from_flags` (the parser of run.flags, so the same defaults and the same one-line errors as
run.py) before a child starts.
"""
from __future__ import annotations

import os
import re

from nst_tf import config as schema
from nst_tf import rundir
from nst_tf.errors import UserError
from nst_tf.web import store, uploads

MODES = ("transfer", "content", "texture", "apply")
# The options the page offers, most used first. "strength" is the one-number balance of content and style
# that is being added to the schema: it is offered as soon as the schema has it (FIELDS skips it before).
WANTED = ("strength", "max_size", "num_steps", "save_every", "style_blend_weights", "style_scale", "preserve_colors",
          "content_weight", "style_weight", "tv_weight", "optimizer", "learning_rate", "init", "init_noise", "seed",
          "backbone", "pooling", "scales", "log_every", "device")
# What a sweep axis may vary: the options above that change the picture, and ratio (alpha/beta).
SWEEP_AXES = ("ratio", "strength", "style_scale", "content_weight", "style_weight", "tv_weight", "learning_rate",
              "init", "init_noise", "seed", "num_steps", "max_size", "preserve_colors", "optimizer", "pooling")
MAX_TEXT = 300


def fields() -> tuple[str, ...]:
    known = schema.field_sections()
    return tuple(name for name in WANTED if name in known)


def spec() -> list[dict]:
    """The form's options as the page renders them: name, type, default, choices and run.py's help."""
    by_name = {opt.name: opt for opt in schema.options()}
    out = []
    for name in fields():
        opt = by_name[name]
        default = opt.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        out.append({"name": name, "kind": opt.kind.__name__, "list": opt.is_tuple, "default": default,
                    "choices": list(opt.choices or ()), "help": opt.help})
    return out


def _text(name: str, value) -> str:
    text = str(value).strip()
    if len(text) > MAX_TEXT or any(c in text for c in "\r\n\0"):
        raise UserError(f"--{name}: the value is too long or spans several lines.")
    return text


def flag_lines(outputs: str, form: dict) -> list[str]:
    """The `--name=value` lines of a run from the form {"mode", "content": upload id, "style": [upload
    ids], "model": run name, "options": {name: text}, "sweep": ["axis:v1,v2", ...]}; UserError (one line)
    for anything the form may not set. Paths come only from the server's own uploads and outputs."""
    mode = form.get("mode") or "transfer"
    if mode not in MODES:
        raise UserError(f"mode {mode!r} is not one of {', '.join(MODES)}.")
    lines = [f"--mode={mode}"]
    content, styles = form.get("content"), form.get("style") or []
    if isinstance(styles, str):
        styles = [styles]
    if mode in ("transfer", "content", "apply"):
        if not content:
            raise UserError("add a photo (the content image) first.")
        lines.append(f"--content={uploads.path_of(outputs, str(content))}")
    if mode in ("transfer", "texture"):
        if not styles:
            raise UserError("add a painting (the style image) first; several make a blend.")
        paths = [uploads.path_of(outputs, str(s)) for s in styles]
        lines.append(f"--style={','.join(paths)}")
    if mode == "apply":
        model = str(form.get("model") or "")
        try:
            folder = store.resolve(outputs, model, folder=True)
        except store.NotFound:
            folder = ""
        if not folder or not os.path.isfile(os.path.join(folder, "stylizer.keras")):
            raise UserError("choose a trained stylizer (a run with stylizer.keras) for mode apply.")
        lines.append(f"--model={os.path.join(folder, 'stylizer.keras')}")
    allowed = fields()
    for name, value in (form.get("options") or {}).items():
        if name not in allowed:
            raise UserError(f"--{name} cannot be set from the page; use run.py for it.")
        text = _text(name, value)
        if text != "":
            lines.append(f"--{name}={text}")
    for axis in form.get("sweep") or []:
        text = _text("sweep", axis)
        if not text:
            continue
        name = text.partition(":")[0].strip()
        if name not in SWEEP_AXES or (name != "ratio" and name not in schema.field_sections()):
            raise UserError(f"--sweep={text}: a sweep from the page varies one of {', '.join(SWEEP_AXES)}.")
        lines.append(f"--sweep={text}")
    return lines


def check(outputs: str, lines: list[str]) -> schema.Config:
    """The validated config of the form's lines with the outputs folder, or UserError: run.py's checks."""
    config = schema.from_flags([*lines, f"--output_dir={outputs}"], "the form")
    if config.sweep:
        from nst_tf import comparison
        comparison.expand(config)   # the axes' own checks, as run.py makes them before TensorFlow loads
    return config


def run_name(outputs: str, config: schema.Config, taken=()) -> str:
    """A new folder name under `outputs` for the run: run.py's default, without the uploads' hashes, and
    neither an existing folder nor one of `taken` (the queued runs' names)."""
    name = re.sub(r"-[0-9a-f]{12}(?=[_+])", "", rundir.default_name(config))
    name = ("sweep_" if config.sweep else "") + name
    candidate, k = name, 1
    while os.path.exists(os.path.join(outputs, candidate)) or candidate in taken:
        k += 1
        candidate = f"{name}-{k}"
    return candidate


def prefill(outputs: str, name: str) -> dict:
    """The form of an existing run ("run again with changes"): its options as given in its run.flags, its
    pictures as upload ids (a run started from the command line has its inputs copied among the uploads)."""
    folder = store.resolve(outputs, name, folder=True)
    flags = store.read_flags(folder)
    form = {"mode": flags.get("mode", "transfer") if flags.get("mode") in MODES else "transfer",
            "options": {n: flags[n] for n in fields() if n in flags}, "sweep": [], "warnings": []}
    if form["options"].get("strength"):   # --strength sets alpha and beta itself; both given is an error
        for name in ("content_weight", "style_weight"):
            form["options"].pop(name, None)
    if "sweep" in flags:
        form["sweep"] = [s.strip() for s in flags["sweep"].split(" | ")]
    for kind in ("content", "style"):
        paths = schema.split_list(flags.get(kind)) if flags.get(kind) else ()
        ids = []
        for path in paths:
            try:
                ids.append(uploads.adopt(outputs, path))
            except UserError as e:
                form["warnings"].append(str(e))
        form[kind] = ids[0] if kind == "content" and ids else ids if kind == "style" else None
    if flags.get("model"):
        form["model"] = os.path.basename(os.path.dirname(flags["model"]))
    return form
