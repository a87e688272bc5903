"""Sweeps through the engine: batched cells equal cells run one by one, and the report files."""
import csv
import dataclasses
import os

import numpy as np
import pytest

from nst_tf import engine, image_io, plan
from nst_tf.comparison import runner
from nst_tf.errors import Interrupted, UserError
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig
from nst_tf.grid import render_grid, save_grid
from tests.conftest import smooth_image, stripes_image

QUIET = dict(show_progress=False, say=lambda *a: None)


def tiny_config(tmp_path, content_path, style_path, *sweep, **optim):
    return Config(images=ImageConfig(content=content_path, style=style_path, max_size=32),
                  model=ModelConfig(backbone="vgg16_hed"),
                  loss=LossConfig(style_layers=("conv1_1", "conv2_1", "conv3_1"), style_weight=1e6),
                  optim=OptimConfig(**{"num_steps": 4, "seed": 1, "learning_rate": 0.05, **optim}),
                  output=OutputConfig(output_dir=str(tmp_path / "out"), save_every=0, log_every=2),
                  sweep=sweep)


@pytest.mark.slow
def test_a_batch_gives_the_images_of_its_cells_run_one_by_one(tmp_path, content_path, style_path, hed_backbone):
    """Cells that differ in weights, layer sets, init and seed, optimized as one batch and one at a time."""
    config = tiny_config(tmp_path, content_path, style_path)
    cell_configs = [
        config,
        dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_weight=1e4, tv_weight=5.0)),
        dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_layers=("conv2_1",),
                                                             content_layers=("conv3_2",))),
        dataclasses.replace(config, optim=dataclasses.replace(config.optim, init="noise", seed=7,
                                                             gradient_blur=1)),   # as the batch's (one optimizer)
    ]
    prepared = [plan.make_plan(c, say=lambda *a: None) for c in cell_configs]

    def jobs(tag):
        out = []
        for i, made in enumerate(prepared):
            os.makedirs(tmp_path / tag / str(i))
            out.append(engine.Job(made.config, made.inputs, str(tmp_path / tag / str(i))))
        return out

    batched = jobs("batched")
    engine.optimize(batched, engine.Network(hed_backbone), "/device:CPU:0", show_progress=False)
    single = jobs("single")
    for job in single:
        engine.optimize([job], engine.Network(hed_backbone), "/device:CPU:0", show_progress=False)
    for a, b in zip(batched, single):
        assert a.status == b.status == "done"
        # the default sliced style term matches each value to the style's by rank, read from histogram bins:
        # a batched convolution's rounding can move a value across a bin edge (2e-5 with the Gram term)
        np.testing.assert_allclose(a.logger.last_good_image, b.logger.last_good_image, atol=5e-4)
        assert a.logger.rows[-1]["total"] == pytest.approx(b.logger.rows[-1]["total"], rel=1e-3)
        assert list(a.logger.rows[-1]) == list(b.logger.rows[-1])   # each cell logs only its own layers
    assert "style/conv1_1" not in batched[2].logger.rows[-1] and "content/conv3_2" in batched[2].logger.rows[-1]
    # the cells really differ
    assert np.abs(batched[0].logger.last_good_image - batched[1].logger.last_good_image).max() > 1e-3


@pytest.mark.slow   # a 2-cell sweep: 4 s
def test_one_diverging_cell_does_not_stop_the_others(tmp_path, content_path, style_path, hed_backbone):
    config = tiny_config(tmp_path, content_path, style_path)
    huge = dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_weight=1e38, content_weight=1e38))
    jobs = []
    for i, cfg in enumerate((config, huge)):
        made = plan.make_plan(cfg, say=lambda *a: None)
        os.makedirs(tmp_path / str(i))
        jobs.append(engine.Job(made.config, made.inputs, str(tmp_path / str(i))))
    engine.optimize(jobs, engine.Network(hed_backbone), "/device:CPU:0", show_progress=False)
    assert [j.status for j in jobs] == ["done", "diverged"]
    assert "non-finite" in jobs[1].message and jobs[0].logger.rows[-1]["step"] == 4
    assert np.isfinite(jobs[0].logger.last_good_image).all()


@pytest.mark.slow
def test_sweep_writes_grid_table_and_cell_runs(tmp_path, content_path, style_path):
    config = tiny_config(tmp_path, content_path, style_path, "style_layers:conv1_1;conv1_1,conv2_1",
                         "ratio:1e-6,1e-4", init="noise")
    config = dataclasses.replace(config, sweep_batch=4)
    sweep_dir = runner.run_sweep(config, **QUIET)
    names = sorted(os.listdir(sweep_dir))
    cells = [n for n in names if n[:2].isdigit()]
    assert cells == ["00_style_layers=conv1_1_ratio=1e-6", "01_style_layers=conv1_1_ratio=1e-4",
                     "02_style_layers=conv1_1+conv2_1_ratio=1e-6", "03_style_layers=conv1_1+conv2_1_ratio=1e-4"]
    assert {"grid.png", "results.csv", "results.md", "curves.png", "sweep.flags"} <= set(names)
    for cell in cells:   # each cell is a complete run that its run.flags reproduces on its own
        files = set(os.listdir(os.path.join(sweep_dir, cell)))
        assert {"result.png", "run.flags", "losses.csv", "summary.json"} <= files
        assert "--sweep=" not in open(os.path.join(sweep_dir, cell, "run.flags")).read()
    rows = list(csv.DictReader(open(os.path.join(sweep_dir, "results.csv"))))
    assert [r["ratio"] for r in rows] == ["1e-6", "1e-4", "1e-6", "1e-4"]
    assert all(r["status"] == "done" and r["steps"] == "4" for r in rows)
    assert rows[0]["batch"] == rows[3]["batch"] == "1" and rows[0]["batch_cells"] == "4"   # one batch
    assert rows[0]["style/conv2_1"] == "" and rows[2]["style/conv2_1"] != ""
    # more style weight (smaller ratio) -> a larger weighted style term
    assert float(rows[0]["weighted/style"]) > float(rows[1]["weighted/style"])
    md = open(os.path.join(sweep_dir, "results.md")).read().splitlines()
    assert md[0].startswith("| cell | style_layers | ratio | status") and len(md) == 6
    # the grid holds every cell at full resolution: 2 rows x 2 columns of 27x32 tiles plus labels
    grid = image_io.load_image(os.path.join(sweep_dir, "grid.png"))
    assert grid.shape[0] > 3 * 27 and grid.shape[1] > 2 * 32
    result = image_io.load_image(os.path.join(sweep_dir, cells[3], "result.png"))
    assert _contains(grid, result)
    assert "--sweep=ratio:1e-6,1e-4" in open(os.path.join(sweep_dir, "sweep.flags")).read()


@pytest.mark.slow
def test_seed_sweep_writes_the_difference_image(tmp_path, content_path, style_path):
    config = tiny_config(tmp_path, content_path, style_path, "seed:1,2,3", init="noise")
    sweep_dir = runner.run_sweep(config, **QUIET)
    assert os.path.exists(os.path.join(sweep_dir, "difference.png"))
    rows = list(csv.DictReader(open(os.path.join(sweep_dir, "results.csv"))))
    assert rows[0]["mean_abs_diff_vs_first_seed"] == ""
    a, b = (image_io.load_image(os.path.join(sweep_dir, r["cell"], "result.png")) for r in rows[:2])
    assert float(rows[1]["mean_abs_diff_vs_first_seed"]) == pytest.approx(np.abs(a - b).mean(), abs=2 / 255)
    assert float(rows[1]["mean_abs_diff_vs_first_seed"]) > 0


def _contains(big: np.ndarray, small: np.ndarray) -> bool:
    """Whether `small` appears in `big` pixel for pixel (to 8-bit rounding)."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(big.shape[1] - w + 1):
            if np.abs(big[y, x] - small[0, 0]).max() < 1.5 / 255 and \
                    np.abs(big[y:y + h, x:x + w] - small).max() < 1.5 / 255:
                return True
    return False


def test_grid_draws_each_tile_at_its_own_pixel_size():
    tiles = {(0, 0): smooth_image(30, 40, seed=1), (0, 1): stripes_image(30, 40), (1, 0): smooth_image(20, 24, 2)}
    png = render_grid(tiles, 2, 2, ["row a", "row b"], ["col a", "col b"], {(1, 1): "not run"},
                      inputs=[("content", smooth_image(30, 40, 3))], title="t")
    path = "/dev/shm/grid_test.png" if os.path.isdir("/dev/shm") else "grid_test.png"
    with open(path, "wb") as f:
        f.write(png)
    grid = image_io.load_image(path)
    os.remove(path)
    for tile in tiles.values():
        assert _contains(grid, image_io.to_uint8(tile).astype(np.float32) / 255)


def test_save_grid_writes_the_png_bytes_and_a_jpeg_copy(tmp_path):
    png = render_grid({(0, 0): smooth_image(60, 80, seed=4)}, 1, 1, [""], [""])
    path, jpeg = str(tmp_path / "grid.png"), str(tmp_path / "grid.jpg")
    save_grid(png, path)
    assert open(path, "rb").read() == png and not os.path.exists(jpeg)
    save_grid(png, path, jpeg)
    copy, original = image_io.load_image(jpeg), image_io.load_image(path)
    assert copy.shape == original.shape and np.abs(copy - original).mean() < 4 / 255   # JPEG, quality 88, of a smooth tile on white
    assert open(jpeg, "rb").read(3) == b"\xff\xd8\xff"


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_to_the_images_of_an_uninterrupted_one(tmp_path, content_path, style_path,
                                                                         monkeypatch):
    from nst_tf.summaries import RunLogger
    base = tiny_config(tmp_path, content_path, style_path, "ratio:1e-6,1e-4", "seed:1,2", num_steps=8)
    base = dataclasses.replace(base, sweep_batch=2, output=dataclasses.replace(base.output, save_every=4))
    whole = runner.run_sweep(dataclasses.replace(base, output=dataclasses.replace(base.output, run_name="whole")),
                                 **QUIET)
    original = RunLogger.__call__

    def call(self, step, images, terms):   # Ctrl-C in the second batch, after its step 4
        original(self, step, images, terms)
        if step == 4 and "01_" not in self.run_dir and "00_" not in self.run_dir:
            raise KeyboardInterrupt
    parts_config = dataclasses.replace(base, output=dataclasses.replace(base.output, run_name="parts"))
    with monkeypatch.context() as m:
        m.setattr(RunLogger, "__call__", call)
        with pytest.raises(Interrupted):
            runner.run_sweep(parts_config, **QUIET)
    parts = str(tmp_path / "out" / "parts")
    assert [r["status"] for r in csv.DictReader(open(os.path.join(parts, "results.csv")))] == \
        ["done", "done", "interrupted", "interrupted"]
    first_done = os.path.getmtime(os.path.join(parts, "00_ratio=1e-6_seed=1", "result.png"))
    runner.run_sweep(parts_config, resume_dir=parts, **QUIET)
    rows = list(csv.DictReader(open(os.path.join(parts, "results.csv"))))
    assert [(r["status"], r["steps"], r["batch"]) for r in rows] == \
        [("done", "8", "earlier"), ("done", "8", "earlier"), ("done", "8", "1"), ("done", "8", "1")]
    assert os.path.getmtime(os.path.join(parts, "00_ratio=1e-6_seed=1", "result.png")) == first_done
    for row in rows:
        a = image_io.load_image(os.path.join(whole, row["cell"], "result.png"))
        b = image_io.load_image(os.path.join(parts, row["cell"], "result.png"))
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_folder_of_photos_gives_a_contact_sheet_and_a_bad_photo_fails_alone(tmp_path, style_path):
    from tests.conftest import write_png
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", smooth_image(40, 48, seed=1))
    write_png(photos / "b.png", smooth_image(48, 40, seed=2))
    (photos / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    config = tiny_config(tmp_path, str(photos), style_path)
    with pytest.raises(UserError, match=r"1 of 3 photos could not be used \(content=c.jpg\); the others are done"):
        runner.run_sweep(config, **QUIET)
    (job,) = os.listdir(tmp_path / "out")
    assert job.startswith("photos_stripes_") or job.startswith("photos_style_")
    rows = list(csv.DictReader(open(tmp_path / "out" / job / "results.csv")))
    assert [(os.path.basename(r["content"]), r["status"]) for r in rows] == [("a.png", "done"), ("b.png", "done"),
                                                                              ("c.jpg", "failed")]
    assert "cannot decode" in rows[2]["error"] and rows[0]["error"] == ""
    assert image_io.load_image(str(tmp_path / "out" / job / "01_content=b.png" / "result.png")).shape == (32, 27, 3)
    sheet = image_io.load_image(str(tmp_path / "out" / job / "grid.png"))
    assert sheet.shape[0] > 3 * 32   # a row per photo


@pytest.mark.slow
def test_photos_of_one_size_share_a_batch_and_equal_their_runs_alone(tmp_path, style_path):
    """Each image of the batch has its own content targets: the batch gives each photo's lone result."""
    import dataclasses as dc
    from nst_tf import stylize
    from tests.conftest import write_png
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in (1, 2):
        write_png(photos / f"p{k}.png", smooth_image(40, 48, seed=k))
    write_png(photos / "tall.png", smooth_image(48, 40, seed=3))   # another shape: its own batch
    config = tiny_config(tmp_path, str(photos), style_path)
    job = runner.run_sweep(dc.replace(config, output=dc.replace(config.output, run_name="job")), **QUIET)
    rows = list(csv.DictReader(open(os.path.join(job, "results.csv"))))
    assert [(os.path.basename(r["content"]), r["batch"], r["batch_cells"]) for r in rows] == [
        ("p1.png", "1", "2"), ("p2.png", "1", "2"), ("tall.png", "2", "1")]
    for row in rows:
        alone = stylize.run(dc.replace(config, images=dc.replace(config.images, content=row["content"]),
                                       output=dc.replace(config.output, run_name="alone_" + row["cell"])), **QUIET)
        np.testing.assert_allclose(image_io.load_image(os.path.join(job, row["cell"], "result.png")),
                                   image_io.load_image(os.path.join(alone, "result.png")), atol=1.5 / 255)
