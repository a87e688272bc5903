"""The compiled Adam step and the loop: loss goes down, pixels stay in range, the callback contract."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones
from nst_tf.inputs import Inputs
from nst_tf.objective import LossWeights, Objective
from nst_tf.optimize import run_adam
from tests.conftest import smooth_image


@pytest.fixture(scope="module")
def objective():
    model = backbones.load_backbone("vgg16_hed", weights="random", seed=0)
    extractor = backbones.build_extractor(model, ("conv1_2",))
    return Objective(extractor, ("conv1_2",), (), Inputs(smooth_image(12, 12), []))


def test_loop_reports_every_log_step_and_the_end(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.5, np.float32))
    seen = []
    run_adam(objective, images, LossWeights.create(1, 1.0, 0.0, 0.0, (1.0,), ()), num_steps=7,
             optimizer=keras.optimizers.Adam(0.05), log_every=3,
             on_log=lambda step, ims, terms: seen.append((step, terms["total"].numpy()[0])))
    assert [s for s, _ in seen] == [0, 3, 6, 7]
    losses = [v for _, v in seen]
    assert losses[-1] < losses[0]


def test_pixels_stay_in_range(objective):
    images = tf.Variable(np.full((1, 12, 12, 3), 0.99, np.float32))
    run_adam(objective, images, LossWeights.create(1, 1.0, 0.0, 0.0, (1.0,), ()), num_steps=5,
             optimizer=keras.optimizers.Adam(5.0), on_log=lambda *a: None, log_every=5)
    assert images.numpy().min() >= 0.0 and images.numpy().max() <= 1.0


def test_callback_gets_the_image_its_loss_belongs_to(objective):
    """The image handed to the callback at step k is the one whose loss is reported at step k."""
    images = tf.Variable(np.random.default_rng(0).uniform(size=(1, 12, 12, 3)).astype(np.float32))
    w = LossWeights.create(1, 1.0, 0.0, 0.0, (1.0,), ())
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
        run_adam(objective, images, LossWeights.create(1, 1.0, 0.0, 0.0, (1.0,), ()), num_steps=100,
                 optimizer=keras.optimizers.Adam(0.05), on_log=on_log, log_every=2)


def test_a_restored_optimizer_continues_to_the_same_images(objective):
    """Stop after 3 of 7 steps, save each image's state, restore into new variables: same result."""
    from nst_tf.optimize import image_state, restore_state
    weights = LossWeights.create(2, 1.0, 0.0, 0.0, (1.0,), ())
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
