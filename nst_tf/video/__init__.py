"""Video: clips stylized with temporal consistency (optimization) or by a trained stylizer, frame by frame.

    import nst_tf
    result = nst_tf.video("clip.mp4", "painting.jpg", max_size=256)   # this package, called
    result.run_dir     # outputs/<run>/: result.mp4, frames/, preview.png, frames.csv, summary.json

`run(config)` is what run.py calls for a clip (`is_clip(config)`), and `work_many` for several (`clip_files`: a
folder or pattern of video files, each into `clips/<name>/` of one run folder), in --mode=transfer (`transfer`: Ruder
et al.'s temporal optimization through the engine's loss) and --mode=apply (`apply`: a trained stylizer
on batches of frames, optionally blended along the optical flow). `clip_io` reads and writes clips (PyAV),
`flow` computes optical flow, warps and reliabilities (OpenCV's DIS), `temporal` holds the temporal term
and the flicker measure. TensorFlow loads only when a clip is stylized, so run.py checks a clip's file
before it loads. The package itself is callable, `nst_tf.video(content, style, **options)` (`stylize`).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import types

from nst_tf.config import Config, VideoConfig, validate
from nst_tf.errors import UserError
from nst_tf.video import clip_io


def is_clip(config: Config) -> bool:
    """Whether --content is a clip: a video file, or a folder or pattern of frames with --clip."""
    content = config.images.content
    return bool(content) and (clip_io.is_video_file(content) or config.video.clip)


def clip_files(config: Config) -> tuple[str, ...] | None:
    """The clips of a many-clip run: the video files of --content when it names a folder or a pattern
    (`clips/*.mp4`) that holds video files and no still images (a GIF among clips is a clip), sorted; None
    otherwise (one file, a folder of frames with --clip, photos)."""
    from nst_tf.inputs import IMAGE_EXTENSIONS, listed_files
    files = None if config.video.clip else listed_files(config.images.content)
    if files is None:
        return None
    videos = [p for p in files if clip_io.is_video_file(p)]
    stills = [p for p in files if p.lower().endswith(IMAGE_EXTENSIONS) and not p.lower().endswith(".gif")]
    if stills or not any(not p.lower().endswith(".gif") for p in videos):
        return None
    return tuple(videos)


def clip_names(paths: tuple[str, ...]) -> list[str]:
    """The sub-folder of each clip: its file name without the extension, or with it where two share one."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return [s if stems.count(s) == 1 else os.path.basename(p).replace(".", "_") for s, p in zip(stems, paths)]


def open_clip(config: Config) -> clip_io.Clip:
    """The clip of --content with --frames and --fps (UserError in one line if it is not one)."""
    v = config.video
    return clip_io.open_clip(config.images.content, v.frames, v.fps, v.clip)


def check(config: Config) -> clip_io.Clip:
    """Every check of a clip run that needs no TensorFlow: the options, the file; returns the clip."""
    check_options(config)
    return open_clip(config)


def check_options(config: Config) -> None:
    """UserError in one line for options a clip run cannot take (the mode, a sweep, a pyramid, tiles...)."""
    if config.mode not in ("transfer", "apply"):
        raise UserError(f"a clip is stylized with --mode=transfer (optimization) or --mode=apply (a stylizer), "
                        f"not --mode={config.mode}.")
    if config.sweep:
        raise UserError("a clip is one run; leave out --sweep.")
    im, opt = config.images, config.optim
    if config.mode == "transfer" and (im.scales or opt.tile_size or opt.optimizer != "adam" or im.content_mask
                                      or im.regions != "none" or im.max_size == 0):
        raise UserError("a clip is optimized with Adam on whole frames at one size: leave out --scales, "
                        "--tile_size, --optimizer=lbfgs, masks, --regions and --max_size=auto.")
    if config.mode == "apply" and im.max_size == 0:
        raise UserError("--max_size=auto is not for clips: give the frames' longest side, e.g. --max_size=512.")


def run(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None,
        run_dir: str | None = None, on_frame=None) -> str:
    """Stylizes the clip of `config` (--mode=transfer or apply) into a run folder; returns the folder.

    Writes frames/NNNNN.png as each frame finishes, then result.mp4 (H.264, yuv420p, the clip's frame rate,
    its audio), preview.png (content frames above their results) and summary.json (seconds per frame, the
    temporal error). With `resume_dir`, continues the clip stopped there at its first unfinished frame.
    `on_frame(done, count)` is called as frames are saved.
    """
    config = validate(config)
    check_options(config)
    clip = open_clip(config)
    if clip.variable_rate:
        say(f"{config.images.content}: a variable frame rate; the result plays at its average, {float(clip.fps):g} fps")
    if resume_dir:
        run_dir = resume_dir
    else:
        from nst_tf import rundir
        run_dir = run_dir or rundir.create(config.output.output_dir,
                                           config.output.run_name or rundir.default_name(config))
        os.makedirs(run_dir, exist_ok=True)
        say(f"run folder: {run_dir}")
    say(f"clip: {clip.count} frames of {clip.width}x{clip.height} at {float(clip.fps):g} fps")
    start = time.monotonic()
    if config.mode == "apply":
        from nst_tf.video import apply
        numbers = apply.stylize_clip(config, clip, run_dir, say=say, on_frame=on_frame)
    else:
        from nst_tf.video import transfer
        numbers = transfer.stylize_clip(config, clip, run_dir, show_progress, say, resume=bool(resume_dir),
                                        on_frame=on_frame)
    return finish(config, clip, run_dir, numbers, time.monotonic() - start, say)


def work(lifecycle_run) -> None:
    """The lifecycle's mode for a clip (nst_tf.lifecycle): `run` in the run's folder; summary.json's details
    are the clip's numbers (seconds per frame, the temporal error)."""
    from nst_tf import rundir
    r = lifecycle_run
    run_dir = r.open()
    run(r.config, show_progress=r.show_progress, say=r.say, resume_dir=r.resume_dir, run_dir=run_dir)
    numbers = rundir.read_summary(run_dir)
    r.record(steps=optimizer_steps(numbers), wall_time_s=numbers.get("wall_time_s"), device=numbers.get("device"),
             details=numbers)


@dataclasses.dataclass(frozen=True)
class ClipTask:
    """One clip of a many-clip run, as a task of `nst_tf.cluster`: its config (--content the clip's file);
    `say` and `show_progress` for a task run in this process (a Ray worker prints to its log)."""
    config: Config
    label: str = ""
    say: object = None
    show_progress: bool = False


def clip_task(task: ClipTask, workdir: str, sync, progress) -> dict:
    """`run` of one clip into `workdir` (the cluster layer's task function: in this process, or on a Ray
    worker), continuing a clip stopped there; syncs the folder after each frame; returns summary.json."""
    from nst_tf import rundir

    def on_frame(done, count):
        sync()   # a retried worker goes on from the frames synced
        progress(done, count)
    started, say = os.path.isdir(os.path.join(workdir, "frames")), task.say or print
    say(task.label)
    run(task.config, show_progress=task.show_progress, say=say, run_dir=workdir,
        resume_dir=workdir if started else None, on_frame=on_frame)
    return rundir.read_summary(workdir)


def work_many(lifecycle_run) -> None:
    """The lifecycle's mode for several clips (`clip_files`): each clip a run of its own in
    `clips/<name>/` of one run folder (result.mp4, frames/, its summary.json), one after another, or with
    --cluster each clip a task of `nst_tf.cluster` (Ray). A clip that cannot be read or fails is skipped
    and named; a resumed run skips the finished clips and continues a stopped one at its first unfinished
    frame. summary.json's details list each clip's numbers."""
    from nst_tf import cluster, rundir
    r = lifecycle_run
    paths = clip_files(r.config)
    names = clip_names(paths)
    check_options(r.config)
    ray_cluster = r.config.cluster if r.config.mode == "transfer" else None   # a stylizer is fast enough alone
    say, show_progress = (None, False) if ray_cluster else (r.say, r.show_progress)   # a Ray worker logs its own
    run_dir = r.open()
    r.say(f"{len(paths)} clips: {', '.join(os.path.basename(p) for p in paths)}")
    skipped, tasks = [], []
    for k, (path, name) in enumerate(zip(paths, names)):
        folder = f"clips/{name}"
        if rundir.read_summary(os.path.join(run_dir, folder)).get("status") == "done":
            continue
        config = dataclasses.replace(r.config, images=dataclasses.replace(r.config.images, content=path))
        try:
            open_clip(config)   # an unreadable clip gets no folder
        except UserError as e:
            skipped.append(path)
            r.say(f"skipped: {e}")
            continue
        tasks.append(cluster.Task(folder, ClipTask(config, f"clip {k + 1} of {len(paths)}: {path}", say,
                                                   show_progress)))
    if tasks and ray_cluster:
        workers = f" ({r.config.ray_workers} workers)" if r.config.ray_workers else ""
        r.say(f"{len(tasks)} clips on {ray_cluster}{workers}")
    results = cluster.run_tasks(clip_task, tasks, run_dir, cluster=ray_cluster,
                                workers=r.config.ray_workers or None,
                                cpus_per_task=1 if r.config.ray_workers else None, show_progress=False)
    for task, result in zip(tasks, results):
        if result.error:
            path = task.payload.config.images.content
            skipped.append(path)
            r.say(f"skipped: {path}: {result.error}")
    done, steps, device = {}, 0, None
    for name in names:
        numbers = rundir.read_summary(os.path.join(run_dir, "clips", name))
        if numbers.get("status") != "done":
            continue
        done[name] = {k: numbers.get(k) for k in ("frames", "temporal_error", "seconds_per_frame_after_first",
                                                  "wall_time_s")}
        steps, device = steps + optimizer_steps(numbers), numbers.get("device", device)
    r.record(steps=steps, device=device, details={"clips": done, "skipped": skipped})
    if not done:
        raise UserError(f"none of the {len(paths)} clips in {r.config.images.content!r} could be stylized.")
    r.say(f"results: {os.path.join(run_dir, 'clips')} ({len(done)} clips, each with result.mp4)")


def optimizer_steps(numbers: dict) -> int:
    """The optimizer steps a clip takes (summary.json's "steps"): --num_steps for the first frame and
    --frame_steps for each later one; 0 for the stylizer, which takes none."""
    if "frame_steps" not in numbers:
        return 0
    return int(numbers["first_frame_steps"] + (numbers["frames"] - 1) * numbers["frame_steps"])


def finish(config: Config, clip: clip_io.Clip, run_dir: str, numbers: dict, seconds: float, say=print) -> str:
    """result.mp4, preview.png and summary.json from the frames in `run_dir/frames/`."""
    from nst_tf import image_io, rundir
    from nst_tf.video import measure
    from nst_tf.video.transfer import frame_path
    results = [image_io.load_image(frame_path(run_dir, i)) for i in range(clip.count)]
    size = results[0].shape[:2]
    contents = list(clip.frames(size))
    mp4 = os.path.join(run_dir, "result.mp4")
    clip_io.write_mp4(results, mp4, clip.fps, clip.path if clip.audio else None, clip.start_time,
                      clip.count / float(clip.fps))
    image_io.save_image(clip_io.preview_strip([contents, results]), os.path.join(run_dir, "preview.png"))
    error = measure.temporal_error(results, contents)
    rundir.write_json(os.path.join(run_dir, rundir.SUMMARY_FILE), {
        "status": "done", "mode": config.mode, **numbers, "fps": float(clip.fps), "temporal_error": error,
        "wall_time_s": round(seconds, 2), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    say(f"result: {mp4} ({clip.count} frames, {seconds:.1f} s; temporal error {error:.5f})")
    return run_dir


@dataclasses.dataclass
class VideoResult:
    """What `nst_tf.video(...)` (and `nst_tf.resume` of a clip's folder) returns: the run folder, its
    result.mp4, frames/ and summary.json's numbers; in a notebook it shows its preview.png."""
    run_dir: str

    @property
    def mp4(self) -> str:
        return os.path.join(self.run_dir, "result.mp4")

    @property
    def frames(self) -> str:
        return os.path.join(self.run_dir, "frames")

    @property
    def clips(self) -> list[VideoResult]:
        """A many-clip run's clips (clips/<name>/, each with its result.mp4), in order; empty for one clip."""
        folder = os.path.join(self.run_dir, "clips")
        return [VideoResult(os.path.join(folder, n)) for n in sorted(os.listdir(folder))] if os.path.isdir(folder) else []

    @property
    def summary(self) -> dict:
        """summary.json: status, seconds per frame, the temporal error (under "details")."""
        from nst_tf import rundir
        return rundir.read_summary(self.run_dir)

    def _repr_png_(self) -> bytes | None:
        path = os.path.join(self.run_dir, "preview.png")
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()


def stylize(content: str, style: str | None = None, *, model: str | None = None, show_progress: bool = False,
            say=print, **options) -> VideoResult:
    """Stylizes the clip `content` (a video file; a folder or pattern of frames with clip=True; a folder or
    pattern of video files, each into clips/<name>/, `VideoResult.clips`): with `style`
    by temporally consistent optimization, or with `model` (a stylizer.keras) in --mode=apply. `options` are
    any run options by their flag names (max_size=256, temporal_weight=..., frames="0:60", ...). Runs
    through the lifecycle as run.py does (`nst_tf.lifecycle.run`: summary.json says how it ended; a stopped
    clip raises `Interrupted` and `nst_tf.resume(folder)` goes on at its first missing frame)."""
    from nst_tf import lifecycle
    from nst_tf.config import Config, config_with
    config = config_with(Config(mode="apply" if model else "transfer"), **options, content=content, style=style,
                         model=model)
    if not is_clip(config) and clip_files(config) is None:
        raise UserError(f"{content!r} is not a clip: name a video file, a folder or pattern of video files, or a "
                        "folder or pattern of frames with clip=True.")
    return VideoResult(lifecycle.run(config, show_progress=show_progress, say=say))


class _CallableModule(types.ModuleType):
    """`nst_tf.video(...)` calls `stylize`, while `nst_tf.video.clip_io` and the rest stay modules."""

    def __call__(self, *args, **kwargs) -> VideoResult:
        return stylize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
