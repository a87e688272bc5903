"""Flicker, measured: the temporal error of a stylized clip (no TensorFlow).

The measure of Ruder, Dosovitskiy & Brox 2016 (section 6): each result compared with the previous result
warped to it along the optical flow of the content frames, where that warp is reliable.
"""
from __future__ import annotations

import numpy as np

from nst_tf.video import flow


def frame_error(result: np.ndarray, warped_previous: np.ndarray, weights: np.ndarray) -> float:
    """The mean squared difference (pixels in [0, 1]) between `result` [H, W, 3] and the previous result
    warped to it, over the pixels where the warp is reliable (`weights` [H, W] in [0, 1]):
    sum c (x - w)^2 / (3 sum c); 0 where nothing is reliable."""
    total = float(np.sum(weights))
    if total == 0:
        return 0.0
    return float(np.sum(weights[..., None] * (result - warped_previous) ** 2) / (3 * total))


def temporal_error(results: list[np.ndarray], contents: list[np.ndarray]) -> float:
    """The mean over frames 1..n-1 of `frame_error` between each result and the previous one warped by the
    content frames' backward flow (with its reliability, `flow.reliability`). `contents` and `results`:
    [H, W, 3] in [0, 1], one per frame, the same size."""
    errors = []
    for i in range(1, len(results)):
        motion = flow.Motion.between(contents[i], [contents[i - 1]])
        errors.append(frame_error(results[i], flow.warp(results[i - 1], motion.flows[0]), motion.weights[0]))
    return float(np.mean(errors)) if errors else 0.0
