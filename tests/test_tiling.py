"""Tiled evaluation equals whole-image evaluation: values, gradients and Adam steps (random-weight VGG)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones, masks, tiling
from nst_tf.evaluate import make_loss
from nst_tf.inputs import Inputs
from nst_tf.objective import loss_weights
from nst_tf.optimize import make_adam_step
from tests.conftest import smooth_image, stripes_image

SHALLOW = ("conv1_1", "conv2_1", "conv3_1")   # stride 4: many tiles on a small image
DEEP = ("conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")   # the default layers


@pytest.fixture(scope="module")
def vgg():
    return backbones.load_backbone("vgg16_hed", weights="random", seed=0)


def test_receptive_field_of_vgg_by_hand(vgg):
    # 3x3 convolutions reach 1 * stride further per side; the 2x2 pools add nothing:
    # conv1_x 2*1 + conv2_x 2*2 + conv3_x 3*4 + conv4_x 3*8 + conv5_1 1*16 = 58, at stride 16
    assert tiling.receptive_field(backbones.build_extractor(vgg, ("conv5_1",))) == (58, 16)
    assert tiling.receptive_field(backbones.build_extractor(vgg, ("conv3_1",))) == (1 + 1 + 2 + 2 + 4, 4)


def test_receptive_field_of_an_overlapping_pool():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 5, padding="same")(inputs)          # 2 px
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)  # (3 - 2) * 1 px, then stride 2
    x = keras.layers.Conv2D(2, 3, padding="same")(x)               # 1 * 2 px
    assert tiling.receptive_field(keras.Model(inputs, x)) == (2 + 1 + 2, 2)


def test_branches_are_refused():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Add()([keras.layers.Conv2D(3, 3, padding="same")(inputs), inputs])
    with pytest.raises(ValueError, match="chain"):
        tiling.receptive_field(keras.Model(inputs, x))


def test_windows_cover_the_image_once_on_the_stride_grid(vgg):
    tiles = tiling.Tiles(backbones.build_extractor(vgg, ("conv5_1",)), 100)
    assert (tiles.size, tiles.halo, tiles.stride) == (96, 64, 16)
    windows = tiles.windows(250, 300)
    seen = np.zeros((250, 300), int)
    for w in windows:
        seen[w.y0:w.y1, w.x0:w.x1] += 1
        assert w.y0 % 16 == 0 and w.x0 % 16 == 0 and w.cy0 % 16 == 0 and w.cx0 % 16 == 0
        assert (w.cy0, w.cx0) == (max(0, w.y0 - 64), max(0, w.x0 - 64))
        assert (w.cy1, w.cx1) == (min(250, w.y1 + 64), min(300, w.x1 + 64))
    assert (seen == 1).all() and len(windows) == 3 * 4


def objectives(vgg, layers, inputs, tile_size, **kwargs):
    content = tuple(n for n in layers if n.startswith("conv4_2")) or ("conv2_1",)
    style = tuple(n for n in layers if n not in content)
    extractor = backbones.build_extractor(vgg, content + style)
    whole = make_loss(extractor, content, style, inputs, **kwargs)
    tiled = make_loss(extractor, content, style, inputs, tile_size=tile_size, **kwargs)
    row = {"content": 1.0, "style": 1e3, "tv": 1.0, f"content/{content[0]}": 1.0,
           **{f"style/{n}": w for n, w in zip(style, np.linspace(0.5, 1.5, len(style)))}}
    weights = loss_weights([row, {**row, "style": 1e2}])   # the two images of the batch weigh the terms differently
    return whole, tiled, weights


def assert_same(whole, tiled, images, weights, grad_atol=2e-5):
    total_w, terms_w, grad_w = whole.value_and_gradient(images, weights)
    total_t, terms_t, grad_t = tiled.value_and_gradient(images, weights)
    assert set(terms_w) == set(terms_t)
    for name in terms_w:
        np.testing.assert_allclose(terms_t[name], terms_w[name], rtol=2e-5, atol=1e-9, err_msg=name)
    scale = float(tf.reduce_max(tf.abs(grad_w)))
    np.testing.assert_allclose(grad_t / scale, grad_w / scale, atol=grad_atol)
    np.testing.assert_allclose(tiled(images, weights)[0], total_w, rtol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_tiled_equals_whole_with_edge_padding_and_every_style_statistic(padding):
    """Tiles pad at their crops' edges (inside the halo) and at the image's edges (as whole images do); the
    statistic style losses and scale-free terms are sums over positions too."""
    vgg = backbones.load_backbone("vgg16_hed", weights="random", seed=0, padding=padding)
    inputs = Inputs(smooth_image(44, 58), [stripes_image(30, 50)])
    images = tf.constant(np.stack([smooth_image(44, 58, seed=1), smooth_image(44, 58, seed=2)]))
    for style_loss in ("gram", "wasserstein", "mean_std"):
        whole, tiled, weights = objectives(vgg, SHALLOW, inputs, tile_size=12, normalize_terms=True,
                                           style_loss=style_loss)
        # W2's Newton-Schulz square roots amplify the float32 rounding of sums added in another order
        assert_same(whole, tiled, images, weights, grad_atol=2e-4 if style_loss == "wasserstein" else 2e-5)


def test_tiled_values_and_gradients_equal_whole_image_ones(vgg):
    inputs = Inputs(smooth_image(44, 58), [stripes_image(30, 50)])
    whole, tiled, weights = objectives(vgg, SHALLOW, inputs, tile_size=8, content_loss="l1")
    assert len(tiled.evaluator.tiles.windows(44, 58)) == 6 * 8
    images = tf.constant(np.stack([smooth_image(44, 58, seed=1), smooth_image(44, 58, seed=2)]))
    assert_same(whole, tiled, images, weights)


@pytest.mark.slow
def test_tiled_equals_whole_with_the_default_layers_down_to_conv5_1(vgg):
    inputs = Inputs(smooth_image(96, 120), [stripes_image(80, 100)])
    whole, tiled, weights = objectives(vgg, DEEP, inputs, tile_size=32)
    assert tiled.evaluator.tiles.halo == 64 and len(tiled.evaluator.tiles.windows(96, 120)) == 3 * 4
    images = tf.constant(np.stack([smooth_image(96, 120, seed=1), smooth_image(96, 120, seed=2)]))
    for name in whole.objective.targets.content:
        np.testing.assert_allclose(tiled.objective.targets.content[name], whole.objective.targets.content[name],
                                   rtol=1e-5, atol=1e-4)
    for name in whole.objective.targets.style:
        np.testing.assert_allclose(tiled.objective.targets.style[name], whole.objective.targets.style[name],
                                   rtol=1e-5, atol=1e-6)
    assert_same(whole, tiled, images, weights)


@pytest.mark.slow   # seconds; the whole suite runs it
def test_tiled_equals_whole_with_masks(vgg):
    left = np.zeros((2, 44, 58), np.float32)
    left[0, :, :29], left[1, :, 29:] = 1, 1
    style_regions = np.zeros((2, 30, 50), np.float32)
    style_regions[0, :15], style_regions[1, 15:] = 1, 1
    guides = masks.Guides(left, [style_regions], ["#ff0000", "#0000ff"])
    inputs = Inputs(smooth_image(44, 58), [stripes_image(30, 50)], guides=guides)
    whole, tiled, weights = objectives(vgg, SHALLOW, inputs, tile_size=12)
    images = tf.constant(np.stack([smooth_image(44, 58, seed=1), smooth_image(44, 58, seed=2)]))
    assert_same(whole, tiled, images, weights)


@pytest.mark.slow   # seconds; the whole suite runs it
def test_tiled_adam_steps_equal_whole_image_ones(vgg):
    inputs = Inputs(smooth_image(40, 40), [stripes_image(32, 32)])
    whole, tiled, weights = objectives(vgg, SHALLOW, inputs, tile_size=16)
    start = np.stack([smooth_image(40, 40, seed=1), smooth_image(40, 40, seed=2)])
    results = []
    for objective in (whole, tiled):
        images = tf.Variable(start)
        step = make_adam_step(objective, keras.optimizers.Adam(0.02))
        for _ in range(3):
            step(images, weights)
        results.append(images.numpy())
    assert np.abs(results[0] - start).max() > 0.01   # the steps moved the pixels
    np.testing.assert_allclose(results[1], results[0], atol=1e-5)


def test_tiles_refuse_gradient_normalization(vgg):
    extractor = backbones.build_extractor(vgg, SHALLOW)
    with pytest.raises(ValueError, match="normalize"):
        make_loss(extractor, (), SHALLOW, Inputs(None, [stripes_image(16, 16)]), normalize_gradients=True,
                  tile_size=8)


def test_tiled_equals_whole_with_a_content_image_per_image(vgg):
    """A many-photo batch: each image of the batch has its own content targets, tiled as whole."""
    extractor = backbones.build_extractor(vgg, ("conv2_1", "conv1_1"))
    contents = [smooth_image(44, 58, seed=3), smooth_image(44, 58, seed=4)]
    inputs = Inputs(contents[0], [stripes_image(30, 50)])
    whole = make_loss(extractor, ("conv2_1",), ("conv1_1",), inputs, contents=contents)
    tiled = make_loss(extractor, ("conv2_1",), ("conv1_1",), inputs, tile_size=12, contents=contents)
    assert whole.objective.targets.content["conv2_1"].shape[0] == 2
    weights = loss_weights([{"content": 1.0, "content/conv2_1": 1.0, "style": 1e3, "style/conv1_1": 1.0,
                             "tv": 1.0}] * 2)
    images = tf.constant(np.stack(contents))
    assert_same(whole, tiled, images, weights)
    _, terms = whole(images, weights)   # each image is its own content: no content loss
    np.testing.assert_allclose(terms["content/conv2_1"].numpy(), [0.0, 0.0], atol=1e-2)
