"""The feed-forward stylizer: Johnson et al.'s transformation network (or a narrower one), one pass per photo.

Johnson, Alahi and Fei-Fei 2016 ("Perceptual Losses for Real-Time Style Transfer and Super-Resolution"):
a 9x9 convolution, two stride-2 convolutions down, five residual blocks, two upsamplings back and a 9x9
convolution to RGB, with
  - instance normalization (Ulyanov et al. 2016) after every convolution but the last, conditional on the
    style (Dumoulin et al. 2017, "A Learned Representation for Artistic Style"): one scale gamma_s and shift
    beta_s per style s and channel, mixed at inference by the style weights w (gamma = sum_s w_s gamma_s);
  - reflection padding before every convolution (no zero border for the network to decorate);
  - upsampling by nearest-neighbour resize + convolution instead of transposed convolutions (no
    checkerboard, Odena et al. 2016);
  - a sigmoid at the end: the output is an image in [0, 1], as every image in nst_tf.
The model is fully convolutional: inputs of any size (reflect-padded to a multiple of 4 inside, the
output cropped back), `model([images [B, H, W, 3] in [0, 1], style_weights [B, S]]) -> [B, H, W, 3]`.
"""
from __future__ import annotations

import keras
import tensorflow as tf

NUM_RESIDUAL_BLOCKS = 5
# The network's two stride-2 convolutions: its inputs are padded to a multiple of this.
STRIDE = 4


@keras.saving.register_keras_serializable("nst_tf")
class ReflectionPad(keras.layers.Layer):
    """Mirrors `pad` px out on each side of an NHWC tensor (tf.pad REFLECT: the edge pixel is not repeated)."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad   # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable("nst_tf")
class PadToMultiple(keras.layers.Layer):
    """Mirrors the bottom and right edges out to the next multiple of `multiple` px (so the stride-2
    convolutions and the upsamplings give back the same size); `CropTo` cuts the output back."""

    def __init__(self, multiple: int = STRIDE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        shape = tf.shape(x)
        # (m - n % m) % m, not (-n) % m: tf2onnx turns the floor modulo of a negative number into a truncated
        # one (a negative pad, which ONNX's Pad reads as a crop)
        pad_h = (self.multiple - shape[1] % self.multiple) % self.multiple
        pad_w = (self.multiple - shape[2] % self.multiple) % self.multiple
        out = tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")
        # the channels made known again, in the graph too (TFLite's convolutions need them)
        return tf.reshape(out, [shape[0], shape[1] + pad_h, shape[2] + pad_w, x.shape[-1]])

    def compute_output_shape(self, shape):
        up = lambda n: None if n is None else -(-n // self.multiple) * self.multiple   # noqa: E731
        return (shape[0], up(shape[1]), up(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable("nst_tf")
class Upsample(keras.layers.Layer):
    """Nearest-neighbour upsampling by 2 (tf.image.resize, which TFLite runs as RESIZE_NEAREST_NEIGHBOR)."""

    def call(self, x):
        size = tf.shape(x)[1:3] * 2
        out = tf.image.resize(x, size, method="nearest")
        out.set_shape([None, None, None, x.shape[-1]])
        return out

    def compute_output_shape(self, shape):
        double = lambda n: None if n is None else 2 * n   # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), shape[3])


@keras.saving.register_keras_serializable("nst_tf")
class CropTo(keras.layers.Layer):
    """`call([x, like])`: the top-left part of x with like's height and width."""

    def call(self, inputs):
        x, like = inputs
        shape = tf.shape(like)
        return x[:, :shape[1], :shape[2], :]

    def compute_output_shape(self, shapes):
        x, like = shapes
        return (x[0], like[1], like[2], x[3])


@keras.saving.register_keras_serializable("nst_tf")
class ConditionalInstanceNorm(keras.layers.Layer):
    """Instance normalization with per-style scales and shifts (Dumoulin et al. 2017):

      y = gamma(w) * (x - mu) / sqrt(sigma^2 + eps) + beta(w),   gamma(w) = sum_s w_s gamma_s, beta likewise

    mu, sigma^2: each image's and channel's mean and variance over its positions; w [B, S]: the style
    weights (one-hot when training on style s, a blend at inference). gamma_s starts at 1, beta_s at 0.
    """

    def __init__(self, num_styles: int, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_styles = num_styles
        self.epsilon = epsilon

    def build(self, shapes):
        channels = shapes[0][-1]
        self.gamma = self.add_weight(name="gamma", shape=(self.num_styles, channels), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(self.num_styles, channels), initializer="zeros")

    def call(self, inputs):
        x, weights = inputs
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        gamma = tf.matmul(weights, self.gamma)[:, None, None, :]
        beta = tf.matmul(weights, self.beta)[:, None, None, :]
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * gamma + beta

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "num_styles": self.num_styles, "epsilon": self.epsilon}


# Channels of each part as multiples of the width: the two stride-2 convolutions, the residual blocks, the two
# upsamplings (the last stride-2 convolution and the blocks must agree: the blocks add their input). johnson:
# Johnson et al.'s 1-2-4-4-2-1. lite: the residual blocks at 2x and the last upsampling at half the width; the
# small real-time networks (magenta's multi-style one keeps 32 channels throughout and upsamples to 8 and 4) show
# that the blocks need not be 4x wide. The full-resolution layers cost the most (docs/realtime.md, "Speed").
ARCHS = {"johnson": ((2, 4), 4, (2, 1)), "lite": ((2, 2), 2, (1, 0.5))}


def build_stylizer(num_styles: int = 1, width: int = 32, style_names: tuple[str, ...] = (),
                   arch: str = "lite") -> keras.Model:
    """The transformation network for `num_styles` styles; `width` channels at full resolution, `arch`
    (ARCHS) the others (johnson: 2x, 4x deeper down, Johnson's 32, 64, 128; lite, the default: 2x, 2x).
    `style_names` (file stems) are kept in the model's name table (`style_names_of`), so that apply can say
    what it blends."""
    down, blocks, up = ARCHS[arch]
    image = keras.Input((None, None, 3), name="image")
    weights = keras.Input((num_styles,), name="style_weights")
    k = [0]

    def conv(x, filters, size, stride=1, norm=True, relu=True):
        k[0] += 1
        x = ReflectionPad(size // 2, name=f"pad{k[0]}")(x)
        x = keras.layers.Conv2D(filters, size, stride, padding="valid", name=f"conv{k[0]}")(x)
        if norm:
            x = ConditionalInstanceNorm(num_styles, name=f"norm{k[0]}")([x, weights])
        return keras.layers.ReLU(name=f"relu{k[0]}")(x) if relu else x

    x = PadToMultiple(name="pad_to_multiple")(image)
    channels = lambda factor: max(1, round(factor * width))   # noqa: E731
    x = conv(x, width, 9)
    for factor in down:
        x = conv(x, channels(factor), 3, 2)
    for b in range(NUM_RESIDUAL_BLOCKS):
        y = conv(conv(x, channels(blocks), 3), channels(blocks), 3, relu=False)
        x = keras.layers.Add(name=f"residual{b + 1}")([x, y])
    for factor in up:
        x = Upsample(name=f"up{k[0] + 1}")(x)
        x = conv(x, channels(factor), 3)
    x = conv(x, 3, 9, norm=False, relu=False)
    x = keras.layers.Activation("sigmoid", name="to_image")(x)
    out = CropTo(name="crop")([x, image])
    name = "stylizer__" + "__".join(style_names) if style_names else "stylizer"
    return keras.Model([image, weights], out, name=name)


def num_styles(model: keras.Model) -> int:
    """How many styles a stylizer holds (the width of its style_weights input)."""
    return int(model.inputs[1].shape[-1])


def style_names_of(model: keras.Model) -> tuple[str, ...]:
    """The style names kept in a stylizer's name at training, or style1, style2, ..."""
    return style_names_in(model.name, num_styles(model))


def style_names_in(name: str, count: int) -> tuple[str, ...]:
    """The `count` style names kept in a stylizer's model name ("stylizer__a__b"; an exported ONNX graph
    keeps it as its own name), or style1, style2, ..."""
    names = tuple(name.split("__")[1:]) if name.startswith("stylizer__") else ()
    return names if len(names) == count else tuple(f"style{i + 1}" for i in range(count))
