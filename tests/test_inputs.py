"""Inputs: several style images and their blend weights, masks, and the sizes of a pyramid's scales."""
import numpy as np
import pytest
from PIL import Image

from nst_tf import color
from nst_tf.config import Config, ImageConfig, OptimConfig, blend_weights
from nst_tf.errors import UserError
from nst_tf.inputs import Inputs, initial_image, load_inputs
from tests.conftest import smooth_image, stripes_image, write_png


def test_blend_weights_are_normalized():
    two = Config(images=ImageConfig(content="c.jpg", style="a.jpg,b.jpg"))
    assert blend_weights(two) == (0.5, 0.5)
    three = Config(images=ImageConfig(content="c.jpg", style="a.jpg,b.jpg,c.jpg", style_blend_weights=(7, 2, 1)))
    assert blend_weights(three) == pytest.approx((0.7, 0.2, 0.1))
    assert sum(blend_weights(three)) == pytest.approx(1.0)


def test_load_inputs_reads_every_style_and_the_masks(tmp_path):
    content = write_png(tmp_path / "c.png", smooth_image(30, 40))
    a = write_png(tmp_path / "a.png", stripes_image(20, 20))
    b = write_png(tmp_path / "b.png", smooth_image(40, 20, seed=3))
    mask = np.zeros((30, 40, 3), np.uint8)
    mask[:, 20:] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    config = Config(images=ImageConfig(content=content, style=f"{a},{b}", style_blend_weights=(3, 1), max_size=32,
                                       content_mask=str(tmp_path / "m.png"), style_mask="#ffffff,#000000"))
    inputs = load_inputs(config)
    assert inputs.content.shape == (24, 32, 3)
    assert [s.shape for s in inputs.styles] == [(32, 32, 3), (32, 16, 3)]   # each at style_scale x 32
    assert inputs.blend == (0.75, 0.25)
    assert inputs.guides.content.shape == (2, 24, 32) and len(inputs.guides.styles) == 2
    assert inputs.guides.styles[1].shape == (2, 32, 16)


def test_detail_regions_are_guides_at_the_images_sizes(tmp_path):
    content = write_png(tmp_path / "c.png", smooth_image(30, 40))
    style = write_png(tmp_path / "s.png", stripes_image(20, 20))
    inputs = load_inputs(Config(images=ImageConfig(content=content, style=style, max_size=32, regions="detail")))
    assert inputs.guides.content.shape == (2, 24, 32) and inputs.guides.styles[0].shape == (2, 32, 32)
    assert inputs.guides.content.sum(axis=0).min() == 1   # every pixel in exactly one region
    assert load_inputs(Config(images=ImageConfig(content=content, style=style, max_size=32))).guides is None


def test_inputs_at_a_smaller_scale_keep_relative_sizes():
    guides_content = np.zeros((2, 24, 32), np.float32)
    guides_content[0, :, :16] = 1
    guides_content[1, :, 16:] = 1
    from nst_tf.masks import Guides
    inputs = Inputs(smooth_image(24, 32), [stripes_image(48, 48)], (1.0,),
                    Guides(guides_content, [np.ones((2, 48, 48), np.float32)], ["#000000", "#ffffff"]))
    half = inputs.at(16)
    assert half.content.shape == (12, 16, 3) and half.styles[0].shape == (24, 24, 3)
    assert half.guides.content.shape == (2, 12, 16) and half.guides.styles[0].shape == (2, 24, 24)
    assert half.guides.content[0, :, :8].all() and not half.guides.content[0, :, 8:].any()


def test_working_inputs_take_every_style_to_the_content_colours():
    inputs = Inputs(smooth_image(16, 16), [stripes_image(16, 16), smooth_image(20, 12, seed=5)], (0.5, 0.5))
    working = inputs.working("histogram", "cholesky")
    for style in working.styles:
        np.testing.assert_allclose(style.reshape(-1, 3).mean(0), inputs.content.reshape(-1, 3).mean(0), atol=0.03)
    grey = inputs.working("luminance", "cholesky")
    assert all(np.allclose(s[..., 0], s[..., 1]) for s in [grey.content, *grey.styles])


def test_initial_image_from_the_first_style():
    inputs = Inputs(smooth_image(16, 12), [stripes_image(30, 30), smooth_image(8, 8)])
    config = Config(images=ImageConfig(content="c", style="a,b"))
    import dataclasses
    start = initial_image(dataclasses.replace(config, optim=dataclasses.replace(config.optim, init="style")), inputs, 0)
    assert start.shape == (16, 12, 3)


def test_recolored_start_has_the_blended_styles_palette():
    content = smooth_image(16, 12)
    # two flat styles, red and blue, blended 3:1: the mixture has mean (0.75, 0, 0.25) and, between R and B,
    # variance 0.75 * 0.25 each and covariance -0.75 * 0.25
    red, blue = np.zeros((8, 8, 3), np.float32), np.zeros((10, 6, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    mean, cov = color.palette([red, blue], (0.75, 0.25))
    np.testing.assert_allclose(mean, [0.75, 0.0, 0.25])
    q = 0.75 * 0.25
    np.testing.assert_allclose(cov, [[q, 0, -q], [0, 0, 0], [-q, 0, q]], atol=1e-12)
    # a palette the content can take without clipping: the start has the styles' mean and covariance
    styles = [smooth_image(20, 20, seed=1) * 0.5 + 0.25, smooth_image(12, 18, seed=2) * 0.4 + 0.1]
    inputs = Inputs(content, styles, (0.5, 0.5))
    mean, cov = color.palette(styles, (0.5, 0.5))
    for k in (1.0, 0.5, 0.0):   # --init_contrast: the covariance scales by k^2
        config = Config(images=ImageConfig(content="c", style="a,b", color_match="pca"),
                        optim=OptimConfig(init_contrast=k, init_noise=0.0))
        start = initial_image(config, inputs, 0).reshape(-1, 3).astype(np.float64)
        assert config.start_from == "recolored" and start.min() > 0.0 and start.max() < 1.0
        np.testing.assert_allclose(start.mean(0), mean, atol=1e-5)
        np.testing.assert_allclose(np.cov(start, rowvar=False, bias=True), k * k * cov, atol=1e-4)


def test_init_noise_adds_smooth_noise_to_the_start():
    """--init_noise=sigma: the start is clip(start + sigma * smooth_noise(cells, seed)), on any start; off by
    default."""
    from nst_tf import image_io
    content, style = smooth_image(24, 32, seed=1) * 0.6 + 0.2, smooth_image(20, 20, seed=2)
    inputs = Inputs(content, [style])
    plain = Config(images=ImageConfig(content="c", style="s"), optim=OptimConfig(init_noise=0.0))
    base = initial_image(plain, inputs, 3)
    for sigma, cells, start in ((0.15, 16, base), (0.4, 4, base)):
        config = Config(images=ImageConfig(content="c", style="s"),
                        optim=OptimConfig(init_noise=sigma, init_noise_cells=cells))
        want = np.clip(start + sigma * image_io.smooth_noise(start.shape, cells, 3), 0.0, 1.0)
        np.testing.assert_allclose(initial_image(config, inputs, 3), want, atol=1e-6)
        assert not np.allclose(initial_image(config, inputs, 3), base, atol=1e-3)
    default = Config(images=ImageConfig(content="c", style="s"))
    np.testing.assert_array_equal(initial_image(default, inputs, 3), base)   # off by default
    on_content = Config(images=ImageConfig(content="c", style="s"), optim=OptimConfig(init="content", init_noise=0.2))
    assert not np.allclose(initial_image(on_content, inputs, 3), content, atol=1e-3)   # any start takes it


def test_style_mask_count_must_match_the_styles(tmp_path):
    from nst_tf.config import validate
    config = Config(images=ImageConfig(content="c.jpg", style="a.jpg,b.jpg", content_mask="m.png",
                                       style_mask="#ffffff"))
    with pytest.raises(UserError, match="1 entries for 2 style images"):
        validate(config)
