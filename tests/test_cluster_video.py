"""Several clips in one run on a local Ray cluster (127.0.0.1 only, started and stopped by this module): each
clip a task, the same frames as one after another in this process (nst_tf.video.work_many)."""
import os

import numpy as np
import pytest

import nst_tf
from nst_tf import cluster, image_io
from tests.video_clips import pan, write_video

STYLE = os.path.join(os.path.dirname(__file__), "..", "nst_tf", "data", "images", "hubble_deep_field.jpg")
OPTIONS = dict(max_size=32, num_steps=4, frame_steps=2, seed=3, canvas_margin=4, style_octaves=0,
               backbone="vgg16_hed", say=None)


@pytest.mark.slow   # a 2-worker Ray cluster (about 15 s) and two workers loading TensorFlow
def test_clips_on_two_ray_workers_give_the_frames_made_in_process(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(str(clips / "a.mp4"), pan(3, 24, 32), fps=10)
    write_video(str(clips / "b.mp4"), pan(3, 24, 32, step=1), fps=10)
    here = nst_tf.video(str(clips), STYLE, output_dir=str(tmp_path / "here"), **OPTIONS)
    with cluster.local_cluster(workers=2):
        there = nst_tf.video(str(clips), STYLE, output_dir=str(tmp_path / "ray"), cluster="ray", ray_workers=2,
                             **OPTIONS)
    assert [os.path.basename(c.run_dir) for c in there.clips] == ["a", "b"]
    assert there.summary["status"] == "done" and sorted(there.summary["details"]["clips"]) == ["a", "b"]
    for mine, theirs in zip(here.clips, there.clips):
        assert theirs.summary["status"] == "done"
        for name in sorted(os.listdir(mine.frames)):
            # one thread per worker against two here: the last bits differ, by a level of a PNG at most here
            a, b = (image_io.load_image(os.path.join(c.frames, name)) for c in (mine, theirs))
            np.testing.assert_allclose(a, b, atol=8 / 255, err_msg=name)
