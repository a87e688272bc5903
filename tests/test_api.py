"""The Python API end to end, in-process: transfer, reconstruct, texture, sweep and resume on tiny images,
images given as paths, arrays, PIL images and tensors; the quickstart notebook executed with nbclient."""
import os

import numpy as np
import pytest
from PIL import Image

import nst_tf
from nst_tf import image_io, rundir, stylize
from nst_tf.errors import UserError
from tests.conftest import smooth_image, stripes_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(tmp_path, **options):
    return {"max_size": 32, "num_steps": 3, "backbone": "vgg16_hed", "seed": 1, "log_every": 1, "save_every": 0,
            "output_dir": str(tmp_path / "out"), "progress": False, "say": None, **options}


def test_import_does_not_load_tensorflow():
    import subprocess
    import sys
    code = "import sys, nst_tf, nst_tf.config, nst_tf.comparison; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_option_is_one_line_with_a_suggestion(tmp_path):
    with pytest.raises(UserError, match="unknown option 'styel_weight'; did you mean style_weight"):
        nst_tf.transfer("a.jpg", "b.jpg", styel_weight=1.0)


@pytest.mark.slow
def test_transfer_of_arrays_saves_them_and_run_flags_reproduces_the_run(tmp_path, content_path):
    content = smooth_image(40, 48)
    style = Image.fromarray(image_io.to_uint8(stripes_image(48, 40)))
    result = nst_tf.transfer(content, style, **tiny(tmp_path, style_layers=["conv1_1", "conv2_1"],
                                                     style_weight="1e6"))
    assert result.image.shape == (27, 32, 3) and result.image.dtype == np.float32
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert sorted(os.listdir(os.path.join(result.run_dir, "inputs"))) == ["content.png", "style.png"]
    assert os.path.basename(result.run_dir).startswith("content_style_")
    assert set(result.terms) >= {"total", "style/conv1_1", "style/conv2_1", "content/conv4_2", "tv"}
    config = rundir.read_config(result.run_dir)
    assert config.images.content == os.path.join(result.run_dir, "inputs", "content.png")
    assert config.loss.style_layers == ("conv1_1", "conv2_1") and config.loss.style_weight == 1e6
    again = stylize.run(config.__class__(**{**config.__dict__, "output": config.output.__class__(
        **{**config.output.__dict__, "run_name": "again"})}), show_progress=False, say=lambda *a: None)
    np.testing.assert_array_equal(image_io.load_image(os.path.join(again, "result.png")), result.image)


@pytest.mark.slow
def test_reconstruct_texture_and_resume(tmp_path, content_path, style_path):
    import tensorflow as tf
    rec = nst_tf.reconstruct(tf.constant(smooth_image(32, 32)[None]), layer="conv2_1", **tiny(tmp_path))
    assert rundir.read_config(rec.run_dir).loss.content_layers == ("conv2_1",)
    assert "style" not in rec.terms or rec.terms["weighted/style"] == 0.0
    tex = nst_tf.texture(style_path, **tiny(tmp_path))
    assert tex.image.shape[:2] == (32, 27) and tex.terms["weighted/content"] == 0.0
    longer = nst_tf.resume(tex.run_dir, num_steps=5, progress=False, say=None)
    assert longer.run_dir == tex.run_dir
    rows = [r["step"] for r in __import__("nst_tf.summaries", fromlist=["x"]).read_losses(tex.run_dir)]
    assert rows == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_sweep_returns_the_grid_and_every_cell(tmp_path, content_path, style_path):
    grid = nst_tf.sweep(content_path, style_path, axes={"ratio": [1e-7, 1e-5], "style_layers": [["conv1_1"],
                        ["conv1_1", "conv2_1"]]}, **tiny(tmp_path, num_steps=2))
    assert grid.grid.ndim == 3 and len(grid.cells) == 4
    assert [c["status"] for c in grid.cells] == ["done"] * 4
    assert {c["style_layers"] for c in grid.cells} == {"conv1_1", "conv1_1,conv2_1"}
    assert all(c["image"].shape == (27, 32, 3) for c in grid.cells)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(os.path.join(ROOT, "examples", "quickstart.ipynb"), as_version=4)
    parameters = next(c for c in notebook.cells if c.cell_type == "code")
    assert parameters.source.startswith("# Parameters")
    parameters.source = (f"SIZE = 32\nSTEPS = 2\nBACKBONE = 'vgg16_hed'\nOUTPUT_DIR = {str(tmp_path / 'out')!r}\n"
                         "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'")
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.join(ROOT, "examples")}})
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4   # result, figure, grid, reconstructions
    assert len(os.listdir(tmp_path / "out")) == 4   # transfer, sweep, two reconstructions


@pytest.mark.slow
def test_keras_loads_a_trained_stylizer_after_import_nst_tf(tmp_path):
    import subprocess
    import sys
    from nst_tf.stylizer import network, train
    path = train.save_model(network.build_stylizer(1, 4, ("s",)), str(tmp_path))
    code = ("import nst_tf, keras\n"   # a Keras user's two lines; nst_tf's layers are registered on the way
            f"model = keras.saving.load_model({path!r}, compile=False)\n"
            "print(sorted({type(layer).__name__ for layer in model.layers}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "PadToMultiple" in out.stdout, out.stderr[-2000:]
    assert network.num_styles(nst_tf.load_stylizer(path)) == 1
    with pytest.raises(UserError, match="is not a (Keras model|stylizer) file"):
        nst_tf.load_stylizer(__file__)
