"""Spatial control: label-colour masks that split the content and the style images into regions.

A mask is an image of a few flat colours (the labels); the pixels of one colour are one region. Each
region of the content mask is matched to the pixels of the same colour in the style masks, one mask per
style image; a style mask may also be a single colour written `#rrggbb`, which makes the whole style image
that region. A content region that no style mask has gets no style term: it keeps only the content.

Masks are read here at their image's size (nearest neighbour, so labels stay labels) and resized to each
layer's feature map by area averaging (`resize_to`), which is what pooling the mask through the network
gives for VGG's 2x2 pools.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from PIL import Image, ImageColor

from nst_tf import color, image_io
from nst_tf.config import is_colour
from nst_tf.errors import UserError

MAX_REGIONS = 16
LABEL_SHARE = 0.002   # a colour covering less of the mask is an edge or compression artefact, not a label


def parse_colour(entry: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(entry)[:3]
    except ValueError:
        raise UserError(f"--style_mask entry {entry!r} is not a colour; write colours as #rrggbb.") from None


def hex_colour(rgb) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def load_labels(path: str, shape: tuple[int, int], what: str = "mask") -> tuple[np.ndarray, np.ndarray]:
    """(label colours [K, 3] uint8, label index per pixel [H, W] int) of the mask file at `shape` (h, w),
    the shape of its image, whose aspect ratio the mask must have.

    Colours covering at least LABEL_SHARE of the mask are the labels (most first); every other pixel
    (antialiased edges, JPEG noise) takes the nearest label.
    """
    rgb = image_io.to_uint8(image_io.load_image(path))
    h, w = rgb.shape[:2]
    if abs(h / w - shape[0] / shape[1]) > 0.02 * shape[0] / shape[1]:
        raise UserError(f"{what} {path!r} is {w}x{h} but its image is {shape[1]}x{shape[0]} here: a mask needs "
                        "its image's aspect ratio (draw it over the image, or crop both alike).")
    rgb = np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
    colours, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    major = counts[order] >= LABEL_SHARE * counts.sum()
    labels = colours[order][major]
    if len(labels) > MAX_REGIONS or counts[order][major].sum() < 0.5 * counts.sum():
        raise UserError(f"{what} {path!r} has {len(colours)} colours; a mask takes at most {MAX_REGIONS} flat "
                        "label colours (save it as PNG, not JPEG, and paint without antialiasing).")
    distance = ((rgb[:, :, None, :].astype(np.int32) - labels[None, None].astype(np.int32)) ** 2).sum(-1)
    return labels, np.argmin(distance, axis=-1)


def one_hot(index: np.ndarray, count: int) -> np.ndarray:
    """[H, W] label indices -> [count, H, W] float32 masks (index -1: in no region)."""
    return (index[None] == np.arange(count)[:, None, None]).astype(np.float32)


@dataclasses.dataclass
class Guides:
    """Regions of the content and of each style image, as 0/1 masks at the images' sizes.

    content: [K, H, W], one mask per label colour of the content mask.
    styles: one [K, Hs, Ws] per style image; all zeros for a region that style image does not have.
    colours: the K label colours, '#rrggbb'.
    """
    content: np.ndarray
    styles: list[np.ndarray]
    colours: list[str]

    @property
    def present(self) -> np.ndarray:
        """[S, K] bool: whether style image s has region k."""
        return np.array([[m.any() for m in style_masks] for style_masks in self.styles]).reshape(
            len(self.styles), len(self.colours))

    @property
    def styled(self) -> np.ndarray:
        """[K] bool: the regions that some style image has (the others get the content term only)."""
        return self.present.any(axis=0)

    def resized(self, content_shape: tuple[int, int], style_shapes: list[tuple[int, int]]) -> "Guides":
        """The same regions at other image sizes (nearest neighbour), for the scales of a pyramid."""
        def nearest(masks, shape):
            return np.stack([np.asarray(Image.fromarray(m).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
                             for m in masks])
        return Guides(nearest(self.content, content_shape),
                      [nearest(s, shape) for s, shape in zip(self.styles, style_shapes)], self.colours)


def load_guides(content_mask: str, style_masks: tuple[str, ...], content_shape: tuple[int, int],
                style_shapes: list[tuple[int, int]]) -> Guides:
    """The regions of `--content_mask` and `--style_mask` (one entry per style image) at the images' shapes.

    Raises UserError for a mask whose aspect ratio differs from its image's, a mask of more than MAX_REGIONS
    colours, or a style mask colour the content mask lacks (the region counts do not match).
    """
    colours, index = load_labels(content_mask, content_shape, what="--content_mask")
    names = [hex_colour(c) for c in colours]
    styles = []
    for entry, shape in zip(style_masks, style_shapes):
        if is_colour(entry):
            rgb = hex_colour(parse_colour(entry))
            if rgb not in names:
                raise UserError(f"--style_mask colour {entry} is not a region of --content_mask, whose colours "
                                f"are {', '.join(names)}.")
            styles.append(one_hot(np.full(shape, names.index(rgb)), len(names)))
            continue
        style_colours, style_index = load_labels(entry, shape, what="--style_mask")
        extra = [hex_colour(c) for c in style_colours if hex_colour(c) not in names]
        if extra:
            raise UserError(f"--style_mask {entry!r} has region colours {', '.join(extra)} that --content_mask "
                            f"lacks (its colours: {', '.join(names)}); the masks must use the same label colours.")
        remap = np.array([names.index(hex_colour(c)) for c in style_colours])
        styles.append(one_hot(remap[style_index], len(names)))
    return Guides(one_hot(index, len(names)), styles, names)


DETAIL_COLOURS = ["#0000ff", "#ff0000"]   # --regions=detail's calm and busy halves, as a label image would
DETAIL_SMOOTHING = 1 / 40   # the smoothing's sigma, a fraction of the image's longest side (6.4 px at 256 px)


def detail_index(image: np.ndarray, share: float = 0.5) -> np.ndarray:
    """[H, W] int: 1 where `image` (float RGB in [0, 1]) is busier than at its `share` quantile, else 0.
    Busy: the luminance's Sobel gradient magnitude, Gaussian-smoothed with sigma DETAIL_SMOOTHING x the
    longest side, so regions are areas (a sky, a facade), not pixels; a quantile, so every image splits
    alike whatever its contrast. A flat image (no detail anywhere) is all calm: one region."""
    import cv2   # OpenCV: its Sobel and Gaussian filters
    luminance = np.ascontiguousarray(color.luminance(image), np.float32)
    gradient = np.hypot(cv2.Sobel(luminance, cv2.CV_32F, 1, 0), cv2.Sobel(luminance, cv2.CV_32F, 0, 1))
    detail = cv2.GaussianBlur(gradient, (0, 0), DETAIL_SMOOTHING * max(image.shape[:2]),
                              borderType=cv2.BORDER_REFLECT)
    return (detail > np.quantile(detail, share)).astype(np.int64)


def detail_guides(content: np.ndarray, styles: list[np.ndarray]) -> Guides:
    """--regions=detail: the content and each style image split into their calmer and busier halves
    (`detail_index`), calm matched to calm and busy to busy."""
    return Guides(one_hot(detail_index(content), 2), [one_hot(detail_index(s), 2) for s in styles],
                  list(DETAIL_COLOURS))


def resize_to(masks: np.ndarray | tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    """[K, H, W] masks -> [K, h, w] by area averaging: each output cell is the fraction of its input pixels
    in the region, as average pooling through the network gives (exact for the 2x2 pools of VGG)."""
    resized = tf.image.resize(tf.transpose(tf.convert_to_tensor(masks, tf.float32), [1, 2, 0]), shape,
                              method="area")
    return tf.transpose(resized, [2, 0, 1])
