"""The optimizers (Adam, L-BFGS) and their loops: loss goes down, the callback contract, resuming."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.evaluate import make_loss
from nst_tf.inputs import Inputs
from nst_tf.objective import loss_weights
from nst_tf.optimize import Adam, Lbfgs, make_optimizer, run_adam
from tests.conftest import checkerboard, make_fake_extractor, smooth_image


def content_weights(content=1.0, tv=0.0, batch=1):
    """alpha for the content layer conv2_1 alone, and the TV weight."""
    return loss_weights([{"content": content, "content/conv2_1": 1.0, "tv": tv}] * batch)


@pytest.fixture(scope="module")
def objective():
    return make_loss(make_fake_extractor(), ("conv2_1",), (), Inputs(smooth_image(12, 12), []))


def test_loop_reports_every_log_step_and_the_end(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.5, np.float32))
    seen = []
    run_adam(objective, images, content_weights(), num_steps=7,
             optimizer=keras.optimizers.Adam(0.05), log_every=3,
             on_log=lambda step, ims, terms: seen.append((step, terms["total"].numpy()[0])))
    assert [s for s, _ in seen] == [0, 3, 6, 7]
    losses = [v for _, v in seen]
    assert losses[-1] < losses[0]


def test_pixels_stay_in_range(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.99, np.float32))
    run_adam(objective, images, content_weights(), num_steps=5,
             optimizer=keras.optimizers.Adam(5.0), on_log=lambda *a: None, log_every=5)
    assert images.numpy().min() >= 0.0 and images.numpy().max() <= 1.0


def test_callback_gets_the_image_its_loss_belongs_to(objective):
    """The image handed to the callback at step k is the one whose loss is reported at step k."""
    images = tf.Variable(np.random.default_rng(0).uniform(size=(1, 12, 12, 3)).astype(np.float32))
    w = content_weights()
    checked = []

    def on_log(step, ims, terms):
        total, _ = objective(tf.constant(ims), w)
        checked.append(np.isclose(total.numpy()[0], terms["total"].numpy()[0], rtol=1e-4))
    run_adam(objective, images, w, num_steps=4, optimizer=keras.optimizers.Adam(0.05), on_log=on_log, log_every=2)
    assert checked == [True, True, True]


def test_callback_can_stop_the_run(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.5, np.float32))

    class Stop(Exception):
        pass

    def on_log(step, ims, terms):
        if step >= 2:
            raise Stop
    with pytest.raises(Stop):
        run_adam(objective, images, content_weights(), num_steps=100,
                 optimizer=keras.optimizers.Adam(0.05), on_log=on_log, log_every=2)


def test_a_restored_optimizer_continues_to_the_same_images(objective):
    """Stop after 3 of 7 steps, save each image's state, restore into new variables: same result."""
    from nst_tf.optimize import image_state, restore_state
    weights = content_weights(batch=2)
    start = np.stack([np.full((12, 12, 3), 0.5, np.float32), smooth_image(12, 12, seed=4)])
    whole = tf.Variable(start)
    run_adam(objective, whole, weights, 7, keras.optimizers.Adam(0.05), lambda *a: None, log_every=2)

    part = tf.Variable(start)
    optimizer = keras.optimizers.Adam(0.05)
    run_adam(objective, part, weights, 3, optimizer, lambda *a: None, log_every=2)
    states = [image_state(part, optimizer, i) for i in range(2)]
    again = tf.Variable(np.zeros_like(start))
    fresh = keras.optimizers.Adam(0.05)
    assert restore_state(again, fresh, states) == 3
    logged = []
    run_adam(objective, again, weights, 7, fresh, lambda step, *a: logged.append(step), log_every=2)
    assert logged == [4, 6, 7]
    np.testing.assert_allclose(again.numpy(), whole.numpy(), atol=1e-6)


@pytest.mark.slow
def test_lbfgs_reports_like_adam_and_goes_down(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.5, np.float32))
    seen = []
    lbfgs = make_optimizer("lbfgs", 0.02)
    assert isinstance(lbfgs, Lbfgs) and isinstance(make_optimizer("adam", 0.02), Adam)
    lbfgs.run(objective, images, content_weights(), num_steps=7,
              on_log=lambda step, ims, terms: seen.append((step, terms["total"].numpy()[0])), log_every=3)
    assert [s for s, _ in seen] == [0, 3, 6, 7] and lbfgs.steps == 7
    assert seen[-1][1] < 0.1 * seen[0][1]   # L-BFGS on a content term: fast


@pytest.mark.slow
def test_lbfgs_batch_rows_run_as_if_alone(objective):
    """TFP's L-BFGS is batched: each image has its own line search and history."""
    weights = content_weights(batch=2)
    weights['content'].assign([1.0, 30.0])
    start = np.stack([np.full((12, 12, 3), 0.5, np.float32), smooth_image(12, 12, seed=4)])
    both = tf.Variable(start)
    Lbfgs().run(objective, both, weights, 5, lambda *a: None, log_every=5)
    for i in range(2):
        alone = tf.Variable(start[i:i + 1])
        w = content_weights(float(weights['content'][i]))
        Lbfgs().run(objective, alone, w, 5, lambda *a: None, log_every=5)
        np.testing.assert_allclose(both.numpy()[i], alone.numpy()[0], atol=1e-4)


@pytest.mark.slow
def test_lbfgs_resumes_to_the_same_images(objective):
    weights = content_weights(batch=2)
    start = np.stack([np.full((12, 12, 3), 0.5, np.float32), smooth_image(12, 12, seed=4)])
    whole = tf.Variable(start)
    Lbfgs().run(objective, whole, weights, 6, lambda *a: None, log_every=2)

    part = tf.Variable(start)
    first = Lbfgs()
    first.run(objective, part, weights, 2, lambda *a: None, log_every=2)
    states = [first.state(part, i) for i in range(2)]
    again, fresh = tf.Variable(np.zeros_like(start)), Lbfgs()
    assert fresh.restore(again, states) == 2
    logged = []
    fresh.run(objective, again, weights, 6, lambda step, *a: logged.append(step), log_every=2)
    assert logged == [2, 4, 6]
    np.testing.assert_allclose(again.numpy(), whole.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="another optimizer"):
        Lbfgs().restore(again, [Adam(0.1).state(again, 0)])


@pytest.mark.slow
def test_xla_steps_equal_plain_ones(objective):
    """--jit_compile changes how the step runs, not what it computes (Adam and L-BFGS)."""
    weights = content_weights(tv=0.1)
    results = {}
    for jit in (False, True):
        for name in ("adam", "lbfgs"):
            images = tf.Variable(np.full((1, 12, 12, 3), 0.5, np.float32))
            make_optimizer(name, 0.05, jit_compile=jit).run(objective, images, weights, 3, lambda *a: None, 3)
            results[name, jit] = images.numpy()
    for name in ("adam", "lbfgs"):
        assert np.abs(results[name, False] - 0.5).max() > 1e-3   # the steps moved the pixels
        np.testing.assert_allclose(results[name, True], results[name, False], atol=1e-4)


def test_iterate_average_by_hand_and_through_a_resume(objective):
    """The result is the bias-corrected average of the iterates; a stopped run's state carries it."""
    w = content_weights()
    start = np.random.default_rng(1).uniform(size=(1, 12, 12, 3)).astype(np.float32)
    seen, iterates = [], []
    adam = Adam(0.05, average_decay=0.5)
    images = tf.Variable(start)
    record = lambda step, ims, terms: seen.append(ims.copy())  # noqa: E731
    for n in range(1, 4):   # one step at a time, to see each iterate
        adam.run(objective, images, w, n, record, log_every=10)
        iterates.append(images.numpy())
    # d = 0.5: avg_3 = (0.25 x1 + 0.5 x2 + 1 x3) * 0.5 / (1 - 0.125)
    by_hand = (0.25 * iterates[0] + 0.5 * iterates[1] + iterates[2]) * 0.5 / 0.875
    np.testing.assert_allclose(seen[-1], by_hand, rtol=1e-5)
    whole = Adam(0.05, average_decay=0.5)
    images = tf.Variable(start)
    whole.run(objective, images, w, 6, lambda *a: None, log_every=10)
    first = Adam(0.05, average_decay=0.5)
    images = tf.Variable(start)
    first.run(objective, images, w, 3, lambda *a: None, log_every=10)
    state = first.state(images, 0)
    resumed = Adam(0.05, average_decay=0.5)
    images2 = tf.Variable(np.zeros_like(start))
    assert resumed.restore(images2, [state]) == 3
    resumed.run(objective, images2, w, 6, lambda *a: None, log_every=10)
    np.testing.assert_array_equal(resumed.average.get(), whole.average.get())
    with pytest.raises(ValueError, match="no iterate average"):
        Adam(0.05, average_decay=0.5).restore(tf.Variable(start), [{k: v for k, v in state.items()
                                                                    if not k.startswith("average/")}])


class _LinearLoss:
    """total = sum(c * x): its gradient is c whatever x is."""
    whole_graph = True
    step = None   # nothing drawn per step

    def __init__(self, c):
        self.c = tf.constant(c, tf.float32)

    def __call__(self, images, weights):
        total = tf.reduce_sum(self.c * images, axis=[1, 2, 3])
        return total, {"total": total}

    def value_and_gradient(self, images, weights):
        total, terms = self(images, weights)
        return total, terms, tf.broadcast_to(self.c, tf.shape(images))


def test_adam_with_gradient_blur_ignores_a_checkerboard_gradient():
    """The 2 px checkerboard is what the pooling's aliasing adds to the gradient: unblurred, Adam gives every
    pixel a full step along it (a mesh); blurred, the interior gets none."""
    board = checkerboard(8, 8)[None, :, :, None] * np.ones((1, 1, 1, 3))
    weights = content_weights()
    moved = {}
    for blur in (0, 1):
        images = tf.Variable(np.full((1, 8, 8, 3), 0.5, np.float32))
        Adam(0.01, gradient_blur=blur).run(_LinearLoss(board), images, weights, 3, lambda *a: None, 3)
        moved[blur] = np.abs(images.numpy() - 0.5)
    np.testing.assert_allclose(moved[0], 0.03, atol=1e-5)
    np.testing.assert_allclose(moved[1][:, 1:-1, 1:-1], 0.0, atol=1e-6)
