"""The objective's named terms, weights and batching, with a random-weight backbone (no download)."""
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones, losses
from nst_tf.objective import LossWeights, Objective
from tests.conftest import smooth_image, stripes_image

CONTENT = ("conv2_1",)
STYLE = ("conv1_1", "conv2_1")


@pytest.fixture(scope="module")
def objective():
    model = backbones.load_backbone("vgg16_hed", weights="random", seed=0)
    extractor = backbones.build_extractor(model, CONTENT + STYLE)
    return Objective(extractor, CONTENT, STYLE, smooth_image(16, 16), stripes_image(24, 20))


def weights(batch=1, content=2.0, style=3.0, tv=0.5):
    return LossWeights.create(batch, content, style, tv, (1.0,), (0.25, 0.75))


def test_term_names(objective):
    assert objective.term_names() == [
        "content/conv2_1", "style/conv1_1", "style/conv2_1", "tv", "content", "style",
        "weighted/content/conv2_1", "weighted/style/conv1_1", "weighted/style/conv2_1", "weighted/tv",
        "weighted/content", "weighted/style", "total"]


def test_terms_combine_as_documented(objective):
    images = tf.constant(smooth_image(16, 16, seed=5)[None])
    total, terms = objective(images, weights())
    assert set(terms) == set(objective.term_names())
    t = {k: v.numpy()[0] for k, v in terms.items()}
    assert t["content"] == pytest.approx(t["content/conv2_1"])
    assert t["style"] == pytest.approx(0.25 * t["style/conv1_1"] + 0.75 * t["style/conv2_1"])
    assert t["weighted/style/conv2_1"] == pytest.approx(3.0 * 0.75 * t["style/conv2_1"])
    assert t["weighted/tv"] == pytest.approx(0.5 * t["tv"])
    assert t["total"] == pytest.approx(2.0 * t["content"] + 3.0 * t["style"] + 0.5 * t["tv"], rel=1e-5)
    assert total.numpy()[0] == pytest.approx(t["total"])


def test_raw_terms_match_the_loss_functions(objective):
    images = tf.constant(smooth_image(16, 16, seed=5)[None])
    _, terms = objective(images, weights())
    feats = objective.extractor(images)
    style_feats = objective.extractor(tf.constant(stripes_image(24, 20)[None]))
    expected = losses.style_layer_loss(losses.gram_matrix(feats["conv1_1"]),
                                       losses.gram_matrix(style_feats["conv1_1"]))
    np.testing.assert_allclose(terms["style/conv1_1"].numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(terms["tv"].numpy(), losses.total_variation(images).numpy(), rtol=1e-6)


def test_content_image_has_no_content_loss(objective):
    _, terms = objective(tf.constant(smooth_image(16, 16)[None]), weights())
    assert terms["content/conv2_1"].numpy()[0] == pytest.approx(0.0, abs=1e-3)


def test_eager_and_compiled_agree(objective):
    images = tf.constant(smooth_image(16, 16, seed=2)[None])
    w = weights()
    eager = objective(images, w)[1]
    compiled = tf.function(objective.__call__)(images, w)[1]
    for name in eager:
        np.testing.assert_allclose(eager[name].numpy(), compiled[name].numpy(), rtol=1e-5)


def test_batch_rows_are_independent_runs(objective):
    """Image b of a batch with weights row b gets the loss it would get alone."""
    a, b = smooth_image(16, 16, seed=1), smooth_image(16, 16, seed=2)
    w = LossWeights.create(2, 1.0, 1.0, 1.0, (1.0,), (0.5, 0.5))
    w.style.assign([1.0, 10.0])
    w.style_layers.assign([[0.5, 0.5], [0.0, 1.0]])   # a per-image layer mask
    total, _ = objective(tf.constant(np.stack([a, b])), w)
    alone = LossWeights.create(1, 1.0, 10.0, 1.0, (1.0,), (0.0, 1.0))
    total_b, _ = objective(tf.constant(b[None]), alone)
    total_a, _ = objective(tf.constant(a[None]), weights(content=1.0, style=1.0, tv=1.0)._replace(
        style_layers=tf.Variable([[0.5, 0.5]])))
    np.testing.assert_allclose(total.numpy(), [total_a.numpy()[0], total_b.numpy()[0]], rtol=1e-5)


def test_weights_changed_after_tracing_take_effect(objective):
    """Weights are variables read at run time, not Python floats frozen into the trace."""
    step = tf.function(objective.__call__)
    images = tf.constant(smooth_image(16, 16, seed=3)[None])
    w = weights()
    before = step(images, w)[0].numpy()
    w.style.assign([30.0])
    after = step(images, w)[0].numpy()
    _, terms = objective(images, w)
    assert after != pytest.approx(before)
    assert after[0] == pytest.approx(terms["total"].numpy()[0], rel=1e-5)


def test_targets_are_computed_once(objective):
    assert {k: v.shape for k, v in objective.style_targets.items()} == {"conv1_1": (1, 64, 64),
                                                                         "conv2_1": (1, 128, 128)}
    assert objective.content_targets["conv2_1"].shape == (1, 8, 8, 128)
    assert all(isinstance(v, tf.Tensor) for v in objective.style_targets.values())
