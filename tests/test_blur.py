"""nst_tf.blur: the binomial filter by hand, and the identity whose backward pass is blurred."""
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.blur import blur_gradient, blurred_backward
from tests.conftest import checkerboard, smooth_image


@pytest.mark.parametrize("compiled", [False, True])
def test_blur_gradient_by_hand(compiled):
    blur = tf.function(blur_gradient, reduce_retracing=True) if compiled else blur_gradient
    g = np.zeros((1, 5, 6, 2), np.float32)
    g[0, 2, 3, 0] = 16.0   # an impulse spreads as b b^T: [1 2 1; 2 4 2; 1 2 1]
    out = blur(tf.constant(g), 1).numpy()
    np.testing.assert_allclose(out[0, 1:4, 2:5, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert out[0, ..., 0].sum() == pytest.approx(16.0) and not out[0, ..., 1].any()
    board = np.broadcast_to(checkerboard(6, 8)[None, :, :, None], (2, 6, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(blur(tf.constant(board), 1).numpy()[:, 1:-1, 1:-1], 0.0, atol=1e-6)
    # at a corner the repeated edge gives (3 x + x') / 4 = x / 2 along each axis (x' = -x): x / 4
    np.testing.assert_allclose(blur(tf.constant(board), 1).numpy()[0, 0, 0, 0], board[0, 0, 0, 0] / 4, atol=1e-6)
    const = np.full((1, 4, 4, 3), 0.7, np.float32)
    np.testing.assert_allclose(blur(tf.constant(const), 2).numpy(), const, atol=1e-6)
    np.testing.assert_array_equal(blur(tf.constant(board), 0).numpy(), board)


@pytest.mark.parametrize("compiled", [False, True])
def test_blurred_backward_is_the_identity_forward_and_blurs_the_gradient(compiled):
    x = tf.constant(smooth_image(6, 8)[None])
    c = tf.constant(np.random.default_rng(0).normal(size=(1, 6, 8, 3)).astype(np.float32))

    def value_and_grad(x, passes):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = blurred_backward(x, passes)
            total = tf.reduce_sum(c * y)
        return y, tape.gradient(total, x)
    run = tf.function(value_and_grad, reduce_retracing=True) if compiled else value_and_grad
    for passes in (0, 1, 2):
        y, grad = run(x, passes)
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        np.testing.assert_allclose(grad.numpy(), blur_gradient(c, passes).numpy(), atol=1e-6)
