"""Applying a trained stylizer: photos in, stylized photos out, one forward pass each (--mode=apply).

`load(path)` reads a stylizer.keras, or a stylizer.onnx (--export=onnx) to run on onnxruntime (a UserError in
one line for anything that is not one); `Stylizer` runs either on images [H, W, 3] in [0, 1] with the style
weights mixing its styles; `work` (--mode=apply) stylizes
--content (an image, a folder or a pattern) at --max_size into a run folder: result.png for one image,
results/<name>.png for several, with --preserve_colors=luminance or swap applied after, run.flags and a
summary.json whose details hold the milliseconds per image.
"""
from __future__ import annotations

import os
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from nst_tf import color, image_io, lifecycle
from nst_tf.config import Config, is_onnx, validate
from nst_tf.errors import UserError, stop_if_requested
from nst_tf.inputs import photo_files
from nst_tf.plan import pick_device
from nst_tf.stylizer import network
from nst_tf.stylizer.onnx_model import OnnxStylizer


def load(path: str) -> keras.Model | OnnxStylizer:
    """The stylizer saved at `path`: a .keras file written by --mode=train (a Keras model), or a .onnx file
    written by --export=onnx (an OnnxStylizer, run on onnxruntime)."""
    image_io.check_model_path(path)
    if is_onnx(path):
        return OnnxStylizer(path)
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path!r} is not a Keras model file (.keras); name the stylizer.keras of a --mode=train run.")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:   # Keras raises many kinds for a foreign or damaged file
        raise UserError(f"cannot load {path!r} as a stylizer ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                        "train one with --mode=train.") from None
    if len(model.inputs) != 2 or tuple(model.inputs[0].shape[1:]) != (None, None, 3):
        raise UserError(f"{path!r} is a Keras model but not a stylizer (inputs: image and style weights); "
                        "train one with --mode=train.")
    return model


def style_names(model: keras.Model | OnnxStylizer) -> tuple[str, ...]:
    """The style names a loaded stylizer holds (network.style_names_of), of a Keras model or an ONNX one."""
    if isinstance(model, OnnxStylizer):
        return network.style_names_in(model.name, model.num_styles)
    return network.style_names_of(model)


class Stylizer:
    """A loaded stylizer with its style weights: `stylizer(image [H, W, 3]) -> [H, W, 3]` and
    `stylizer.batch(images [B, H, W, 3])`; a Keras model under `tf.function` (without XLA, which was 1.3x
    slower on a quiet CPU, docs/realtime.md) on `device` (a TensorFlow device name; None: TensorFlow's
    choice), an ONNX one run on onnxruntime (`device` then only names it)."""

    def __init__(self, model: keras.Model | OnnxStylizer, style_weights: tuple[float, ...] = (),
                 device: str | None = None):
        self.model, self.device = model, device
        self.names = names = style_names(model)
        count = len(names)
        if style_weights and len(style_weights) != count:
            raise UserError(f"--style_blend_weights has {len(style_weights)} values but the stylizer holds {count} "
                            f"style{'s' * (count > 1)} ({', '.join(names)}): give one per style.")
        weights = np.asarray(style_weights or (1.0,) + (0.0,) * (count - 1), np.float32)
        self.style_weights = (weights / weights.sum())[None]   # [1, S]
        if isinstance(model, OnnxStylizer):   # numpy in and out, as the compiled Keras forward below
            self._forward = model
        else:
            compiled = tf.function(lambda x, w: model([x, w], training=False), reduce_retracing=True)

            def forward(x, w):
                with tf.device(device):
                    return compiled(tf.constant(x), tf.constant(w)).numpy()
            self._forward = forward

    def batch(self, images: np.ndarray) -> np.ndarray:
        """[B, H, W, 3] -> [B, H, W, 3], every image with the style weights."""
        images = np.asarray(images, np.float32)
        return self._forward(images, np.repeat(self.style_weights, len(images), axis=0))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.batch(image[None])[0]


def open_stylizer(config: Config, say=print) -> Stylizer:
    """--model with --style_blend_weights, loaded and run on --device (a .onnx file on onnxruntime's CPU); says
    which style is used when the stylizer holds several and no weights mix them. `.device` names where it runs."""
    model_path, given = config.stylizer.model, config.images.style_blend_weights
    onnx = is_onnx(model_path)
    device = "onnxruntime:CPU" if onnx else pick_device(config.optim.device)
    with tf.device(None if onnx else device):   # a Keras model's weights placed where its forward pass runs
        stylizer = Stylizer(load(model_path), blend_weights_of(given), device)
    names = stylizer.names
    if not given and len(names) > 1:
        say(f"the stylizer holds {len(names)} styles ({', '.join(names)}); using {names[0]} "
            "(--style_blend_weights mixes them)")
    return stylizer


def work(run: lifecycle.Run) -> None:
    """--mode=apply: stylizes --content (an image, a folder or a pattern) with --model in a new run folder."""
    config, say = validate(run.config), run.say
    im, st = config.images, config.stylizer
    stylizer = open_stylizer(config, say)
    run_dir = run.open(config)
    run.record(device=stylizer.device, details={"model": st.model, "images": 0, "skipped": [],
                                       "style_weights": stylizer.style_weights[0].tolist()})
    if st.export:
        from nst_tf.stylizer import export
        for path in export.export(stylizer.model, run_dir, st.export):
            say(f"exported: {path}")
    if not im.content:
        return
    many = photo_files(im.content)
    photos = many or (im.content,)
    timings, failed = [], []
    for path in photos:
        stop_if_requested()
        try:
            photo = image_io.load_resized(path, im.max_size)
        except UserError as e:
            if many is None:
                raise
            failed.append(path)
            say(f"skipped: {e}")
            continue
        start = time.perf_counter()
        result = stylizer(photo)
        timings.append(time.perf_counter() - start)
        result = color.final_image(im.preserve_colors, result, photo)
        name = (os.path.join("results", os.path.splitext(os.path.basename(path))[0] + ".png") if many
                else "result.png")
        os.makedirs(os.path.dirname(os.path.join(run_dir, name)), exist_ok=True)
        image_io.save_image(result, os.path.join(run_dir, name))
        run.record(steps=len(timings))
    if not timings:
        raise UserError(f"none of the {len(photos)} photos in {im.content!r} could be read.")
    run.details.update(images=len(timings), skipped=failed,
                       # the first image of each size includes compiling; the median is the steady state
                       ms_per_image_median=round(1000 * float(np.median(timings)), 2),
                       ms_first_image=round(1000 * timings[0], 2))
    where = os.path.join(run_dir, "results" if many else "result.png")
    say(f"result{'s' * bool(many)}: {where} ({len(timings)} image{'s' * (len(timings) > 1)}, "
        f"{1000 * float(np.median(timings)):.0f} ms each)")


def apply(config: Config, say=print) -> str:
    """`nst_tf.lifecycle.run` of a --mode=apply config, kept for scripts that call it; returns the run folder."""
    return lifecycle.run(config, say=say)


def blend_weights_of(weights: tuple[float, ...]) -> tuple[float, ...]:
    """--style_blend_weights normalized to sum 1 (empty stays empty: the first style)."""
    return tuple(float(w) / sum(weights) for w in weights) if weights else ()
