"""Optical flow, warping and the per-pixel reliability of a warp (Ruder, Dosovitskiy & Brox 2016).

Flows are float32 [H, W, 2] in pixels, (dx, dy) per pixel; `backward_flow(frame, earlier)` says for each
pixel x of `frame` where it was in `earlier`: frame(x) ~ earlier(x + flow(x)). Images follow the project's
convention (float32 RGB [H, W, 3] in [0, 1]). The flow is OpenCV's DIS (Kroeger et al. 2016), in-process;
docs/video.md has the accuracy and speed that chose it and its preset.
"""
from __future__ import annotations

import cv2
import numpy as np

# DIS presets: ULTRAFAST, FAST, MEDIUM. MEDIUM's accuracy on known pans and zooms is in docs/video.md.
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def backward_flow(frame: np.ndarray, earlier: np.ndarray, preset: int = DIS_PRESET) -> np.ndarray:
    """[H, W, 2] flow from `frame` to `earlier` (both [H, W, 3] in [0, 1]): frame(x) ~ earlier(x + flow(x))."""
    dis = cv2.DISOpticalFlow_create(preset)
    return dis.calc(_gray(frame), _gray(earlier), None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` [H, W, C] sampled at x + flow(x) (bilinear, mirrored outside): for the backward flow of a frame
    to an earlier one, the earlier frame's image brought to the frame. Exact for whole-pixel translations.
    Where the camera brings new ground into view, the mirror gives the next frame's start painted strokes to
    work from, where repeating the edge pixel drew streaks that a few steps did not paint over."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(np.ascontiguousarray(image, np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out.reshape(image.shape).astype(np.float32)


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """[H, W] float32 in {0, 1}: where the warp by `backward` (frame -> earlier) can be trusted.

    Ruder et al. 2016, section 3.2, with w the forward flow (earlier -> frame), w^ the backward one and
    w~(x) = w(x + w^(x)) the forward flow at the point the backward flow reaches:
      disoccluded:     |w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5   (the two flows do not cancel)
      motion boundary: |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002
    and, added here, pixels whose x + w^(x) falls outside the earlier frame. c = 0 there, 1 elsewhere.
    """
    h, w = backward.shape[:2]
    forward_there = warp(forward, backward)
    occluded = (np.sum((forward_there + backward) ** 2, -1)
                > 0.01 * (np.sum(forward_there ** 2, -1) + np.sum(backward ** 2, -1)) + 0.5)
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    boundary = du_dx ** 2 + du_dy ** 2 + dv_dx ** 2 + dv_dy ** 2 > 0.01 * np.sum(backward ** 2, -1) + 0.002
    x = np.arange(w)[None, :] + backward[..., 0]
    y = np.arange(h)[:, None] + backward[..., 1]
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)


def long_term_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Ruder et al.'s long-term weights from the reliabilities c_j [H, W] of the warps from the frames j back
    (nearest first): c_long_j = max(c_j - sum_{k nearer than j} c_k, 0), so each pixel is pulled only toward
    the nearest earlier frame where it was visible."""
    out, seen = [], np.zeros_like(weights[0]) if weights else None
    for c in weights:
        out.append(np.maximum(c - seen, 0.0).astype(np.float32))
        seen = seen + c
    return out


class Motion:
    """The warp of one frame to each of several earlier ones: flows, reliabilities (long-term weighted)."""

    def __init__(self, flows: list[np.ndarray], weights: list[np.ndarray]):
        self.flows, self.weights = flows, weights

    @classmethod
    def between(cls, frame: np.ndarray, earlier: list[np.ndarray]) -> "Motion":
        """`frame`'s flows and long-term reliabilities to `earlier` (nearest first)."""
        flows, raw = [], []
        for other in earlier:
            back = backward_flow(frame, other)
            flows.append(back)
            raw.append(reliability(back, backward_flow(other, frame)))
        return cls(flows, long_term_weights(raw))
