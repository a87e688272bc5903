"""The automatic balance (--strength): its math, its rules, and that it does not depend on the network's
magnitudes (the same picture from a network whose layers are rescaled, as another network's would be)."""
import dataclasses
import os

import numpy as np
import pytest

from nst_tf import balance, backbones, engine, image_io, stylize
from nst_tf.config import (DEFAULT_STRENGTH, Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig,
                           validate, with_loss_defaults)
from nst_tf.errors import UserError
from tests.conftest import smooth_image, stripes_image

QUIET = dict(show_progress=False, say=lambda *a: None)


def test_the_strength_scale_by_hand():
    """R(s) = R_half * RANGE^(2s - 1): Gram 30 * 30^(2s - 1); sliced 1000 * 3000^(2s - 1) below the middle and
    1000 * 30^(2s - 1) above it."""
    assert [balance.style_ratio(s) for s in (0.0, 0.5, 1.0)] == pytest.approx([1.0, 30.0, 900.0])
    sliced = [balance.style_ratio(s, "sliced") for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert sliced == pytest.approx([1 / 3, 1000 / 3000 ** 0.5, 1000.0, 1000 * 30 ** 0.5, 30000.0])
    assert balance.style_ratio(0.5, "mean_cov") == balance.style_ratio(0.5)   # the statistics take the Gram's
    assert balance.style_ratio(0.3) < balance.style_ratio(0.6)


def test_a_pair_with_nothing_to_measure_is_said_and_weighed_alike():
    assert "the same image" in balance.degenerate(1.0, 0.0)
    assert "the same image" in balance.degenerate(float("nan"), 1.0)
    assert balance.degenerate(0.5, 3.0) is None
    said = []
    config = with_loss_defaults(validate(Config(images=ImageConfig(content="c.png", style="c.png"),
                                                loss=LossConfig(strength=0.5, style_octaves=0, content_layers=("conv4_2",),
                                                                style_layers=("conv1_1", "conv2_1")))))
    found, record = balance.weighed(config, {"conv4_2": 0.0}, {"conv1_1": 0.0, "conv2_1": 0.0}, said.append)
    assert "the photo already has the painting's statistics" in said[0]
    ratio = balance.style_ratio(0.5, config.loss.style_loss)
    assert found.loss.content_layer_weights == (1.0,)                       # 1 / anchor 1, finite
    assert found.loss.style_layer_weights == pytest.approx((0.5, 0.5))      # w_l / W, each anchor 1
    assert found.loss.style_weight == pytest.approx(ratio) and record.style_anchor == 1.0


def transfer(**loss):
    return Config(images=ImageConfig(content="c.png", style="s.png"), loss=LossConfig(**loss))


def test_which_runs_are_balanced_automatically():
    assert not transfer().automatic_balance   # off by default: blind judges preferred the fixed beta
    assert transfer(strength=0.3).automatic_balance
    assert not transfer(style_weight=1e6).automatic_balance
    texture = Config(mode="texture", images=ImageConfig(style="s.png"))
    assert not texture.automatic_balance
    resolved = with_loss_defaults(transfer(strength=0.5)).loss
    assert resolved.strength == DEFAULT_STRENGTH and resolved.normalize_terms and resolved.content_weight is None
    trained_loss = with_loss_defaults(Config(mode="train", images=ImageConfig(style="s.png"),
                                             loss=LossConfig(strength=0.4))).loss
    assert trained_loss.content_weight is None and trained_loss.tv_weight == 100.0   # alpha found, the stylizer's TV
    by_hand = with_loss_defaults(transfer()).loss
    assert by_hand.strength is None and by_hand.normalize_terms is False and by_hand.content_weight == 1.0


@pytest.mark.parametrize("loss, mode, message", [
    (dict(strength=1.5), "transfer", "between 0 .* and 1"),
    (dict(strength=-0.1), "transfer", "between 0"),
    (dict(strength=float("nan")), "transfer", "between 0"),
    (dict(strength=0.5, style_weight=1e6), "transfer", "--style_weight set them by hand"),
    (dict(strength=0.5, content_weight=1.0, style_weight=1e6), "transfer", "--content_weight and --style_weight"),
    (dict(strength=0.5), "texture", "needs --mode=transfer or train"),
    (dict(strength=0.5, normalize_gradients=True), "transfer", "--normalize_gradients"),
    (dict(strength=0.5, normalize_terms=False), "transfer", "scale-free terms"),
])
def test_bad_strength_is_one_line(loss, mode, message):
    config = Config(mode=mode, images=ImageConfig(content="c.png", style="s.png"), loss=LossConfig(**loss))
    with pytest.raises(UserError, match=message) as error:
        validate(config)
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------- runs, small and slow

def images(tmp_path, size=40):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    image_io.save_image(smooth_image(size, size + 8, seed=1), str(content))
    image_io.save_image(stripes_image(size, size, period=5), str(style))
    return str(content), str(style)


def run_config(tmp_path, name, max_size=40, **loss):
    content, style = images(tmp_path)
    return Config(images=ImageConfig(content=content, style=style, max_size=max_size),
                  model=ModelConfig(backbone="vgg16", weights="random"),
                  loss=LossConfig(style_octaves=0, **loss),
                  optim=OptimConfig(num_steps=30, seed=0, learning_rate=0.03),
                  output=OutputConfig(output_dir=str(tmp_path / "out"), run_name=name, save_every=0))


def rescale(model, factors):
    """The same network at other magnitudes: conv layer k's kernel times f_k and its bias times
    c_k = f_1 ... f_k, so its output (ReLU and average pooling commute with positive factors) is c_k times the
    original's."""
    cumulative = 1.0
    convs = [layer for layer in model.layers if layer.__class__.__name__.endswith("Conv2D")]
    assert len(convs) == 13
    for layer, f in zip(convs, factors):
        cumulative *= f
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * f, bias * cumulative])
    return model


# Powers of two: the rescaled network's features are exactly 2^k times the original's (float multiplication by a
# power of two is exact), so an objective that does not depend on the magnitudes gives the same bits. Other
# factors change the float rounding, which Adam's per-pixel steps carry on (a mean of about 1/255 after 30 steps).
FACTORS = (2.0, 0.5, 4.0, 0.25, 0.5, 4.0, 0.25, 2.0, 0.5, 4.0, 0.125, 8.0, 0.5)
ODD_FACTORS = (7.0, 0.2, 3.0, 0.5, 0.3, 4.0, 0.25, 2.0, 0.5, 3.0, 0.1, 6.0, 0.5)


LOAD_NETWORK = engine.load_network   # the real one, whatever a test has patched since


def load_rescaled(monkeypatch, factors=None):
    """For this test, engine.load_network loads the network rescaled by `factors` (None: as it is)."""
    def load(config, say=print):
        network = LOAD_NETWORK(config, say)
        if factors:
            rescale(network.model, factors)
        return network
    monkeypatch.setattr(engine, "load_network", load)


def result(tmp_path, monkeypatch, name, factors=None, **loss):
    if "style_weight" not in loss:
        loss.setdefault("strength", 0.5)
    config = run_config(tmp_path, name, **loss)
    load_rescaled(monkeypatch, factors)
    run_dir = stylize.run(config, **QUIET)
    return image_io.load_image(os.path.join(run_dir, "result.png"))


@pytest.mark.slow
@pytest.mark.parametrize("style_loss", ["gram", "sliced"])
def test_the_same_strength_gives_the_same_picture_on_a_rescaled_network(tmp_path, monkeypatch, style_loss):
    plain = result(tmp_path, monkeypatch, "plain", style_loss=style_loss)
    assert np.array_equal(result(tmp_path, monkeypatch, "scaled", FACTORS, style_loss=style_loss), plain)   # the same bits
    odd = np.abs(result(tmp_path, monkeypatch, "odd", ODD_FACTORS, style_loss=style_loss) - plain)
    assert odd.mean() < 3 / 255 and np.percentile(odd, 99) < 16 / 255   # the same picture, other rounding
    # with fixed, raw weights the balance moves with the magnitudes: another picture
    fixed = dict(content_weight=1.0, style_weight=1e4, style_loss=style_loss)
    plain_fixed = result(tmp_path, monkeypatch, "plain_fixed", **fixed)
    scaled_fixed = result(tmp_path, monkeypatch, "scaled_fixed", FACTORS, **fixed)
    assert np.abs(plain_fixed - scaled_fixed).mean() > 10 / 255


@pytest.mark.slow
def test_the_dial_moves_the_picture_toward_the_photo(tmp_path, monkeypatch):
    """Strength 0 keeps more of the photo than 1, by far: when the sliced term's dial spanned R 33 to 30000 it
    lay where the content term holds nothing, and its two ends gave the same picture (68 and 70/255 from the
    photo here; docs/balance.md, "Below the knee")."""
    photo = image_io.load_image(images(tmp_path)[0])
    def off_photo(strength):
        picture = result(tmp_path, monkeypatch, f"s{strength}", style_loss="sliced", strength=strength)
        return 255 * np.abs(picture - image_io.resize(photo, picture.shape[:2])).mean()
    assert off_photo(0.0) < off_photo(1.0) - 10


@pytest.mark.slow
def test_the_found_weights_are_recorded_and_reproduce_the_run(tmp_path):
    config = run_config(tmp_path, "found", strength=0.7)
    run_dir = stylize.run(config, **QUIET)
    from nst_tf import rundir
    summary = rundir.read_summary(run_dir)
    found = summary["details"]["balance"]
    again = rundir.read_config(run_dir)   # run.flags: the weights found, by hand; no strength
    assert again.loss.style_loss == "sliced"   # --style_loss=auto with --strength: the ratio calibrated for it
    assert found["strength"] == 0.7 and found["style_weight"] == pytest.approx(balance.style_ratio(0.7, "sliced"))
    assert again.loss.strength is None and not again.automatic_balance
    assert again.loss.style_weight == found["style_weight"] and again.loss.content_weight == found["content_weight"]
    assert len(again.loss.style_layer_weights) == len(again.loss.style_layers) == 5 and again.loss.style_octaves == 0
    with open(os.path.join(run_dir, "run.flags")) as f:
        assert "--strength=0.7 found its weights" in f.readline()


def terms_at_the_start(config, inputs, network):
    """(the objective's terms at the photo, its terms at the painting resized to the photo) for `config`."""
    import tensorflow as tf
    job = engine.Job(config, inputs, "")
    loss, weights = engine.loss_of(job, network)
    photo = job.working.content
    painting = image_io.resize(job.working.styles[0], photo.shape[:2])
    return loss(tf.constant(photo[None]), weights)[1], loss(tf.constant(painting[None]), weights)[1]


@pytest.mark.slow
def test_each_layer_pulls_alike_at_the_start(tmp_path):
    """The layer weights found make every style layer's weighted term at the photo R(s) / L, and the content
    term at the painting 1: each layer measured against its own distance."""
    from nst_tf.plan import make_plan
    config = run_config(tmp_path, "alike", strength=0.5)
    plan = make_plan(config, say=lambda *a: None)
    network = engine.load_network(plan.config)
    found, _ = balance.resolve(plan.config, plan.inputs, network, say=lambda *a: None)
    at_photo, at_painting = terms_at_the_start(found, plan.inputs, network)
    layers = found.loss.style_layers
    pulls = [float(at_photo[f"weighted/style/{n}"][0]) for n in layers]
    ratio = balance.style_ratio(0.5, found.loss.style_loss)
    assert pulls == pytest.approx([ratio / len(layers)] * len(layers), rel=1e-3)
    assert float(at_painting["weighted/content"][0]) == pytest.approx(1.0, rel=1e-3)


def pulls_at_the_start(config, inputs, network):
    """(the weighted style term at the photo, the weighted content term at the painting) of `config` as the
    objective computes them: what balance.pull_ratio's R is the ratio of."""
    at_photo, at_painting = terms_at_the_start(config, inputs, network)
    return float(at_photo["weighted/style"][0]), float(at_painting["weighted/content"][0])


@pytest.mark.slow
@pytest.mark.parametrize("beta, raised", [(1.0, True), (1e13, False)])
def test_the_fixed_beta_is_raised_to_the_floor_and_no_further(tmp_path, beta, raised):
    """R = the objective's weighted style term at the photo over its weighted content term at the painting; a beta
    whose R is below FIXED_FLOOR is raised until R is FIXED_FLOOR, one above it is left as it is."""
    from nst_tf.plan import make_plan
    plan = make_plan(run_config(tmp_path, "floor", style_weight=beta, style_loss="sliced"), say=lambda *a: None)
    network = engine.load_network(plan.config)
    style, content = pulls_at_the_start(plan.config, plan.inputs, network)
    ratio, shares = balance.pull_ratio(plan.config, plan.inputs, network)
    assert ratio == pytest.approx(style / content, rel=1e-4) and sum(shares.values()) == pytest.approx(1.0)
    assert (ratio < balance.FIXED_FLOOR) == raised
    said = []
    floored, record = balance.floored(plan.config, plan.inputs, network, said.append)
    style, content = pulls_at_the_start(floored, plan.inputs, network)
    assert record.ratio == pytest.approx(ratio, rel=1e-4)
    if raised:
        assert style / content == pytest.approx(balance.FIXED_FLOOR, rel=1e-3)
        assert floored.loss.style_weight == pytest.approx(beta * balance.FIXED_FLOOR / ratio, rel=1e-4)
        assert len(said) == 1 and f"--style_weight={record.style_weight:.4g}" in said[0]
    else:
        assert floored.loss.style_weight == beta and not said and record.note() == ""


@pytest.mark.slow
def test_a_default_run_records_the_raised_beta_and_a_rerun_takes_it_as_given(tmp_path, monkeypatch, content_path,
                                                                            style_path):
    """On the network the fixed weights were chosen on, a run without weights runs with the floored beta; run.flags
    and summary.json hold it, and a run from run.flags takes it as given (floored no further)."""
    from nst_tf import registry, rundir
    monkeypatch.setattr(balance, "FIXED_FLOOR", 1e12)   # whatever this tiny pair's R, below the floor
    config = Config(images=ImageConfig(content=content_path, style=style_path, max_size=32),
                    model=ModelConfig(backbone="vgg16_hed"), loss=LossConfig(style_octaves=0),
                    optim=OptimConfig(num_steps=4, seed=0),
                    output=OutputConfig(output_dir=str(tmp_path / "out"), run_name="floor", save_every=0))
    said = []
    run_dir = stylize.run(config, show_progress=False, say=said.append)
    found = rundir.read_summary(run_dir)["details"]["balance"]
    default = registry.SLICED_STYLE_WEIGHTS[("vgg", "none", False)]
    assert found["floor"] == 1e12 and found["style_weight"] == pytest.approx(default * 1e12 / found["ratio"])
    assert any("below 1000000000000x" in line for line in said)
    again = rundir.read_config(run_dir)
    assert again.loss.style_weight == found["style_weight"]
    with open(os.path.join(run_dir, "run.flags")) as f:
        assert "the default beta raised" in f.readline()
    from nst_tf.plan import make_plan
    assert not make_plan(again, say=lambda *a: None).floor


@pytest.mark.slow
def test_the_anchors_barely_move_with_the_size(tmp_path):
    """Scale-free terms at two sizes of the same pair: the weights found stay within 30%."""
    found = []
    for size in (40, 80):
        config = run_config(tmp_path, f"size{size}", max_size=size, strength=0.5)
        from nst_tf.plan import make_plan
        plan = make_plan(config, say=lambda *a: None)
        network = engine.load_network(plan.config)
        found.append(balance.resolve(plan.config, plan.inputs, network, say=lambda *a: None)[1])
    assert found[1].style_anchor == pytest.approx(found[0].style_anchor, rel=0.3)
    assert found[1].content_anchor == pytest.approx(found[0].content_anchor, rel=0.3)


@pytest.mark.slow
def test_a_flat_photo_is_balanced_without_nan(tmp_path):
    content, style = images(tmp_path)
    flat = tmp_path / "flat.png"
    image_io.save_image(np.full((40, 48, 3), 0.4, np.float32), str(flat))
    config = dataclasses.replace(run_config(tmp_path, "flat", strength=0.5), images=ImageConfig(content=str(flat), style=style,
                                                                                max_size=40))
    run_dir = stylize.run(config, **QUIET)
    assert np.isfinite(image_io.load_image(os.path.join(run_dir, "result.png"))).all()


def test_strength_reaches_the_config_from_the_command_line():
    import run as run_script
    run_script.FLAGS.unparse_flags()
    try:
        run_script.FLAGS(["run.py", "--content=c.jpg", "--style=s.jpg", "--strength=0.3", "--num_steps=auto"])
        config = run_script.config_from_flags()
    finally:
        run_script.FLAGS.unparse_flags()
    assert config.loss.strength == 0.3 and config.optim.num_steps == 0 and config.automatic_balance


# ------------------------------------------------------------------------------- the stylizer (--mode=train)

def trained(tmp_path, monkeypatch, name, factors=None, **options):
    """A stylizer trained for 3 steps on a network rescaled by `factors` (None: as it is)."""
    import nst_tf
    photos = tmp_path / "photos"
    if not photos.exists():
        photos.mkdir()
        for i in range(4):
            image_io.save_image(smooth_image(40, 48, seed=i), str(photos / f"photo{i}.png"))
    _, style = images(tmp_path)
    load_rescaled(monkeypatch, factors)
    return nst_tf.train_stylizer(style, str(photos), backbone="vgg16", weights="random", seed=0, train_size=32,
                                 batch_size=1, stylizer_width=4, train_steps=3, log_every=1,
                                 output_dir=str(tmp_path / "out"), run_name=name, progress=False, say=None, **options)


@pytest.mark.slow
def test_a_stylizer_takes_its_weights_from_the_strength_whatever_the_magnitudes(tmp_path, monkeypatch):
    from nst_tf import rundir
    plain = trained(tmp_path, monkeypatch, "plain", strength=0.3)
    scaled = trained(tmp_path, monkeypatch, "scaled", FACTORS, strength=0.3)
    assert np.array_equal(plain.samples, scaled.samples)   # the same network trained: the same bits
    found = rundir.read_summary(plain.run_dir)["details"]["balance"]
    assert found["strength"] == 0.3 and found["style_weight"] == pytest.approx(balance.style_ratio(0.3))
    again = rundir.read_config(plain.run_dir)   # run.flags: the weights found, by hand, so a resume keeps them
    assert again.loss.strength is None and again.loss.content_weight == 1.0
    assert len(again.loss.style_layer_weights) == len(again.loss.style_layers) == 5
    with open(os.path.join(plain.run_dir, "run.flags")) as f:
        assert "--strength=0.3 found its weights" in f.readline()
    # the fixed weights of a stylizer (alpha 10, beta 10 on raw terms here) move with the magnitudes
    fixed = dict(normalize_terms=False, style_weight=10.0)
    plain_fixed = trained(tmp_path, monkeypatch, "plain_fixed", **fixed)
    scaled_fixed = trained(tmp_path, monkeypatch, "scaled_fixed", FACTORS, **fixed)
    assert not np.array_equal(plain_fixed.samples, scaled_fixed.samples)
