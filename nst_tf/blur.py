"""The binomial gradient blur: Adam's image gradient, and the gradient that reaches a stylizer or an octave
copy, without the 2 px component that the network's strided layers put into it (docs/quality.md)."""
from __future__ import annotations

import tensorflow as tf


def blur_gradient(gradient: tf.Tensor, passes: int) -> tf.Tensor:
    """`gradient` [B, H, W, C] convolved `passes` times with the 3x3 binomial filter b b^T, b = [1, 2, 1] / 4,
    each channel alone, the edge rows and columns repeated outward (so a constant stays constant):

      g'[i, j] = sum_{u, v in -1..1} b[u] b[v] g[i + u, j + v]

    Its frequency response (cos(pi f_y) cos(pi f_x))^2 is 0 at the 2 px period (f = 1/2 cycle per px), 1/2
    at the 4 px period along an axis (1/4 on a diagonal), 1/4 at 3 px along an axis, and 1 at f = 0.
    """
    for _ in range(passes):
        for axis in (1, 2):   # separable: b along the rows, then along the columns
            pad = [[0, 0]] * 4
            pad[axis] = [1, 1]
            padded = tf.pad(gradient, pad, mode="SYMMETRIC")
            n = tf.shape(padded)[axis]
            def part(start, stop, axis=axis, padded=padded):
                return tf.gather(padded, tf.range(start, stop), axis=axis)
            gradient = (part(0, n - 2) + 2.0 * part(1, n - 1) + part(2, n)) / 4.0
    return gradient


def blurred_backward(images: tf.Tensor, passes: int) -> tf.Tensor:
    """Identity forward; backward, the incoming gradient blurred by `blur_gradient` (`passes` times): what
    reaches whatever made `images` (a stylizer's weights in --mode=train) has no 2 px component either."""
    if passes <= 0:
        return images

    @tf.custom_gradient
    def identity(x):
        return tf.identity(x), lambda dy: blur_gradient(dy, passes)
    return identity(images)
