"""Clips in and out: video files through PyAV (FFmpeg's libraries, shipped inside its wheel), folders or
patterns of frames through `nst_tf.image_io`. No TensorFlow.

A clip is read as a `Clip`: its frames' count, size and frame rate known before any frame is decoded, then
`frames(size)` yields float32 RGB [H, W, 3] in [0, 1] frames at the working size, one at a time (a long
clip is never held in memory). Writing: `write_mp4` makes an H.264 (yuv420p, even sides) MP4 that browsers
play, with the source's audio re-encoded to AAC; `preview_strip` a contact strip of a few frames.

Behaviour at the edges (docs/video.md): variable frame rate clips are read frame by frame and written at
their average rate; rotation metadata (phones) is applied to the frames; --frames=START:END cuts by frame
index, --fps resamples by dropping or repeating frames (nearest earlier frame).
"""
from __future__ import annotations

import dataclasses
import fractions
import glob
import os
from typing import Iterator

import numpy as np

from nst_tf import image_io
from nst_tf.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FOLDER_FPS = 24.0   # a folder of frames plays at this rate unless --fps says otherwise


def is_video_file(path: str | None) -> bool:
    """Whether `path` names a video file by its extension (an animated GIF counts; a still GIF is then
    refused as a clip of one frame by `open_clip`)."""
    return bool(path) and os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS and not glob.has_magic(path)


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """--frames=START:END (0-based, END excluded, either may be empty) -> (start, end or None)."""
    if not text:
        return 0, None
    start, sep, end = text.partition(":")
    try:
        first = int(start) if start.strip() else 0
        last = int(end) if end.strip() else None
    except ValueError:
        first, last = -1, None
    if not sep or first < 0 or (last is not None and last <= first):
        raise UserError(f"--frames={text} must be START:END with 0 <= START < END (frame numbers from 0, END "
                        "excluded; either may be left out, e.g. :60 or 100:).")
    return first, last


@dataclasses.dataclass
class Clip:
    """A clip to read: `count` frames (after --frames and --fps) of `height` x `width` (rotation applied),
    played at `fps`. `indices` are the source frames used, in order (a frame repeats where --fps is above
    the source's rate). `audio`: whether the source has an audio stream; `start_time` in seconds of the
    first frame used (where its audio starts)."""
    path: str
    files: tuple[str, ...] | None     # a folder or pattern of frames; None for a video file
    fps: fractions.Fraction
    indices: tuple[int, ...]
    height: int
    width: int
    rotation: int = 0                 # degrees counter-clockwise to turn the decoded frames
    audio: bool = False
    variable_rate: bool = False

    @property
    def count(self) -> int:
        return len(self.indices)

    @property
    def start_time(self) -> float:
        return float(self.indices[0] / self.source_fps) if self.indices else 0.0

    source_fps: fractions.Fraction = fractions.Fraction(FOLDER_FPS)

    def frames(self, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        """The clip's frames in order, float32 RGB [H, W, 3] in [0, 1], resized to `size` (h, w) if given."""
        if self.files is not None:
            for i in self.indices:
                image = image_io.load_image(self.files[i])
                if image.shape[:2] != (self.height, self.width):
                    raise UserError(f"frame {self.files[i]!r} is {image.shape[1]}x{image.shape[0]}, the clip's first "
                                    f"frame {self.width}x{self.height}: every frame of a folder must have one size.")
                yield image if size is None else image_io.resize(image, size)
            return
        wanted = list(self.indices)
        k = 0
        for index, frame in enumerate(_decode(self.path)):
            if k >= len(wanted):
                return
            while k < len(wanted) and wanted[k] == index:
                image = _turned(frame, self.rotation)
                yield image if size is None else image_io.resize(image, size)
                k += 1
        if k < len(wanted):
            raise UserError(f"{self.path!r} ends after {index + 1 if wanted else 0} frames, before frame {wanted[k]} "
                            "(a truncated or damaged file); pass --frames to stop earlier.")


def _turned(frame: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frame, rotation // 90)) if rotation % 360 else frame


def _av():
    import av   # PyAV: imported when a clip is read, so `import nst_tf` stays light
    return av


def _decode(path: str) -> Iterator[np.ndarray]:
    """Every video frame of `path` as float32 RGB [H, W, 3] in [0, 1]; a damaged stream is a UserError."""
    av = _av()
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"   # frame threads: 2x faster decoding (docs/video.md)
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
    except av.error.FFmpegError as e:
        raise UserError(f"cannot decode {path!r} ({e.strerror or type(e).__name__}): a damaged or truncated video; "
                        "re-encode it, or pass --frames to stop before the damage.") from None


def _rotation(container, stream) -> int:
    """Degrees to turn the decoded frames (counter-clockwise) so that they stand as the player shows them."""
    try:
        for frame in container.decode(stream):
            angle = getattr(frame, "rotation", 0) or 0   # the display matrix, PyAV >= 14
            return int(round(angle / 90.0)) * 90 % 360
    except _av().error.FFmpegError:
        return 0
    return 0


def open_clip(path: str, frames: str | None = None, fps: float | None = None, clip: bool = False) -> Clip:
    """The clip at `path` (a video file, or with `clip` a folder or pattern of frames), cut by --frames and
    resampled to --fps. UserError in one line for anything that is not a clip of at least two frames."""
    start, end = parse_frames(frames)
    if not is_video_file(path):
        return _open_frames(path, start, end, fps)
    if not os.path.isfile(path):
        raise UserError(f"--content={path!r} does not exist; name a video file (mp4, mov, webm, avi, mkv, gif).")
    av = _av()
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:
        raise UserError(f"cannot open {path!r} as a video ({e.strerror or type(e).__name__}); name an mp4, mov, webm, "
                        "avi, mkv or animated gif file.") from None
    with container:
        if not container.streams.video:
            raise UserError(f"{path!r} has no video stream (audio only?); name a video file.")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(FOLDER_FPS)
        count, variable = _count_frames(container, stream)
        audio = bool(container.streams.audio)
    with av.open(path) as container:
        rotation = _rotation(container, container.streams.video[0])
        width, height = container.streams.video[0].codec_context.width, container.streams.video[0].codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    return _clip(path, None, count, start, end, fractions.Fraction(rate), fps, height, width, rotation, audio, variable)


def _count_frames(container, stream) -> tuple[int, bool]:
    """The number of frames (by reading the packets, not decoding: the header's count can be missing or
    wrong) and whether the frame rate varies (packet durations differing by more than 1%)."""
    count, durations = 0, set()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:   # the flush packet at the end
                continue
            count += 1
            if packet.duration:
                durations.add(int(packet.duration))
    except _av().error.FFmpegError:
        pass   # a truncated file: decoding stops where the damage starts, with its own message
    variable = bool(durations) and max(durations) > 1.01 * min(durations)
    return count, variable


def _open_frames(path: str, start: int, end: int | None, fps: float | None) -> Clip:
    pattern = os.path.join(path, "*") if os.path.isdir(path) else path
    files = sorted(p for p in glob.glob(pattern) if os.path.isfile(p) and p.lower().endswith(FRAME_EXTENSIONS))
    if not files:
        raise UserError(f"--content={path!r} holds no frames ({', '.join(FRAME_EXTENSIONS)}); name a video file, a "
                        "folder of frames or a pattern such as 'frames/*.png'.")
    first = image_io.load_image(files[0])
    height, width = first.shape[:2]
    return _clip(path, tuple(files), len(files), start, end, fractions.Fraction(FOLDER_FPS), fps, height, width)


def _clip(path, files, count, start, end, source_fps, fps, height, width, rotation=0, audio=False,
          variable=False) -> Clip:
    stop = count if end is None else min(end, count)
    if start >= stop:
        raise UserError(f"--frames={start}:{'' if end is None else end} selects no frame of {path!r}, which has "
                        f"{count} frame{'s' * (count != 1)}.")
    if fps is not None and not fps > 0:
        raise UserError(f"--fps={fps} must be a positive number of frames per second.")
    out_fps = fractions.Fraction(fps).limit_denominator(1001) if fps else source_fps
    if files is not None:   # a folder plays at --fps: no resampling
        indices, source_fps = tuple(range(start, stop)), out_fps
    else:   # output frame j shows the source frame at its time, the nearest earlier one
        n = int((stop - start) * out_fps / source_fps) or 1
        indices = tuple(start + min(stop - start - 1, int(j * source_fps / out_fps)) for j in range(n))
    if len(indices) < 2:
        count = len(indices)
        raise UserError(f"{path!r} gives {count} frame{'s' * (count != 1)} (after --frames/--fps): a clip "
                        "needs at least two; stylize a single image with --content=IMAGE.")
    return Clip(path, files, out_fps, indices, height, width, rotation, audio, variable, source_fps)


def even_size(height: int, width: int) -> tuple[int, int]:
    """The size H.264 in yuv420p needs: each side rounded up to even (the frames padded by their edge)."""
    return height + height % 2, width + width % 2


def write_mp4(frames: list[np.ndarray] | Iterator[np.ndarray], path: str, fps: fractions.Fraction,
              audio_from: str | None = None, audio_start: float = 0.0, audio_duration: float | None = None) -> None:
    """Writes an H.264 MP4 (yuv420p, sides padded to even, `fps`) of `frames` (float32 RGB [H, W, 3] in [0, 1])
    to `path` atomically, with the audio of `audio_from` from `audio_start` for `audio_duration` seconds
    re-encoded to AAC (the codec every browser plays in MP4), if it has audio."""
    av = _av()
    tmp = path + ".tmp.mp4"
    try:
        with av.open(tmp, "w") as out:
            video = None
            for frame in frames:
                image = image_io.to_uint8(frame)
                h, w = even_size(*image.shape[:2])
                image = np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)), mode="edge")
                if video is None:
                    video = out.add_stream("libx264", rate=fps)
                    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
                    video.options = {"crf": "18", "preset": "medium"}
                    audio = _add_audio(out, audio_from) if audio_from else None
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            if video is None:
                raise ValueError("no frames to write")
            for packet in video.encode():
                out.mux(packet)
            if audio is not None:
                _copy_audio(out, audio, audio_from, audio_start, audio_duration)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _add_audio(out, source: str):
    av = _av()
    with av.open(source) as container:
        if not container.streams.audio:
            return None
        rate = container.streams.audio[0].codec_context.sample_rate or 44100
    stream = out.add_stream("aac", rate=rate)
    stream.layout = "stereo"
    return stream


def _copy_audio(out, stream, source: str, start: float, duration: float | None) -> None:
    """Decodes `source`'s first audio stream from `start` s for `duration` s and encodes it into `stream`."""
    av = _av()
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=stream.rate)
    end = None if duration is None else start + duration
    pts = 0
    with av.open(source) as container:
        for frame in container.decode(container.streams.audio[0]):
            if frame.time is None:
                continue
            if frame.time + frame.samples / frame.sample_rate <= start:
                continue
            if end is not None and frame.time >= end:
                break
            for chunk in resampler.resample(frame):
                chunk.pts, pts = pts, pts + chunk.samples
                for packet in stream.encode(chunk):
                    out.mux(packet)
    for chunk in resampler.resample(None):
        chunk.pts, pts = pts, pts + chunk.samples
        for packet in stream.encode(chunk):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def probe(path: str) -> dict:
    """What a player sees of a video file: {"codec", "pix_fmt", "width", "height", "fps", "frames", "audio"}."""
    av = _av()
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for p in container.demux(stream) if p.size)
    with av.open(path) as container:
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": float(stream.average_rate), "frames": frames, "audio": audio}


def preview_strip(rows: list[list[np.ndarray]], count: int = 6) -> np.ndarray:
    """[H, W, 3] in [0, 1]: `count` frames evenly spaced through the clip, side by side, one row per list of
    `rows` (e.g. the content frames above the results), 2 px apart on white."""
    n = len(rows[0])
    picks = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(min(count, n))})
    h, w = rows[0][0].shape[:2]
    gap = 2
    sheet = np.ones((len(rows) * (h + gap) - gap, len(picks) * (w + gap) - gap, 3), np.float32)
    for r, row in enumerate(rows):
        for c, i in enumerate(picks):
            sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = row[i]
    return sheet
