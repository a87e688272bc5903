"""Backbones with random or bundled offline weights: names, shapes, truncation, outputs, weights files."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import backbones, losses, plan, registry
from nst_tf.errors import UserError

VGG19 = registry.BACKBONES["vgg19"]
VGG16 = registry.BACKBONES["vgg16_hed"]


@pytest.mark.parametrize("name, expected", [
    ("conv4_2", "conv4_2"), ("block4_conv2", "conv4_2"), ("relu4_2", "conv4_2"), ("CONV4_2", "conv4_2"),
    ("conv_1", "conv1_1"), ("conv_9", "conv4_1"), ("conv_16", "conv5_4"), ("pool3", "pool3"),
    ("block3_pool", "pool3"),
])
def test_resolve_layer_vgg19(name, expected):
    assert registry.resolve_layer(name, VGG19) == expected


def test_sequential_numbering_follows_the_architecture():
    # VGG16 has 2, 2, 3, 3, 3 convs: the 10th is conv4_3 (VGG19's 10th is conv4_2).
    assert registry.resolve_layer("conv_10", VGG16) == "conv4_3"
    assert registry.resolve_layer("conv_10", VGG19) == "conv4_2"


@pytest.mark.parametrize("bad", ["conv6_1", "conv_17", "conv5_4_", "block4_conv9", ""])
def test_unknown_layer_lists_valid_ones(bad):
    with pytest.raises(UserError, match="valid layers: conv1_1, conv1_2, pool1"):
        registry.resolve_layer(bad, VGG19)


def test_vgg16_has_no_conv5_4():
    with pytest.raises(UserError, match="unknown layer 'conv5_4' for vgg16_hed"):
        registry.resolve_layer("conv5_4", VGG16)


@pytest.mark.parametrize("spec", [VGG19, VGG16, registry.BACKBONES["vgg16"]], ids=lambda s: s.name)
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
    assert plan.pick_device("cpu").endswith("CPU:0")
    assert plan.pick_device("auto").endswith(":0")
    with pytest.raises(UserError, match="not present"):
        plan.pick_device("GPU:7")


# ------------------------------------------------------------------------------- vgg16 and resnet50

RESNET = registry.BACKBONES["resnet50"]


def test_every_configurable_backbone_exists():
    from nst_tf.config import BACKBONES
    assert set(BACKBONES) - {"auto"} == set(registry.BACKBONES)


@pytest.fixture(scope="module")
def resnet():
    return backbones.load_backbone("resnet50", weights="random", seed=1)


def test_resnet_layer_table_is_keras_own(resnet):
    skipped = {"image", "preprocess", "conv1_pad", "pool1_pad"}
    assert [ours for ours, _ in registry.layer_table(RESNET)] == \
        [layer.name for layer in resnet.layers if layer.name not in skipped]
    for name in RESNET.content_layers + RESNET.style_layers:   # the report's layer set exists
        assert registry.resolve_layer(name, RESNET) == name
    with pytest.raises(UserError, match="list them with python run.py --list_layers --backbone=resnet50"):
        registry.resolve_layer("conv4_2", RESNET)


def test_resnet_shapes_and_truncation(resnet):
    extractor = backbones.build_extractor(resnet, ("conv1_relu", "conv2_block1_1_conv"))
    out = extractor(tf.zeros((2, 64, 48, 3)))
    assert out["conv1_relu"].shape == (2, 32, 24, 64)
    assert out["conv2_block1_1_conv"].shape == (2, 16, 12, 64)
    names = [layer.name for layer in extractor.layers]
    assert names[-1] == "conv2_block1_1_conv" and "conv2_block1_1_bn" not in names
    assert not extractor.trainable and not extractor.trainable_weights


def test_resnet_outputs_are_keras_resnet50_on_caffe_input():
    """Our resnet50 (max pooling kept) computes what keras.applications.ResNet50 computes on the
    Caffe-preprocessed image, with the same weights: preprocessing and wiring are right."""
    model = backbones.load_backbone("resnet50", pooling="max", weights="random", seed=2)
    app = keras.applications.ResNet50(include_top=False, weights=None)
    app.set_weights(model.get_weights())
    x = tf.random.uniform((1, 40, 40, 3), seed=1)
    caffe = backbones.CaffePreprocess(registry.IMAGENET_MEAN_BGR)(x)
    for name in ("conv1_relu", "conv2_block3_2_conv", "conv3_block1_1_conv"):
        expected = keras.Model(app.inputs, app.get_layer(name).output)(caffe)
        got = backbones.build_extractor(model, (name,))(x)[name]
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.slow   # builds two ResNet50s: 3 s
def test_resnet_pooling_option_keeps_the_weights():
    avg = backbones.load_backbone("resnet50", pooling="avg", weights="random", seed=4)
    mx = backbones.load_backbone("resnet50", pooling="max", weights="random", seed=4)
    assert isinstance(avg.get_layer("pool1_pool"), keras.layers.AveragePooling2D)
    assert isinstance(mx.get_layer("pool1_pool"), keras.layers.MaxPooling2D)
    np.testing.assert_array_equal(avg.get_layer("conv5_block3_3_conv").kernel.numpy(),
                                  mx.get_layer("conv5_block3_3_conv").kernel.numpy())


@pytest.mark.parametrize("name, app_name, layer", [("vgg16", "VGG16", "block5_conv3"), pytest.param(
    "resnet50", "ResNet50", "conv4_block6_3_conv", marks=pytest.mark.slow)])   # ResNet50 twice: 4 s
def test_keras_weights_file_round_trip(tmp_path, name, app_name, layer):
    """--weights=PATH reads a Keras weights file of the keras.applications model (no top)."""
    app = getattr(keras.applications, app_name)(weights=None, include_top=False)
    path = str(tmp_path / f"{name}.weights.h5")
    app.save_weights(path)
    model = backbones.load_backbone(name, weights=path)
    np.testing.assert_array_equal(model.get_layer(layer).kernel.numpy(), app.get_layer(layer).kernel.numpy())


@pytest.mark.parametrize("name, app_name", [("vgg16", "VGG16"), ("resnet50", "ResNet50")])
def test_offline_imagenet_error_names_the_ways_out(monkeypatch, tmp_path, name, app_name):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: offline")
    monkeypatch.setattr(keras.applications, app_name, offline)
    with pytest.raises(UserError, match=f"cannot get {app_name}'s ImageNet weights.*--weights=PATH.*vgg16_hed"):
        backbones.load_backbone(name)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    monkeypatch.undo()
    with pytest.raises(UserError, match=f"cannot load {app_name} weights from"):
        backbones.load_backbone(name, weights=str(junk))


def test_feature_transform_in_the_extractor(resnet):
    layers = ("conv1_relu", "conv2_block1_1_conv")
    raw = backbones.build_extractor(resnet, layers)
    soft = backbones.build_extractor(resnet, layers, "softmax")
    x = tf.random.uniform((2, 32, 32, 3), seed=3)
    for name in layers:
        expected = losses.softmax_features(raw(x)[name])
        np.testing.assert_allclose(soft(x)[name].numpy(), expected.numpy(), rtol=1e-5)
    scales = {name: np.full(raw(x)[name].shape[-1], 4.0, np.float32) for name in layers}
    scaled = backbones.build_extractor(resnet, layers, "none", scales)
    np.testing.assert_allclose(scaled(x)["conv1_relu"].numpy(), raw(x)["conv1_relu"].numpy() / 4, rtol=1e-6)


def test_mixed_bfloat16_computes_in_bfloat16_and_returns_float32_features(hed_backbone):
    mixed = backbones.load_backbone("vgg16_hed", precision="mixed_bfloat16")
    assert mixed.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("block1_conv1").kernel.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"   # the global policy is left as it was
    layers = ("conv1_1", "conv3_1", "conv5_1")
    image = tf.constant(np.random.default_rng(0).random((1, 48, 64, 3), np.float32))
    full = backbones.build_extractor(hed_backbone, layers)(image)
    half = backbones.build_extractor(mixed, layers)(image)
    for name in layers:
        assert half[name].dtype == tf.float32
        g_full, g_half = losses.gram_matrix(full[name]), losses.gram_matrix(half[name])
        assert float(tf.norm(g_half - g_full) / tf.norm(g_full)) < 0.03, name   # bfloat16: ~3 digits


def test_octave_layer_names_resolve_and_order():
    assert registry.resolve_layer("relu1_1@4", VGG19) == "conv1_1@4"
    assert registry.split_octave("conv1_1@4") == ("conv1_1", 4) and registry.split_octave("conv1_1") == ("conv1_1", 1)
    assert registry.order_layers(["conv2_1@2", "conv3_1", "conv1_1@4", "conv1_1", "conv1_1@2"], VGG19) == (
        "conv1_1", "conv3_1", "conv1_1@2", "conv2_1@2", "conv1_1@4")
    for bad in ("conv1_1@3", "conv1_1@", "conv1_1@1", "conv1_1@32"):
        with pytest.raises(UserError, match="must be 2, 4, 8 or 16"):
            registry.resolve_layer(bad, VGG19)
    with pytest.raises(UserError, match="unknown layer 'conv9_1'"):
        registry.resolve_layer("conv9_1@2", VGG19)


def test_octave_copies_stay_within_the_deepest_layers_stride():
    # strides: conv1_1 1, conv2_1 2, conv3_1 4, conv4_1 8, conv5_1 16; a copy at factor f multiplies them
    layers = VGG19.style_layers
    assert [registry.layer_stride(n, VGG19) for n in layers] == [1, 2, 4, 8, 16]
    assert registry.layer_stride("pool2", VGG19) == 4 and registry.layer_stride("conv2_1@4", VGG19) == 8
    assert registry.octave_layers(layers, 0, VGG19) == ()
    assert registry.octave_layers(layers, 2, VGG19) == ("conv1_1@2", "conv2_1@2", "conv3_1@2", "conv4_1@2",
                                                        "conv1_1@4", "conv2_1@4", "conv3_1@4")
    assert registry.octave_layers(("conv1_1", "conv2_1"), 3, VGG19) == ("conv1_1@2",)
    resnet = registry.BACKBONES["resnet50"]
    assert [registry.layer_stride(n, resnet) for n in ("conv1_relu", "pool1_pool", "conv3_block1_1_conv")] == [2, 4, 8]


def test_octave_extractor_is_the_extractor_of_the_pooled_image():
    model = backbones.load_backbone("vgg16_hed", weights="random", seed=2)
    names = ("conv1_1", "conv2_1", "conv1_1@2", "conv2_1@4")
    extractor = backbones.build_extractor(model, names)
    plain = backbones.build_extractor(model, ("conv1_1", "conv2_1"))
    x = tf.random.uniform((2, 81, 72, 3), seed=4)   # odd height: 81 // 2 = 40 rows at 1/2

    def down(f):   # downsampled, then mirrored out by 16 px
        small = tf.image.resize(x, (81 // f, 72 // f), method="bilinear", antialias=True)
        return tf.pad(small, [[0, 0], [16, 16], [16, 16], [0, 0]], mode="REFLECT")
    out = extractor(x)
    assert set(out) == set(names) and not extractor.trainable_weights
    whole, half, quarter = plain(x), plain(down(2)), plain(down(4))
    assert out["conv1_1@2"].shape == (2, 40, 36, 64) and out["conv2_1@4"].shape == (2, 10, 9, 128)
    np.testing.assert_allclose(out["conv1_1"].numpy(), whole["conv1_1"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["conv2_1"].numpy(), whole["conv2_1"].numpy(), rtol=1e-5, atol=1e-5)
    # the copies' features with the mirrored margin cut off: 16 positions at conv1_1, 8 at conv2_1 (stride 2)
    np.testing.assert_allclose(out["conv1_1@2"].numpy(), half["conv1_1"][:, 16:-16, 16:-16].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["conv2_1@4"].numpy(), quarter["conv2_1"][:, 8:-8, 8:-8].numpy(), rtol=1e-5,
                               atol=1e-5)
    # the downsampled copies run the network only as deep as their own layers
    assert extractor.compute_output_shape((1, 64, 64, 3))["conv2_1@4"] == (1, 8, 8, 128)
    assert "block2_conv1" not in [layer.name for layer in extractor.get_layer("vgg16_hed_extractor_x2").layers]


@pytest.mark.parametrize("compiled", [False, True])
def test_downsampling_with_blur_passes_blurs_the_copys_gradient_at_the_copys_scale(compiled):
    """Downsample(f, m, passes): the same copy; the gradient of what is computed on the copy blurred there
    (`blur.blur_gradient`, at the copy's own pixels) before it spreads back: D^T blur(w) for a linear loss."""
    from nst_tf.blur import blur_gradient
    x = tf.constant(np.random.default_rng(0).uniform(size=(1, 16, 24, 3)).astype(np.float32))
    w = tf.constant(np.random.default_rng(1).normal(size=(1, 8 + 4, 12 + 4, 3)).astype(np.float32))

    def value_and_grad(x, passes):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = backbones.Downsample(2, 2, passes)(x)
            total = tf.reduce_sum(w[:, 2:-2, 2:-2] * y[:, 2:-2, 2:-2])   # the copy itself, not its margin
        return y, tape.gradient(total, x)
    run = tf.function(value_and_grad, reduce_retracing=True) if compiled else value_and_grad
    plain, g0 = run(x, 0)
    blurred, g1 = run(x, 1)
    np.testing.assert_array_equal(blurred.numpy(), plain.numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        small = tf.image.resize(x, (8, 12), method="bilinear", antialias=True)
        total = tf.reduce_sum(blur_gradient(w[:, 2:-2, 2:-2], 1) * small)
    np.testing.assert_allclose(g1.numpy(), tape.gradient(total, x).numpy(), atol=1e-6)
    assert np.abs(g1.numpy() - g0.numpy()).max() > 1e-3


def test_downsampling_keeps_a_flat_image_flat_and_spreads_its_gradient():
    flat = tf.fill((1, 12, 16, 3), 0.25)
    np.testing.assert_allclose(backbones.Downsample(4)(flat).numpy(), 0.25, atol=1e-6)
    assert backbones.Downsample(4).compute_output_shape((1, 13, None, 3)) == (1, 3, None, 3)
    assert backbones.Downsample(4, 2).compute_output_shape((1, 13, 16, 3)) == (1, 7, 8, 3)
    ramp = tf.reshape(tf.range(12.0), (1, 1, 12, 1)) * tf.ones((1, 8, 1, 3))
    mirrored = backbones.Downsample(2, 2)(ramp).numpy()[0, 0, :, 0]
    # the 6 columns of the ramp downsampled (2.5, 4.5, ... inside; the triangle filter is renormalized at the
    # edges), mirrored by 2 on each side about the first and the last
    small = tf.image.resize(ramp, (4, 6), method="bilinear", antialias=True).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(small[1:5], [2.5, 4.5, 6.5, 8.5], atol=1e-5)
    np.testing.assert_allclose(mirrored, np.concatenate([small[2:0:-1], small, small[-2:-4:-1]]), atol=1e-6)
    np.testing.assert_allclose(backbones.CropBorder(2)(tf.ones((1, 7, 8, 5))).shape, (1, 3, 4, 5))
    x = tf.Variable(tf.random.uniform((1, 16, 16, 3), seed=1))
    with tf.GradientTape() as tape:
        y = backbones.Downsample(4)(x)[0, 1, 1, 0]   # one output pixel
    g = tape.gradient(y, x).numpy()[0, :, :, 0]
    # a triangle filter 8 px wide, not a 4 x 4 block: the weights overlap the neighbouring blocks and taper
    assert g.sum() == pytest.approx(1.0, rel=1e-5) and (g > 0).sum() > 16 and g.max() < 1 / 16
