"""The temporal term: how far a frame's result is from the earlier results warped
to it, where the warp is reliable (Ruder, Dosovitskiy & Brox 2016, "Artistic style transfer for videos").
"""
from __future__ import annotations

import tensorflow as tf


def temporal_loss(images: tf.Tensor, warped: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """[B] the temporal term of each image, Ruder et al.'s eq. (5) summed over the earlier frames k:

      L(x) = sum_k 1/D sum_{i,j,ch} c_k[i, j] (x[i, j, ch] - w_k[i, j, ch])^2,   D = H * W * 3

    images: [B, H, W, 3] in [0, 1]; warped: [B, K, H, W, 3] the earlier results warped to this frame (w_k);
    weights: [B, K, H, W] their per-pixel reliabilities c_k in [0, 1] (zero for an earlier frame that does
    not exist). Zero when the image equals its warped predecessors wherever they are reliable."""
    diff = tf.square(images[:, None] - warped) * weights[..., None]
    return tf.reduce_sum(tf.reduce_mean(diff, axis=[2, 3, 4]), axis=1)

