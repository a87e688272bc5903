"""The images a run works from: the content, the style images with their blend weights, and the masks.

All images follow the project's convention (float32 RGB HxWx3 in [0, 1]). The content image's longest
side is the result's size; each style image's longest side is `style_scale` times it (times `max_size` in
texture mode, where the result takes the first style image's shape). `photo_files` says which photos a
folder or pattern given as --content or --train_images names.

No TensorFlow at import (`nst_tf.lifecycle` and run.py ask `photo_files` before it loads); the masks load it.
"""
from __future__ import annotations

import dataclasses
import glob
import math
import os

import numpy as np

from nst_tf import color, image_io
from nst_tf.config import Config, blend_weights, scale_sizes
from nst_tf.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def listed_files(content: str | None) -> list[str] | None:
    """The files of `content` when it names a folder or a glob pattern (`photos/*.jpg`), sorted; None when it
    names one file (or nothing)."""
    if not content or not (os.path.isdir(content) or glob.has_magic(content)):
        return None
    pattern = os.path.join(content, "*") if os.path.isdir(content) else content
    return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))


def photo_files(content: str | None) -> tuple[str, ...] | None:
    """The photos of a many-photo job: the image files of `content` when it names a folder or a glob
    pattern (`photos/*.jpg`), sorted; None when it names one file (or nothing). UserError if none match."""
    listed = listed_files(content)
    if listed is None:
        return None
    files = [p for p in listed if p.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise UserError(f"--content={content!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); name an image, "
                        "a folder of images or a pattern such as 'photos/*.jpg'.")
    return tuple(files)


@dataclasses.dataclass
class Inputs:
    """content: [H, W, 3] or None (texture mode); styles: one [Hs, Ws, 3] per style image (empty in content
    mode); blend: their weights, summing to 1; guides: the regions of --content_mask/--style_mask, or None;
    canvas: in texture mode on a canvas (--canvas_margin), the (height, width) of the image optimized, which
    has no content to take its shape from."""
    content: np.ndarray | None
    styles: list[np.ndarray]
    blend: tuple[float, ...] = (1.0,)
    guides: masks.Guides | None = None   # nst_tf.masks, imported where guides are loaded
    canvas: tuple[int, int] | None = None

    @property
    def style(self) -> np.ndarray | None:
        """The first style image (what --init=style starts from and texture mode takes its shape from)."""
        return self.styles[0] if self.styles else None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the image optimized: the content's, or in texture mode the canvas's or the first
        style image's."""
        if self.content is None and self.canvas is not None:
            return (*self.canvas, 3)
        return (self.content if self.content is not None else self.style).shape

    def named_images(self) -> dict[str, np.ndarray]:
        """{"0_content": ..., "1_style": ..., "2_style": ...}: the inputs as TensorBoard shows them."""
        named = {"0_content": self.content} if self.content is not None else {}
        named.update({f"{i + 1}_style": s for i, s in enumerate(self.styles)})
        return named

    def at(self, size: int) -> "Inputs":
        """These inputs resized so that the result's longest side is `size` (one scale of a pyramid);
        every image keeps its size relative to the result."""
        factor = size / max(self.shape[:2])
        def scaled(image):
            h, w = image.shape[:2]
            return image_io.resize(image, (max(1, round(h * factor)), max(1, round(w * factor))))
        content = None if self.content is None else scaled(self.content)
        styles = [scaled(s) for s in self.styles]
        guides = self.guides and self.guides.resized(content.shape[:2], [s.shape[:2] for s in styles])
        return Inputs(content, styles, self.blend, guides)

    def working(self, preserve_colors: str, match: str) -> "Inputs":
        """What the network sees under --preserve_colors (nst_tf/color.py): each style image is taken to
        the content's colours or luminance alike."""
        if self.content is None:
            return self
        pairs = [color.working_inputs(preserve_colors, match, self.content, s) for s in self.styles]
        content = pairs[0][0] if pairs else self.content
        return dataclasses.replace(self, content=content, styles=[p[1] for p in pairs])


def load_inputs(config: Config) -> Inputs:
    """The inputs of a config at the result's size (`max_size`, or the last of `scales`), images before
    masks, so that a bad image is reported first."""
    im, paths = config.images, config.image_paths
    *coarser, size = scale_sizes(config)
    content = image_io.load_resized(paths["content"][0], size) if "content" in paths else None
    base = max(content.shape[:2]) if content is not None else size
    styles = []
    for p in paths.get("style", ()):
        style = image_io.load_image(p)
        side = round(base * im.style_scale)
        h, w = (max(1, round(n * side / max(style.shape[:2]))) for n in style.shape[:2])
        if min(h, w) < 16:   # as for the content: the network pools 4 times
            least = math.ceil(100 * 16 * max(style.shape[:2]) / min(style.shape[:2]) / base) / 100
            raise UserError(f"--style_scale={im.style_scale} makes the style image {p!r} {w}x{h} pixels "
                            f"({im.style_scale} x {base} px); its short side must be at least 16 pixels: use "
                            f"--style_scale={least} or more (or a larger --max_size).")
        styles.append(image_io.resize(style, image_io.fit_size(*style.shape[:2], side)))
    guides = None
    if im.content_mask:
        from nst_tf import masks   # TensorFlow
        guides = masks.load_guides(im.content_mask, config.style_mask_entries, content.shape[:2],
                                   [s.shape[:2] for s in styles])
    elif im.regions == "detail":
        from nst_tf import masks
        guides = masks.detail_guides(content, styles)
    inputs = Inputs(content, styles, blend_weights(config) if styles else (), guides)
    for coarse in coarser:   # every scale of a pyramid must be large enough for the network
        image_io.fit_size(*inputs.shape[:2], coarse, flag="the smallest of --scales")
    return inputs


def initial_image(config: Config, inputs: Inputs, seed: int) -> np.ndarray:
    """The starting image, [H, W, 3] in [0, 1]: white noise from `seed`, the content, the content in the styles'
    colours, or the first style; plus, with --init_noise=sigma, sigma times `image_io.smooth_noise` on
    --init_noise_cells cells (clipped to [0, 1]).

    recolored: the content matched to the styles' palette (their blend's colour mean mu and covariance,
    `color.palette`, by --color_match), its contrast around mu scaled by k = --init_contrast:
    mu + k (match(content) - mu), whose covariance is k^2 times the palette's (before clipping)."""
    start = _start(config, inputs, seed)
    sigma = config.optim.init_noise
    if not sigma:
        return start
    noise = image_io.smooth_noise(start.shape, config.optim.init_noise_cells, seed)
    return np.clip(start + sigma * noise, 0.0, 1.0).astype(np.float32)


def _start(config: Config, inputs: Inputs, seed: int) -> np.ndarray:
    if config.start_from == "content":
        return inputs.content.copy()
    if config.start_from == "recolored":
        mean, cov = color.palette(inputs.styles, inputs.blend)
        matched = color.match_palette(inputs.content, mean, cov, config.images.color_match)
        k = config.optim.init_contrast
        return np.clip(mean + k * (matched - mean), 0.0, 1.0).astype(np.float32)
    if config.start_from == "style":
        return image_io.resize(inputs.style, inputs.shape[:2])
    return image_io.noise_like(inputs.shape, seed)
