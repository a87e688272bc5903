#!/usr/bin/env python
"""Neural style transfer (Gatys et al.) from the command line.

  python run.py --content=examples/chelsea.jpg --style=examples/swirls.jpg --tv_weight=10
  python run.py --mode=content --content=photo.jpg --content_layers=conv2_1     # reconstruction
  python run.py --mode=texture --style=painting.jpg                              # texture synthesis
  python run.py --flagfile=flags/paper.flags --content=... --style=...           # a preset
  python run.py --content=... --style=... --sweep=ratio:1e-4,1e-3 --sweep=seed:1,2  # a comparison grid
  python run.py --resume=outputs/<run>                                           # continue a stopped run
  python run.py --list_layers --backbone=resnet50                                # layers, shapes, defaults
  python run.py --content=... --style=... --preserve_colors=luminance            # keep the photo's colours
  python run.py --content=... --style=a.jpg,b.jpg --style_blend_weights=0.7,0.3  # blend two styles
  python run.py --content=... --style=a.jpg,b.jpg --content_mask=m.png --style_mask=#ff0000,#0000ff
  python run.py --content=... --style=... --max_size=1024 --scales=256,512,1024  # coarse to fine
  python run.py --mode=train --style=painting.jpg [--train_images=DIR]          # a feed-forward stylizer
  python run.py --mode=apply --model=outputs/<run>/stylizer.keras --content=photos/  # one pass per photo
  python run.py --serve [--port=8765] [--host=0.0.0.0 --token=...]                # the web page (docs/web.md)

This file alone defines and reads flags; it turns them into one frozen `nst_tf.config.Config` and hands
it to `nst_tf.lifecycle.command`, which runs every mode (as the Python API does) and says how it ended:
errors in the input end with one line on stderr and exit status 2; Ctrl-C or SIGTERM saves the last image
and the state for --resume and exits with status 130; an unexpected error (a bug) prints its traceback and
exits 1.
"""
from __future__ import annotations

import os
import signal
import sys


# Until the engine has loaded, a signal ends the process at once: nothing has been written, and a
# KeyboardInterrupt raised while the imports run can be lost (raised inside a finalizer, Python prints
# "Exception ignored" and goes on: a Ctrl-C at 1.5 s was once ignored and the run went on). Set by the
# __main__ block below; callers that import run.py keep KeyboardInterrupt.
_exit_at_once = False


def _raise_interrupt(signum, frame):
    if _exit_at_once:
        _stopped_while_starting(KeyboardInterrupt, None, None)
    raise KeyboardInterrupt


def _stopped_while_starting(kind, value, tb):
    """sys.excepthook: Ctrl-C or SIGTERM before main() catches them (while the imports below run) ends
    like any other stop, with one line and exit status 130, not a KeyboardInterrupt traceback."""
    if not issubclass(kind, KeyboardInterrupt):
        return sys.__excepthook__(kind, value, tb)
    print("stopped: interrupted while starting; nothing was written.", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":   # first of all: SIGTERM stops like Ctrl-C from the first line on
    _exit_at_once = True
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    sys.excepthook = _stopped_while_starting

import contextlib  # noqa: E402

from absl import flags  # noqa: E402

from nst_tf import config as schema  # noqa: E402
from nst_tf import comparison, image_io, lifecycle, rundir  # noqa: E402
from nst_tf.config import REFERENCE_SIZE, Config  # noqa: E402
from nst_tf.errors import UserError  # noqa: E402
from nst_tf.inputs import photo_files  # noqa: E402


def define_flags() -> None:
    """One absl flag per config option (`nst_tf.config.options`): the same name, type, default and help,
    so that no option can be missing from the command line."""
    for opt in schema.options():
        default = opt.default
        if opt.choices:
            flags.DEFINE_enum(opt.name, default, opt.choices, opt.help)
        elif opt.multi:
            flags.DEFINE_multi_string(opt.name, list(default), opt.help)
        elif opt.is_tuple:
            flags.DEFINE_list(opt.name, [str(v) for v in default], opt.help)
        elif opt.text:
            flags.DEFINE_string(opt.name, str(default), opt.help)
        elif opt.kind is bool:
            flags.DEFINE_bool(opt.name, default, opt.help)
        elif opt.kind is int:
            flags.DEFINE_integer(opt.name, default, opt.help)
        elif opt.kind is float:
            flags.DEFINE_float(opt.name, default, opt.help)
        else:
            flags.DEFINE_string(opt.name, default, opt.help)


define_flags()
# The command line's own flags (not options of a run):
flags.DEFINE_bool("list_layers", False, "Print the backbone's layers with their output shapes at "
                  "--max_size (and --content's aspect, if given) and its default layers, then exit.")
flags.DEFINE_bool("progress", True, "Show the progress bar.")
flags.DEFINE_string("resume", None, "Continue the run stopped in this folder (outputs/<run>) from its saved "
                    "image and optimizer state, with its own flags (its run.flags); flags given too override them "
                    "(e.g. a larger --num_steps to extend a finished run).")
# The web page (nst_tf/web): python run.py --serve [--port=N] [--host=H --token=T] [--output_dir=D]
flags.DEFINE_bool("serve", False, "Serve the web page (start runs, watch them, browse --output_dir) on --host:--port "
                  "until Ctrl-C; needs the web extra (pip install -e '.[web]'). See docs/web.md.")
flags.DEFINE_string("host", "127.0.0.1", "--serve: the address to listen on; other than loopback needs a token.")
flags.DEFINE_integer("port", 8765, "--serve: the port (0: any free one; the address is printed).")
flags.DEFINE_string("token", None, "--serve: the token every request must carry (default: none on 127.0.0.1, "
                    "a new one printed for any other --host).")

FLAGS = flags.FLAGS


def config_from_flags() -> Config:
    """The validated, frozen config the flags describe."""
    return schema.config_from_values({opt.name: FLAGS[opt.name].value for opt in schema.options()})


def given_options() -> dict:
    """{option: value} of the options given on the command line (or in a --flagfile), typed as the config
    holds them: what overrides a resumed run's own."""
    return {opt.name: schema.typed_value(opt, FLAGS[opt.name].value)
            for opt in schema.options() if FLAGS[opt.name].present}


@contextlib.contextmanager
def _stderr_muted(muted: bool):
    """Sends file descriptor 2 (C++ code writes there too, not only Python) to /dev/null inside the block."""
    if not muted:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _load_engine(config: Config | None) -> None:
    """Imports the mode's work (or the layer listing) and starts TensorFlow's runtime, without its C++
    start-up lines.

    TensorFlow prints lines like "cudart_stub.cc: Could not find cuda drivers" before its log level
    applies, so stderr is muted while it loads. Set TF_CPP_MIN_LOG_LEVEL yourself (e.g. to 0 when
    debugging a GPU) to see everything.
    """
    muted = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_muted(muted):
        if config is None:
            from nst_tf import list_layers  # noqa: F401
        else:
            lifecycle.mode_of(config).load()
        import tensorflow as tf
        tf.config.list_logical_devices()   # the runtime's own start-up lines come here


def _read_flags(argv: list[str]) -> list[str]:
    """FLAGS(argv), with a flagfile that is not text (absl raises UnicodeDecodeError, naming no file)
    turned into a UserError naming it."""
    try:
        return FLAGS(argv)
    except UnicodeDecodeError:
        for arg in argv[1:]:
            name = arg.split("=", 1)[1] if arg.lstrip("-").startswith("flagfile=") else None
            try:
                if name:
                    open(name).read()
            except UnicodeDecodeError:
                break
            except OSError:
                pass
        else:
            name = None
        where = repr(name) if name else "a file named by --flagfile"
        raise UserError(f"{where} is not a text flagfile (it holds binary bytes); a flagfile has one "
                        "--name=value per line, like the run.flags of a run folder.") from None


HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "-?", "--helpfull", "-helpfull")


def _help(full: bool) -> str:
    """absl's own help: this file's flags (--help), or every module's, grouped by module (--helpfull)."""
    usage = "\n\n".join(__doc__.split("\n\n")[:2]).strip()
    flags_help = (FLAGS.get_help() if full else FLAGS.module_help(FLAGS.find_module_defining_flag("content"))).strip()
    more = "" if full else "\n\n--helpfull also lists absl's own flags (--flagfile, --undefok)."
    return f"{usage}\n\nflags:\n\n{flags_help}{more}"


def parse(argv: list[str]) -> tuple[Config | None, list, str | None]:
    """(config, sweep cells, folder to resume) from the command line; every check that needs no
    TensorFlow. Raises UserError or flags.Error with a one-line message. With --list_layers the config
    is None."""
    resume_dir = None
    rest = _read_flags(argv)
    if len(rest) > 1:
        raise UserError(f"unexpected argument {rest[1]!r}; options are written --name=value.")
    if FLAGS.list_layers:   # needs only the backbone, the size and the content image's aspect
        if FLAGS.content:
            image_io.check_image_path(FLAGS.content)
        return None, [], None
    if FLAGS.resume:   # the run's own flags (its run.flags), the ones given here on top
        resume_dir = os.path.normpath(FLAGS.resume)
        config = rundir.resumed_config(resume_dir, given_options())
    else:
        config = config_from_flags()
    lifecycle.check_options(config)   # an option this mode does not read but names another: refused here
    from nst_tf import video   # a clip (--content=clip.mp4): its file checked here, before TensorFlow loads
    clip = video.is_clip(config) and video.check(config)
    clips = video.clip_files(config)   # many clips: the options checked here, each clip's file when its turn comes
    if clips:
        video.check_options(config)
    cells = [] if config.feed_forward or clip or clips else comparison.expand(config)
    many = bool(clip) or bool(clips) or photo_files(config.images.content) is not None   # a bad one fails alone
    if config.stylizer.model:
        image_io.check_model_path(config.stylizer.model)
    for cfg in [c.config for c in cells] or [config]:
        for kind, paths in cfg.image_paths.items():
            for path in paths:
                if not (many and kind == "content"):
                    image_io.check_image_path(path)   # fail in a blink, before TensorFlow loads
    return config, cells, resume_dir


def _message(error: Exception) -> str:
    """The one line of a flag error, without the "ERROR:" that some of absl's messages start with."""
    return " ".join(str(error).split()).removeprefix("ERROR::").removeprefix("ERROR:").strip()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)   # again, for callers that import run.py
    try:
        return _main(argv)
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM while parsing flags or loading TensorFlow
        return _ended(KeyboardInterrupt())


def _ended(error: BaseException | None) -> int:
    status, line = lifecycle.exit_status(error)
    if line:
        print(line, file=sys.stderr)
    return status


def _engine_loaded() -> None:
    """From here on a signal raises KeyboardInterrupt, which the run turns into a saved stop."""
    global _exit_at_once
    if _exit_at_once:
        _exit_at_once = False
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _serve(argv: list[str]) -> int | None:
    """--serve: the web page instead of a run (the runs it starts are run.py in child processes); None
    for --serve=false."""
    global _exit_at_once
    try:
        if len(_read_flags(argv)) > 1:
            raise UserError("unexpected argument; options are written --name=value.")
        if FLAGS.serve:   # Ctrl-C and SIGTERM are the server's (uvicorn's): it stops the running run first
            _exit_at_once = False
            signal.signal(signal.SIGINT, signal.default_int_handler)
            import nst_tf
            nst_tf.serve(FLAGS.output_dir, FLAGS.host, FLAGS.port, FLAGS.token)
            return 0
    except (flags.Error, UserError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return None


def _main(argv: list[str]) -> int:
    wanted = [arg for arg in argv[1:] if arg in HELP_FLAGS]
    if wanted:
        print(_help(full=any(arg.endswith("helpfull") for arg in wanted)))
        return 0
    if any(arg.lstrip("-").split("=")[0] == "serve" for arg in argv[1:]) and (code := _serve(argv)) is not None:
        return code
    try:
        config, _, resume_dir = parse(argv)
    except (flags.Error, UserError) as e:
        return _ended(UserError(_message(e)))
    _load_engine(config)   # TensorFlow loads here, after the flags are known to be good.
    _engine_loaded()
    if config is None:   # --list_layers
        from nst_tf import list_layers
        try:
            size = schema.parse_max_size(FLAGS.max_size)
            print(list_layers.describe(FLAGS.backbone, size or REFERENCE_SIZE, FLAGS.pooling, FLAGS.content))
        except UserError as e:
            return _ended(e)
        return 0
    return lifecycle.command(config, resume_dir=resume_dir, show_progress=FLAGS.progress)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
