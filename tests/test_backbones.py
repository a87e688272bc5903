"""Backbones with random or bundled offline weights: names, shapes, truncation, outputs, weights files."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones
from nst_tf.errors import UserError

VGG19 = backbones.BACKBONES["vgg19"]
VGG16 = backbones.BACKBONES["vgg16_hed"]


@pytest.mark.parametrize("name, expected", [
    ("conv4_2", "conv4_2"), ("block4_conv2", "conv4_2"), ("relu4_2", "conv4_2"), ("CONV4_2", "conv4_2"),
    ("conv_1", "conv1_1"), ("conv_9", "conv4_1"), ("conv_16", "conv5_4"), ("pool3", "pool3"),
    ("block3_pool", "pool3"),
])
def test_resolve_layer_vgg19(name, expected):
    assert backbones.resolve_layer(name, VGG19) == expected


def test_sequential_numbering_follows_the_architecture():
    # VGG16 has 2, 2, 3, 3, 3 convs: the 10th is conv4_3 (VGG19's 10th is conv4_2).
    assert backbones.resolve_layer("conv_10", VGG16) == "conv4_3"
    assert backbones.resolve_layer("conv_10", VGG19) == "conv4_2"


@pytest.mark.parametrize("bad", ["conv6_1", "conv_17", "conv5_4_", "block4_conv9", ""])
def test_unknown_layer_lists_valid_ones(bad):
    with pytest.raises(UserError, match="valid layers: conv1_1, conv1_2, pool1"):
        backbones.resolve_layer(bad, VGG19)


def test_vgg16_has_no_conv5_4():
    with pytest.raises(UserError, match="unknown layer 'conv5_4' for vgg16_hed"):
        backbones.resolve_layer("conv5_4", VGG16)


@pytest.mark.parametrize("spec", [VGG19, VGG16])
def test_random_backbone_shapes_and_truncation(spec):
    model = backbones.load_backbone(spec.name, weights="random")
    extractor = backbones.build_extractor(model, ("conv1_1", "block2_conv1", "conv3_1"))
    out = extractor(tf.zeros((2, 32, 24, 3)))
    assert set(out) == {"conv1_1", "conv2_1", "conv3_1"}
    assert out["conv1_1"].shape == (2, 32, 24, 64)
    assert out["conv2_1"].shape == (2, 16, 12, 128)
    assert out["conv3_1"].shape == (2, 8, 6, 256)
    # Truncated after the deepest selected layer: nothing of block 3 beyond conv3_1, no block 4.
    names = [layer.name for layer in extractor.layers]
    assert names[-1] == "block3_conv1" and "block3_conv2" not in names and "block4_conv1" not in names
    assert not extractor.trainable and not extractor.trainable_weights


def test_extractor_outputs_are_what_the_backbone_computes():
    model = backbones.load_backbone("vgg19", weights="random", seed=3)
    extractor = backbones.build_extractor(model, ("conv2_2", "pool2"))
    x = tf.random.uniform((1, 20, 20, 3), seed=1)
    # Run the layers one by one by hand.
    h = model.get_layer("preprocess")(x)
    for name in ("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2"):
        h = model.get_layer(name)(h)
    out = extractor(x)
    np.testing.assert_allclose(out["conv2_2"].numpy(), h.numpy(), rtol=1e-5, atol=1e-4)
    pooled = tf.nn.avg_pool2d(h, 2, 2, "VALID")
    np.testing.assert_allclose(out["pool2"].numpy(), pooled.numpy(), rtol=1e-5, atol=1e-4)


def test_preprocessing_is_caffe_bgr():
    layer = backbones.CaffePreprocess((1.0, 2.0, 3.0))
    rgb = tf.constant([[[[1.0, 0.5, 0.0]]]])
    np.testing.assert_allclose(layer(rgb).numpy()[0, 0, 0], [0 - 1.0, 127.5 - 2.0, 255 - 3.0])


def test_max_pooling_option():
    model = backbones.load_backbone("vgg16_hed", pooling="max", weights="random")
    assert isinstance(model.get_layer("block1_pool"), keras.layers.MaxPooling2D)
    model = backbones.load_backbone("vgg16_hed", pooling="avg", weights="random")
    assert isinstance(model.get_layer("block1_pool"), keras.layers.AveragePooling2D)


def test_hed_weights_are_the_files(hed_backbone):
    with h5py.File(backbones.hed_weights_path(), "r") as f:
        kernel = np.asarray(f["block4/layers/conv2d_2/vars/0"])
        bias = np.asarray(f["block1/layers/conv2d/vars/1"])
    np.testing.assert_array_equal(hed_backbone.get_layer("block4_conv3").kernel.numpy(), kernel)
    np.testing.assert_array_equal(hed_backbone.get_layer("block1_conv1").bias.numpy(), bias)


def test_bad_weights_files(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="cannot read HED weights"):
        backbones.load_backbone("vgg16_hed", weights=str(junk))
    with pytest.raises(UserError, match="cannot load VGG19 weights"):
        backbones.load_backbone("vgg19", weights=str(junk))
    with pytest.raises(UserError, match="weights file not found"):
        backbones.load_backbone("vgg19", weights=str(tmp_path / "missing.h5"))


def test_weights_of_the_wrong_network_are_refused(tmp_path):
    """A VGG16-shaped HED file where VGG19 is expected fails with a clear message, not a traceback."""
    bad = tmp_path / "vgg19_like.weights.h5"
    with h5py.File(bad, "w") as f:
        for b in range(1, 6):
            f.create_group(f"block{b}/layers")
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 64), np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros((64,), np.float32)
    with pytest.raises(UserError, match="holds 1 conv layers but vgg16_hed has 13"):
        backbones.load_backbone("vgg16_hed", weights=str(bad))


def test_vgg19_weights_file_round_trip(tmp_path):
    """--weights=PATH for vgg19 reads a Keras weights file of keras.applications.VGG19 (no top)."""
    app = keras.applications.VGG19(weights=None, include_top=False)
    path = str(tmp_path / "vgg19.weights.h5")
    app.save_weights(path)
    model = backbones.load_backbone("vgg19", weights=path)
    np.testing.assert_array_equal(model.get_layer("block5_conv4").kernel.numpy(),
                                  app.get_layer("block5_conv4").kernel.numpy())


def test_resolve_backbone_explicit_and_with_weights():
    assert backbones.resolve_backbone("vgg16_hed", None) == ("vgg16_hed", "as asked")
    assert backbones.resolve_backbone("auto", "some.h5")[0] == "vgg19"


def test_resolve_backbone_auto_falls_back_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))   # an empty cache

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: offline")
    monkeypatch.setattr(keras.applications, "VGG19", offline)
    name, why = backbones.resolve_backbone("auto", None)
    assert name == "vgg16_hed" and "cannot be downloaded" in why


def test_resolve_backbone_auto_uses_cache(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / backbones.VGG19_WEIGHTS_FILE).write_bytes(b"")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert backbones.resolve_backbone("auto", None) == ("vgg19", "its ImageNet weights are in Keras' cache")


def test_vgg19_offline_error_names_the_ways_out(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: offline")
    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(UserError, match="--weights=PATH.*vgg16_hed"):
        backbones.load_backbone("vgg19")


def test_pick_device():
    assert backbones.pick_device("cpu").endswith("CPU:0")
    assert backbones.pick_device("auto").endswith(":0")
    with pytest.raises(UserError, match="not present"):
        backbones.pick_device("GPU:7")
