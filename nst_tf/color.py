"""Colour control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural
Style Transfer", CVPR 2017, Sec. 5): luminance-only transfer and colour histogram matching.

Pure numpy on the project's images: float32 RGB [H, W, 3] in [0, 1].

`--preserve_colors`:
  none       plain transfer: the result takes the style's colours.
  luminance  transfer on luminance only: the content's and the style's luminance channels (the style's
             matched to the content's mean and spread) are what the network sees, as grey images; the
             result's luminance is then combined with the content's colour channels (YIQ).
  swap       plain transfer, then the result's luminance with the content's colour channels (YIQ): the
             "original colors" option of the Torch and PyTorch tools.
  histogram  the style image's colours matched to the content's (mean and covariance, `match_colors`)
             before the transfer, so the style brings its texture and the content keeps its palette.
`--color_only`: the content's colours matched to the style's, without any texture (no optimization).
"""
from __future__ import annotations

import numpy as np

# Grey images give smaller style terms than coloured ones (the colour channels' correlations are gone),
# so with the default beta luminance-only transfer came out faint (tubingen + starry_night at 256 px).
# The default beta is multiplied by this, which about keeps the content/style balance of plain transfer:
# examples/calibrate_style_weight.py measures x5.7 between the bundled photographs (x5.1 with the swirls
# among them; docs/controls.md, "Colour").
LUMINANCE_STYLE_FACTOR = 5.0

# NTSC YIQ (the FCC's coefficients); Y is the luminance.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]], np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] RGB -> [H, W, 3] YIQ (Y in [0, 1]; I, Q signed)."""
    return (image.astype(np.float64) @ RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    """[H, W, 3] YIQ -> [H, W, 3] RGB, not clipped (the exact inverse of `rgb_to_yiq`)."""
    return (yiq.astype(np.float64) @ YIQ_TO_RGB.T).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """[H, W] luminance Y = 0.299 R + 0.587 G + 0.114 B."""
    return rgb_to_yiq(image)[..., 0]


def match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """The style's luminance with the content's mean and standard deviation (Gatys et al. 2017, Eq. 6):

      L_s' = (sigma_c / sigma_s) * (L_s - mu_s) + mu_c

    so that the style's brightness and contrast do not carry over. A flat style keeps its values shifted.
    """
    spread = style_y.std()
    scale = content_y.std() / spread if spread > 1e-8 else 1.0
    return ((style_y - style_y.mean()) * scale + content_y.mean()).astype(np.float32)


def grey(y: np.ndarray) -> np.ndarray:
    """A luminance channel [H, W] as an RGB image [H, W, 3] in [0, 1] (what the network sees)."""
    return np.repeat(np.clip(y, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)


def with_colors_of(image: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """`image`'s luminance with the I and Q channels of `colors` (same size), clipped to [0, 1]."""
    yiq = rgb_to_yiq(colors)
    yiq[..., 0] = luminance(image)
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0)


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def palette(images: list[np.ndarray], weights: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The colour mean [3] and covariance [3, 3] of the images' pixels as one mixture, image s taking the
    share b_s of it (`weights`, summing to 1; equal shares if None): a blend of styles has the blend's palette.

      mu = sum_s b_s mu_s,    Sigma = sum_s b_s (Sigma_s + mu_s mu_s^T) - mu mu^T
    """
    weights = np.full(len(images), 1.0 / len(images)) if weights is None else np.asarray(weights, np.float64)
    means, seconds = [], []
    for image in images:
        x = image.reshape(-1, 3).astype(np.float64)
        means.append(x.mean(0))
        seconds.append(x.T @ x / len(x))   # E[x x^T] = Sigma + mu mu^T
    mean = sum(b * m for b, m in zip(weights, means))
    return mean, sum(b * s for b, s in zip(weights, seconds)) - np.outer(mean, mean)


def match_colors(image: np.ndarray, reference: np.ndarray, mode: str = "cholesky", eps: float = 1e-5) -> np.ndarray:
    """`image` with the colour mean and covariance of `reference` (`match_palette` of its `palette`)."""
    return match_palette(image, *palette([reference]), mode=mode, eps=eps)


def match_palette(image: np.ndarray, mean: np.ndarray, cov: np.ndarray, mode: str = "cholesky",
                  eps: float = 1e-5) -> np.ndarray:
    """`image` with the colour mean `mean` and covariance `cov`: x' = A (x - mu_i) + mean, per pixel, where
    A Sigma_i A^T = cov (Gatys et al. 2017, Sec. 5.2). The choice of A:

      cholesky   A = L_r L_i^-1, with L the Cholesky factors of the covariances
      pca        A = Sigma_r^1/2 Sigma_i^-1/2 (symmetric square roots: the eigenvectors' frame)
      symmetric  A = Sigma_i^-1/2 (Sigma_i^1/2 Sigma_r Sigma_i^1/2)^1/2 Sigma_i^-1/2, the symmetric map that
                 moves the colours least (the Monge-Kantorovich linear map)

    `eps` is added to the covariances' diagonals so flat images stay invertible. Returns float32, not
    clipped (the statistics are exact before clipping; callers clip to [0, 1]).
    """
    x = image.reshape(-1, 3).astype(np.float64)
    mu_x = x.mean(0)
    cov_x = np.cov(x - mu_x, rowvar=False, bias=True) + eps * np.eye(3)
    cov_r = np.asarray(cov, np.float64) + eps * np.eye(3)
    if mode == "cholesky":
        a = np.linalg.cholesky(cov_r) @ np.linalg.inv(np.linalg.cholesky(cov_x))
    elif mode == "pca":
        a = _sqrtm(cov_r) @ np.linalg.inv(_sqrtm(cov_x))
    elif mode == "symmetric":
        root_x = _sqrtm(cov_x)
        inv_root_x = np.linalg.inv(root_x)
        a = inv_root_x @ _sqrtm(root_x @ cov_r @ root_x) @ inv_root_x
    else:
        raise ValueError(f"unknown colour match {mode!r}")
    return ((x - mu_x) @ a.T + np.asarray(mean, np.float64)).reshape(image.shape).astype(np.float32)


def working_inputs(mode: str, match: str, content: np.ndarray | None,
                   style: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The (content, style) images the network sees under `--preserve_colors=mode`."""
    if mode == "luminance" and content is not None and style is not None:
        content_y = luminance(content)
        return grey(content_y), grey(match_luminance(luminance(style), content_y))
    if mode == "histogram" and content is not None and style is not None:
        return content, np.clip(match_colors(style, content, match), 0.0, 1.0)
    return content, style


def final_image(mode: str, image: np.ndarray, content: np.ndarray | None) -> np.ndarray:
    """The result as written: for luminance and swap, `image`'s luminance with the content's colours."""
    if mode in ("luminance", "swap") and content is not None:
        return with_colors_of(image, content)
    return image
