"""The stylizer on a clip (--mode=apply --model=... --content=clip.mp4, nst_tf.video.apply): every frame
written, result.mp4 with as many frames, and --flow_blend lowering the measured flicker."""
import os

import numpy as np
import pytest

from nst_tf import image_io, lifecycle, rundir
from nst_tf.config import config_with
from nst_tf.stylizer import apply
from nst_tf.video import clip_io, flow, measure
from nst_tf.video.transfer import frame_path
from tests.video_clips import pan, save_stylizer, write_video

FRAMES = 8


@pytest.fixture(scope="module")
def stylizer_path(tmp_path_factory):
    # random weights: its stride-2 convolutions make it shift-equivariant only in steps of 4 px, so on a pan
    # by 2 px per frame its strokes jump from frame to frame, as a trained stylizer's do
    return save_stylizer(tmp_path_factory.mktemp("model"), seed=7, width=8)


def apply_config(clip, model, out, **values):
    return config_with(mode="apply", content=clip, model=model, max_size="64", output_dir=out, **values)


def test_apply_on_a_clip_writes_every_frame_and_flow_blend_lowers_the_flicker(tmp_path, stylizer_path):
    source = str(tmp_path / "pan.mp4")
    write_video(source, pan(FRAMES, 48, 64, step=2), fps=10)   # the astronaut panned 2 px right per frame
    run_dir = lifecycle.run(apply_config(source, stylizer_path, str(tmp_path / "out"), flow_blend=0.5),
                            show_progress=False, say=None)
    assert sorted(os.listdir(os.path.join(run_dir, "frames"))) == [f"{i:05d}.png" for i in range(FRAMES)]
    assert clip_io.probe(os.path.join(run_dir, "result.mp4"))["frames"] == FRAMES
    assert os.path.exists(os.path.join(run_dir, "preview.png"))
    summary = rundir.read_summary(run_dir)
    assert (summary["status"], summary["mode"], summary["details"]["frames"]) == ("done", "video", FRAMES)

    contents = list(clip_io.open_clip(source).frames((48, 64)))
    blended = [image_io.load_image(frame_path(run_dir, i)) for i in range(FRAMES)]
    stylizer = apply.Stylizer(apply.load(stylizer_path))
    alone = [np.clip(stylizer(frame), 0, 1) for frame in contents]   # each frame through the network alone
    assert blended[0].shape == (48, 64, 3)
    assert np.abs(blended[0] - alone[0]).max() < 1 / 255   # the first frame has nothing to blend with
    errors = {0.0: measure.temporal_error(alone, contents), 0.5: measure.temporal_error(blended, contents)}
    assert errors[0.0] > 1e-4                               # the stylizer flickers on this pan ...
    # ... and the blend, y_i - warp(y_{i-1}) = (1 - b c)(s(x_i) - warp(y_{i-1})), takes away most of it
    assert errors[0.5] < 0.5 * errors[0.0]
    assert summary["details"]["temporal_error"] == pytest.approx(errors[0.5], rel=1e-6)
    # each blended frame is that mix of the frame's own output and the previous blended one warped along the
    # content's flow, where it is reliable (8-bit rounding of the PNGs aside): a blend that did not follow
    # the motion, or followed it the wrong way, lowers the error too but fails here
    for i in range(1, FRAMES):
        motion = flow.Motion.between(contents[i], [contents[i - 1]])
        assert motion.weights[0].mean() > 0.8               # most of each frame is blended
        c = 0.5 * motion.weights[0][..., None]
        expected = (1 - c) * alone[i] + c * flow.warp(blended[i - 1], motion.flows[0])
        assert np.abs(blended[i] - expected).max() < 2 / 255, i


@pytest.mark.slow   # tf2onnx converts the network (several seconds)
def test_a_stylizer_onnx_on_a_clip_gives_the_keras_frames(tmp_path, stylizer_path):
    from nst_tf.stylizer import export
    onnx_path = export.export(apply.load(stylizer_path), str(tmp_path), ("onnx",))[0]
    source = str(tmp_path / "pan.mp4")
    write_video(source, pan(3, 48, 64, step=2), fps=10)
    runs = {name: lifecycle.run(apply_config(source, path, str(tmp_path / name)), show_progress=False, say=None)
            for name, path in (("keras", stylizer_path), ("onnx", onnx_path))}
    assert rundir.read_summary(runs["onnx"])["details"]["device"] == "onnxruntime:CPU"
    for i in range(3):   # the same network on two runtimes: equal but for 8-bit rounding
        frames = [image_io.load_image(frame_path(runs[name], i)) for name in ("keras", "onnx")]
        assert np.abs(frames[0] - frames[1]).max() <= 1 / 255 + 1e-6, i
