"""The stylizer as an ONNX graph (--export=onnx) and run on onnxruntime (--mode=apply --model=stylizer.onnx).

`to_onnx(model)` writes the graph layer by layer from the Keras stylizer (nst_tf.stylizer.network): one
ONNX form for each of its layer types, NCHW inside (onnxruntime's convolutions' own layout; one transpose
at the input and one at the output), the instance normalization as onnxruntime's fused
InstanceNormalization kernel with the style's scale and shift after it. The graph takes what the Keras
model takes and gives its image:

  image          [B, H, W, 3] float32 in [0, 1], any H and W
  style_weights  [B, S] float32
  -> stylized    [B, H, W, 3] float32 in [0, 1]

Why not tf2onnx (what `keras.Model.export(format="onnx")` calls): it converts this network too (to 2e-5,
once network.PadToMultiple avoided a modulo it mistranslates), but its graph keeps 33 full-size transposes
(its layout pass stops at the product with the style's scale, not a constant) and computes each
normalization in seven elementwise operations; onnxruntime's own optimizations make up for most of that (its
times were within the noise of this graph's, docs/realtime.md, "Speed against the fastest CPU peer"). It is
left out for the rest: 5 s to convert against 0.02 s here, a dependency tested only up to TensorFlow 2.15,
and the modulo it mistranslated. Writing the graph needs the `onnx` package, running it `onnxruntime`: the
`[onnx]` extra.
"""
from __future__ import annotations

import os

import numpy as np

from nst_tf.errors import UserError, require

OPSET = 17
IMAGE, STYLE_WEIGHTS, STYLIZED = "image", "style_weights", "stylized"


def to_onnx(model):
    """The Keras stylizer `model` (network.build_stylizer's layers) as an onnx.ModelProto, its weights
    copied in; the graph's name is the model's (it keeps the style names, network.style_names_in)."""
    require("onnx", "onnx", "--export=onnx")
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from nst_tf import __version__
    from nst_tf.stylizer import network

    nodes, constants, names = [], [], {}

    def const(name, array):
        constants.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(kind, inputs, name, **attributes):
        out = f"{name}/{kind}_{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attributes))
        return out

    image, weights = model.inputs
    names[id(image)] = op("Transpose", [IMAGE], "to_nchw", perm=[0, 3, 1, 2])
    names[id(weights)] = STYLE_WEIGHTS
    hw_axes = const("hw_axes", np.array([2, 3], np.int64))
    height_width = op("Slice", [op("Shape", [names[id(image)]], "image_shape"), const("two", np.array([2], np.int64)),
                                const("four", np.array([4], np.int64))], "image_size")
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = layer._inbound_nodes[0]   # each layer of the stylizer is called once
        x, n = [names[id(t)] for t in node.input_tensors], layer.name
        if isinstance(layer, network.PadToMultiple):   # bottom and right to the next multiple: (m - n % m) % m
            m = const(f"{n}/multiple", np.array([layer.multiple] * 2, np.int64))
            extra = op("Mod", [op("Sub", [m, op("Mod", [height_width, m], n)], n), m], n)
            pads = op("Concat", [const(f"{n}/zeros", np.zeros(6, np.int64)), extra], n, axis=0)
            out = op("Pad", [x[0], pads], n, mode="reflect")
        elif isinstance(layer, network.ReflectionPad):
            p = layer.pad
            out = op("Pad", [x[0], const(f"{n}/pads", np.array([0, 0, p, p, 0, 0, p, p], np.int64))], n,
                     mode="reflect")
        elif isinstance(layer, keras.layers.Conv2D) and _plain_conv(layer):
            kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            out = op("Conv", [x[0], const(f"{n}/kernel", kernel.transpose(3, 2, 0, 1)), const(f"{n}/bias", bias)], n,
                     kernel_shape=list(layer.kernel_size), strides=list(layer.strides))
        elif isinstance(layer, network.ConditionalInstanceNorm):
            gamma, beta = (np.asarray(w, np.float32) for w in (layer.gamma, layer.beta))
            channels = gamma.shape[1]
            normalized = op("InstanceNormalization", [x[0], const(f"{n}/ones", np.ones(channels, np.float32)),
                                                      const(f"{n}/zeros", np.zeros(channels, np.float32))],
                            n, epsilon=float(layer.epsilon))
            scale = op("Unsqueeze", [op("MatMul", [x[1], const(f"{n}/gamma", gamma)], n), hw_axes], n)
            shift = op("Unsqueeze", [op("MatMul", [x[1], const(f"{n}/beta", beta)], n), hw_axes], n)
            out = op("Add", [op("Mul", [normalized, scale], n), shift], n)
        elif isinstance(layer, keras.layers.ReLU) and _plain_relu(layer):
            out = op("Relu", x, n)
        elif isinstance(layer, keras.layers.Add):
            out = op("Add", x, n)
        elif isinstance(layer, network.Upsample):   # nearest by 2: output pixel i is input pixel floor(i / 2)
            out = op("Resize", [x[0], "", const(f"{n}/scales", np.array([1, 1, 2, 2], np.float32))], n, mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        elif isinstance(layer, keras.layers.Activation) and layer.get_config()["activation"] == "sigmoid":
            out = op("Sigmoid", x, n)
        elif isinstance(layer, network.CropTo):
            out = op("Slice", [x[0], const(f"{n}/starts", np.zeros(2, np.int64)), height_width, hw_axes], n)
        else:
            raise UserError(f"cannot export the stylizer {model.name!r} as ONNX: its layer {layer.name!r} "
                            f"({type(layer).__name__}) has no ONNX form in nst_tf.stylizer.onnx_model.")
        names[id(node.output_tensors[0])] = out
    nodes.append(helper.make_node("Transpose", [names[id(model.outputs[0])]], [STYLIZED], perm=[0, 2, 3, 1]))
    count = network.num_styles(model)
    graph = helper.make_graph(
        nodes, model.name,
        [helper.make_tensor_value_info(IMAGE, TensorProto.FLOAT, ["batch", "height", "width", 3]),
         helper.make_tensor_value_info(STYLE_WEIGHTS, TensorProto.FLOAT, ["batch", count])],
        [helper.make_tensor_value_info(STYLIZED, TensorProto.FLOAT, ["batch", "height", "width", 3])], constants)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nst_tf",
                              producer_version=__version__)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _plain_conv(layer) -> bool:
    config = layer.get_config()
    return (config["padding"] == "valid" and config["activation"] == "linear" and config["use_bias"]
            and tuple(config["dilation_rate"]) == (1, 1) and config.get("groups", 1) == 1
            and config.get("data_format", "channels_last") == "channels_last")


def _plain_relu(layer) -> bool:
    config = layer.get_config()
    return config.get("max_value") is None and not config.get("negative_slope") and not config.get("threshold")


def onnx_bytes(model) -> bytes:
    return to_onnx(model).SerializeToString()


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
