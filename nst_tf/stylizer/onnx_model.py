"""A stylizer.onnx (--export=onnx, nst_tf.stylizer.export) run on onnxruntime (--mode=apply
--model=stylizer.onnx). The graph takes what the Keras model's serving signature takes and gives its image:

  image          [B, H, W, 3] float32 in [0, 1], any H and W
  style_weights  [B, S] float32
  -> stylized    [B, H, W, 3] float32 in [0, 1]

and its name is the Keras model's (it keeps the style names, network.style_names_in). onnxruntime fuses
each convolution with its activation and runs the instance normalizations in its own kernels, which is
where TensorFlow's CPU time went (docs/realtime.md, "Speed against the fastest CPU peer").
"""
from __future__ import annotations

import os

import numpy as np

from nst_tf.errors import UserError, require

IMAGE, STYLE_WEIGHTS, STYLIZED = "image", "style_weights", "stylized"


class OnnxStylizer:
    """A stylizer.onnx on onnxruntime's CPU provider: `stylizer(images [B, H, W, 3], style_weights [B, S])
    -> [B, H, W, 3]`, float32 numpy in and out, any image size. `path` may also be the file's bytes.

    threads: onnxruntime's intra-op threads; None: one per core, as TensorFlow takes."""

    def __init__(self, path: str | bytes, threads: int | None = None):
        require("onnxruntime", "onnx", "a stylizer.onnx")
        import onnxruntime as ort
        where = "the ONNX bytes" if isinstance(path, bytes) else repr(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3   # its warnings are about the graph's optimizations, not the user's input
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:   # onnxruntime raises its own kinds (InvalidProtobuf, Fail, ...) for a bad file
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
            raise UserError(f"cannot load {where} as an ONNX stylizer ({type(e).__name__}: {first}); "
                            "write one with --export=onnx.") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if (set(inputs) != {IMAGE, STYLE_WEIGHTS} or outputs != [STYLIZED] or inputs[IMAGE][-1] != 3
                or len(inputs[STYLE_WEIGHTS]) != 2 or not isinstance(inputs[STYLE_WEIGHTS][1], int)):
            raise UserError(f"{where} is an ONNX model but not a stylizer (inputs image and style_weights, output "
                            f"stylized); write one with --export=onnx.")
        self.name = self.session.get_modelmeta().graph_name
        self.num_styles = inputs[STYLE_WEIGHTS][1]

    def __call__(self, images: np.ndarray, style_weights: np.ndarray) -> np.ndarray:
        feed = {IMAGE: np.ascontiguousarray(images, np.float32),
                STYLE_WEIGHTS: np.ascontiguousarray(style_weights, np.float32)}
        return self.session.run([STYLIZED], feed)[0]
