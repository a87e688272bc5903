"""The objective's named terms, weights, targets and batching, on a two-conv fake extractor (no backbone)."""
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import losses, masks
from nst_tf.evaluate import make_loss
from nst_tf.inputs import Inputs
from nst_tf import objective as objective_module
from nst_tf.objective import loss_weights, summary_terms, term_names
from tests.conftest import make_fake_extractor, smooth_image, stripes_image

CONTENT = ("conv2_1",)
STYLE = ("conv1_1", "conv2_1")


EXTRACTOR = make_fake_extractor()


@pytest.fixture(scope="module")
def objective():
    """The loss (an objective through the whole-image evaluator) of a content and a style image."""
    return make_loss(EXTRACTOR, CONTENT, STYLE, Inputs(smooth_image(16, 16), [stripes_image(24, 20)]))


def weights(batch=1, content=2.0, style=3.0, tv=0.5, style_layers=(0.25, 0.75), content_layers=(1.0,)):
    """The same weights for each of `batch` images, by term name."""
    row = {"content": content, "style": style, "tv": tv, **{f"content/{n}": w for n, w in zip(CONTENT, content_layers)},
           **{f"style/{n}": w for n, w in zip(STYLE, style_layers)}}
    return loss_weights([row] * batch)


def test_term_names(objective):
    assert term_names(objective.objective.term_layers) == [
        "content/conv2_1", "style/conv1_1", "style/conv2_1", "tv", "content", "style",
        "weighted/content/conv2_1", "weighted/style/conv1_1", "weighted/style/conv2_1", "weighted/tv",
        "weighted/content", "weighted/style", "total"]


def test_terms_combine_as_documented(objective):
    images = tf.constant(smooth_image(16, 16, seed=5)[None])
    total, terms = objective(images, weights())
    assert set(terms) == set(term_names({"content": CONTENT, "style": STYLE}))
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
    feats = EXTRACTOR(images)
    style_feats = EXTRACTOR(tf.constant(stripes_image(24, 20)[None]))
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
    w = weights(2, 1.0, 1.0, 1.0, (0.5, 0.5))
    w["style"].assign([1.0, 10.0])
    w["style/conv1_1"].assign([0.5, 0.0])   # a per-image layer mask
    w["style/conv2_1"].assign([0.5, 1.0])
    total, _ = objective(tf.constant(np.stack([a, b])), w)
    alone = weights(1, 1.0, 10.0, 1.0, (0.0, 1.0))
    total_b, _ = objective(tf.constant(b[None]), alone)
    total_a, _ = objective(tf.constant(a[None]), weights(content=1.0, style=1.0, tv=1.0,
                                                                    style_layers=(0.5, 0.5)))
    np.testing.assert_allclose(total.numpy(), [total_a.numpy()[0], total_b.numpy()[0]], rtol=1e-5)


def test_weights_changed_after_tracing_take_effect(objective):
    """Weights are variables read at run time, not Python floats frozen into the trace."""
    step = tf.function(objective.__call__)
    images = tf.constant(smooth_image(16, 16, seed=3)[None])
    w = weights()
    before = step(images, w)[0].numpy()
    w["style"].assign([30.0])
    after = step(images, w)[0].numpy()
    _, terms = objective(images, w)
    assert after != pytest.approx(before)
    assert after[0] == pytest.approx(terms["total"].numpy()[0], rel=1e-5)


def test_targets_are_computed_once():
    """The targets are the style image's Grams and the content image's features, made when the loss is
    made; evaluating and differentiating the loss afterwards never computes them again (the evaluator's
    target methods would raise)."""
    style, content = stripes_image(24, 20), smooth_image(16, 16)
    loss = make_loss(EXTRACTOR, CONTENT, STYLE, Inputs(content, [style]))
    targets = loss.objective.targets
    for name in STYLE:
        expected = losses.gram_matrix(EXTRACTOR(tf.constant(style[None]))[name])
        np.testing.assert_allclose(targets.style[name].numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(targets.content["conv2_1"].numpy(),
                               EXTRACTOR(tf.constant(content[None]))["conv2_1"].numpy(), rtol=1e-6)

    def recomputed(*args):
        raise AssertionError("a target was computed again")
    loss.evaluator.feature_maps = loss.evaluator.sums = recomputed
    images = tf.Variable(smooth_image(16, 16, seed=3)[None])
    for _ in range(2):
        loss(images, weights())
        tf.function(loss.value_and_gradient)(images, weights())


def make_objective(inputs, content=CONTENT, style=STYLE, **kwargs):
    return make_loss(EXTRACTOR, content, style, inputs, **kwargs)


def test_blended_targets_are_the_weighted_sum_of_the_styles_grams(objective):
    a, b = stripes_image(24, 20), smooth_image(20, 24, seed=4)
    blended = make_objective(Inputs(smooth_image(16, 16), [a, b], (0.7, 0.3)))
    for name in STYLE:
        ga = losses.gram_matrix(EXTRACTOR(tf.constant(a[None]))[name])
        gb = losses.gram_matrix(EXTRACTOR(tf.constant(b[None]))[name])
        np.testing.assert_allclose(blended.objective.targets.style[name].numpy(), (0.7 * ga + 0.3 * gb).numpy(),
                                   rtol=1e-5)


def guides_of(content_regions, style_regions, colours=None):
    colours = colours or [f"#{k:06x}" for k in range(len(content_regions))]
    return masks.Guides(np.asarray(content_regions, np.float32), [np.asarray(s, np.float32) for s in style_regions],
                        colours)


def test_a_mask_of_all_ones_equals_the_unmasked_loss(objective):
    inputs = Inputs(smooth_image(16, 16), [stripes_image(24, 20)],
                    guides=guides_of(np.ones((1, 16, 16)), [np.ones((1, 24, 20))]))
    guided = make_objective(inputs)
    images = tf.constant(np.stack([smooth_image(16, 16, seed=5), smooth_image(16, 16, seed=6)]))
    w = weights(batch=2)
    for call in (guided.__call__, tf.function(guided.__call__)):
        total, terms = call(images, w)
        expected_total, expected = objective(images, w)
        np.testing.assert_allclose(total.numpy(), expected_total.numpy(), rtol=1e-5)
        for name in STYLE:
            np.testing.assert_allclose(terms[f"style/{name}"].numpy(), expected[f"style/{name}"].numpy(), rtol=1e-5)


def test_regions_take_their_own_style_and_unstyled_regions_none():
    """Two content regions: the left one styled by image a, the right one by nothing. The guided term is
    1/K times region 0's term, and does not see the right half at all."""
    left = np.zeros((2, 16, 16), np.float32)
    left[0, :, :8] = 1
    left[1, :, 8:] = 1
    a = stripes_image(24, 20)
    only_left = [np.stack([np.ones((24, 20)), np.zeros((24, 20))])]
    guided = make_objective(Inputs(smooth_image(16, 16), [a], guides=guides_of(left, only_left)), content=())
    image = smooth_image(16, 16, seed=7)
    changed = image.copy()
    changed[:, 12:] = 1 - changed[:, 12:]   # the right region only, beyond the reach of conv1_1's 3x3 window
    w = weights(1, 0.0, 1.0, 0.0, (1.0, 0.0), content_layers=())
    _, t1 = guided(tf.constant(image[None]), w)
    _, t2 = guided(tf.constant(changed[None]), w)
    assert t1["style/conv1_1"].numpy()[0] == pytest.approx(t2["style/conv1_1"].numpy()[0], rel=1e-6)
    feats = EXTRACTOR(tf.constant(image[None]))["conv1_1"]
    target = losses.gram_matrix(EXTRACTOR(tf.constant(a[None]))["conv1_1"])
    by_hand = losses.style_layer_loss(losses.masked_gram(feats, tf.constant(left[:1])), target[:, None])[:, 0] / 2
    np.testing.assert_allclose(t1["style/conv1_1"].numpy(), by_hand.numpy(), rtol=1e-5)


def test_normalized_gradient_has_the_strength_as_l1_norm():
    x = tf.random.stateless_normal([2, 3, 4, 5], seed=[1, 1])
    strength = tf.constant([2.0, 5.0])

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(1e6 * tf.square(objective_module.normalized_gradient(x, strength)))
        return tape.gradient(loss, x)

    for run in (grad, tf.function(grad)):
        g = run(x).numpy()
        np.testing.assert_allclose(np.abs(g).sum(axis=(1, 2, 3)), [2.0, 5.0], rtol=1e-5)
        np.testing.assert_allclose(g / np.abs(g).sum(axis=(1, 2, 3), keepdims=True) * [[[[2.0]]], [[[5.0]]]],
                                   g, rtol=1e-5)   # the direction of 2e6 * x is kept
        assert (np.sign(g) == np.sign(x.numpy())).all()


def test_objective_normalizes_each_terms_gradient():
    """Content term alone (l2): the image gradient with normalization is the plain one divided by the
    L1 norm of dE/dF = F - P, per image; the forward values do not change."""
    inputs = Inputs(smooth_image(16, 16), [stripes_image(24, 20)])
    plain, normalized = make_objective(inputs), make_objective(inputs, normalize_gradients=True)
    images = tf.constant(np.stack([smooth_image(16, 16, seed=8), smooth_image(16, 16, seed=9)]))
    w = weights(2, 1.0, 0.0, 0.0, (1.0, 0.0))
    w["content"].assign([2.0, 5.0])

    def image_gradient(objective):
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(objective(x, w)[0])
            return tape.gradient(total, x)
        return grad

    diff = EXTRACTOR(images)["conv2_1"] - plain.objective.targets.content["conv2_1"]
    l1 = tf.reduce_sum(tf.abs(diff), axis=[1, 2, 3]).numpy()
    for run in (lambda f: f, tf.function):
        g = run(image_gradient(normalized))(images).numpy()
        expected = run(image_gradient(plain))(images).numpy() / l1[:, None, None, None]
        np.testing.assert_allclose(g, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_allclose(normalized(images, w)[0].numpy(), plain(images, w)[0].numpy(), rtol=1e-6)


def test_every_weighted_term_of_the_schema_has_its_math():
    from nst_tf import config
    extra = [t for t in config.weighted_terms() if t not in config.BUILTIN_TERMS]
    assert config.weighted_terms()[:3] == ("content", "style", "tv")
    assert set(extra) == set(losses.FEATURE_TERMS)


def test_a_feature_term_is_named_weighted_and_summed_like_the_others(monkeypatch):
    """A term registered in losses.FEATURE_TERMS (here a made-up one: the squared distance of the mean
    feature to the style's) joins the names, the weighted sums and the total, per image and compiled."""
    def mean(f):
        return tf.reduce_mean(f, axis=[1, 2])
    monkeypatch.setitem(losses.FEATURE_TERMS, "fake", losses.FeatureTerm(
        target=lambda maps, blend: sum(b * mean(m) for b, m in zip(blend, maps)),
        loss=lambda f, target: tf.reduce_sum(tf.square(mean(f) - target), axis=-1)))
    loss = make_loss(EXTRACTOR, CONTENT, STYLE, Inputs(smooth_image(16, 16), [stripes_image(24, 20)]),
                     feature_terms={"fake": ("conv1_1",)})
    names = term_names(loss.objective.term_layers)
    assert names[:5] == ["content/conv2_1", "style/conv1_1", "style/conv2_1", "fake/conv1_1", "tv"]
    assert summary_terms(names) == ["total", "weighted/content", "weighted/style", "weighted/fake", "weighted/tv",
                                    "content", "style", "fake", "tv"]
    images = tf.constant(np.stack([smooth_image(16, 16, seed=5), smooth_image(16, 16, seed=6)]))
    w = weights(2)
    w["fake"] = tf.Variable([7.0, 0.0])
    w["fake/conv1_1"] = tf.Variable([0.5, 0.5])
    for run in (loss, tf.function(loss.__call__)):
        total, terms = run(images, w)
        assert set(terms) == set(names)
        by_hand = tf.reduce_sum(tf.square(mean(EXTRACTOR(images)["conv1_1"])
                                          - mean(EXTRACTOR(tf.constant(stripes_image(24, 20)[None]))["conv1_1"])), -1)
        np.testing.assert_allclose(terms["fake/conv1_1"].numpy(), by_hand.numpy(), rtol=1e-5)
        np.testing.assert_allclose(terms["weighted/fake"].numpy(), [3.5 * by_hand[0], 0.0], rtol=1e-5)
        np.testing.assert_allclose(total.numpy(), (terms["weighted/content"] + terms["weighted/style"]
                                                   + terms["weighted/fake"] + terms["weighted/tv"]).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="fake"):
        make_loss(EXTRACTOR, CONTENT, STYLE, Inputs(smooth_image(16, 16), [stripes_image(24, 20)]), tile_size=8,
                  feature_terms={"fake": ("conv1_1",)})
