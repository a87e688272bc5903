"""Export (nst_tf/stylizer/export.py): the SavedModel, the TFLite file and the ONNX file give the Keras model's
image. The SavedModel and TFLite tests are marked slow: each conversion traces and converts the whole network
(4-13 s), and so is the ONNX test: tf2onnx converts it (a few seconds)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.stylizer import export, network


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return network.build_stylizer(2, 4)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)   # an odd size: the model pads to a multiple of 4 and crops back
    return rng.random((1, 27, 34, 3), np.float32), np.array([[0.3, 0.7]], np.float32)


@pytest.mark.slow
def test_saved_model_serving_signature_gives_the_keras_image(model, batch, tmp_path):
    image, weights = batch
    export.export(model, str(tmp_path), ("saved_model",))
    path = export.export(model, str(tmp_path), ("saved_model",))[0]   # a second export replaces the first
    assert sorted(p.name for p in tmp_path.iterdir()) == [export.SAVED_MODEL]
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(image=tf.constant(image), style_weights=tf.constant(weights))["stylized"].numpy()
    np.testing.assert_allclose(out, model([image, weights]).numpy(), atol=1e-5)


@pytest.mark.slow
def test_tflite_gives_the_keras_image_at_two_sizes(model, batch, tmp_path):
    image, weights = batch
    path = export.export(model, str(tmp_path), ("tflite",))[0]
    content = open(path, "rb").read()
    np.testing.assert_allclose(export.run_tflite(content, image, weights), model([image, weights]).numpy(), atol=1e-5)
    other = np.random.default_rng(1).random((1, 16, 20, 3), np.float32)   # the same file, another size
    np.testing.assert_allclose(export.run_tflite(content, other, weights), model([other, weights]).numpy(), atol=1e-5)


@pytest.fixture(scope="module", params=["lite", "johnson"])
def styled_model(request):
    """A stylizer whose styles differ (random scales and shifts) and whose convolutions have biases: a graph
    that mixed the styles wrongly, or dropped a bias, would not give the Keras image."""
    keras.utils.set_random_seed(11)
    model = network.build_stylizer(2, 4, ("one", "two"), arch=request.param)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, network.ConditionalInstanceNorm):
            layer.gamma.assign(rng.normal(1, 0.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.5, layer.beta.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


@pytest.mark.slow
def test_onnx_gives_the_keras_image_at_two_sizes_with_mixed_styles(styled_model, tmp_path):
    from nst_tf.stylizer import onnx_model
    path = export.export(styled_model, str(tmp_path), ("onnx",))[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [export.ONNX]   # written atomically, nothing else left
    stylizer = onnx_model.OnnxStylizer(path)
    assert (stylizer.num_styles, network.style_names_in(stylizer.name, 2)) == (2, ("one", "two"))
    rng = np.random.default_rng(2)
    weights = np.array([[0.3, 0.7], [1.0, 0.0]], np.float32)   # a batch of two, each with its own blend
    for shape in ((2, 27, 34, 3), (2, 16, 20, 3)):            # an odd size (padded and cropped back) and another
        images = rng.random(shape, np.float32)
        expected = styled_model([images, weights]).numpy()
        np.testing.assert_allclose(stylizer(images, weights), expected, atol=1e-5)
    assert np.abs(expected[0] - expected[1]).mean() > 1e-2   # the two blends differ: the test sees the styles


def test_a_corrupt_or_foreign_onnx_file_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from nst_tf.errors import UserError
    from nst_tf.stylizer import apply
    broken = tmp_path / "stylizer.onnx"
    broken.write_bytes(b"\x08\x07 not a protobuf of a model")
    with pytest.raises(UserError) as raised:
        apply.load(str(broken))
    assert "cannot load" in str(raised.value) and "\n" not in str(raised.value)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    other = tmp_path / "other.onnx"
    other.write_bytes(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                                        opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(UserError, match="not a stylizer"):
        apply.load(str(other))
