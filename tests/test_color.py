"""Colour control: YIQ round trips, luminance matching, colour statistics matching, recombination."""
import numpy as np
import pytest

from nst_tf import color
from nst_tf.config import COLOR_MATCHES
from tests.conftest import smooth_image, stripes_image


def test_yiq_round_trip_and_known_values():
    image = smooth_image(12, 16)
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(image)), image, atol=1e-6)
    # White has Y = 1 and no chroma; pure red has Y = 0.299.
    np.testing.assert_allclose(color.rgb_to_yiq(np.ones((1, 1, 3)))[0, 0], [1, 0, 0], atol=1e-6)
    assert color.luminance(np.array([[[1.0, 0, 0]]]))[0, 0] == pytest.approx(0.299)


def test_match_luminance_takes_the_contents_mean_and_spread():
    style_y, content_y = color.luminance(stripes_image(20, 20)), color.luminance(smooth_image(30, 10))
    matched = color.match_luminance(style_y, content_y)
    assert matched.mean() == pytest.approx(content_y.mean(), abs=1e-5)
    assert matched.std() == pytest.approx(content_y.std(), rel=1e-4)
    flat = color.match_luminance(np.full((4, 4), 0.3, np.float32), content_y)   # no spread: only shifted
    np.testing.assert_allclose(flat, content_y.mean(), atol=1e-6)


@pytest.mark.parametrize("mode", COLOR_MATCHES)
def test_match_colors_statistics(mode):
    image, reference = smooth_image(24, 20, seed=1), smooth_image(16, 30, seed=5)
    out = color.match_colors(image, reference, mode, eps=0.0).reshape(-1, 3).astype(np.float64)
    ref = reference.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(out.mean(0), ref.mean(0), atol=1e-5)
    np.testing.assert_allclose(np.cov(out, rowvar=False, bias=True), np.cov(ref, rowvar=False, bias=True),
                               rtol=1e-3, atol=1e-6)


def test_symmetric_match_is_a_symmetric_map_and_identity_on_itself():
    image = smooth_image(20, 20, seed=3)
    np.testing.assert_allclose(color.match_colors(image, image, "symmetric"), image, atol=1e-5)
    np.testing.assert_allclose(color.match_colors(image, image, "cholesky"), image, atol=1e-5)


def test_with_colors_of_keeps_luminance_and_takes_chroma():
    image, colors = stripes_image(10, 12), smooth_image(10, 12)
    out = color.with_colors_of(image, colors)
    inside = (out > 0.01).all(-1) & (out < 0.99).all(-1)   # where clipping did not change anything
    assert inside.mean() > 0.5
    np.testing.assert_allclose(color.luminance(out)[inside], color.luminance(image)[inside], atol=1e-5)
    np.testing.assert_allclose(color.rgb_to_yiq(out)[inside][:, 1:], color.rgb_to_yiq(colors)[inside][:, 1:],
                               atol=1e-5)


def test_working_inputs_and_final_image():
    content, style = smooth_image(10, 12), stripes_image(14, 14)
    c, s = color.working_inputs("luminance", "cholesky", content, style)
    assert np.allclose(c[..., 0], c[..., 1]) and np.allclose(s[..., 0], s[..., 2])   # grey images
    assert color.luminance(s).mean() == pytest.approx(color.luminance(content).mean(), abs=0.02)
    c, s = color.working_inputs("histogram", "pca", content, style)
    assert c is content and s.shape == style.shape and abs(s.mean() - content.mean()) < 0.05
    assert color.working_inputs("swap", "cholesky", content, style) == (content, style)
    result = stripes_image(10, 12)
    assert color.final_image("none", result, content) is result
    np.testing.assert_allclose(color.final_image("swap", result, content), color.with_colors_of(result, content))
