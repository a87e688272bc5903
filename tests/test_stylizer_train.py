"""Training a stylizer (nst_tf/stylizer/train.py and data.py, --mode=train): the objective is the
optimization's with each batch's own content targets, a step lowers it, the style index is a tensor of
the compiled step, and a run writes, stops, resumes and exports as the other modes do."""
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import nst_tf

from nst_tf import stylize
from nst_tf.config import Config, ImageConfig, LossConfig, StylizerConfig
from nst_tf.errors import Interrupted, UserError
from nst_tf.evaluate import make_loss
from nst_tf.inputs import Inputs
from nst_tf.objective import loss_weights
from nst_tf.stylizer import apply, data, network, train
from tests.conftest import make_fake_extractor, smooth_image, stripes_image, write_png
from tests.test_run import ROOT, main_in_process, wait_for

LAYERS = dict(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))


def fake_config(**stylizer):
    settings = dict(train_size=16, batch_size=2, stylizer_width=4, train_learning_rate=1e-2)
    return Config(mode="train", images=ImageConfig(style="a.png,b.png"),
                  loss=LossConfig(**LAYERS, style_weight=1e3, tv_weight=0.5),
                  stylizer=StylizerConfig(**{**settings, **stylizer}))


@pytest.fixture(scope="module")
def trainer():
    extractor = make_fake_extractor()
    keras.utils.set_random_seed(0)
    styles = [stripes_image(20, 18), smooth_image(18, 22, seed=5)]
    # Johnson's shape: at width 4 the lite one's last upsampling has 2 channels, too few for these step counts
    return train.Trainer(fake_config(), extractor, styles, network.build_stylizer(2, 4, arch="johnson"))


def test_batch_objective_is_the_optimizations_with_each_photos_own_content(trainer):
    """The terms of images X under the batch objective of photos P and style s equal, image by image, the
    optimization's loss (make_loss) of content P[i] and style s at X[i] (with training's default
    scale-free terms)."""
    rng = np.random.default_rng(1)
    photos = rng.random((2, 16, 16, 3), np.float32)
    images = tf.constant(rng.random((2, 16, 16, 3), np.float32))
    styles = [stripes_image(20, 18), smooth_image(18, 22, seed=5)]
    for s in (0, 1):
        objective = trainer.objective(tf.constant(photos), tf.constant(s))
        total, terms = objective.terms(objective.sums(trainer.extractor(images), weights=trainer.loss_weights),
                                       images, trainer.loss_weights)
        for i in range(2):
            loss = make_loss(trainer.extractor, LAYERS["content_layers"], LAYERS["style_layers"],
                             Inputs(photos[i], [styles[s]]), gram_norm="elements", normalize_terms=True)
            weights = loss_weights([trainer.weights.flat()])
            want_total, want = loss(images[i:i + 1], weights)
            np.testing.assert_allclose(total[i], want_total[0], rtol=1e-5)
            for name in ("content/conv2_1", "style/conv1_1", "style/conv2_1", "tv"):
                np.testing.assert_allclose(terms[name][i], want[name][0], rtol=1e-5)


@pytest.mark.slow   # seconds; the whole suite runs it
def test_steps_lower_the_loss_and_the_style_index_does_not_retrace(trainer):
    photos = tf.constant(np.random.default_rng(2).random((2, 16, 16, 3), np.float32))
    first = trainer.train_step(photos, tf.constant(0))["total"].numpy()
    for k in range(8):
        last = trainer.train_step(photos, tf.constant(k % 2))["total"].numpy()
    last = trainer.train_step(photos, tf.constant(0))["total"].numpy()
    assert last < 0.7 * first
    assert trainer.train_step.experimental_get_tracing_count() == 1


@pytest.mark.slow   # two compiled training steps: 7 s
def test_gradient_blur_changes_the_update_not_the_loss():
    """--gradient_blur=1 in training blurs the gradient that reaches the network through its output
    (blur.blurred_backward): the same start and batch give the same loss and different weights."""
    photos = tf.constant(np.random.default_rng(3).random((2, 16, 16, 3), np.float32))
    styles = [stripes_image(20, 18), smooth_image(18, 22, seed=5)]
    extractor = make_fake_extractor()
    results = []
    for blur in (0, 1):
        keras.utils.set_random_seed(0)
        config = fake_config()
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, gradient_blur=blur))
        model = network.build_stylizer(2, 4)
        trainer = train.Trainer(config, extractor, styles, model)
        total = trainer.train_step(photos, tf.constant(0))["total"].numpy()
        results.append((total, [w.numpy() for w in model.trainable_weights]))
    (total0, weights0), (total1, weights1) = results
    np.testing.assert_allclose(total0, total1, rtol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(weights0, weights1)) > 1e-6


def test_held_out_photos_are_every_tenth_and_never_trained_on(tmp_path):
    for i in range(23):
        write_png(tmp_path / f"p{i:02d}.png", smooth_image(8, 8, seed=i))
    trained, held = data.training_photos(str(tmp_path))
    assert len(held) == 2 and len(trained) == 21 and not set(held) & set(trained)
    assert len(data.training_photos(str(tmp_path / "p0*.png"))[1]) == 2   # ten photos: still two held out
    with pytest.raises(UserError, match="not a folder"):
        data.training_photos(str(tmp_path / "p00.png"))
    one = tmp_path / "one"
    one.mkdir()
    write_png(one / "a.png", smooth_image(8, 8))
    with pytest.raises(UserError, match="at least 2"):
        data.training_photos(str(one))


def test_bundled_training_photos_exist():
    photos = data.bundled_photos()
    assert len(photos) >= 5 and all(os.path.isfile(p) for p in photos)


def test_crops_are_square_in_range_seeded_and_skip_a_corrupt_photo(tmp_path):
    good = [write_png(tmp_path / f"g{i}.png", smooth_image(30, 50, seed=i)) for i in range(2)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    with pytest.warns(UserWarning, match="bad.jpg"):
        batch = data.Crops((*good, str(bad)), 24, seed=4).next_batch(8)
    assert batch.shape == (8, 24, 24, 3) and 0 <= batch.min() and batch.max() <= 1
    np.testing.assert_array_equal(data.Crops(tuple(good), 24, 9).next_batch(3), data.Crops(tuple(good), 24, 9).next_batch(3))
    with pytest.raises(UserError, match="none of the training photos"):
        data.Crops((str(bad),), 24, 0).next_batch(1)


def test_config_checks(tmp_path):
    from nst_tf.config import validate
    with pytest.raises(UserError, match="multiple of 4"):
        validate(fake_config(train_size=30))
    with pytest.raises(UserError, match="needs --model"):
        validate(Config(mode="apply", images=ImageConfig(content="x.png")))
    with pytest.raises(UserError, match="--export"):
        validate(Config(images=ImageConfig(content="x.png", style="y.png"), stylizer=StylizerConfig(export=("tflite",))))
    with pytest.raises(UserError, match="takes no --content"):
        validate(dataclasses.replace(fake_config(), images=ImageConfig(content="c.png", style="s.png")))
    with pytest.raises(UserError, match="takes no --style"):
        validate(Config(mode="apply", images=ImageConfig(content="x.png", style="s.png"),
                        stylizer=StylizerConfig(model="m.keras")))
    with pytest.raises(UserError, match="train_images"):
        validate(Config(images=ImageConfig(content="x.png", style="y.png"), stylizer=StylizerConfig(train_images="d")))


# End to end with the offline backbone at 32 px.

@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        write_png(folder / f"photo{i}.png", smooth_image(40, 48, seed=i))
    return str(folder)


@pytest.mark.slow
def test_interrupted_training_keeps_a_usable_stylizer_and_resumes(tmp_path, photos, style_path, monkeypatch):
    calls = {"n": 0}
    real = data.Crops.next_batch

    def stop_at_the_fourth(self, n):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, n)

    monkeypatch.setattr(data.Crops, "next_batch", stop_at_the_fourth)
    with pytest.raises(Interrupted, match="interrupted at step 3"):   # through the Python API
        nst_tf.train_stylizer(style_path, photos, backbone="vgg16_hed", seed=1, output_dir=str(tmp_path / "out"),
                              save_every=2, log_every=1, train_size=32, batch_size=1, stylizer_width=4,
                              train_steps=6, progress=False, say=None)
    run_dir = os.path.join(tmp_path, "out", os.listdir(tmp_path / "out")[0])
    assert apply.load(os.path.join(run_dir, "stylizer.keras")) is not None   # usable as it stands
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("-3")
    monkeypatch.setattr(data.Crops, "next_batch", real)
    stylize.resume(run_dir, show_progress=False, say=lambda *a: None)
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["status"] == "done" and summary["steps"] == 6
    with open(os.path.join(run_dir, "losses.csv")) as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(UserError, match="already at step 6"):
        stylize.resume(run_dir, show_progress=False, say=lambda *a: None)
    extended = nst_tf.resume(run_dir, train_steps=7, progress=False, say=None)   # a finished one, extended
    assert isinstance(extended, nst_tf.StylizerResult) and extended.samples.shape[1] == 2 * 32
    assert json.load(open(os.path.join(run_dir, "summary.json")))["steps"] == 7


@pytest.mark.slow
def test_two_styles_one_network_through_run_py_then_apply_blends(tmp_path, photos, style_path):
    second = write_png(tmp_path / "wave.png", smooth_image(48, 40, seed=9))
    out = tmp_path / "out"
    assert main_in_process("--mode=train", f"--style={style_path},{second}", f"--train_images={photos}",
                           "--backbone=vgg16_hed", "--train_size=32", "--batch_size=1", "--train_steps=4",
                           "--stylizer_width=4", "--seed=2", "--progress=false", f"--output_dir={out}",
                           "--export=tflite") == 0
    run_dir = os.path.join(out, os.listdir(out)[0])
    assert {"stylizer.keras", "stylizer.tflite", "samples.png", "losses.csv", "run.flags"} <= set(os.listdir(run_dir))
    model = apply.load(os.path.join(run_dir, "stylizer.keras"))
    assert network.style_names_of(model) == ("style", "wave")
    assert main_in_process("--mode=apply", f"--model={run_dir}/stylizer.keras", f"--content={photos}",
                           "--style_blend_weights=0.5,0.5", "--max_size=32", f"--output_dir={out}",
                           "--run_name=applied") == 0
    assert len(os.listdir(os.path.join(out, "applied", "results"))) == 4


@pytest.mark.slow
def test_sigterm_stops_training_with_a_checkpoint_and_resume_finishes(tmp_path, photos, style_path):
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), "--mode=train", f"--style={style_path}",
                             f"--train_images={photos}", "--backbone=vgg16_hed", "--train_size=32", "--batch_size=1",
                             "--train_steps=100000", "--stylizer_width=4", "--save_every=2", "--log_every=1",
                             "--progress=false", f"--output_dir={out}", "--run_name=run"],
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_for(str(out / "run" / "checkpoints" / "ckpt-*.index"))
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    assert "--resume=" in stderr.strip().splitlines()[-1]
    step = int(tf.train.latest_checkpoint(str(out / "run" / "checkpoints")).rsplit("-", 1)[1])
    assert main_in_process(f"--resume={out / 'run'}", f"--train_steps={step + 2}", "--progress=false") == 0
    assert json.load(open(out / "run" / "summary.json"))["steps"] == step + 2


def test_bad_training_flags_exit_2_in_one_line(tmp_path, capsys, content_path):
    assert main_in_process("--mode=train", "--progress=false") == 2
    assert "needs --style" in capsys.readouterr().err
    assert main_in_process("--mode=apply", f"--model={tmp_path}/none.keras", f"--content={content_path}") == 2
    assert "stylizer not found" in capsys.readouterr().err
    assert main_in_process("--mode=apply", f"--model={tmp_path}/none.keras", f"--content={content_path}",
                           "--preserve_colors=histogram") == 2
    assert "luminance or swap" in capsys.readouterr().err
