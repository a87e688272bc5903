"""Clips in and out (nst_tf.video.clip_io) and the hostile inputs, on clips written here."""
import os

import numpy as np
import pytest

from nst_tf import image_io
from nst_tf.errors import UserError
from nst_tf.video import clip_io
from tests.video_clips import pan, write_video


def test_mp4_in_cut_resampled_and_out_with_audio(tmp_path):
    frames = pan(12, 48, 64)
    source = str(tmp_path / "clip.mp4")
    write_video(source, frames, fps=10, audio_seconds=1.2)
    clip = clip_io.open_clip(source)
    assert (clip.count, clip.height, clip.width, float(clip.fps), clip.audio) == (12, 48, 64, 10.0, True)
    read = list(clip.frames())
    assert np.abs(read[5] - frames[5]).mean() < 0.03          # H.264 is lossy, not wrong
    cut = clip_io.open_clip(source, frames="2:8", fps=5)
    assert cut.indices == (2, 4, 6) and float(cut.fps) == 5.0
    out = str(tmp_path / "result.mp4")
    odd = [f[:47, :63] for f in read[:6]]                      # odd sides are padded to even for yuv420p
    clip_io.write_mp4(odd, out, clip.fps, source, 0.0, 0.6)
    info = clip_io.probe(out)
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "width": 64, "height": 48, "fps": 10.0, "frames": 6,
                    "audio": "aac"}


@pytest.mark.parametrize("name", ["clip.gif", "clip.webm", "clip.avi"])
def test_other_containers(tmp_path, name):
    path = str(tmp_path / name)
    write_video(path, pan(5, 32, 40), fps=10)
    clip = clip_io.open_clip(path)
    assert clip.count == 5 and (clip.height, clip.width) == (32, 40)
    assert len(list(clip.frames((16, 20)))) == 5


def test_folder_of_frames_and_the_first_odd_size(tmp_path):
    for k, frame in enumerate(pan(4, 24, 32)):
        image_io.save_image(frame, str(tmp_path / f"f{k}.png"))
    clip = clip_io.open_clip(str(tmp_path), fps=12)
    assert clip.count == 4 and float(clip.fps) == 12.0
    image_io.save_image(np.zeros((20, 32, 3), np.float32), str(tmp_path / "f2.png"))
    with pytest.raises(UserError, match="f2.png.*32x20"):
        list(clip_io.open_clip(str(tmp_path)).frames())


def test_hostile_files(tmp_path):
    source = str(tmp_path / "clip.mp4")
    write_video(source, pan(10, 32, 32), fps=10)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(UserError, match="cannot open"):
        clip_io.open_clip(str(garbage))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(source, "rb").read()[:1500])
    with pytest.raises(UserError):
        clip = clip_io.open_clip(str(truncated))
        list(clip.frames())
    one = str(tmp_path / "one.mp4")
    write_video(one, pan(1, 32, 32))
    with pytest.raises(UserError, match="at least two"):
        clip_io.open_clip(one)
    with pytest.raises(UserError, match="does not exist"):
        clip_io.open_clip(str(tmp_path / "missing.mp4"))
    with pytest.raises(UserError, match="selects no frame"):
        clip_io.open_clip(source, frames="20:30")
    with pytest.raises(UserError, match="START:END"):
        clip_io.open_clip(source, frames="5")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no frames"):
        clip_io.open_clip(str(empty))


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av
    path = str(tmp_path / "sound.mp4")
    with av.open(path, "w") as out:
        audio = out.add_stream("aac", rate=22050)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 22050, 0
        for packet in list(audio.encode(frame)) + list(audio.encode(None)):
            out.mux(packet)
    with pytest.raises(UserError, match="no video stream"):
        clip_io.open_clip(path)


def test_preview_strip_shape():
    rows = [pan(10, 8, 12), pan(10, 8, 12)]
    sheet = clip_io.preview_strip(rows, count=4)
    assert sheet.shape == (2 * 8 + 2, 4 * 12 + 3 * 2, 3)


def test_run_py_refuses_a_bad_clip_in_one_line_before_tensorflow(tmp_path):
    import subprocess
    import sys
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    root = os.path.join(os.path.dirname(__file__), "..")
    style = os.path.join(root, "nst_tf", "data", "images", "hubble_deep_field.jpg")
    done = subprocess.run([sys.executable, os.path.join(root, "run.py"), f"--content={garbage}", f"--style={style}",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: cannot open {str(garbage)!r} as a video (Invalid data found "
                                                "when processing input); name an mp4, mov, webm, avi, mkv or "
                                                "animated gif file."]
    assert not (tmp_path / "out").exists()


def test_run_py_checks_a_folder_of_clips_options_before_tensorflow(tmp_path):
    import subprocess
    import sys
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(str(clips / "a.mp4"), pan(2, 16, 16))
    root = os.path.join(os.path.dirname(__file__), "..")
    done = subprocess.run([sys.executable, os.path.join(root, "run.py"), f"--content={clips}", "--mode=content",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: a clip is stylized with --mode=transfer (optimization) or "
                                                "--mode=apply (a stylizer), not --mode=content."]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,value,message", [
    ("temporal_weight", -1.0, "--temporal_weight"), ("long_term", (1, 1), "distinct"), ("long_term", (0,), "1 to 16"),
    ("frame_steps", 0, "--frame_steps"), ("fps", 0.0, "--fps"), ("flow_blend", 1.0, "--flow_blend")])
def test_video_options_are_checked(name, value, message):
    import dataclasses
    from nst_tf.config import Config, VideoConfig, validate
    config = Config(images=dataclasses.replace(Config().images, content="clip.mp4", style="s.jpg"),
                    video=dataclasses.replace(VideoConfig(), **{name: value}))
    with pytest.raises(UserError, match=message):
        validate(config)
