"""Planning: the config resolved once (backbone defaults, seed, sizes), and the effective weights."""
import dataclasses

import pytest

from nst_tf import color, plan, registry
from nst_tf.config import (BALANCED_TEMPORAL_WEIGHT, VIDEO_TEMPORAL_WEIGHT, Config, ImageConfig, LossConfig, ModelConfig,
                           OptimConfig, VideoConfig)
from nst_tf.objective import loss_weights


@pytest.mark.parametrize("backbone, transform, normalized, style_loss, content, style0, beta", [
    ("vgg16_hed", "auto", False, "sliced", ("conv4_2",), "conv1_1", registry.SLICED_STYLE_WEIGHTS[("vgg", "none", False)]),
    ("vgg16_hed", "auto", False, "gram", ("conv4_2",), "conv1_1", 2.5e7),
    ("vgg16_hed", "auto", True, "auto", ("conv4_2",), "conv1_1", 8e11),
    ("resnet50", "auto", False, "auto", ("conv5_block1_1_conv",), "conv1_relu", 6e3),
    ("resnet50", "none", False, "auto", ("conv5_block1_1_conv",), "conv1_relu", 2e7),
])
def test_resolve_fills_in_the_backbones_defaults(backbone, transform, normalized, style_loss, content, style0, beta):
    """With the weights set by hand (here alpha: the automatic balance is off), beta's default is the backbone's
    for its style term (sliced on a VGG's plain features, else the Gram matrices)."""
    config = Config(images=ImageConfig(content="c.png", style="s.png"),
                    model=ModelConfig(backbone=backbone, weights="random", feature_transform=transform,
                                      normalize_features=normalized),
                    loss=LossConfig(content_weight=1.0, style_loss=style_loss))
    resolved = plan.resolve(config, say=lambda *a: None)
    assert resolved.loss.content_layers == content and resolved.loss.style_layers[0] == style0
    assert resolved.loss.style_weight == beta
    assert resolved.model.feature_transform == ("softmax" if backbone == "resnet50" and transform == "auto"
                                                else transform if transform != "auto" else "none")
    given = dataclasses.replace(config, loss=LossConfig(style_weight=5.0, style_layers=("block1_conv1",)
                                                        if backbone != "resnet50" else ("conv1_conv",)))
    resolved = plan.resolve(given, say=lambda *a: None)
    assert resolved.loss.style_weight == 5.0 and len(resolved.loss.style_layers) == 1


def test_auto_style_loss_is_sliced_for_a_whole_still_image_and_gram_where_sliced_cannot_go_or_was_not_measured():
    def style_loss(mode="transfer", backbone="vgg16_hed", images=(), loss=(), optim=(), clip=False):
        content = None if mode == "train" else "c.png"
        config = Config(mode=mode, images=ImageConfig(content=content, style="s.png", **dict(images)),
                        model=ModelConfig(backbone=backbone), loss=LossConfig(**dict(loss)),
                        optim=OptimConfig(**dict(optim)))
        return plan.resolve(config, say=lambda *a: None, clip=clip).loss.style_loss
    assert style_loss() == "sliced" and style_loss("texture") == "sliced"
    assert style_loss(clip=True) == "gram"
    assert style_loss(optim={"tile_size": 128}) == "gram"
    assert style_loss(images={"regions": "detail"}) == "gram"
    assert style_loss(images={"preserve_colors": "luminance"}) == "gram"
    assert style_loss("train") == "gram"
    assert style_loss(loss={"strength": 0.5}) == "sliced"   # its ratio calibrated for sliced (balance.py)
    assert style_loss(loss={"normalize_terms": True}) == "gram"
    assert style_loss(loss={"strength": 0.5, "style_loss": "gram"}) == "gram"
    assert style_loss(backbone="resnet50") == "gram"
    assert style_loss(optim={"optimizer": "lbfgs"}) == "gram"
    assert style_loss(loss={"style_loss": "gram"}) == "gram"


@pytest.mark.parametrize("kw, message", [
    ({"mode": "train", "images": ImageConfig(style="s.png")}, "not --mode=train"),
    ({"images": ImageConfig(content="c.png", style="s.png", regions="detail")}, "not regions"),
    ({"optim": OptimConfig(tile_size=128)}, "--tile_size needs --style_loss=gram"),
])
def test_an_explicit_sliced_style_loss_where_it_cannot_go_is_one_line(kw, message):
    from nst_tf.config import validate
    from nst_tf.errors import UserError
    kw = {"images": ImageConfig(content="c.png", style="s.png"), "loss": LossConfig(style_loss="sliced"), **kw}
    if "style_loss" not in repr(kw["loss"]) or kw["loss"].style_loss != "sliced":
        kw["loss"] = dataclasses.replace(kw["loss"], style_loss="sliced")
    with pytest.raises(UserError, match=message):
        validate(Config(model=ModelConfig(backbone="vgg16_hed"), **kw))


def test_relative_sliced_terms_without_a_style_weight_are_one_line():
    from nst_tf.errors import UserError
    config = Config(images=ImageConfig(content="c.png", style="s.png"), model=ModelConfig(backbone="vgg16_hed"),
                    loss=LossConfig(style_loss="sliced", normalize_terms=True))
    with pytest.raises(UserError, match="no calibrated default beta: give --style_weight, or --strength"):
        plan.resolve(config, say=lambda *a: None)
    with_weight = dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_weight=3.0))
    assert plan.resolve(with_weight, say=lambda *a: None).loss.style_weight == 3.0


def test_luminance_transfer_raises_the_default_style_weight_only():
    base = Config(images=ImageConfig(content="c.png", style="s.png", preserve_colors="luminance"),
                  model=ModelConfig(backbone="vgg16_hed"), loss=LossConfig(content_weight=1.0))
    quiet = dict(say=lambda *a: None)
    assert plan.resolve(base, **quiet).loss.style_weight == 2.5e7 * color.LUMINANCE_STYLE_FACTOR
    given = dataclasses.replace(base, loss=LossConfig(style_weight=3.0))
    assert plan.resolve(given, **quiet).loss.style_weight == 3.0


def test_normalized_gradients_have_their_own_default_style_weight():
    base = Config(images=ImageConfig(content="c.png", style="s.png", preserve_colors="luminance"),
                  model=ModelConfig(backbone="vgg16_hed"), loss=LossConfig(normalize_gradients=True))
    resolved = plan.resolve(base, say=lambda *a: None)
    assert resolved.loss.style_weight == registry.NORMALIZED_GRADIENTS_STYLE_WEIGHT   # no luminance factor


def test_the_automatic_balance_leaves_the_weights_to_be_found():
    resolved = plan.resolve(Config(images=ImageConfig(content="c.png", style="s.png"),
                                   model=ModelConfig(backbone="vgg16_hed"), loss=LossConfig(strength=0.5)),
                            say=lambda *a: None)
    assert resolved.automatic_balance and resolved.loss.normalize_terms
    assert resolved.loss.style_weight is None and resolved.loss.content_weight is None   # nst_tf.balance finds them


@pytest.mark.parametrize("backbone, weights, loss, mode, clip, balanced", [
    ("vgg16_hed", None, {}, "transfer", False, False),        # the fixed weights were chosen on it
    ("vgg19", None, {}, "transfer", False, True),
    ("vgg16", None, {}, "transfer", False, True),
    ("resnet50", None, {}, "transfer", False, True),
    ("vgg16_hed", "random", {}, "transfer", False, True),     # not the weights they were chosen on
    ("vgg16_hed", "my.h5", {}, "transfer", False, True),
    ("vgg19", None, {"style_weight": 1e6}, "transfer", False, False),   # weights by hand
    ("vgg19", None, {"content_weight": 2.0}, "transfer", False, False),
    ("vgg19", None, {"normalize_terms": False}, "transfer", False, False),
    ("vgg19", None, {"normalize_gradients": True}, "transfer", False, False),
    ("vgg19", None, {}, "texture", False, False),
    ("vgg19", None, {}, "transfer", True, True),              # a clip's frames
    ("vgg16_hed", None, {}, "transfer", True, False),
])
def test_a_network_the_fixed_weights_were_not_chosen_on_is_balanced_by_default(backbone, weights, loss, mode, clip,
                                                                                balanced):
    said = []
    config = Config(mode=mode, images=ImageConfig(content="c.png", style="s.png"),
                    model=ModelConfig(backbone=backbone, weights=weights), loss=LossConfig(**loss))
    resolved = plan.resolve(config, say=said.append, clip=clip)
    assert resolved.automatic_balance == balanced
    assert any("finds them from this pair" in line for line in said) == balanced
    if balanced:
        assert resolved.loss.strength == 0.5 and resolved.loss.normalize_terms and resolved.loss.style_weight is None
        assert f"not chosen on {backbone}" in said[-1]
    # the temporal term is relative to beta, which stands for another pull with the balance
    assert resolved.video.temporal_weight == (BALANCED_TEMPORAL_WEIGHT if balanced else VIDEO_TEMPORAL_WEIGHT)


@pytest.mark.parametrize("weights, loss, floor", [
    (None, {}, True),                          # the fixed sliced beta, raised where the pair needs it
    (None, {"style_weight": 1e6}, False),      # weights by hand
    (None, {"content_weight": 2.0}, False),
    (None, {"strength": 0.5}, False),          # the balance finds them
    (None, {"style_loss": "gram"}, False),     # the floor was measured with the sliced term only
    (None, {"normalize_gradients": True}, False),
    ("random", {}, False),                     # balanced by default
])
def test_only_the_fixed_default_sliced_beta_is_floored(content_path, style_path, weights, loss, floor):
    config = Config(images=ImageConfig(content=content_path, style=style_path, max_size=40),
                    model=ModelConfig(backbone="vgg16_hed", weights=weights), loss=LossConfig(**loss))
    assert plan.make_plan(config, say=lambda *a: None).floor == floor


@pytest.mark.parametrize("strength, given, expected", [
    (None, None, VIDEO_TEMPORAL_WEIGHT), (0.5, None, BALANCED_TEMPORAL_WEIGHT), (0.5, 50.0, 50.0), (None, 0.0, 0.0)])
def test_the_temporal_weight_defaults_to_the_one_measured_with_the_weights_in_use(strength, given, expected):
    config = Config(images=ImageConfig(content="c.png", style="s.png"), model=ModelConfig(backbone="vgg16_hed"),
                    loss=LossConfig(strength=strength), video=VideoConfig(temporal_weight=given))
    assert plan.resolve(config, say=lambda *a: None, clip=True).video.temporal_weight == expected


def test_resolve_takes_the_last_scale_as_the_size():
    config = Config(images=ImageConfig(content="c.png", style="s.png", max_size=300, scales=(128, 640)),
                    model=ModelConfig(backbone="vgg16_hed"))
    assert plan.resolve(config, say=lambda *a: None).images.max_size == 640


def test_resolution_invariant_alpha_follows_the_size(content_path, style_path):
    """alpha x (256 / longest side)^2: the content term (a sum over positions) weighs the same at any size."""
    def alpha(max_size, invariant=True):
        config = Config(images=ImageConfig(content=content_path, style=style_path, max_size=max_size),
                        model=ModelConfig(backbone="vgg16_hed"),
                        loss=LossConfig(resolution_invariant=invariant, content_weight=1.0))
        made = plan.make_plan(config, say=lambda *a: None)
        weights = plan.EffectiveWeights.of(made.config, made.inputs.shape)
        assert weights.flat()["content"] == weights.terms["content"]
        return weights.terms["content"]
    assert alpha(256) == pytest.approx(1.0) and alpha(128) == pytest.approx(4.0) and alpha(32) == pytest.approx(64.0)
    assert alpha(32, invariant=False) == 1.0


def test_effective_weights_mask_the_layers_a_job_does_not_use():
    config = plan.resolve(Config(images=ImageConfig(content="c.png", style="s.png"),
                                 model=ModelConfig(backbone="vgg16_hed"),
                                 loss=LossConfig(style_layers=("conv1_1", "conv3_1"), style_layer_weights=(2.0, 3.0),
                                                 content_weight=5.0, tv_weight=7.0, style_weight=11.0)),
                          say=lambda *a: None)
    weights = plan.EffectiveWeights.of(config, (128, 64, 3))
    assert weights.flat() == {"content": 5.0 * (256 / 128) ** 2, "style": 11.0, "tv": 7.0, "content/conv4_2": 1.0,
                              "style/conv1_1": 2.0, "style/conv3_1": 3.0, "style/conv1_1@2": 2.0}   # an octave copy
    # in a batch with an image that uses conv2_1, this image's row is 0 there (its layer mask)
    batch = loss_weights([weights.flat(), {**weights.flat(), "style/conv2_1": 1.0}])
    assert batch["style/conv2_1"].numpy().tolist() == [0.0, 1.0]
    texture = plan.EffectiveWeights.of(dataclasses.replace(config, mode="texture"), (128, 64, 3))
    assert texture.terms["content"] == 0.0 and texture.layers["content"] == {}


def test_style_octaves_add_copies_of_the_style_layers_with_their_weights():
    config = plan.resolve(Config(images=ImageConfig(content="c.png", style="s.png"),
                                 model=ModelConfig(backbone="vgg16_hed"),
                                 loss=LossConfig(style_layers=("conv1_1", "conv3_1"), style_layer_weights=(2.0, 3.0),
                                                 style_octaves=2)),
                          say=lambda *a: None)
    assert config.loss.style_layers == ("conv1_1", "conv3_1")   # the config keeps its layers; the weights add
    weights = plan.EffectiveWeights.of(config, (128, 96, 3))
    assert weights.layers["style"] == {"conv1_1": 2.0, "conv3_1": 3.0, "conv1_1@2": 2.0, "conv1_1@4": 2.0}
    # a copy needs more than registry.OCTAVE_MARGIN (16) px: 64 // 4 is not enough, 64 // 2 is
    small = plan.EffectiveWeights.of(config, (128, 64, 3))
    assert small.layers["style"] == {"conv1_1": 2.0, "conv3_1": 3.0, "conv1_1@2": 2.0}
    off = plan.EffectiveWeights.of(dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_octaves=0)),
                                   (128, 64, 3))
    assert off.layers["style"] == {"conv1_1": 2.0, "conv3_1": 3.0}


def test_seed_and_backbone_are_resolved_once_and_said():
    said = []
    config = plan.with_seed_and_backbone(Config(model=ModelConfig(backbone="vgg16_hed")), said.append)
    assert 0 <= config.optim.seed < 2**31 and not said
    assert plan.with_seed_and_backbone(config, said.append) == config


def test_bfloat16_units_are_read_from_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert plan.bfloat16_units("/device:CPU:0", str(info)) == "this CPU has AVX512_BF16"
    info.write_text("flags\t\t: fpu sse2 avx512f avx512_bf16x\n")   # a flag is a whole word
    assert plan.bfloat16_units("/device:CPU:0", str(info)) is None
    assert plan.bfloat16_units("/device:CPU:0", str(tmp_path / "absent")) is None


@pytest.mark.parametrize("precision, size, optimizer, mode, expected", [
    ("auto", 512, "adam", "transfer", "mixed_bfloat16"),
    ("auto", 1024, "adam", "texture", "mixed_bfloat16"),
    ("auto", 256, "adam", "transfer", "mixed_bfloat16"),   # the default size
    ("auto", 255, "adam", "transfer", "float32"),      # small runs stay exact
    ("auto", 512, "lbfgs", "transfer", "float32"),     # the line search wants exact values
    ("float32", 512, "adam", "transfer", "float32"),
    ("mixed_bfloat16", 64, "adam", "transfer", "mixed_bfloat16"),
])
def test_auto_precision_is_bfloat16_for_large_adam_runs_on_bfloat16_hardware(monkeypatch, precision, size, optimizer,
                                                                            mode, expected):
    monkeypatch.setattr(plan, "bfloat16_units", lambda device: "this CPU has AVX512_BF16")
    config = Config(mode=mode, images=ImageConfig(content="c.png", style="s.png"),
                    model=ModelConfig(backbone="vgg16_hed", precision=precision), optim=OptimConfig(optimizer=optimizer))
    said = []
    got = plan.resolve_precision(config, (size // 2, size, 3), "/device:CPU:0", said.append)
    assert got.model.precision == expected
    assert said == (["precision: mixed_bfloat16 (this CPU has AVX512_BF16; --precision=float32 computes in float32)"]
                    if precision == "auto" and expected == "mixed_bfloat16" else [])
    monkeypatch.setattr(plan, "bfloat16_units", lambda device: None)
    assert plan.resolve_precision(config, (size, size, 3), "/device:CPU:0", said.append).model.precision == (
        "float32" if precision == "auto" else precision)


def test_a_stylizer_resolves_auto_precision_to_float32():
    config = plan.resolve(Config(mode="train", images=ImageConfig(style="s.png"), model=ModelConfig(backbone="vgg16_hed")),
                          say=lambda *a: None)
    assert config.model.precision == "float32"


def test_the_default_octaves_give_way_to_tiles_and_say_so(content_path, style_path, monkeypatch):
    from nst_tf import memory
    from nst_tf.errors import UserError

    def config(**kw):
        loss = {k: kw.pop(k) for k in ("style_octaves",) if k in kw}
        return Config(images=ImageConfig(content=content_path, style=style_path, max_size=256),
                      model=ModelConfig(backbone="vgg16_hed"), loss=LossConfig(**loss), optim=OptimConfig(seed=0, **kw))
    said = []
    made = plan.make_plan(config(tile_size=128), say=said.append)   # tiles asked for
    assert made.config.loss.style_octaves == 0 and made.config.optim.tile_size == 128 and plan.TILES_WITHOUT_OCTAVES in said
    with pytest.raises(UserError, match="--tile_size needs --style_octaves=0"):
        plan.make_plan(config(tile_size=128, style_octaves=2), say=lambda *a: None)
    # a whole-image step with the octaves does not fit, tiles without them do: tiled without them
    resolved = plan.resolve(config(), say=lambda *a: None)
    h, w = made.inputs.shape[:2]
    with_octaves = memory._need(resolved, h, w)
    without = memory._need(dataclasses.replace(resolved, loss=dataclasses.replace(resolved.loss, style_octaves=0)), h, w)
    monkeypatch.setenv("NST_TF_FREE_MEMORY", str((with_octaves + without) / 2 / memory.HEADROOM))
    said.clear()
    made = plan.make_plan(config(), say=said.append)
    assert made.config.loss.style_octaves == 0 and made.config.optim.tile_size == 0
    assert any(line.startswith("without the style octaves: with them a whole-image step would not fit")
               for line in said), said
    with pytest.raises(UserError, match="tiles, which would fit larger sizes, need --style_octaves=0"):
        plan.make_plan(config(style_octaves=2), say=lambda *a: None)   # asked for: not dropped


def test_the_default_octaves_are_2_for_vgg_and_0_for_resnet_and_training():
    def octaves(mode="transfer", **kw):
        images = ImageConfig(content=None if mode == "train" else "c.png", style="s.png")
        return plan.resolve(Config(mode=mode, images=images, **kw), say=lambda *a: None).loss.style_octaves
    assert octaves(model=ModelConfig(backbone="vgg16_hed")) == 2
    assert octaves(model=ModelConfig(backbone="resnet50")) == 0
    assert octaves(model=ModelConfig(backbone="resnet50"), loss=LossConfig(style_octaves=1)) == 1
    assert octaves(mode="train", model=ModelConfig(backbone="vgg16_hed")) == 0
