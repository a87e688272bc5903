"""Sweeps and many-photo jobs on a local Ray cluster (127.0.0.1 only, started once for this module and
stopped at its end): the same images as in-process, and a worker killed in the middle of a sweep is retried
and continues from its cell's last snapshot."""
import csv
import dataclasses
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from nst_tf import cluster, image_io
from nst_tf.comparison import runner
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig
from tests.conftest import smooth_image, write_png

TIMEOUT_S = 240


def sweep_config(tmp_path, content, style_path, name, cluster=None, num_steps=12, **images):
    return Config(images=ImageConfig(content=content, style=style_path, max_size=32, **images),
                  model=ModelConfig(backbone="vgg16_hed"),
                  loss=LossConfig(style_layers=("conv1_1", "conv2_1"), style_weight=1e6),
                  optim=OptimConfig(num_steps=num_steps, seed=1, learning_rate=0.05),
                  output=OutputConfig(output_dir=str(tmp_path / "out"), run_name=name, save_every=2, log_every=1),
                  sweep=("style_weight:1e5,1e7",), sweep_batch=1, cluster=cluster, ray_workers=2 if cluster else 0)


@pytest.fixture(scope="module")
def two_workers():
    """One local 2-worker cluster for the module's sweeps (each would otherwise start and stop its own: about
    15 s each here). `--cluster=ray` finds it running and uses it, as a sweep started inside
    `cluster.local_cluster` does; its tasks get one thread each, as a sweep's own 2-worker cluster gives."""
    with cluster.local_cluster(workers=2) as ray:
        yield ray


def results(sweep_dir):
    return list(csv.DictReader(open(os.path.join(sweep_dir, "results.csv"))))


def images(sweep_dir):
    return {r["cell"]: image_io.load_image(os.path.join(sweep_dir, r["cell"], "result.png"))
            for r in results(sweep_dir)}


def assert_same_images(a, b):
    """Float tolerance: one thread per worker against two here, so the last bits differ and grow over the
    steps into a few levels of a PNG at a few pixels (6 of 255 at one of 2592 values, seen); on average
    well under one level."""
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=10 / 255, err_msg=name)
        assert np.abs(a[name] - b[name]).mean() < 0.5 / 255, name


@pytest.mark.slow
def test_a_sweep_and_a_folder_job_on_two_workers_equal_in_process(tmp_path, content_path, style_path,
                                                                   two_workers):
    here = runner.run_sweep(sweep_config(tmp_path, content_path, style_path, "here"), show_progress=False,
                            say=lambda *a: None)
    said = []
    there = runner.run_sweep(sweep_config(tmp_path, content_path, style_path, "there", cluster="ray"),
                             show_progress=False, say=said.append)
    assert "2 batches on ray (2 workers)" in said
    assert [r["status"] for r in results(there)] == ["done", "done"]
    assert [r["attempts"] for r in results(there)] == ["1", "1"]
    assert_same_images(images(here), images(there))
    assert not os.path.exists(os.path.join(there, runner.STAGING))   # every cell in its place

    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", smooth_image(40, 48, seed=1))
    write_png(photos / "b.png", smooth_image(40, 48, seed=2))
    def photo_job(name, cluster=None):
        config = sweep_config(tmp_path, str(photos), style_path, name, cluster)
        return runner.run_sweep(dataclasses.replace(config, sweep=(), sweep_batch=0), show_progress=False,
                                say=lambda *a: None)
    here, there = photo_job("photos_here"), photo_job("photos_there", cluster="ray")
    assert [os.path.basename(r["content"]) for r in results(there)] == ["a.png", "b.png"]
    assert_same_images(images(here), images(there))


def ray_workers():
    """The Ray worker processes running a task now (Ray names them after the task's function)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (proc.info["name"] or "").startswith("ray::_attempt"):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_cell_continues_from_its_last_snapshot(tmp_path, content_path,
                                                                                   style_path, two_workers):
    # the undisturbed sweep on the same workers (one thread each, as the killed one): a retried cell that
    # continues from its saved state gives the same bits
    reference = runner.run_sweep(sweep_config(tmp_path, content_path, style_path, "reference", cluster="ray",
                                              num_steps=20), show_progress=False, say=lambda *a: None)
    config = sweep_config(tmp_path, content_path, style_path, "killed", cluster="ray", num_steps=20)
    said, out = [], {}
    driver = threading.Thread(target=lambda: out.update(dir=runner.run_sweep(config, show_progress=False,
                                                                             say=said.append)), daemon=True)
    driver.start()
    staging = tmp_path / "out" / "killed" / runner.STAGING
    deadline = time.monotonic() + TIMEOUT_S
    while not all((staging / batch / cell / "state.npz").exists()   # both batches' first snapshots are here
                  for batch, cell in (("000", "00_style_weight=1e5"), ("001", "01_style_weight=1e7"))):
        assert time.monotonic() < deadline and driver.is_alive(), "the batches never synced a snapshot"
        time.sleep(0.05)
    victims = ray_workers()
    assert victims, "no Ray worker is running a task"
    for victim in victims[:1]:
        os.kill(victim.pid, signal.SIGKILL)
    driver.join(TIMEOUT_S)
    assert not driver.is_alive() and "dir" in out, said
    rows = results(out["dir"])
    assert [r["status"] for r in rows] == ["done", "done"]
    assert sorted(r["attempts"] for r in rows) == ["1", "2"]
    retried = [line for line in said if "its worker died; attempt 2 continued from step" in line]
    assert len(retried) == 1, said   # from a saved step, not from the start
    for name, image in images(reference).items():
        np.testing.assert_array_equal(images(out["dir"])[name], image, err_msg=name)
    for row in rows:   # every step logged once, as in an undisturbed run
        steps = [int(r["step"]) for r in csv.DictReader(open(os.path.join(out["dir"], row["cell"], "losses.csv")))]
        assert steps == list(range(21))
