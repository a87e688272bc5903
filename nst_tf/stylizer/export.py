"""Exporting a stylizer for the places it is used: a TensorFlow SavedModel, a TFLite file and an ONNX file
(--export).

Each takes what the Keras model takes, an image batch [B, H, W, 3] float32 in [0, 1] of any size and the
style weights [B, S], and gives its image (tests/test_stylizer_export.py checks each against the Keras model):

  stylizer_saved_model/   tf.saved_model.load(path).signatures["serving_default"](image=..., style_weights=...)
                          -> {"stylized": [B, H, W, 3]}
  stylizer.tflite         tf.lite.Interpreter: resize_tensor_input to the image's shape, then invoke
  stylizer.onnx           onnxruntime.InferenceSession(path).run(["stylized"], {"image": ..., "style_weights": ...});
                          tf2onnx's conversion of the serving function; --mode=apply --model=stylizer.onnx runs
                          it so (nst_tf.stylizer.onnx_model)

Each is written beside stylizer.keras, atomically (a stopped export leaves the previous one).
"""
from __future__ import annotations

import logging
import os
import shutil

import keras
import tensorflow as tf

from nst_tf.errors import require
from nst_tf.image_io import atomic_write
from nst_tf.stylizer import network

SAVED_MODEL = "stylizer_saved_model"
TFLITE = "stylizer.tflite"
ONNX = "stylizer.onnx"
ONNX_OPSET = 17


def serving_function(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """The model as a tf.function of (image [None, None, None, 3], style_weights [None, S]) -> {"stylized"}."""
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
                                  tf.TensorSpec([None, network.num_styles(model)], tf.float32, name="style_weights")])
    def serve(image, style_weights):
        return {"stylized": model([image, style_weights], training=False)}
    return serve


def save_saved_model(model: keras.Model, folder: str) -> str:
    path = os.path.join(folder, SAVED_MODEL)
    partial = os.path.join(folder, ".partial." + SAVED_MODEL)
    shutil.rmtree(partial, ignore_errors=True)
    module = tf.Module()
    module.model = model
    module.serve = serving_function(model)
    tf.saved_model.save(module, partial, signatures={"serving_default": module.serve})
    old = path + ".old"
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(partial, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def tflite_bytes(model: keras.Model) -> bytes:
    """The stylizer as a TFLite flatbuffer: the serving function with its weights frozen into constants
    (left as variables, TFLite's READ_VARIABLE reads garbage once the input is resized)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    frozen = convert_variables_to_constants_v2(serving_function(model).get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen], model).convert()


def save_tflite(model: keras.Model, folder: str) -> str:
    path = os.path.join(folder, TFLITE)
    content = tflite_bytes(model)
    atomic_write(path, lambda f: f.write(content))
    return path


def onnx_bytes(model: keras.Model) -> bytes:
    """The serving function (`serving_function`) converted to ONNX by tf2onnx (the [onnx] extra), the graph
    named as the model (its style names)."""
    require("tf2onnx", "onnx", "--export=onnx")
    import tf2onnx
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)   # its conversion log is not the user's business
    serve = serving_function(model)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=ONNX_OPSET)
    proto.graph.name = model.name
    return proto.SerializeToString()


def save_onnx(model: keras.Model, folder: str) -> str:
    path = os.path.join(folder, ONNX)
    content = onnx_bytes(model)
    atomic_write(path, lambda f: f.write(content))
    return path


def export(model: keras.Model, folder: str, formats: tuple[str, ...]) -> list[str]:
    """Writes each of `formats` (saved_model, tflite, onnx) into `folder`; returns the paths written."""
    writers = {"saved_model": save_saved_model, "tflite": save_tflite, "onnx": save_onnx}
    return [writers[name](model, folder) for name in formats]


def run_tflite(content: bytes, image, style_weights):
    """The TFLite model's output for one batch (numpy in, numpy out), as an app runs it: the inputs
    resized to the batch's shapes, then invoked. LiteRT's interpreter (the ai-edge-litert package, which
    replaces tf.lite.Interpreter) when installed, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=content)
    index = {("image" if "image" in d["name"] else "style_weights"): d["index"]
             for d in interpreter.get_input_details()}
    interpreter.resize_tensor_input(index["image"], list(image.shape))
    interpreter.resize_tensor_input(index["style_weights"], list(style_weights.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index["image"], image)
    interpreter.set_tensor(index["style_weights"], style_weights)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
