"""--padding: reflect and replicate padding of the VGG convolutions, by hand; weights unchanged."""
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones


def left_neighbour(mode):
    """A 1-channel 3x3 conv whose output at (i, j) is its input at (i, j - 1)."""
    conv = (backbones.PaddedConv2D(1, 3, pad_mode=mode, use_bias=False) if mode != "zero"
            else tf.keras.layers.Conv2D(1, 3, padding="same", use_bias=False))
    conv.build((1, 3, 3, 1))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 0, 0, 0] = 1.0
    conv.set_weights([kernel])
    return conv


def test_padding_modes_by_hand():
    x = np.tile(np.array([1.0, 2.0, 3.0], np.float32), 3).reshape(1, 3, 3, 1)   # three equal rows
    # zero: [0] 1 2 3 -> 0 1 2; reflect: [2] 1 2 3 -> 2 1 2; replicate: [1] 1 2 3 -> 1 1 2
    for mode, want in (("zero", [0, 1, 2]), ("reflect", [2, 1, 2]), ("replicate", [1, 1, 2])):
        np.testing.assert_array_equal(left_neighbour(mode)(x).numpy()[0, 1, :, 0], want)


def test_padded_vgg_has_the_same_shapes_and_interior():
    zero = backbones.load_backbone("vgg16_hed", weights="random", seed=0)
    for mode, scope in (("reflect", "all"), ("replicate", "first")):
        padded = backbones.load_backbone("vgg16_hed", weights="random", seed=0, padding=mode, padding_scope=scope)
        x = tf.random.uniform((1, 40, 56, 3), seed=1)
        a = backbones.build_extractor(zero, ("conv1_1", "conv3_1"))(x)
        b = backbones.build_extractor(padded, ("conv1_1", "conv3_1"))(x)
        assert a["conv3_1"].shape == b["conv3_1"].shape
        # only the border of conv1_1 changes
        np.testing.assert_allclose(a["conv1_1"][:, 1:-1, 1:-1].numpy(), b["conv1_1"][:, 1:-1, 1:-1].numpy(), atol=1e-4)
        assert not np.allclose(a["conv1_1"][:, 0].numpy(), b["conv1_1"][:, 0].numpy())


def test_canvas_is_the_image_mirrored_out():
    from nst_tf import engine
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1).repeat(3, axis=-1)
    canvas = engine.pad_canvas(image, 2)
    assert canvas.shape == (7, 8, 3)
    np.testing.assert_array_equal(canvas[2:-2, 2:-2], image)          # the centre is the image
    np.testing.assert_array_equal(canvas[2, :2, 0], [2.0, 1.0])         # row 0 mirrored: 2 1 | 0 1 2 3
    np.testing.assert_array_equal(engine.crop_canvas(canvas[None], 2)[0], image)
    assert engine.pad_canvas(image, 0) is image


def test_the_canvas_margin_scales_with_the_pyramid():
    from nst_tf import engine
    assert engine.canvas_margin(16, 512, 512, (384, 512, 3)) == 16
    assert engine.canvas_margin(16, 128, 512, (96, 128, 3)) == 4
    assert engine.canvas_margin(16, 32, 512, (24, 32, 3)) == 1       # at least 1 px where it is on
    assert engine.canvas_margin(64, 512, 512, (20, 512, 3)) == 19    # less than the short side
    assert engine.canvas_margin(0, 512, 512, (384, 512, 3)) == 0


def test_a_texture_canvas_divides_its_sums_by_the_canvas_positions():
    """Texture mode has no content to mirror out, yet its canvas is larger than the result: the statistics
    of the image optimized must be averaged over the canvas's positions. With the result's (smaller) count,
    the moments' constant entry E[1] exceeded 1, the covariance was not positive semi-definite, and a
    --style_loss=wasserstein texture with a canvas was NaN at its first step."""
    from nst_tf import engine
    from nst_tf.evaluate import make_loss
    from nst_tf.inputs import Inputs
    from nst_tf.objective import WHOLE
    from tests.conftest import make_fake_extractor, stripes_image

    style = stripes_image(20, 24)
    canvas = engine.canvas_inputs(Inputs(None, [style]), 3)
    assert canvas.shape == (26, 30, 3) and canvas.style is style   # the target is the style image, not a canvas
    assert engine.canvas_inputs(Inputs(None, [style]), 0).shape == (20, 24, 3)
    extractor = make_fake_extractor()
    loss = make_loss(extractor, (), ("conv1_1", "conv2_1"), canvas, style_loss="mean_cov")
    image = tf.constant(engine.pad_canvas(style, 3)[None])
    sums = loss.objective.sums(extractor(image), WHOLE)
    for name in ("conv1_1", "conv2_1"):
        stats = (sums[f"style/{name}"] / loss.objective.targets.counts[name]).numpy()
        assert stats[0, -1, -1] == pytest.approx(1.0)          # E[1] over the canvas's positions
