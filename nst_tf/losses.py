"""Pure loss math: content, Gram-matrix style, total variation, and the patch-based (MRF) style term.

Every function takes a batch and returns one value per image (shape [B]), so a batch of images with
different weights optimizes as independent runs. Feature maps are NHWC; for a layer l, N_l is its
channel count C and M_l = H * W its number of positions, as in Gatys et al., "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016 (the paper).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
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
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])   # [B, M, C]
    if masks is None:
        return _self_product(flat)
    weighted = features[:, None] * masks[None, :, :, :, None]   # [B, R, H, W, C]
    weighted = tf.reshape(weighted, [shape[0], tf.shape(masks)[0], shape[1] * shape[2], shape[3]])
    return tf.matmul(weighted, flat[:, None], transpose_a=True)


@tf.custom_gradient
def _self_product(flat: tf.Tensor):
    """F^T F for F [B, M, C], with the gradient of a symmetric product in one matmul,
    d/dF <D, F^T F> = F (D + D^T), where autodiff would run two (and einsum's gradient is slower still:
    bench/speed.py's profile)."""
    def grad(upstream):
        return tf.matmul(flat, upstream + tf.linalg.matrix_transpose(upstream))
    return tf.matmul(flat, flat, transpose_a=True), grad


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

    Sums, not means: the term grows with the layer's size N_l * M_l (see docs/controls.md, "Losses").

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


def relative_content_loss(features: tf.Tensor, target: tf.Tensor, kind: str = "l2") -> tf.Tensor:
    """The content term divided by its target's own magnitude (--normalize_terms), per image:

      l2: sum_ij (F_ij - P_ij)^2 / sum_ij P_ij^2          l1: sum_ij |F_ij - P_ij| / sum_ij |P_ij|

    Dimensionless: 0 at the content, 1 for F = 0, whatever the layer's size or the backbone's magnitudes.
    `content_loss(...) / content_scale(target)`; tiles sum the numerators and divide once (objective).
    """
    return content_loss(features, target, kind) / content_scale(target, kind)


def content_scale(target: tf.Tensor, kind: str = "l2") -> tf.Tensor:
    """What `content_loss` is divided by under --normalize_terms: 1/2 sum P^2 (l2), sum |P| (l1); [1 or B]."""
    if kind == "l2":
        return 0.5 * tf.reduce_sum(tf.square(target), axis=[1, 2, 3]) + 1e-30
    return tf.reduce_sum(tf.abs(target), axis=[1, 2, 3]) + 1e-30


def relative_style_loss(gram: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """The Gram style term divided by its target's own magnitude (--normalize_terms), per image:

      E_l = sum_ij (g_ij - a_ij)^2 / sum_ij a_ij^2        (g = G/M, a = A/M as in `gram_matrix`)

    Dimensionless (1 for g = 0), so every layer pulls whatever its channel count, its number of positions
    or the backbone's activation scale, and beta means the same for every backbone, image and size.
    """
    num = tf.reduce_sum(tf.square(gram - target_gram), axis=[-2, -1])
    return num / (tf.reduce_sum(tf.square(target_gram), axis=[-2, -1]) + 1e-30)


def sliced_scale(style_samples: tf.Tensor) -> tf.Tensor:
    """What the sliced term is divided by under --normalize_terms: the style samples' mean squared value,

      s = 1 / (M C) sum_j |S_j|^2        (S: `sliced_target`'s [M, C] samples)

    the term's value for an image whose features are all 0 along random unit directions, on average (E[(S v)^2] =
    |S|^2 / C). A network whose layer gives features c times larger makes both the term and s c^2 times larger,
    so their ratio is the same: the relative term is dimensionless, as `relative_style_loss` is for a Gram."""
    return tf.reduce_mean(tf.square(tf.cast(style_samples, tf.float32))) + 1e-30


def mean_total_variation(images: tf.Tensor) -> tf.Tensor:
    """`total_variation` divided by the number of its terms, 3 (H - 1) W + 3 H (W - 1): the mean squared
    difference of neighbouring pixels, the same for every image size (--normalize_terms)."""
    shape = tf.cast(tf.shape(images), tf.float32)
    count = shape[3] * ((shape[1] - 1) * shape[2] + shape[1] * (shape[2] - 1))
    return total_variation(images) / count


# ------------------------------------------------------------------ style statistics beyond the Gram
# --style_loss=mean_std|mean_cov|wasserstein work on the Gram matrix of the features with a constant channel
# of ones appended (`with_ones`): divided by M, its blocks are E[F F^T] (C x C), E[F] (the last column)
# and 1, so the mean and the covariance of the features at a layer come from one sum over positions, as
# the Gram does, and blends, guides (masked sums) and the whole-image code path work unchanged.

def with_ones(features: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] -> [B, H, W, C + 1], the last channel 1."""
    return tf.concat([features, tf.ones_like(features[..., :1])], axis=-1)


def moments(stats: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(mean [..., C], covariance [..., C, C]) from `gram_matrix(with_ones(F))` [..., C+1, C+1]:
    mu = E[F], Sigma = E[F F^T] - mu mu^T (the biased covariance, over the positions)."""
    c = tf.shape(stats)[-1] - 1
    mean = stats[..., :c, c]
    cov = stats[..., :c, :c] - mean[..., :, None] * mean[..., None, :]
    return mean, cov


def sqrtm_newton_schulz(a: tf.Tensor, iterations: int = 15) -> tf.Tensor:
    """The square root of symmetric positive semi-definite matrices a [..., C, C] by the coupled
    Newton-Schulz iteration (Higham 2008; as crowsonkb/style-transfer-pytorch's W2 loss does): with
    Y_0 = a / ||a||_F, Z_0 = I, T_k = (3 I - Z_k Y_k) / 2, Y_{k+1} = Y_k T_k, Z_{k+1} = T_k Z_k;
    Y_k -> (a / ||a||_F)^(1/2), so sqrt(a) = Y_K sqrt(||a||_F). Matrix products only (no eigh, whose
    gradient is unstable for repeated eigenvalues); differentiable."""
    norm = tf.sqrt(tf.reduce_sum(tf.square(a), axis=[-2, -1], keepdims=True)) + 1e-12
    eye = tf.eye(tf.shape(a)[-1], batch_shape=tf.shape(a)[:-2], dtype=a.dtype)
    y, z = a / norm, eye
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * tf.sqrt(norm)


def style_statistics_loss(stats: tf.Tensor, target: tf.Tensor, kind: str, relative: bool = False) -> tf.Tensor:
    """Style term of one layer from `gram_matrix(with_ones(F))` statistics of the image and the target
    (mu, Sigma from `moments`; sigma = sqrt(diag Sigma); C channels), per image (shape [B, ...]):

      mean_std     (Li et al. 2017, "Demystifying neural style transfer"; the statistics of AdaIN):
                   1/C * ( sum_i (mu_i - mu'_i)^2 + sum_i (sigma_i - sigma'_i)^2 )
      mean_cov     1/C * sum_i (mu_i - mu'_i)^2 + 1/C^2 * sum_ij (Sigma_ij - Sigma'_ij)^2
      wasserstein  the squared 2-Wasserstein distance between the Gaussians N(mu, Sigma), N(mu', Sigma'), / C:
                   1/C * ( |mu - mu'|^2 + tr Sigma + tr Sigma' - 2 tr (Sigma'^1/2 Sigma Sigma'^1/2)^1/2 )
                   (square roots by `sqrtm_newton_schulz`)

    With `relative` (--normalize_terms) each is divided by the target's own magnitude instead of by C:
    sum mu'^2 + sum sigma'^2, sum mu'^2 + sum Sigma'^2, and |mu'|^2 + tr Sigma' (the W2 distance of the
    target from a point mass at 0).
    """
    mean, cov = moments(stats)
    t_mean, t_cov = moments(target)
    c = tf.cast(tf.shape(mean)[-1], stats.dtype)
    dmean = tf.reduce_sum(tf.square(mean - t_mean), axis=-1)
    if kind == "mean_std":
        std = tf.sqrt(tf.maximum(tf.linalg.diag_part(cov), 0.0) + 1e-8)
        t_std = tf.sqrt(tf.maximum(tf.linalg.diag_part(t_cov), 0.0) + 1e-8)
        num = dmean + tf.reduce_sum(tf.square(std - t_std), axis=-1)
        scale = tf.reduce_sum(tf.square(t_mean), -1) + tf.reduce_sum(tf.square(t_std), -1) if relative else c
        return num / (scale + 1e-30)
    if kind == "mean_cov":
        dcov = tf.reduce_sum(tf.square(cov - t_cov), axis=[-2, -1])
        if relative:
            return (dmean + dcov) / (tf.reduce_sum(tf.square(t_mean), -1)
                                     + tf.reduce_sum(tf.square(t_cov), axis=[-2, -1]) + 1e-30)
        return dmean / c + dcov / (c * c)
    if kind == "wasserstein":
        eye = tf.eye(tf.shape(cov)[-1], dtype=cov.dtype)
        t_cov = t_cov + 1e-5 * tf.reduce_mean(tf.linalg.diag_part(t_cov), -1)[..., None, None] * eye
        root = sqrtm_newton_schulz(t_cov)
        root = root + tf.zeros_like(cov)   # broadcast the target over the batch
        cross = sqrtm_newton_schulz(root @ cov @ root)
        w2 = dmean + tf.linalg.trace(cov) + tf.linalg.trace(t_cov) - 2.0 * tf.linalg.trace(cross)
        w2 = tf.maximum(w2, 0.0)
        scale = tf.reduce_sum(tf.square(t_mean), -1) + tf.linalg.trace(t_cov) if relative else c
        return w2 / (scale + 1e-30)
    raise ValueError(f"unknown style loss {kind!r}")


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


class FeatureTerm(NamedTuple):
    """A weighted loss term beyond content, style and TV: it compares each of its layers' whole feature map
    with a target made once from the style images. A term named T here is weighed by the config's
    `T_weight` and reads `T_layers` (`config.weighted_terms`); it is reported as T/<layer>, T, weighted/T.

    target(style_features, blend) -> target: style_features one [1, h, w, C] per style image, blend their
      weights (summing to 1).
    loss(features, target) -> [B]: features [B, h, w, C] of the optimized images.
    """
    target: Callable[[list[tf.Tensor], list[float]], tf.Tensor]
    loss: Callable[..., tf.Tensor]
    seeded: bool = False   # loss(features, target, seed): random draws from the optimizer's step


# Style patches kept per layer of the MRF term: beyond, they are taken on every s-th position (the smallest
# stride s that keeps at most this many). The matching is a convolution of the image's features with every
# style patch: at 256 px and conv3_1 that is about 2,900 image patches against as many style patches of
# 3x3x256, ~38 GFLOP a step; stride 2 there (chuanli11/CNNMRF also samples the style with stride 2) cuts it
# to ~10 and the patches' memory 4x. conv4_1 at 256 px keeps every patch.
MRF_MAX_PATCHES = 2048


def mrf_target(style_features: list[tf.Tensor], blend, max_patches: int = MRF_MAX_PATCHES) -> tf.Tensor:
    """The MRF term's target at one layer: the 3x3 patches of the style images' features, every style with
    a blend weight above 0 (the patches are pooled; the weights do not scale them), taken with the smallest
    stride s >= 1 that keeps at most `max_patches` of them.

    Args:
      style_features: one [1, h, w, C] feature map per style image (h, w >= 3).
      blend: the style images' blend weights.
    Returns:
      [P, 9 C] float32: patch j's entries in (row, column, channel) order.
    """
    maps = [tf.cast(f, tf.float32) for f, b in zip(style_features, blend) if b > 0]
    count = sum((f.shape[1] - 2) * (f.shape[2] - 2) for f in maps)
    stride = 1
    while sum(len(range(0, f.shape[1] - 2, stride)) * len(range(0, f.shape[2] - 2, stride)) for f in maps) \
            > max_patches and stride < count:
        stride += 1
    return tf.concat([tf.reshape(tf.image.extract_patches(f, [1, 3, 3, 1], [1, stride, stride, 1], [1, 1, 1, 1],
                                                           "VALID"), [-1, 9 * f.shape[-1]]) for f in maps], axis=0)


def mrf_loss(features: tf.Tensor, style_patches: tf.Tensor) -> tf.Tensor:
    """The patch-based (MRF) style term of Li & Wand, "Combining Markov Random Fields and Convolutional
    Neural Networks for Image Synthesis", CVPR 2016, Eq. 2, per image, as a mean:

      E = 1 / (m 9C) sum_i || psi_i(F) - psi_NN(i) ||^2,
      NN(i) = argmax_j  <psi_i(F), psi_j> / (|psi_i(F)| |psi_j|)     (normalized cross-correlation)

    over the m = (h-2)(w-2) 3x3 patches psi_i of the image's features F (each 9C entries) and the style
    patches psi_j. |psi_i| is the same for every j, so NN(i) is the argmax of one convolution of F with the
    style patches divided by their norms as filters. The match is not differentiated (as in Li & Wand):
    the gradient pulls each patch towards its nearest style patch, 2 (psi_i - psi_NN(i)) / (m 9C) per entry,
    summed over the patches that overlap a position. The mean makes the term independent of the layer's
    size and width, so one weight serves every layer and image size.

    Args:
      features: [B, h, w, C] the images' features (h, w >= 3).
      style_patches: [P, 9C] float32, `mrf_target`'s.
    Returns:
      [B] float32.
    """
    features = tf.cast(features, tf.float32)
    channels = features.shape[-1]
    filters = style_patches / (tf.norm(style_patches, axis=1, keepdims=True) + 1e-8)
    filters = tf.transpose(tf.reshape(filters, [-1, 3, 3, channels]), [1, 2, 3, 0])   # [3, 3, C, P]
    scores = tf.nn.conv2d(tf.stop_gradient(features), filters, 1, "VALID")             # [B, h-2, w-2, P]
    matched = tf.gather(style_patches, tf.argmax(scores, axis=-1))                      # [B, h-2, w-2, 9C]
    # patch entry (dy, dx, c) of every patch at once: the features shifted by (dy, dx), against the matched
    # patches' channels (dy * 3 + dx) C + c. Slices, not extract_patches: its gradient is a slow scatter.
    height, width = tf.shape(features)[1] - 2, tf.shape(features)[2] - 2
    total = 0.0
    for k in range(9):
        dy, dx = divmod(k, 3)
        shifted = features[:, dy:dy + height, dx:dx + width]
        total += tf.reduce_sum(tf.square(shifted - matched[..., k * channels:(k + 1) * channels]), axis=[1, 2, 3])
    return total / tf.cast(height * width * 9 * channels, tf.float32)


# Style positions kept per layer of the sliced Wasserstein term: their projections give the style's quantiles,
# and every step projects them afresh, so a sample bounds the work at large sizes (at 256 px conv1_1 has
# 65,536 positions, at 512 px 262,144).
SLICED_MAX_SAMPLES = 65536
# Bins of the histograms that rank the image's projections and read the style's quantiles (`sliced_ranks`,
# `sliced_quantiles`): a style value is placed within half a bin, 1/8192 of its range.
SLICED_BINS = 4096


def sliced_target(style_features: list[tf.Tensor], blend, max_samples: int = SLICED_MAX_SAMPLES) -> tf.Tensor:
    """The sliced Wasserstein term's target at one layer: feature vectors of the style images at sampled
    positions, style s giving a share b_s of them (b: the blend weights), so that the sample is drawn from the
    mixture of the styles' feature distributions; every position where they are no more than `max_samples`.
    The positions are a fixed permutation's first ones (seed 0): the same target on every run.

    Args:
      style_features: one [1, h, w, C] feature map per style image.
      blend: the style images' blend weights (summing to 1).
    Returns:
      [M, C] float32, M <= max_samples.
    """
    rng = np.random.default_rng(0)
    parts = []
    for features, weight in zip(style_features, blend):
        flat = tf.reshape(tf.cast(features, tf.float32), [-1, features.shape[-1]])
        count = min(int(flat.shape[0]), max(1, round(weight * max_samples))) if weight > 0 else 0
        if count:
            parts.append(tf.gather(flat, np.sort(rng.permutation(int(flat.shape[0]))[:count])))
    return tf.concat(parts, axis=0)


def _histogram(values: tf.Tensor, bins: int):
    """Each row's histogram over `bins` equal bins between its smallest and largest value, for [B, K, N]
    values: (low [B, K, 1], bin width [B, K, 1], each value's bin [B, K, N] int32 numbered across all rows
    (row r's bins are r * bins ... r * bins + bins - 1) and its fraction of the way through that bin
    [B, K, N] in [0, 1], the counts [B * K, bins])."""
    rows = tf.shape(values)[0] * values.shape[1]
    low = tf.reduce_min(values, axis=-1, keepdims=True)
    width = tf.maximum(tf.reduce_max(values, axis=-1, keepdims=True) - low, 1e-30) / bins
    place = (values - low) / width
    place = tf.where(tf.math.is_finite(place), place, 0.0)   # a diverged image: no out-of-range bin
    index = tf.clip_by_value(tf.cast(place, tf.int32), 0, bins - 1)
    frac = tf.minimum(place - tf.cast(index, tf.float32), 1.0)
    segment = index + bins * tf.reshape(tf.range(rows), [-1, values.shape[1], 1])
    counts = tf.math.unsorted_segment_sum(tf.ones_like(values), segment, rows * bins)
    return low, width, segment, frac, tf.reshape(counts, [rows, bins])


def sliced_ranks(values: tf.Tensor, bins: int = SLICED_BINS) -> tf.Tensor:
    """Each value's rank among the N values of its row, from a histogram instead of a sort (`_histogram`):
    within a bin of n values, one at fraction f of the bin's width ranks f (n - 1) above the bin's first.
    Exact where no two values share a bin (the smallest value ranks 0, the largest N - 1); values that share
    a bin are spread over its ranks by value.

    Args:
      values: [B, K, N] float32.
    Returns:
      [B, K, N] float32 in [0, N - 1].
    """
    _, _, segment, frac, counts = _histogram(values, bins)
    below = tf.reshape(tf.cumsum(counts, axis=-1, exclusive=True), [-1])
    return tf.gather(below, segment) + frac * (tf.gather(tf.reshape(counts, [-1]), segment) - 1.0)


def sliced_quantiles(values: tf.Tensor, ranks: tf.Tensor, bins: int = SLICED_BINS) -> tf.Tensor:
    """The values of fractional rank `ranks` among each row's M `values` (the inverse of `sliced_ranks`), from
    a histogram instead of a sort: the value of whole rank r lies in the bin whose counts reach past r, at
    the place within it that r takes among the bin's values; between whole ranks, linear (the sorted values
    interpolated). Found so for `bins` ranks evenly spaced over [0, M - 1], and linear between them.

    Args:
      values: [B, K, M] float32.
      ranks: [B, K, N] float32 in [0, M - 1].
    Returns:
      [B, K, N] float32.
    """
    low, width, _, _, counts = _histogram(values, bins)
    reach = tf.cumsum(counts, axis=-1)                                                   # [B K, bins]
    m = tf.cast(tf.shape(values)[-1], tf.float32)
    def value_of_rank(rank):   # [B K, bins] whole ranks -> their values, in bins from `low`
        index = tf.minimum(tf.searchsorted(reach, rank, side="right"), bins - 1)
        count = tf.gather(counts, index, batch_dims=1)
        start = tf.gather(reach, index, batch_dims=1) - count
        return tf.cast(index, tf.float32) + tf.clip_by_value((rank - start + 0.5) / tf.maximum(count, 1.0), 0.0, 1.0)

    grid = tf.broadcast_to(tf.linspace(0.0, 1.0, bins) * (m - 1.0), tf.shape(reach))     # [B K, bins] ranks
    whole = tf.floor(grid)
    between = grid - whole
    table = (1 - between) * value_of_rank(whole) + between * value_of_rank(tf.minimum(whole + 1.0, m - 1.0))
    table = tf.reshape(table, tf.shape(values[..., :1]) * [1, 1, bins])
    table = low + table * width                                                          # [B, K, bins]
    place = ranks * ((bins - 1) / tf.maximum(m - 1.0, 1.0))
    place = tf.where(tf.math.is_finite(place), place, 0.0)
    below = tf.clip_by_value(tf.cast(place, tf.int32), 0, bins - 1)
    frac = place - tf.cast(below, tf.float32)
    return ((1 - frac) * tf.gather(table, below, batch_dims=2)
            + frac * tf.gather(table, tf.minimum(below + 1, bins - 1), batch_dims=2))


def sliced_loss(features: tf.Tensor, style_samples: tf.Tensor, seed=0) -> tf.Tensor:
    """The sliced Wasserstein style term of Heitz et al., "A Sliced Wasserstein Loss for Neural Texture
    Synthesis", CVPR 2021, per image: the squared 1-D Wasserstein-2 distance between the image's and the
    style's feature distributions along C random unit directions v_k, averaged:

      E = 1 / (N C) sum_k sum_i ( (F v_k)_i - Q_k((r_ki + 1/2) / N) )^2

    over the N positions i of the image's features F [N, C], where r_ki is the rank of (F v_k)_i among the
    image's projections on v_k (`sliced_ranks`) and Q_k the quantile function of the style samples projected
    on v_k: their sorted values, sorted value j at level (j + 1/2) / M (`sliced_quantiles`). Pairing each
    value with the style's value of the same rank is what sorting both and subtracting does; ranks and
    quantiles come from histograms because tf.sort, a full top_k, took most of a step's time on a CPU (5
    million projections at conv1_1 at 256 px), where counting into bins is one pass. The matched style
    values are constants: the gradient is 2 / (N C) ((F v_k)_i - Q_k(...)) along v_k.

    A Gram matrix holds only second moments, which a faint texture spread evenly over the whole image can
    match as well as the painting's few strong strokes on calm ground; matching every projection's
    distribution also asks for the painting's share of calm positions.

    The directions are drawn from `seed` (the optimizer's step, `objective.Objective.step`), so each step
    draws new ones, as the paper draws them at every iteration, and every image of a batch, a resumed run
    and a run alone meet the same ones.

    Args:
      features: [B, h, w, C] the images' features.
      style_samples: [M, C] float32, `sliced_target`'s.
      seed: int32 scalar.
    Returns:
      [B] float32.
    """
    features = tf.cast(features, tf.float32)
    channels = features.shape[-1]
    flat = tf.reshape(features, [tf.shape(features)[0], -1, channels])                  # [B, N, C]
    seed = tf.cast(seed, tf.int32)
    directions = tf.random.stateless_normal([channels, channels], tf.stack([seed, channels]))
    directions = (directions / tf.norm(directions, axis=0, keepdims=True))[None]         # [1, C, K]
    directions = tf.broadcast_to(directions, [tf.shape(flat)[0], channels, channels])
    image = tf.linalg.matmul(directions, flat, transpose_a=True, transpose_b=True)       # [B, K, N]
    target = tf.linalg.matmul(directions, style_samples, transpose_a=True, transpose_b=True)   # [B, K, M]
    n, m = tf.cast(tf.shape(image)[-1], tf.float32), tf.cast(tf.shape(target)[-1], tf.float32)
    # the image's value of rank r stands for level (r + 1/2) / N, the style's of rank j for (j + 1/2) / M
    # fewer bins than positions would only add work on the deep layers' small maps
    positions = flat.shape[1]
    bins = SLICED_BINS if positions is None else min(SLICED_BINS, max(64, positions))
    ranks = tf.clip_by_value((sliced_ranks(tf.stop_gradient(image), bins) + 0.5) * (m / n) - 0.5, 0.0, m - 1.0)
    matched = sliced_quantiles(target, ranks, bins)
    return tf.reduce_mean(tf.square(image - tf.stop_gradient(matched)), axis=[1, 2])


FEATURE_TERMS: dict[str, FeatureTerm] = {"mrf": FeatureTerm(mrf_target, mrf_loss),
                                         "sliced": FeatureTerm(sliced_target, sliced_loss, seeded=True)}
