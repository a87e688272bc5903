"""Sweep parsing, expansion into cells and grouping into batches (no TensorFlow needed)."""
import dataclasses

import pytest

from nst_tf.comparison import axes as sweep
from nst_tf.config import Config, ImageConfig, ModelConfig, OptimConfig, parse_field, to_flags
from nst_tf.errors import UserError

BASE = Config(images=ImageConfig(content="c.jpg", style="s.jpg"), optim=OptimConfig(seed=5))


def with_sweep(*specs, config=BASE):
    return dataclasses.replace(config, sweep=specs)


def test_scalar_axis_splits_on_commas():
    axis = sweep.parse_axis("ratio:1e-4,1e-3,1e-2")
    assert axis == sweep.Axis("ratio", ("1e-4", "1e-3", "1e-2"))


def test_list_axis_splits_on_semicolons():
    axis = sweep.parse_axis("style_layers:conv1_1;conv1_1,conv2_1")
    assert axis.values == ("conv1_1", "conv1_1,conv2_1")
    # one value with two layers, not two values
    assert sweep.parse_axis("style_layers:conv1_1,conv2_1").values == ("conv1_1,conv2_1",)


def test_expansion_is_the_product_with_the_last_axis_across():
    cells = sweep.expand(with_sweep("style_layers:conv1_1;conv1_1,conv2_1", "ratio:1e-3,1e-2,1e-1"))
    assert len(cells) == 6
    assert [(c.row, c.col) for c in cells] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    c = cells[4]
    assert c.values == (("style_layers", "conv1_1,conv2_1"), ("ratio", "1e-2"))
    assert c.config.loss.style_layers == ("conv1_1", "conv2_1")
    assert c.config.loss.style_weight == pytest.approx(100.0)   # alpha / ratio = 1 / 1e-2
    assert c.config.sweep == () and c.config.optim.seed == 5
    assert c.name == "04_style_layers=conv1_1+conv2_1_ratio=1e-2"


def test_ratio_uses_the_cells_own_alpha():
    cells = sweep.expand(with_sweep("content_weight:2,4", "ratio:1e-3"))
    assert [c.config.loss.style_weight for c in cells] == [pytest.approx(2000.0), pytest.approx(4000.0)]


@pytest.mark.parametrize("name, text, value", [
    ("seed", "7", 7), ("init", "noise", "noise"), ("content_loss", "l1", "l1"), ("learning_rate", "0.5", 0.5),
    ("style_layer_weights", "1,1,0,0,0", (1.0, 1.0, 0.0, 0.0, 0.0)), ("content_layers", "conv4_2,conv5_2", ("conv4_2", "conv5_2")),
    ("max_size", "64", 64), ("backbone", "vgg16_hed", "vgg16_hed"),
])
def test_every_kind_of_field_parses(name, text, value):
    assert parse_field(name, text) == value
    cells = sweep.expand(with_sweep(f"{name}:{text}"))
    assert len(cells) == 1


@pytest.mark.parametrize("spec, message", [
    ("ratio", "must look like NAME:VALUE"),
    ("colour:1,2", "'colour' cannot be swept"),
    ("output_dir:a,b", "cannot be swept"),
    ("ratio:1e-3,,1e-2", "empty value"),
    ("ratio:1e-3,1e-3", "lists a value twice"),
    ("ratio:0,1", "must be a positive number"),
    ("ratio:abc", "is not a number"),
    ("seed:1.5", "is not an integer"),
    ("style_layer_weights:1,x", "is not a number"),
])
def test_bad_axes_say_what_is_wrong(spec, message):
    with pytest.raises(UserError, match=message):
        sweep.expand(with_sweep(spec))


def test_bad_combinations():
    with pytest.raises(UserError, match="names 'seed' twice"):
        sweep.expand(with_sweep("seed:1,2", "seed:3"))
    with pytest.raises(UserError, match="ratio sets style_weight"):
        sweep.expand(with_sweep("ratio:1", "style_weight:1"))
    with pytest.raises(UserError, match="needs both terms"):
        sweep.expand(with_sweep("ratio:1", config=dataclasses.replace(BASE, mode="texture")))
    # a cell whose config is invalid is named
    with pytest.raises(UserError, match=r"sweep cell style_layer_weights=1\+2: --style_layer_weights has 2"):
        sweep.expand(with_sweep("style_layer_weights:1,2"))


def test_no_sweep_means_no_cells():
    assert sweep.expand(BASE) == []


def test_batches_group_per_image_fields_and_split_the_rest():
    cells = sweep.expand(with_sweep("max_size:64,128", "ratio:1e-3,1e-2", "seed:1,2"))
    groups = sweep.batches(cells, batch_size=0)
    assert [[c.index for c in g] for g in groups] == [[0, 1, 2, 3], [4, 5, 6, 7]]   # one per size
    assert sweep.auto_batch_size(cells[0].config) == 256 and sweep.auto_batch_size(BASE) == 16
    groups = sweep.batches(cells, batch_size=3)
    assert [len(g) for g in groups] == [3, 1, 3, 1]
    assert [[c.index for c in g] for g in sweep.batches(cells, 1)] == [[i] for i in range(8)]


def test_random_weights_make_the_seed_split_batches():
    config = dataclasses.replace(BASE, model=ModelConfig(weights="random"))
    cells = sweep.expand(with_sweep("seed:1,2", "ratio:1e-3,1e-2", config=config))
    assert [[c.index for c in g] for g in sweep.batches(cells, 0)] == [[0, 1], [2, 3]]


def test_inits_whose_default_gradient_blur_differs_split_batches():
    # noise starts unblurred, image starts blurred once (Config.blur_passes): one optimizer cannot do both
    cells = sweep.expand(with_sweep("init:noise,content,recolored", "ratio:1e-3,1e-2"))
    assert [[c.index for c in g] for g in sweep.batches(cells, 0)] == [[0, 1], [2, 3, 4, 5]]
    given = dataclasses.replace(BASE, optim=OptimConfig(seed=5, gradient_blur=2))
    cells = sweep.expand(with_sweep("init:noise,content", config=given))
    assert [[c.index for c in g] for g in sweep.batches(cells, 0)] == [[0, 1]]
    lbfgs = dataclasses.replace(BASE, optim=OptimConfig(seed=5, optimizer="lbfgs"))   # takes no blur at all
    cells = sweep.expand(with_sweep("init:noise,content", config=lbfgs))
    assert [[c.index for c in g] for g in sweep.batches(cells, 0)] == [[0, 1]]


def test_every_sweepable_name_is_a_flag_of_a_run():
    import run as run_script
    for name in sweep.sweepable():
        assert name == "ratio" or name in run_script.FLAGS, name


def test_sweep_flags_are_written_one_per_line():
    lines = to_flags(with_sweep("ratio:1e-3,1e-2", "style_layers:conv1_1;conv1_1,conv2_1"))
    assert "--sweep=ratio:1e-3,1e-2" in lines
    assert "--sweep=style_layers:conv1_1;conv1_1,conv2_1" in lines
    assert "--sweep_batch=0" in lines


def test_a_folder_or_pattern_of_photos_is_an_axis_of_its_own(tmp_path):
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    photos = sweep.photo_files(str(tmp_path))
    assert photos == (str(tmp_path / "a.png"), str(tmp_path / "b.jpg"))   # images only, sorted
    assert sweep.photo_files(str(tmp_path / "*.jpg")) == (str(tmp_path / "b.jpg"),)
    assert sweep.photo_files(str(tmp_path / "a.png")) is None and sweep.photo_files(None) is None
    config = dataclasses.replace(BASE, images=dataclasses.replace(BASE.images, content=str(tmp_path)))
    cells = sweep.expand(with_sweep("ratio:1e-3,1e-2", config=config))
    assert [(c.row, c.col, dict(c.values)["content"]) for c in cells] == [
        (0, 0, photos[0]), (0, 1, photos[0]), (1, 0, photos[1]), (1, 1, photos[1])]
    assert cells[0].label == "content=a.png, ratio=1e-3" and cells[0].config.images.content == photos[0]
    alone = sweep.expand(config)   # the photos alone: one a row
    assert [(c.row, c.col) for c in alone] == [(0, 0), (1, 0)]
    with pytest.raises(UserError, match="holds no image files"):
        sweep.photo_files(str(tmp_path / "sub"))
    with pytest.raises(UserError, match="leave content out of --sweep"):
        sweep.expand(with_sweep(f"content:{photos[0]}", config=config))
