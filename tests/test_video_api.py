"""Clips through the Python API: `nst_tf.video(...)` and `nst_tf.resume(folder)` of a clip's run folder
(nst_tf.video.stylize, nst_tf.api.resume), as `run.py --content=clip.mp4` and `run.py --resume=<clip run>`."""
import os

import numpy as np
import pytest

import nst_tf
from nst_tf import image_io, rundir
from nst_tf.errors import Interrupted, UserError
from nst_tf.video import VideoResult, clip_io, flow
from tests.video_clips import ASTRONAUT, pan, save_stylizer, write_video

STYLE = os.path.join(os.path.dirname(__file__), "..", "nst_tf", "data", "images", "hubble_deep_field.jpg")


@pytest.fixture(scope="module")
def stylizer_path(tmp_path_factory):
    return save_stylizer(tmp_path_factory.mktemp("model"), seed=5, width=4)


@pytest.fixture
def clip_path(tmp_path):
    path = str(tmp_path / "pan.mp4")
    write_video(path, pan(4, 24, 32, step=2), fps=10)
    return path


def frames_of(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "frames")))


def test_video_and_resume_of_a_stylizer_clip_return_its_video_result(tmp_path, clip_path, stylizer_path):
    result = nst_tf.video(clip_path, model=stylizer_path, max_size=32, output_dir=str(tmp_path / "out"), say=None)
    assert isinstance(result, VideoResult) and frames_of(result.run_dir) == [f"{i:05d}.png" for i in range(4)]
    summary = rundir.read_summary(result.run_dir)
    assert (summary["status"], summary["mode"], summary["details"]["frames"]) == ("done", "video", 4)
    assert summary["steps"] == 0 and "CPU" in summary["device"]   # the stylizer takes no optimizer step
    assert clip_io.probe(result.mp4)["frames"] == 4
    assert result._repr_png_().startswith(b"\x89PNG")
    again = nst_tf.resume(result.run_dir, say=None, progress=False)   # a finished clip: made again, same folder
    assert isinstance(again, VideoResult) and again.run_dir == result.run_dir
    assert again.summary["status"] == "done" and clip_io.probe(again.mp4)["frames"] == 4
    # nst_tf.run's other callers on a clip: the same VideoResult
    applied = nst_tf.apply_stylizer(stylizer_path, clip_path, max_size=32, output_dir=str(tmp_path / "b"), say=None)
    assert isinstance(applied, VideoResult) and frames_of(applied.run_dir) == frames_of(result.run_dir)


def test_many_clips_each_in_its_folder_a_bad_one_skipped_and_a_resume_skips_the_finished(tmp_path, stylizer_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(str(clips / "a.mp4"), pan(3, 24, 32), fps=10)
    write_video(str(clips / "b.webm"), pan(2, 16, 24), fps=8)
    (clips / "c.mp4").write_bytes(b"not a video")
    said = []
    result = nst_tf.video(str(clips), model=stylizer_path, max_size=32, output_dir=str(tmp_path / "out"),
                          say=said.append)
    assert [os.path.basename(c.run_dir) for c in result.clips] == ["a", "b"]
    assert [clip_io.probe(c.mp4)["frames"] for c in result.clips] == [3, 2]
    assert [c.summary["status"] for c in result.clips] == ["done", "done"]
    summary = result.summary
    assert (summary["status"], summary["mode"]) == ("done", "clips")
    assert sorted(summary["details"]["clips"]) == ["a", "b"] and summary["details"]["clips"]["a"]["frames"] == 3
    assert summary["details"]["skipped"] == [str(clips / "c.mp4")]
    assert any(line.startswith("skipped:") and "c.mp4" in line for line in said)
    assert os.path.basename(result.run_dir).startswith("apply_clips_")   # the folder's name, not a pattern's
    os.remove(os.path.join(result.run_dir, "clips", "b", rundir.SUMMARY_FILE))   # b stopped before it finished
    made = os.path.getmtime(result.clips[0].mp4)
    said = []
    again = nst_tf.resume(result.run_dir, say=said.append, progress=False)
    assert again.run_dir == result.run_dir and os.path.getmtime(again.clips[0].mp4) == made   # a: not redone
    assert again.clips[1].summary["status"] == "done" and clip_io.probe(again.clips[1].mp4)["frames"] == 2
    assert not any("clip 1 of 3" in line for line in said) and any("clip 2 of 3" in line for line in said)


def test_clip_files_are_video_files_of_a_folder_or_pattern_without_photos(tmp_path):
    from nst_tf.config import config_with, Config
    folder = tmp_path / "c"
    folder.mkdir()
    for name in ("b.mov", "a.mp4", "x.gif"):
        (folder / name).write_bytes(b"")
    files = nst_tf.video.clip_files
    config = config_with(Config(), content=str(folder))
    assert [os.path.basename(p) for p in files(config)] == ["a.mp4", "b.mov", "x.gif"]
    assert [os.path.basename(p) for p in files(config_with(config, content=str(folder / "*.m*")))] == ["b.mov", "a.mp4"][::-1]
    assert files(config_with(config, clip=True)) is None   # a folder of frames
    assert files(config_with(config, content=str(folder / "a.mp4"))) is None   # one clip
    assert files(config_with(config, content=str(folder / "*.gif"))) is None   # GIFs alone may be photos
    (folder / "photo.jpg").write_bytes(b"")
    assert files(config) is None   # photos among them: a many-photo run
    assert nst_tf.video.clip_names(("d/a.mp4", "d/a.mov", "d/b.mp4")) == ["a_mp4", "a_mov", "b"]


def test_video_refuses_what_is_not_a_clip_and_unknown_options(tmp_path):
    with pytest.raises(UserError, match="is not a clip"):
        nst_tf.video(ASTRONAUT, STYLE, output_dir=str(tmp_path))
    with pytest.raises(UserError, match="unknown option 'temporal_wieght'; did you mean temporal_weight"):
        nst_tf.video("clip.mp4", STYLE, temporal_wieght=1)


@pytest.mark.slow
def test_resume_of_a_stopped_clip_goes_on_at_its_first_missing_frame(tmp_path, clip_path, monkeypatch):
    options = dict(max_size=32, num_steps=4, frame_steps=2, seed=3, canvas_margin=4, style_octaves=0,
                   backbone="vgg16_hed", output_dir=str(tmp_path / "out"), run_name="clip", say=None)
    between, calls = flow.Motion.between, {"n": 0}

    def stop_at_frame_2(frame, earlier):   # the flow of frame 2 is asked for: Ctrl-C while frame 2 is made
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return between(frame, earlier)

    monkeypatch.setattr(flow.Motion, "between", staticmethod(stop_at_frame_2))
    with pytest.raises(Interrupted, match="--resume"):
        nst_tf.video(clip_path, STYLE, **options)
    folder = os.path.join(str(tmp_path / "out"), "clip")
    assert rundir.read_summary(folder)["status"] == "interrupted"
    assert frames_of(folder) == ["00000.png", "00001.png"]
    kept = [open(os.path.join(folder, "frames", name), "rb").read() for name in frames_of(folder)]
    monkeypatch.setattr(flow.Motion, "between", staticmethod(between))
    said = []
    result = nst_tf.resume(folder, say=said.append, progress=False)
    assert isinstance(result, VideoResult) and result.run_dir == folder
    assert any("resuming" in line and "at frame 2 of 4" in line for line in said)
    assert frames_of(folder) == [f"{i:05d}.png" for i in range(4)]
    assert [open(os.path.join(folder, "frames", f"{i:05d}.png"), "rb").read() for i in range(2)] == kept
    summary = result.summary
    assert (summary["status"], summary["mode"], summary["details"]["frames"]) == ("done", "video", 4)
    assert summary["steps"] == 4 + 3 * 2 and "CPU" in summary["device"]   # --num_steps, then --frame_steps each
    assert clip_io.probe(result.mp4)["frames"] == 4
    assert np.isfinite(summary["details"]["temporal_error"])
    assert image_io.load_image(os.path.join(folder, "frames", "00003.png")).shape == (24, 32, 3)
