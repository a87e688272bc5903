"""The temporal term and the temporal optimization of a clip (nst_tf.video.temporal, nst_tf.video.transfer)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import image_io
from nst_tf.config import config_with
from nst_tf.errors import Interrupted
from nst_tf.video import flow, measure, temporal
from tests.video_clips import pan, write_video


def test_temporal_term_is_zero_for_a_consistent_output_and_by_hand():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(1, 6, 5, 3)).astype(np.float32)
    c = (rng.uniform(size=(1, 2, 6, 5)) > 0.5).astype(np.float32)
    warped = np.where(c[..., None] > 0, x[:, None], rng.uniform(size=(1, 2, 6, 5, 3))).astype(np.float32)
    assert float(temporal.temporal_loss(x, warped, c)[0]) == 0.0   # equal wherever reliable
    ones = np.ones((1, 1, 6, 5), np.float32)
    # 1/D sum (x - w)^2 with x - w = 0.1 everywhere: 0.01
    assert float(temporal.temporal_loss(x, x[:, None] - 0.1, ones)[0]) == pytest.approx(0.01, rel=1e-5)


def clip_config(content, out, **values):
    return config_with(**{**dict(content=content, style=os.path.join(os.path.dirname(__file__), "..", "nst_tf", "data",
                                                                  "images", "hubble_deep_field.jpg"),
                               backbone="vgg16_hed", max_size="40", num_steps=30, frame_steps=10, seed=3,
                               output_dir=out, canvas_margin=4, style_octaves=0), **values})


@pytest.mark.slow
def test_temporal_output_flickers_less_and_resumes_to_the_same_frames(tmp_path, monkeypatch):
    from nst_tf import video
    from nst_tf.video import transfer
    source = str(tmp_path / "pan.mp4")
    write_video(source, pan(5, 30, 40, step=2), fps=10)
    config = clip_config(source, str(tmp_path / "out"), temporal_weight=1e4)
    whole = video.run(config, show_progress=False, say=lambda *_: None, run_dir=str(tmp_path / "whole"))
    contents = list(video.open_clip(config).frames((30, 40)))
    frames = [image_io.load_image(transfer.frame_path(whole, i)) for i in range(5)]
    independent = str(tmp_path / "independent")
    os.makedirs(independent)
    transfer.stylize_clip(config, video.open_clip(config), independent, show_progress=False, say=lambda *_: None,
                          independent=True)
    alone = [image_io.load_image(transfer.frame_path(independent, i)) for i in range(5)]
    assert measure.temporal_error(frames, contents) < 0.5 * measure.temporal_error(alone, contents)
    # stopped while frame 3 is being made, then resumed: the frames of the run that never stopped
    calls = {"n": 0}
    between = flow.Motion.between

    def stop_at_frame_3(frame, earlier):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return between(frame, earlier)

    monkeypatch.setattr(flow.Motion, "between", staticmethod(stop_at_frame_3))
    stopped = str(tmp_path / "stopped")
    with pytest.raises(Interrupted, match="--resume"):
        video.run(config, show_progress=False, say=lambda *_: None, run_dir=stopped)
    assert sorted(os.listdir(os.path.join(stopped, "frames"))) == ["00000.png", "00001.png", "00002.png"]
    monkeypatch.setattr(flow.Motion, "between", staticmethod(between))
    video.run(config, show_progress=False, say=lambda *_: None, resume_dir=stopped)
    for i in range(5):
        np.testing.assert_array_equal(image_io.load_image(transfer.frame_path(stopped, i)), frames[i])
    assert os.path.exists(os.path.join(stopped, "result.mp4"))


@pytest.mark.slow
def test_a_clip_on_a_rescaled_network_keeps_its_frames_with_the_balance(tmp_path, monkeypatch):
    """A network the fixed weights were not chosen on (random weights) balances a clip by default, with the
    temporal weight measured for the balance; the same network at other magnitudes (powers of two: exact) then
    gives the same frames bit for bit. With weights by hand the temporal term's pull moves with the magnitudes."""
    from nst_tf import video
    from nst_tf.config import BALANCED_TEMPORAL_WEIGHT
    from nst_tf.video import transfer
    from tests.test_balance import FACTORS, load_rescaled
    source = str(tmp_path / "pan.mp4")
    write_video(source, pan(3, 30, 40, step=2), fps=10)

    def frames(name, factors=None, **values):
        load_rescaled(monkeypatch, factors)
        said = []
        config = clip_config(source, str(tmp_path / "out"), backbone="vgg16", weights="random", run_name=name,
                             **values)
        run_dir = video.run(config, show_progress=False, say=said.append)
        return [image_io.load_image(transfer.frame_path(run_dir, i)) for i in range(3)], said

    plain, said = frames("plain")
    assert any("finds them from this pair" in line for line in said)
    scaled, _ = frames("scaled", FACTORS)
    assert all(np.array_equal(a, b) for a, b in zip(plain, scaled))
    plain_fixed, _ = frames("plain_fixed", style_weight=1e4, temporal_weight=BALANCED_TEMPORAL_WEIGHT)
    scaled_fixed, _ = frames("scaled_fixed", FACTORS, style_weight=1e4, temporal_weight=BALANCED_TEMPORAL_WEIGHT)
    assert np.abs(plain_fixed[-1] - scaled_fixed[-1]).mean() > 10 / 255
