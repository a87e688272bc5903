"""Memory prediction: activation counts by hand, the tile and size choices, and their one-line refusals."""
import dataclasses

import pytest

from nst_tf import memory
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig
from nst_tf.errors import UserError
from nst_tf.plan import resolve

GiB = 2**30


def config(**optim):
    """A resolved config; without a canvas unless asked (the figures below are of the result's own pixels),
    without the style octaves and with the Gram style term (neither the octaves nor the sliced term can be
    tiled; plan.make_plan drops the default ones for tiles)."""
    optim = {"canvas_margin": 0, **optim}
    return resolve(Config(images=ImageConfig(content="c.png", style="s.png"), model=ModelConfig(backbone="vgg16_hed"),
                          loss=LossConfig(style_octaves=0, style_loss="gram"), optim=OptimConfig(seed=0, **optim)),
                   say=lambda _: None)


def test_activations_by_hand():
    # preprocessing (3 channels) + conv1_1 (64), at full resolution
    assert memory.activations("vgg16_hed", "avg", ("conv1_1",), 10, 12) == 10 * 12 * (3 + 64)
    # + conv1_2 (64), pool1 (64 at 1/4), conv2_1 (128 at 1/4)
    assert memory.activations("vgg16_hed", "avg", ("conv2_1",), 8, 12) == 8 * 12 * (3 + 64 + 64) + 4 * 6 * (64 + 128)


LAYERS = ("conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def test_prediction_is_the_fitted_model_of_the_activations():
    # peak = 1 GiB + 16 B per activation: conv1_1 of a 10 x 12 image keeps 10 * 12 * (3 + 64) of them
    assert memory.predict("vgg16_hed", "avg", ("conv1_1",), 10, 12) == GiB + 16 * 10 * 12 * 67
    # the default layers at 512 x 512: 78.4 million activations, 2.17 GiB (docs/speed.md's memory table: 1.78 measured)
    assert memory.activations("vgg16_hed", "avg", LAYERS, 512, 512) == 78_381_056
    assert memory.predict("vgg16_hed", "avg", LAYERS, 512, 512) / GiB == pytest.approx(2.168, abs=1e-3)


def test_prediction_grows_with_pixels_and_batch_and_tiles_bound_it():
    layers = ("conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    whole = [memory.predict("vgg16_hed", "avg", layers, s, s) for s in (256, 512, 1024, 2048)]
    assert whole == sorted(whole)
    assert memory.predict("vgg16_hed", "avg", layers, 512, 512, batch=2) > whole[1]
    tiled_4096 = memory.predict("vgg16_hed", "avg", layers, 4096, 4096, tile_size=512)
    assert tiled_4096 < whole[2] < memory.predict("vgg16_hed", "avg", layers, 4096, 4096)


def test_a_size_that_fits_is_left_alone():
    c = config()
    assert memory.fit_tiles(c, (256, 256), free=64 * GiB) == 0
    assert memory.fit_tiles(c, (256, 256), free=None) == 0   # unknown free memory: no check


def test_a_size_that_does_not_fit_whole_is_tiled_and_says_so():
    # 2048 px: 19.7 GiB whole; tiles of 1024 px 7.3 GiB, of 768 px 5.0 GiB, of 512 px 3.2 GiB
    said = []
    assert memory.fit_tiles(config(), (2048, 2048), 6 * GiB, say=said.append) == 768   # 90% of 6 GiB: 5.4
    assert said == ["2048 px: a whole-image step needs about 19.7 GiB of the 6.0 GiB free; in tiles of 768 px "
                    "(--tile_size=768) about 5.0 GiB"]
    assert memory.fit_tiles(config(), (2048, 2048), 4 * GiB, say=said.append) == 512


def test_what_cannot_fit_is_refused_with_the_size_that_would():
    free = 2.4 * GiB   # a run plans for 90%: 2.16 GiB, just under 512 px's 2.17 GiB
    with pytest.raises(UserError) as error:
        memory.fit_tiles(config(optimizer="lbfgs"), (2048, 2048), free)
    assert str(error.value) == ("--max_size=2048: a whole-image step needs about 19.7 GiB but 2.4 GiB is free; "
                                "--max_size=496 fits (tiles, which would fit larger sizes, need --optimizer=adam).")
    with pytest.raises(UserError, match=r"tiles of 1024 px need .* give a smaller --tile_size"):
        memory.fit_tiles(config(tile_size=1024), (4096, 4096), free)


def test_auto_size_is_the_largest_that_fits():
    c = config()
    free = 2.6034 * GiB / memory.HEADROOM   # 600 px needs 2.6034 GiB, 592 px 2.5615, 608 px 2.6470
    said = []
    assert memory.auto_size(c, free, say=said.append) == 592   # 16 px steps
    assert said[0].startswith("--max_size=auto: 592 px")
    with pytest.raises(UserError, match="needs the device's free memory"):
        memory.auto_size(c, None)
    with pytest.raises(UserError, match="not even 16 px fits"):
        memory.auto_size(c, 1.0)


def test_the_canvas_margin_is_counted():
    # a 16 px canvas around a 2048 px result optimizes 2080 x 2080 pixels: 20.3 GiB whole, not 19.7
    said = []
    memory.fit_tiles(config(canvas_margin=16), (2048, 2048), 6 * GiB, say=said.append)
    assert said[0].startswith("2048 px: a whole-image step needs about 20.3 GiB")
    assert memory.predict("vgg16_hed", "avg", LAYERS, 2080, 2080) / GiB == pytest.approx(20.3, abs=0.05)
    # --max_size=auto leaves room for the canvas: 592 px fits without one, 560 px with 16 px around it
    free = 2.6034 * GiB / memory.HEADROOM
    assert memory.auto_size(config(canvas_margin=16), free, say=lambda _: None) == 560


def test_what_cannot_be_tiled_is_refused_with_what_tiles_need():
    c = dataclasses.replace(config(), loss=dataclasses.replace(config().loss, normalize_gradients=True))
    free = 2.4 * GiB
    with pytest.raises(UserError, match=r"fits \(tiles, which would fit larger sizes, need no --normalize_gradients\)\.$"):
        memory.fit_tiles(c, (2048, 2048), free)


def test_octave_layers_count_the_network_on_the_pooled_image():
    whole = memory.activations("vgg16_hed", "avg", ("conv2_1",), 16, 24)
    quarter = memory.activations("vgg16_hed", "avg", ("conv1_1",), 4 + 32, 6 + 32)   # mirrored out by 16 px
    assert memory.activations("vgg16_hed", "avg", ("conv2_1", "conv1_1@4"), 16, 24) == whole + quarter
    # --style_octaves=2 adds conv1_1..conv4_1 at 1/2 and conv1_1..conv3_1 at 1/4 to the default layers
    plain, octaves = config(), dataclasses.replace(config(), loss=dataclasses.replace(config().loss, style_octaves=2))
    added = (memory.activations("vgg16_hed", "avg", ("conv4_1",), 256 + 32, 256 + 32)
             + memory.activations("vgg16_hed", "avg", ("conv3_1",), 128 + 32, 128 + 32))
    assert memory._need(octaves, 512, 512) - memory._need(plain, 512, 512) == memory.BYTES_PER_ACTIVATION * added
