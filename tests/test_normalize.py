"""The paper's normalized network: channel means, their equivalence to rescaled weights, the cache."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones, normalize, registry
from nst_tf.errors import UserError
from tests.conftest import smooth_image, stripes_image, write_png

LAYERS = ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2")


@pytest.fixture(scope="module")
def vgg():
    return backbones.load_backbone("vgg16_hed", weights="random", seed=5)


@pytest.fixture(scope="module")
def images():
    return [smooth_image(24, 32, seed=1), stripes_image(32, 24), smooth_image(16, 16, seed=2)]


def test_channel_means_by_hand(vgg, images):
    means = normalize.channel_means(vgg, images)
    assert set(means) == {ours for ours, _ in registry.layer_table(registry.BACKBONES["vgg16_hed"])}
    extractor = backbones.build_extractor(vgg, ("conv2_1",))
    # Each image counts equally: the mean of the per-image means over positions.
    per_image = [np.abs(extractor(im[None])["conv2_1"].numpy()).mean(axis=(0, 1, 2)) for im in images]
    expected = np.mean(per_image, axis=0)
    expected = np.maximum(expected, normalize.FLOOR * np.mean(expected))
    np.testing.assert_allclose(means["conv2_1"], expected, rtol=1e-5)
    assert means["conv2_1"].shape == (128,) and means["conv2_1"].dtype == np.float32


def test_normalized_features_have_mean_one(vgg, images):
    means = normalize.channel_means(vgg, images)
    raw = backbones.build_extractor(vgg, LAYERS)
    extractor = backbones.build_extractor(vgg, LAYERS, scales=means)
    for name in LAYERS:
        raw_m = np.mean([np.abs(raw(im[None])[name].numpy()).mean(axis=(0, 1, 2)) for im in images], axis=0)
        m = np.mean([extractor(im[None])[name].numpy().mean(axis=(0, 1, 2)) for im in images], axis=0)
        unclamped = raw_m >= normalize.FLOOR * raw_m.mean()
        assert unclamped.mean() > 0.5
        np.testing.assert_allclose(m[unclamped], 1.0, rtol=1e-4)
        assert np.all(m[~unclamped] < 1.0)   # rarely active channels: divided by the floor, so below 1


def test_division_equals_the_papers_rescaled_weights(vgg, images):
    """Gatys et al. rescale the weights: filter k of a conv layer divided by m_k, the next conv layer's
    inputs from channel k multiplied by m_k. Doing that to a copy of the network gives raw features equal
    to the original ones divided by the means, which is what the extractor computes."""
    means = normalize.channel_means(vgg, images)
    rescaled = keras.models.clone_model(vgg)
    rescaled.set_weights(vgg.get_weights())
    previous = None
    for ours, keras_name in registry.layer_table(registry.BACKBONES["vgg16_hed"]):
        if not ours.startswith("conv"):
            continue
        layer = rescaled.get_layer(keras_name)
        kernel, bias = layer.get_weights()
        if previous is not None:
            kernel = kernel * previous[None, None, :, None]
        layer.set_weights([kernel / means[ours], bias / means[ours]])
        previous = means[ours]
    x = tf.constant(images[0][None])
    by_weights = backbones.build_extractor(rescaled, LAYERS)(x)
    by_division = backbones.build_extractor(vgg, LAYERS, scales=means)(x)
    for name in LAYERS:
        np.testing.assert_allclose(by_weights[name].numpy(), by_division[name].numpy(), rtol=1e-3, atol=1e-4)


def test_dead_channels_get_the_floor():
    model = backbones.load_backbone("vgg16_hed", weights="random", seed=0)
    conv = model.get_layer("block1_conv1")
    kernel, bias = conv.get_weights()
    kernel[..., 3], bias[3] = 0.0, -1.0   # channel 3 never fires after the ReLU
    conv.set_weights([kernel, bias])
    means = normalize.channel_means(model, [smooth_image(16, 16)])
    x = smooth_image(16, 16)[None]
    raw = np.abs(backbones.build_extractor(model, ("conv1_1",))(x)["conv1_1"].numpy()).mean(axis=(0, 1, 2))
    assert raw[3] == 0 and means["conv1_1"][3] == pytest.approx(normalize.FLOOR * raw.mean(), rel=1e-5)


def test_scales_are_cached_per_images_and_weights(tmp_path, monkeypatch, vgg):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(folder / "a.png", smooth_image(20, 20))
    said = []
    first = normalize.feature_scales(vgg, "avg", "random", 5, str(folder), said.append)
    assert len(said) == 1 and "measuring mean activations on 1 images" in said[0]
    again = normalize.feature_scales(vgg, "avg", "random", 5, str(folder), said.append)
    assert len(said) == 1   # read from the cache, not measured again
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert len(os.listdir(tmp_path / "cache" / "nst_tf")) == 1
    write_png(folder / "b.png", stripes_image(20, 20))   # another image set: measured again
    normalize.feature_scales(vgg, "avg", "random", 5, str(folder), said.append)
    normalize.feature_scales(vgg, "avg", "random", 6, str(folder), said.append)   # other weights
    assert len(said) == 3 and len(os.listdir(tmp_path / "cache" / "nst_tf")) == 3
    normalize.feature_scales(vgg, "avg", "random", 6, str(folder), said.append, ("reflect", "first"))
    assert len(said) == 4 and len(os.listdir(tmp_path / "cache" / "nst_tf")) == 4   # another padding


def test_a_corrupt_cache_file_is_measured_again(tmp_path, monkeypatch, vgg):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    files = normalize.image_files(None)
    path = normalize.cache_path("vgg16_hed", "avg", "random", 5, files)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"junk")
    said = []
    scales = normalize.feature_scales(vgg, "avg", "random", 5, None, said.append)
    assert said and scales["conv1_1"].shape == (64,)


def test_bundled_images_and_bad_folders(tmp_path):
    files = normalize.image_files(None)
    assert len(files) >= 5 and all(os.path.getsize(f) > 0 for f in files)
    with pytest.raises(UserError, match="is not a folder"):
        normalize.image_files(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="holds no image files"):
        normalize.image_files(str(tmp_path))
