"""The stylizer network (nst_tf/stylizer/network.py): shapes at any size, the layers' math by hand,
style blending, and a save/load round trip."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.stylizer import network


@pytest.fixture(scope="module", params=network.ARCHS)
def model(request):
    keras.utils.set_random_seed(1)
    return network.build_stylizer(2, 4, ("starry", "wave"), request.param)


@pytest.mark.parametrize("arch, channels", [("johnson", [8, 16, 32, 32, 16, 8, 3]),
                                            ("lite", [8, 16, 16, 16, 8, 4, 3])])
def test_the_architectures_channels(arch, channels):
    """Width 8: the first convolution, the two stride-2 ones, a residual block's, the two upsamplings', RGB."""
    convs = [layer.filters for layer in network.build_stylizer(1, 8, arch=arch).layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 3 + 2 * network.NUM_RESIDUAL_BLOCKS + 3
    assert [convs[0], convs[1], convs[2], convs[3], convs[-3], convs[-2], convs[-1]] == channels


@pytest.mark.parametrize("height,width", [(32, 32), (37, 53), (18, 31)])
def test_any_size_comes_back_the_same_size_in_zero_one(model, height, width):
    x = np.random.default_rng(0).random((2, height, width, 3), np.float32)
    y = model([x, np.eye(2, dtype=np.float32)]).numpy()
    assert y.shape == x.shape
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_eager_and_compiled_agree(model):
    x = np.random.default_rng(1).random((1, 21, 30, 3), np.float32)
    w = np.array([[0.25, 0.75]], np.float32)
    compiled = tf.function(lambda a, b: model([a, b]))
    np.testing.assert_allclose(compiled(x, w).numpy(), model([x, w]).numpy(), atol=1e-6)


def test_reflection_pad_mirrors_without_repeating_the_edge():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    got = network.ReflectionPad(2)(x).numpy()
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))


def test_pad_to_multiple_and_crop_back():
    x = np.random.default_rng(2).random((1, 5, 6, 3), np.float32)
    padded = network.PadToMultiple(4)(x).numpy()
    assert padded.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 3), (0, 2), (0, 0)), mode="reflect"))
    np.testing.assert_array_equal(network.CropTo()([padded, x]).numpy(), x)


def test_upsample_repeats_each_pixel_twice_each_way():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    np.testing.assert_array_equal(network.Upsample()(x).numpy()[0, :, :, 0], np.kron(x[0, :, :, 0], np.ones((2, 2))))


def test_conditional_instance_norm_by_hand():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (2, 5, 4, 3)).astype(np.float32)
    layer = network.ConditionalInstanceNorm(2)
    w = np.array([[1.0, 0.0], [0.3, 0.7]], np.float32)
    layer([x, w])
    gammas = rng.uniform(0.5, 2, (2, 3)).astype(np.float32)
    betas = rng.normal(0, 1, (2, 3)).astype(np.float32)
    layer.gamma.assign(gammas)
    layer.beta.assign(betas)
    got = layer([x, w]).numpy()
    for b in range(2):
        mean = x[b].mean(axis=(0, 1))
        var = x[b].var(axis=(0, 1))
        gamma, beta = w[b] @ gammas, w[b] @ betas   # the style weights mix the scales and shifts
        expected = (x[b] - mean) / np.sqrt(var + 1e-5) * gamma + beta
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-4)


def test_blend_weights_select_and_mix_styles(model):
    """One-hot weights give each style's own result; the two styles differ; a blend lies between them
    (it is not either one)."""
    for layer in model.layers:   # make the two styles' normalization weights different
        if isinstance(layer, network.ConditionalInstanceNorm):
            layer.gamma.assign(np.stack([np.ones(layer.gamma.shape[1]), 2 * np.ones(layer.gamma.shape[1])]))
    x = np.random.default_rng(4).random((1, 24, 24, 3), np.float32)
    first = model([x, np.array([[1.0, 0.0]], np.float32)]).numpy()
    second = model([x, np.array([[0.0, 1.0]], np.float32)]).numpy()
    mixed = model([x, np.array([[0.5, 0.5]], np.float32)]).numpy()
    assert np.abs(first - second).mean() > 1e-3
    assert np.abs(mixed - first).mean() > 1e-4 and np.abs(mixed - second).mean() > 1e-4


def test_save_and_load_give_the_same_image(model, tmp_path):
    path = str(tmp_path / "stylizer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = np.random.default_rng(5).random((1, 19, 26, 3), np.float32)
    w = np.array([[0.6, 0.4]], np.float32)
    np.testing.assert_allclose(loaded([x, w]).numpy(), model([x, w]).numpy(), atol=1e-6)
    assert network.num_styles(loaded) == 2
    assert network.style_names_of(loaded) == ("starry", "wave")


def test_style_names_default_when_none_were_given():
    assert network.style_names_of(network.build_stylizer(3, 4)) == ("style1", "style2", "style3")
