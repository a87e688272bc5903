"""Optical flow, warping, reliability and the flicker measure (nst_tf.video.flow, nst_tf.video.measure)."""
import numpy as np
import pytest

from nst_tf.video import flow, measure
from tests.video_clips import moved, pan, photo


@pytest.mark.parametrize("zoom,dx,dy", [(1.0, 2.5, -1.25), (1.0, 7.3, 3.1), (1.03, 0.0, 0.0), (1.02, 3.0, 2.0)])
def test_flow_recovers_known_pans_and_zooms(zoom, dx, dy):
    image = photo(128)
    frame, true = moved(image, zoom, dx, dy)
    estimate = flow.backward_flow(frame, image)
    error = np.linalg.norm(estimate - true, axis=-1)[16:-16, 16:-16]   # the interior
    assert error.mean() < 0.5 and np.percentile(error, 95) < 0.5


def test_warp_is_exact_for_a_whole_pixel_translation():
    earlier, frame = pan(2, 40, 48, step=3)
    shift = np.zeros((40, 48, 2), np.float32)
    shift[..., 0] = 3.0                              # frame(x) = earlier(x + 3)
    warped = flow.warp(earlier, shift)
    np.testing.assert_array_equal(warped[:, :-3], frame[:, :-3])
    np.testing.assert_array_equal(warped[:, -3:], earlier[:, [46, 45, 44]])   # the new ground: mirrored, not streaks
    # with the flow DIS estimates, the warped start is as exact in the interior
    estimated = flow.warp(earlier, flow.backward_flow(frame, earlier))
    assert np.abs(estimated - frame)[8:-8, 8:-11].mean() < 2 / 255


def test_reliability_drops_the_pixels_that_come_into_view():
    earlier, frame = pan(2, 64, 64, step=4)
    back = flow.backward_flow(frame, earlier)
    c = flow.reliability(back, flow.backward_flow(earlier, frame))
    assert c[:, -2:].mean() == 0.0                   # x + 4 lies outside the earlier frame
    assert c[8:-8, 8:-8].mean() > 0.9


def test_reliability_of_opposite_flows_and_a_motion_boundary():
    back = np.zeros((20, 20, 2), np.float32)
    back[:, :10, 0] = 2.0                            # left half moves, right half still: a boundary at x = 10
    forward = -back.copy()
    c = flow.reliability(back, forward)
    assert c[:, 9:11].max() == 0.0                   # |grad u|^2 = 1 > 0.01 |w|^2 + 0.002
    assert c[:, 2:7].min() == 1.0 and c[:, 13:].min() == 1.0
    disagreeing = flow.reliability(back, np.zeros_like(back))   # forward says still: occluded where |w^| = 2
    assert disagreeing[:, 2:7].max() == 0.0


def test_long_term_weights_keep_the_nearest_frame_where_it_is_seen():
    c1 = np.array([[1.0, 0.0, 0.0]])
    c2 = np.array([[1.0, 1.0, 0.0]])
    c4 = np.array([[1.0, 1.0, 1.0]])
    out = flow.long_term_weights([c1, c2, c4])
    np.testing.assert_array_equal(out[0], [[1, 0, 0]])
    np.testing.assert_array_equal(out[1], [[0, 1, 0]])
    np.testing.assert_array_equal(out[2], [[0, 0, 1]])


def test_frame_error_by_hand():
    result = np.zeros((2, 2, 3), np.float32)
    warped = np.full((2, 2, 3), 0.5, np.float32)
    weights = np.array([[1.0, 0.0], [0.0, 1.0]])
    # sum c (x - w)^2 = 2 pixels * 3 channels * 0.25; divided by 3 * sum c = 6
    assert measure.frame_error(result, warped, weights) == pytest.approx(0.25)
    assert measure.frame_error(result, warped, np.zeros((2, 2))) == 0.0


def test_temporal_error_is_zero_for_results_that_follow_the_motion():
    frames = pan(4, 48, 48, step=2)
    assert measure.temporal_error(frames, frames) < 1e-4          # the content itself moves consistently
    flicker = [np.clip(f + (0.1 if k % 2 else -0.1), 0, 1) for k, f in enumerate(frames)]
    assert measure.temporal_error(flicker, frames) > 100 * measure.temporal_error(frames, frames)
