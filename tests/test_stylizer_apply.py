"""Applying a stylizer (nst_tf/stylizer/apply.py, --mode=apply, nst_tf.apply_stylizer): one image, a
folder, colours, blends, a stylizer.onnx on onnxruntime, and the one-line errors for bad models and flags."""
import json
import os
import sys

import keras
import numpy as np
import pytest

import nst_tf
from nst_tf import color, image_io
from nst_tf.config import Config, ImageConfig, OptimConfig, OutputConfig, StylizerConfig
from nst_tf.errors import UserError
from nst_tf.stylizer import apply, network
from tests.conftest import smooth_image, write_png


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = network.build_stylizer(2, 4, ("one", "two"))
    for layer in model.layers:   # two clearly different styles
        if isinstance(layer, network.ConditionalInstanceNorm):
            layer.gamma.assign(np.stack([np.ones(layer.gamma.shape[1]), 3 * np.ones(layer.gamma.shape[1])]))
    path = str(tmp_path_factory.mktemp("model") / "stylizer.keras")
    model.save(path)
    return path


def config(tmp_path, content, model, **images):
    return Config(mode="apply", images=ImageConfig(content=content, max_size=images.pop("max_size", 40), **images),
                  stylizer=StylizerConfig(model=model), output=OutputConfig(output_dir=str(tmp_path / "out")))


def test_one_image_gives_result_png_at_max_size(tmp_path, content_path, model_path):
    run_dir = apply.apply(config(tmp_path, content_path, model_path), say=lambda *a: None)
    result = image_io.load_image(os.path.join(run_dir, "result.png"))
    assert result.shape == (33, 40, 3)   # the 40x48 content at a longest side of 40
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["details"]["images"] == 1 and summary["details"]["style_weights"] == [1.0, 0.0]
    assert os.path.exists(os.path.join(run_dir, "run.flags"))


def test_folder_gives_one_result_per_photo_and_skips_a_corrupt_one(tmp_path, model_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        write_png(photos / f"p{i}.png", smooth_image(24 + 4 * i, 32, seed=i))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    said = []
    run_dir = apply.apply(config(tmp_path, str(photos), model_path), say=said.append)
    assert sorted(os.listdir(os.path.join(run_dir, "results"))) == ["p0.png", "p1.png", "p2.png"]
    assert any("skipped" in line and "broken.jpg" in line for line in said)


def test_blend_weights_mix_the_two_styles(tmp_path, content_path, model_path):
    model = apply.load(model_path)
    photo = image_io.load_resized(content_path, 40)
    one, two = (apply.Stylizer(model, w)(photo) for w in ((1.0, 0.0), (0.0, 1.0)))
    half = apply.Stylizer(model, (1.0, 1.0))(photo)   # normalized to 0.5, 0.5
    expected = model([photo[None], np.array([[0.5, 0.5]], np.float32)])[0].numpy()
    np.testing.assert_allclose(half, expected, atol=1e-6)
    assert np.abs(one - two).mean() > 1e-3


def test_preserve_colors_luminance_keeps_the_photos_colours(tmp_path, content_path, model_path):
    cfg = config(tmp_path, content_path, model_path, preserve_colors="luminance")
    run_dir = apply.apply(cfg, say=lambda *a: None)
    result = image_io.load_image(os.path.join(run_dir, "result.png"))
    photo = image_io.load_resized(content_path, 40)
    stylized = apply.Stylizer(apply.load(model_path))(photo)
    # the network's luminance with the photo's I and Q (clipped to [0, 1]), within 8-bit rounding
    np.testing.assert_allclose(result, color.with_colors_of(stylized, photo), atol=1 / 255 + 1e-6)
    assert np.abs(result - stylized).mean() > 1e-3


def test_blend_weights_must_match_the_styles(model_path):
    with pytest.raises(UserError, match="holds 2 styles"):
        apply.Stylizer(apply.load(model_path), (1.0, 1.0, 1.0))


def test_open_stylizer_names_the_style_it_uses_and_where_it_runs(tmp_path, content_path, model_path):
    said = []
    stylizer = apply.open_stylizer(config(tmp_path, content_path, model_path), say=said.append)
    assert said == ["the stylizer holds 2 styles (one, two); using one (--style_blend_weights mixes them)"]
    assert stylizer.device == "/device:CPU:0" and stylizer.style_weights.tolist() == [[1.0, 0.0]]
    said = []
    mixed = apply.open_stylizer(config(tmp_path, content_path, model_path, style_blend_weights=(1.0, 3.0)),
                                say=said.append)
    assert said == [] and mixed.style_weights.tolist() == [[0.25, 0.75]]


def test_a_model_that_is_no_stylizer_is_refused_in_one_line(tmp_path):
    inputs = keras.Input((4,))
    path = str(tmp_path / "other.keras")
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    with pytest.raises(UserError, match="not a stylizer"):
        apply.load(path)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError):
        apply.load(str(broken))
    with pytest.raises(UserError, match="not found"):
        apply.load(str(tmp_path / "missing.keras"))


def test_python_api_in_memory_image(tmp_path, model_path):
    result = nst_tf.apply_stylizer(model_path, smooth_image(20, 28), max_size=28, say=None,
                                   output_dir=str(tmp_path / "out"))
    assert result.image.shape == (20, 28, 3)
    assert os.path.exists(os.path.join(result.run_dir, "inputs", "content.png"))


@pytest.mark.slow
def test_apply_with_export_and_no_content_writes_the_export_only(tmp_path, model_path):
    from tests.test_run import main_in_process
    out = tmp_path / "out"
    assert main_in_process("--mode=apply", f"--model={model_path}", "--export=saved_model", f"--output_dir={out}",
                           "--run_name=exported") == 0
    assert {"stylizer_saved_model", "run.flags"} <= set(os.listdir(out / "exported"))
    assert not os.path.exists(out / "exported" / "result.png")


@pytest.fixture(scope="module")
def onnx_path(model_path):
    from nst_tf.stylizer import export
    return export.export(apply.load(model_path), os.path.dirname(model_path), ("onnx",))[0]


@pytest.fixture
def unread_onnx(tmp_path):
    """A file named .onnx that is never loaded: the refusals below come before the model is read."""
    path = tmp_path / "stylizer.onnx"
    path.write_bytes(b"never read")
    return str(path)


@pytest.mark.slow   # tf2onnx converts the network (several seconds)
def test_a_stylizer_onnx_writes_the_keras_models_image(tmp_path, content_path, model_path, onnx_path):
    said = []
    runs = {name: apply.apply(config(tmp_path / name, content_path, path, style_blend_weights=(1.0, 1.0)),
                              say=said.append)
            for name, path in (("keras", model_path), ("onnx", onnx_path))}
    keras_image, onnx_image = (image_io.load_image(os.path.join(runs[n], "result.png")) for n in ("keras", "onnx"))
    assert onnx_image.shape == (33, 40, 3)
    np.testing.assert_allclose(onnx_image, keras_image, atol=1 / 255 + 1e-6)   # 8-bit rounding of two close images
    assert np.mean(onnx_image != keras_image) < 0.01
    summary = json.load(open(os.path.join(runs["onnx"], "summary.json")))
    assert summary["device"] == "onnxruntime:CPU" and summary["details"]["style_weights"] == [0.5, 0.5]
    photo = image_io.load_resized(content_path, 40)   # the styles the ONNX graph holds, blended as Keras blends them
    onnx_model, keras_model = apply.load(onnx_path), apply.load(model_path)
    assert apply.style_names(onnx_model) == ("one", "two")
    for weights in ((1.0, 0.0), (0.0, 1.0), (0.2, 0.8)):
        # 1e-4, not 1e-5: style two's scales of 3 in all 15 normalizations amplify the float32 rounding of two
        # ways of computing the variance (up to 3e-5 seen); a wrong graph is off by 1e-2 or more
        np.testing.assert_allclose(apply.Stylizer(onnx_model, weights)(photo),
                                   apply.Stylizer(keras_model, weights)(photo), atol=1e-4)


def test_an_onnx_stylizer_is_not_exported_again_nor_sent_to_a_gpu(tmp_path, content_path, unread_onnx):
    onnx_path = unread_onnx
    def refused(**sections):
        with pytest.raises(UserError) as raised:
            apply.apply(Config(mode="apply", images=ImageConfig(content=content_path),
                               output=OutputConfig(output_dir=str(tmp_path)), **sections), say=lambda *a: None)
        return str(raised.value)
    assert "already ONNX" in refused(stylizer=StylizerConfig(model=onnx_path, export=("tflite",)))
    assert "onnxruntime's CPU provider" in refused(stylizer=StylizerConfig(model=onnx_path),
                                                   optim=OptimConfig(device="gpu"))
    assert not os.path.exists(tmp_path / "out")


def test_without_onnxruntime_an_onnx_model_is_one_line_naming_the_extra(monkeypatch, tmp_path, content_path,
                                                                       unread_onnx, capsys):
    onnx_path = unread_onnx
    from tests.test_run import main_in_process
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # as if `pip install -e .` left the [onnx] extra out
    code = main_in_process("--mode=apply", f"--model={onnx_path}", f"--content={content_path}",
                           f"--output_dir={tmp_path}")
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (f'error: --model={onnx_path} needs onnxruntime, which is not installed: '
                                         'pip install "nst_tf[onnx]" (or pip install -e ".[onnx]" in a checkout).')
