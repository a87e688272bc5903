"""Clips made in the tests from a bundled photo, panned and zoomed by known amounts (no file from outside), and
what the clip tests share: a saved random stylizer, a config from option values."""
import os

import cv2
import numpy as np

from nst_tf import image_io

ASTRONAUT = os.path.join(os.path.dirname(__file__), "..", "nst_tf", "data", "images", "astronaut.jpg")


def photo(size: int) -> np.ndarray:
    return image_io.resize(image_io.load_image(ASTRONAUT), (size, size))


def moved(image: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """`image` zoomed by `zoom` about its centre and shifted by (dx, dy) px (edges mirrored), and the exact
    backward flow from the moved image to `image`: moved(x) = image(x + flow(x))."""
    h, w = image.shape[:2]
    cx, cy = w / 2, h / 2
    matrix = np.float32([[zoom, 0, (1 - zoom) * cx + dx], [0, zoom, (1 - zoom) * cy + dy]])
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    source_x = (xx - dx - (1 - zoom) * cx) / zoom
    source_y = (yy - dy - (1 - zoom) * cy) / zoom
    return np.clip(out, 0, 1).astype(np.float32), np.stack([source_x - xx, source_y - yy], -1)


def pan(count: int, height: int, width: int, step: int = 2) -> list[np.ndarray]:
    """`count` crops of the photo, each `step` px further right: a pan by whole pixels."""
    big = photo(max(height, width) + count * step + 8)
    return [big[4:4 + height, 4 + k * step:4 + k * step + width].copy() for k in range(count)]


def write_video(path: str, frames: list[np.ndarray], fps: int = 10, audio_seconds: float = 0.0) -> None:
    """An H.264 (or, by extension, GIF/VP9/MPEG-4) file of `frames`, with a sine tone if `audio_seconds`."""
    import av
    codec = {".gif": "gif", ".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(os.path.splitext(path)[1], "libx264")
    with av.open(path, "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        audio = out.add_stream("aac", rate=22050) if audio_seconds else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image_io.to_uint8(frame), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            t = np.arange(int(22050 * audio_seconds)) / 22050
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            chunk = 1024
            for k in range(0, samples.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + chunk]), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = 22050, k
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)


def save_stylizer(folder, seed: int, width: int) -> str:
    """A stylizer with random weights (seed `seed`, `width` filters in its first layer) saved as
    <folder>/stylizer.keras; its path."""
    import keras
    from nst_tf.stylizer import network
    keras.utils.set_random_seed(seed)
    path = os.path.join(str(folder), "stylizer.keras")
    network.build_stylizer(1, width).save(path)
    return path

