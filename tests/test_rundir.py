"""Run folders: never reused, flagfiles that round-trip, damaged files read as one-line errors."""
import os

import numpy as np
import pytest

from nst_tf import rundir
from nst_tf.config import Config, ImageConfig, LossConfig, OptimConfig, to_flags
from nst_tf.errors import UserError


def test_run_folders_are_never_reused(tmp_path):
    a = rundir.create(str(tmp_path), "same")
    b = rundir.create(str(tmp_path), "same")
    assert a != b and os.path.basename(b) == "same-2"


def test_runs_started_at_the_same_moment_get_their_own_folders(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        folders = list(pool.map(lambda _: rundir.create(str(tmp_path / "out"), "run"), range(32)))
    assert len(set(folders)) == 32 and sorted(os.listdir(tmp_path / "out")) == sorted(map(os.path.basename, folders))


def test_default_names_come_from_the_files_or_the_folder_of_a_pattern(tmp_path):
    def name(content, style="s/starry.jpg"):
        return rundir.default_name(Config(images=ImageConfig(content=content, style=style))).rsplit("_", 1)[0]
    assert name("photos/cat.jpg") == "cat_starry"
    assert name("a/cat.jpg,b/dog.png") == "cat+dog_starry"
    assert name("photos/*.jpg") == "photos_starry" and name("*.mp4") == "many_starry"
    (tmp_path / "clips.v2").mkdir()
    assert name(str(tmp_path / "clips.v2") + "/") == "clips.v2_starry"   # a folder keeps its dots


def test_the_flagfile_reads_back_as_the_config_it_was_written_from(tmp_path):
    config = Config(images=ImageConfig(content="a b.jpg", style="s1.png,s2.png", style_blend_weights=(0.25, 0.75),
                                       scales=(128, 256)),
                    loss=LossConfig(style_layers=("conv1_1", "conv2_1"), style_weight=1.2345678901234e7,
                                    resolution_invariant=False),
                    optim=OptimConfig(seed=12, learning_rate=0.1 + 0.2), sweep=("ratio:1e-3,1e-2", "seed:1,2"))
    rundir.write_config(config, str(tmp_path))
    assert rundir.read_config(str(tmp_path)) == config
    assert open(tmp_path / "run.flags").read().splitlines()[1:] == to_flags(config)


def test_resumed_config_takes_overrides_and_keeps_the_sweep(tmp_path):
    config = Config(images=ImageConfig(content="c.jpg", style="s.jpg"), sweep=("ratio:1,2",))
    rundir.write_config(config, str(tmp_path), "sweep.flags", what="sweep")
    resumed = rundir.resumed_config(str(tmp_path), {"num_steps": 500, "sweep": ("ratio:1,2",)})
    assert resumed.optim.num_steps == 500 and resumed.sweep == config.sweep
    with pytest.raises(UserError, match="keeps the sweep's own axes"):
        rundir.resumed_config(str(tmp_path), {"sweep": ("seed:1,2",)})
    with pytest.raises(UserError, match="no such option"):
        rundir.resumed_config(str(tmp_path), {"num_stepz": 5})
    with pytest.raises(UserError, match="not a run or sweep folder"):
        rundir.read_config(str(tmp_path / "nothing"))


def test_saved_state_round_trips(tmp_path):
    state = {"images": np.zeros((4, 5, 3), np.float32), "step": np.int64(7)}
    rundir.save_state(str(tmp_path), state)
    assert rundir.saved_step(str(tmp_path)) == 7 and rundir.saved_step(str(tmp_path / "none")) is None
