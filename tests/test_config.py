"""Config validation and the flags <-> config round trip (no TensorFlow needed)."""
import dataclasses

import pytest

from nst_tf.config import (AUTO_SIZE, Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, config_with,
                           layer_weights, parse_field, schedule, to_flags, validate)
from nst_tf.errors import UserError

GOOD = Config(images=ImageConfig(content="c.jpg", style="s.jpg"))


def with_(config, section, **kw):
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **kw)})


def test_defaults_are_valid_and_left_to_the_backbone():
    validate(GOOD)
    # Empty layer sets and no style weight: the backbone's defaults, filled in by stylize.resolve.
    assert GOOD.loss.content_layers == () and GOOD.loss.style_layers == () and GOOD.loss.style_weight is None
    assert GOOD.model.pooling == "avg" and GOOD.model.feature_transform == "auto"


@pytest.mark.parametrize("change, message", [
    (dict(mode="paint"), "--mode='paint' is not one of"),
    (dict(images=ImageConfig(style="s.jpg")), "needs --content"),
    (dict(images=ImageConfig(content="c.jpg", style="s.jpg", max_size=100000)), "--max_size=100000 is out of range"),
    (dict(images=ImageConfig(content="c.jpg", style="s.jpg", max_size=8)), "out of range"),
    (dict(loss=LossConfig(style_layers=("conv1_1", "conv1_1"))), "names a layer twice"),
    (dict(loss=LossConfig(style_layers=("a", "b", "c"), style_layer_weights=(1.0, 2.0))),
     "has 2 values but --style_layers has 3"),
    # Checked against the backbone's default layers, before TensorFlow loads:
    (dict(loss=LossConfig(style_layer_weights=(1.0, 2.0))), "has 2 values but --style_layers has 5"),
    (dict(model=ModelConfig(backbone="resnet50"), loss=LossConfig(style_layer_weights=(1.0,) * 5)),
     "has 5 values but --style_layers has 7"),
    (dict(loss=LossConfig(tv_weight=float("nan"))), "--tv_weight=nan must be a finite number"),
    (dict(optim=OptimConfig(init_contrast=1.5)), "--init_contrast=1.5 must be in"),
    (dict(optim=OptimConfig(init_noise=-0.1)), "--init_noise=-0.1 must be in"),
    (dict(optim=OptimConfig(init_noise=float("nan"))), "--init_noise=nan must be in"),
    (dict(optim=OptimConfig(init_noise_cells=1)), "--init_noise_cells=1 must be 2 to 1024"),
    (dict(optim=OptimConfig(gradient_blur=-1)), "--gradient_blur=-1 must be 0"),
    (dict(loss=LossConfig(style_weight=-1.0)), "--style_weight=-1.0 must be"),
    (dict(loss=LossConfig(content_loss="l3")), "--content_loss='l3'"),
    (dict(model=ModelConfig(feature_transform="cosine")), "--feature_transform='cosine' is not one of"),
    (dict(model=ModelConfig(softmax_temperature=0.0)), "--softmax_temperature=0.0 must be a positive number"),
    (dict(images=ImageConfig(content="c.jpg", style="s.jpg", preserve_colors="grey")), "--preserve_colors='grey'"),
    (dict(images=ImageConfig(content="c.jpg", style="s.jpg", color_match="lab")), "--color_match='lab'"),
    (dict(mode="texture", images=ImageConfig(style="s.jpg", preserve_colors="swap")),
     "--preserve_colors and --color_only need --mode=transfer"),
    (dict(images=ImageConfig(content="c.jpg", style="s.jpg", color_only=True), sweep=("seed:1,2",)),
     "--color_only makes one image"),
    (dict(optim=OptimConfig(num_steps=-1)), "--num_steps=-1"),
    (dict(optim=OptimConfig(learning_rate=0.0)), "--learning_rate=0.0"),
    (dict(model=ModelConfig(precision="float16")), "--precision='float16' is not one of auto, float32, mixed_bfloat16"),
    (dict(optim=OptimConfig(tile_size=32)), "--tile_size=32 must be 0 (whole images) or at least 64"),
    (dict(optim=OptimConfig(tile_size=256), model=ModelConfig(backbone="resnet50")), "--tile_size needs a VGG"),
    (dict(optim=OptimConfig(tile_size=256), model=ModelConfig(feature_transform="softmax")),
     "--tile_size needs a VGG backbone without the softmax"),
    (dict(optim=OptimConfig(tile_size=256), loss=LossConfig(normalize_gradients=True)),
     "--tile_size needs no --normalize_gradients"),
    (dict(optim=OptimConfig(tile_size=256, optimizer="lbfgs")), "--tile_size needs --optimizer=adam"),
])
def test_invalid_configs(change, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(dataclasses.replace(GOOD, **change))


def test_modes_need_only_their_images():
    validate(Config(mode="texture", images=ImageConfig(style="s.jpg")))
    validate(Config(mode="content", images=ImageConfig(content="c.jpg")))
    with pytest.raises(UserError, match="--init=content needs --content"):
        validate(Config(mode="texture", images=ImageConfig(style="s.jpg"), optim=OptimConfig(init="content")))


def test_init_auto():
    assert GOOD.start_from == "recolored"
    assert with_(GOOD, "images", preserve_colors="luminance").start_from == "content"
    assert with_(GOOD, "images", content_mask="m.png", style_mask="#ff0000").start_from == "content"
    assert Config(mode="texture").start_from == "noise"
    assert Config(mode="content").start_from == "noise"
    assert with_(GOOD, "optim", init="noise").start_from == "noise"
    assert with_(GOOD, "optim", init="content").start_from == "content"


def test_gradient_blur_auto_is_on_from_an_image_and_off_from_noise():
    assert GOOD.blur_passes == 1 and with_(GOOD, "optim", init="content").blur_passes == 1
    assert Config(mode="content").blur_passes == 0 and with_(GOOD, "optim", init="noise").blur_passes == 0
    assert Config(mode="train").blur_passes == 1   # the stylizer's gradient (docs/realtime.md)
    assert with_(GOOD, "optim", gradient_blur=0).blur_passes == 0
    assert with_(GOOD, "optim", init="noise", gradient_blur=2).blur_passes == 2
    # L-BFGS takes none, given or not (the octave copies' extractor and the optimizer both read this)
    assert with_(GOOD, "optim", optimizer="lbfgs").blur_passes == 0
    assert with_(GOOD, "optim", optimizer="lbfgs", gradient_blur=2).blur_passes == 0


def test_init_noise_is_off_unless_given():
    """Blind judges preferred the start without noise on most of ten pairs (docs/quality.md)."""
    assert GOOD.start_from == "recolored" and GOOD.optim.init_noise == 0.0
    assert Config(mode="content").optim.init_noise == 0.0
    assert with_(GOOD, "optim", init="content", init_noise=0.2).optim.init_noise == 0.2


def test_recolored_start_needs_both_images():
    with pytest.raises(UserError, match="--init=recolored needs --content=IMAGE and --style=IMAGE"):
        validate(Config(mode="texture", images=ImageConfig(style="s.jpg"), optim=OptimConfig(init="recolored")))
    reconstruction = Config(mode="content", images=ImageConfig(content="c.jpg", style="s.jpg"),
                            optim=OptimConfig(init="recolored"))
    assert reconstruction.image_paths == {"content": ("c.jpg",), "style": ("s.jpg",)}


def test_layer_weights_default_to_equal():
    assert layer_weights(("a", "b", "c", "d"), ()) == (0.25, 0.25, 0.25, 0.25)
    assert layer_weights(("a", "b"), (3, 1)) == (3.0, 1.0)


def test_to_flags_writes_every_field_exactly():
    config = with_(with_(GOOD, "loss", style_weight=0.1 + 0.2, style_layers=("conv1_1", "conv2_1")),
                   "optim", seed=5)
    lines = to_flags(config)
    assert "--style_weight=0.30000000000000004" in lines      # repr: bit-exact floats
    assert "--style_layers=conv1_1,conv2_1" in lines
    assert "--normalize_features=False" in lines
    assert "--seed=5" in lines and "--content=c.jpg" in lines
    assert not any(line.startswith("--run_name") for line in lines)


def test_image_paths_are_those_the_run_reads():
    assert GOOD.image_paths == {"content": ("c.jpg",), "style": ("s.jpg",)}
    texture = Config(mode="texture", images=ImageConfig(content="c.jpg", style="s.jpg"))
    assert texture.image_paths == {"style": ("s.jpg",)}
    assert with_(texture, "optim", init="content").image_paths == {"content": ("c.jpg",), "style": ("s.jpg",)}
    guided = with_(GOOD, "images", style="a.jpg, b.jpg", content_mask="m.png", style_mask="#ff0000,sm.png")
    assert guided.image_paths == {"content": ("c.jpg",), "style": ("a.jpg", "b.jpg"), "content_mask": ("m.png",),
                                  "style_mask": ("sm.png",)}


def test_config_with_sets_options_by_flag_name_on_the_defaults_or_a_base():
    config = config_with(content="a.jpg", max_size=128, style_weight="1e3", style_layers=["conv1_1", "conv2_1"])
    assert (config.images.content, config.images.max_size, config.loss.style_weight) == ("a.jpg", 128, 1e3)
    assert config.loss.style_layers == ("conv1_1", "conv2_1") and config.optim == OptimConfig()
    assert config_with(max_size="auto").images.max_size == AUTO_SIZE   # a flag's text, as on the command line
    base = Config(mode="train")
    assert config_with(base, train_steps=5).mode == "train" and config_with(base) is base
    with pytest.raises(UserError, match="unknown option 'styel_weight'; did you mean style_weight"):
        config_with(styel_weight=1.0)


def test_parse_field_types():
    assert parse_field("normalize_features", "True") is True and parse_field("normalize_features", "false") is False
    assert parse_field("style_weight", "") is None and parse_field("style_weight", "1e3") == 1e3
    assert parse_field("style_layers", "conv1_1,conv2_1") == ("conv1_1", "conv2_1")
    with pytest.raises(UserError, match="is not true or false"):
        parse_field("normalize_features", "maybe")


def test_schedule_default_pyramid_from_512_px():
    def plan(**images):
        return schedule(with_(GOOD, "images", **images))
    assert plan(max_size=256) == ((256, 200),)
    assert plan(max_size=512) == ((512, 200),)   # up to 512 px: one scale, the result's own
    assert plan(max_size=200) == ((200, 200),)
    assert plan(max_size=1024) == ((512, 200), (1024, 100))
    assert plan(max_size=2048) == ((512, 200), (1024, 100), (2048, 50))
    assert plan(max_size=700) == ((700, 200),)
    assert plan(max_size=1400) == ((700, 200), (1400, 100))
    assert plan(max_size=1024, min_scale=256) == ((256, 200), (512, 100), (1024, 50))   # the old pyramid
    assert plan(scales=(64, 128), max_size=999) == ((64, 200), (128, 100))
    assert plan(scales=(64, 128), scale_steps=(5, 9)) == ((64, 5), (128, 9))
    single = with_(with_(GOOD, "images", max_size=1024), "loss", resolution_invariant=False)
    assert schedule(single) == ((1024, 200),)
    tiny = with_(with_(GOOD, "images", max_size=1024), "optim", num_steps=1)
    assert schedule(tiny) == ((512, 1), (1024, 1))


def test_schedule_sqrt2_pyramid_from_128():
    # crowsonkb's scales: 512 / sqrt(2)^k down to 128; steps halve but stay at least num_steps / 4
    plan = schedule(with_(GOOD, "images", max_size=512, min_scale=128, scale_ratio=2 ** 0.5))
    assert plan == ((128, 200), (181, 100), (256, 50), (362, 50), (512, 50))


@pytest.mark.parametrize("images, message", [
    (dict(scales=(512, 256)), "must grow"),
    (dict(scales=(8, 64)), "out of range"),
    (dict(scales=(64, 128), scale_steps=(5,)), "1 values for 2 scales"),
    (dict(scale_steps=(5, 0)), "2 values for 1 scales"),
    (dict(scales=(64, 128), scale_steps=(5, 0)), "at least 1"),
    (dict(style="a.jpg,b.jpg", style_blend_weights=(1.0,)), "1 values for 2 style images"),
    (dict(style="a.jpg,b.jpg", style_blend_weights=(0.0, 0.0)), "all zero"),
    (dict(style="a.jpg,b.jpg", style_blend_weights=(1.0, -1.0)), "finite number >= 0"),
    (dict(content_mask="m.png"), "go together"),
    (dict(style_mask="#ff0000"), "go together"),
    (dict(regions="edges"), "--regions='edges' is not one of"),
    (dict(regions="detail", content_mask="m.png", style_mask="#ff0000"), "leave out --content_mask"),
])
def test_bad_controls_are_refused(images, message):
    with pytest.raises(UserError, match=message):
        validate(with_(GOOD, "images", **images))


def test_masks_need_transfer_mode():
    texture = Config(mode="texture", images=ImageConfig(style="s.jpg", content_mask="m.png", style_mask="#ffffff"))
    with pytest.raises(UserError, match="need --mode=transfer"):
        validate(texture)


def test_every_option_is_a_flag_and_every_flag_reaches_the_config(tmp_path):
    """run.py defines its flags from the schema: a command line that gives every option a non-default value
    yields a config holding each of them (a flag left out of the config would keep its default)."""
    import run as run_script
    from nst_tf import config as schema
    values = {"mode": "texture", "content": "c.jpg", "style": "s.jpg,t.jpg", "style_blend_weights": "0.3,0.7",
              "content_mask": None, "style_mask": None, "regions": None, "max_size": "320", "style_scale": "0.5",
              "scales": "160,320", "scale_steps": "7,3", "min_scale": "64",
              "scale_ratio": "1.5", "style_octaves": "2", "padding": "reflect", "padding_scope": "first", "normalize_terms": "true",
              "style_loss": "mean_std", "average_decay": "0.9", "gradient_blur": "2", "preserve_colors": "none", "color_match": "pca",
              "color_only": None, "backbone": "vgg16_hed", "weights": "w.h5", "pooling": "max",
              "feature_transform": "softmax", "softmax_temperature": "2.5", "normalize_features": "true",
              "normalize_images": "imgs", "precision": "mixed_bfloat16", "content_layers": "conv3_1",
              "content_layer_weights": "2", "style_layers": "conv1_1,conv2_1", "style_layer_weights": "1,3",
              "content_loss": "l1", "gram_norm": "paper", "content_weight": "3", "style_weight": "4e5",
              "tv_weight": "0.5", "resolution_invariant": "false", "normalize_gradients": None,
              "strength": None,   # with weights by hand it is refused: tests/test_balance.py
              "optimizer": "adam", "num_steps": "17", "learning_rate": "0.07", "init": "style", "init_contrast": "0.25", "init_noise": "0.3",
              "init_noise_cells": "8", "seed": "9",
              "device": "cpu", "tile_size": "0", "jit_compile": "true", "output_dir": str(tmp_path),
              "run_name": "x", "save_every": "3", "log_every": "2", "sweep": "seed:1,2", "sweep_batch": "2",
              "cluster": "ray://10.0.0.1:10001", "ray_workers": "3", "canvas_margin": "8",
              # the stylizer's (the ones of --mode=train/apply only: test_stylizer_options_reach_the_config)
              "train_size": "128", "train_steps": "5", "batch_size": "3", "train_learning_rate": "0.01",
              "stylizer_width": "8", "stylizer_arch": "johnson", "train_images": None, "model": None, "export": None,
              # the clips' (nst_tf.video)
              "clip": "true", "frames": "2:9", "fps": "12.5", "temporal_weight": "50.0", "long_term": "1,2",
              "frame_steps": "7", "flow_blend": "0.3"}
    names = {opt.name for opt in schema.options()}
    for term in schema.weighted_terms()[len(schema.BUILTIN_TERMS):]:   # each further term's fields, by convention
        values.update({name: text for name, text in ((f"{term}_weight", "0.5"), (f"{term}_layers", "conv1_1"),
                                                     (f"{term}_layer_weights", "2")) if name in names})
    assert set(values) == names   # this test names every option
    assert names <= set(run_script.FLAGS)
    argv = ["run.py"] + [f"--{k}={v}" for k, v in values.items() if v is not None]
    run_script.FLAGS.unparse_flags()
    try:
        run_script.FLAGS(argv)
        config = run_script.config_from_flags()
    finally:
        run_script.FLAGS.unparse_flags()
    for name, text in values.items():
        if text is None:
            continue
        expected = schema.parse_field(name, text) if name != "sweep" else (text,)
        assert schema.get_field(config, name) == expected, name
        assert expected != schema.get_field(Config(), name) or name in ("preserve_colors", "optimizer",
                                                                         "tile_size"), name
    assert schema.from_flags(schema.to_flags(config, skip=()), "test") == config   # and run.flags round-trips


def test_stylizer_options_reach_the_config(tmp_path):
    import run as run_script
    from nst_tf import config as schema
    for argv, expected in ((["--mode=train", "--style=s.jpg", "--train_images=photos", "--export=saved_model,tflite"],
                            {"train_images": "photos", "export": ("saved_model", "tflite")}),
                           (["--mode=apply", "--content=c.jpg", "--model=m.keras"], {"model": "m.keras"})):
        run_script.FLAGS.unparse_flags()
        try:
            run_script.FLAGS(["run.py", *argv])
            config = run_script.config_from_flags()
        finally:
            run_script.FLAGS.unparse_flags()
        for name, value in expected.items():
            assert schema.get_field(config, name) == value
        assert schema.from_flags(schema.to_flags(config, skip=()), "test") == config
