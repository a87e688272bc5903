"""Export (nst_tf/stylizer/export.py): the SavedModel and the TFLite file give the Keras model's image.
Marked slow: each conversion traces and converts the whole network (4-13 s)."""
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
