"""The run logger's files: losses.csv at every snapshot, the plot when the run ends or stops."""
import os

import numpy as np
from PIL import Image

from nst_tf import summaries

TERMS = ["total", "weighted/content", "weighted/style", "content/conv4_2", "style/conv1_1", "tv"]


def log(logger, step):
    terms = {name: np.array([1.0 / (step + 1)], np.float32) for name in TERMS}
    logger(step, np.zeros((1, 8, 8, 3), np.float32), terms)


def test_snapshots_write_the_csv_and_the_plot_comes_at_close(tmp_path):
    logger = summaries.RunLogger(str(tmp_path), TERMS, num_steps=6, save_every=2, show_progress=False)
    for step in range(4):
        log(logger, step)
    assert os.path.exists(tmp_path / "snapshots" / "step_00002.png")
    assert [r["step"] for r in summaries.read_losses(str(tmp_path))] == [0, 1, 2]   # the rows through the snapshot
    assert not os.path.exists(tmp_path / "losses.png")
    logger.close(np.zeros((8, 8, 3), np.float32))
    assert [r["step"] for r in summaries.read_losses(str(tmp_path))] == [0, 1, 2, 3]
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.size == (1200, 450)   # two panels of 6 x 4.5 inches at 100 dpi


def test_a_one_panel_plot_is_eight_inches_wide(tmp_path):
    summaries.plot_curves(str(tmp_path / "c.png"), [("t", {"a": [(0, 1.0), (1, 0.5)]})], ylabel="loss")
    with Image.open(tmp_path / "c.png") as plot:
        assert plot.size == (800, 450)
