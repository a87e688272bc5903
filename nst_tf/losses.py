"""Pure loss math: content, Gram-matrix style and total variation.

Every function takes a batch and returns one value per image (shape [B]), so a batch of images with
different weights optimizes as independent runs. Feature maps are NHWC; for a layer l, N_l is its
channel count C and M_l = H * W its number of positions, as in Gatys et al., "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016 (the paper).
"""
from __future__ import annotations

import tensorflow as tf


def softmax_features(features: tf.Tensor, temperature: float = 1.0) -> tf.Tensor:
    """The softmax transform of Wang et al., "Rethinking and Improving the Robustness of Image Style
    Transfer" (CVPR 2021), over all N * M entries of each image's feature map, scaled by N * M:

      s_ik = N M exp(F_ik / T) / sum_jl exp(F_jl / T)         (i: channel, k: position; T: temperature)

    Residual networks have peaky, low-entropy activations: a few large values dominate the Gram matrix
    and the style term sees little else. The softmax spreads the map's mass by its exponent. Wang et al.
    use the softmax alone (entries summing to 1, and betas near 1e17); the factor N M makes the mean entry
    1, so the terms and their betas do not change with the image size.

    Args:
      features: [B, H, W, C] float32.
      temperature: T > 0; Wang et al. use 1.
    Returns:
      [B, H, W, C] float32, positive, with mean 1 per image.
    """
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1]) / temperature
    count = tf.cast(tf.shape(flat)[1], features.dtype)
    return tf.reshape(tf.nn.softmax(flat, axis=-1) * count, shape)


def gram_sum(features: tf.Tensor, masks: tf.Tensor | None = None) -> tf.Tensor:
    """The paper's Gram matrix (Eq. 3), G_ij = sum_k F_ik F_jk over the positions k; with masks, one per
    region, G^r_ij = sum_k m^r_k F_ik F_jk. Sums, so the Grams of an image's parts add up to the image's.

    Args:
      features: [B, H, W, C] float32.
      masks: None, or [R, H, W] float32 region masks.
    Returns:
      [B, C, C], or [B, R, C, C] with masks.
    """
    if masks is None:
        return tf.einsum("bhwi,bhwj->bij", features, features)
    weighted = features[:, None] * masks[None, :, :, :, None]   # [B, R, H, W, C]
    return tf.einsum("brhwi,bhwj->brij", weighted, features)


def gram_count(shape: tuple | None, masks: tf.Tensor | None = None) -> tf.Tensor:
    """What a Gram sum is divided by, the one place of that normalization: the layer's number of
    positions M = h * w for `shape` = (h, w), or with `masks` [R, h, w] each region's size
    sum_k m^r_k (at least 1e-8, so an empty region gives zeros), shaped [1, R, 1, 1] to divide a
    [B, R, C, C] sum."""
    if masks is None:
        return tf.cast(shape[0] * shape[1], tf.float32)
    size = tf.reduce_sum(tf.convert_to_tensor(masks, tf.float32), axis=[1, 2])
    return tf.maximum(size, 1e-8)[None, :, None, None]


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """The Gram matrix of the paper's Eq. 3 divided by the layer's number of positions M = H * W:

      g_ij = G_ij / M = (1/M) * sum_k F_ik F_jk

    Dividing by M makes Gram matrices of images of different sizes comparable (a style image need not
    have the content image's size) and keeps float32 far from overflow at large sizes.

    Args:
      features: [B, H, W, C] float32.
    Returns:
      [B, C, C] float32.
    """
    return gram_sum(features) / gram_count((tf.shape(features)[1], tf.shape(features)[2]))


def masked_gram(features: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """Guided Gram matrices (Gatys et al. 2017, Sec. 4), one per region, each normalized by its region's size:

      g^r_ij = sum_k m^r_k F_ik F_jk / sum_k m^r_k          (k: positions; m^r: region r's mask, in [0, 1])

    A mask of all ones gives `gram_matrix`. The division makes a small region's Gram comparable to a large
    one's (the seeds' spatial-control report divides by the region's size N_{x_k} too). An empty region
    gives zeros.

    Args:
      features: [B, H, W, C] float32.
      masks: [R, H, W] float32, the regions at this layer's size (`masks.resize_to`).
    Returns:
      [B, R, C, C] float32.
    """
    return gram_sum(features, masks) / gram_count(None, masks)


def content_loss(features: tf.Tensor, target: tf.Tensor, kind: str = "l2") -> tf.Tensor:
    """Content term of one layer, per image.

      l2 (the paper's Eq. 1): 1/2 * sum_ij (F_ij - P_ij)^2
      l1 (the reports' variant): sum_ij |F_ij - P_ij|

    Sums, not means: the term grows with the layer's size N_l * M_l (see README, "Weights").

    Args:
      features: [B, H, W, C] features F of the image being optimized.
      target: [1 or B, H, W, C] features P of the content image (broadcast over the batch).
      kind: "l2" or "l1".
    Returns:
      [B] float32.
    """
    diff = features - target
    if kind == "l2":
        return 0.5 * tf.reduce_sum(tf.square(diff), axis=[1, 2, 3])
    if kind == "l1":
        return tf.reduce_sum(tf.abs(diff), axis=[1, 2, 3])
    raise ValueError(f"unknown content loss {kind!r}")


def style_layer_loss(gram: tf.Tensor, target_gram: tf.Tensor, norm: str = "paper") -> tf.Tensor:
    """Style term E_l of one layer, per image, from `gram_matrix` outputs g = G/M and a = A/M.

    With N = channels of this layer (each layer its own N and M):
      paper     (the paper's Eq. 4): 1/(4 N^2 M^2) * sum_ij (G_ij - A_ij)^2  = 1/(4 N^2) * sum_ij (g_ij - a_ij)^2
      positions (TensorFlow tutorial: Gram divided by M, then the mean over the N^2 entries):
                1/N^2 * sum_ij (g_ij - a_ij)^2                               = 4 * paper
      elements  (PyTorch tutorial: Gram divided by N*M, then the mean over the N^2 entries):
                1/N^4 * sum_ij (g_ij - a_ij)^2                               = 4/N^2 * paper

    Args:
      gram: [B, ..., N, N] normalized Gram matrices g of the image being optimized (e.g. [B, R, N, N],
        one per region).
      target_gram: normalized Gram matrices a of the style image, broadcast against `gram`.
      norm: "paper", "positions" or "elements".
    Returns:
      [B, ...] float32.
    """
    n2 = tf.square(tf.cast(tf.shape(gram)[-1], gram.dtype))
    sq = tf.reduce_sum(tf.square(gram - target_gram), axis=[-2, -1]) / n2
    if norm == "paper":
        return 0.25 * sq
    if norm == "positions":
        return sq
    if norm == "elements":
        return sq / n2
    raise ValueError(f"unknown Gram normalization {norm!r}")


def total_variation(images: tf.Tensor) -> tf.Tensor:
    """Squared total variation per image, on the project's pixel scale [0, 1]:

      TV(x) = sum_{i,j,c} (x_{i+1,j,c} - x_{i,j,c})^2 + (x_{i,j+1,c} - x_{i,j,c})^2

    (the beta = 2 regularizer of Mahendran & Vedaldi 2015, as jcjohnson/neural-style uses it, whose images
    are on a 0..255 scale: its tv_weight is ours divided by 255^2). It grows with the number of pixels,
    like the content term.

    Args:
      images: [B, H, W, 3] float32 in [0, 1].
    Returns:
      [B] float32.
    """
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_sum(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_sum(tf.square(dx), axis=[1, 2, 3])
