"""Peak memory of a run, predicted before it starts; the size and the tiles that fit the device.

A step's memory is dominated by the activations the backward pass keeps: every layer from the input to the
deepest selected one, at the image's size. The model here is

  peak = BASE_BYTES + BYTES_PER_ACTIVATION * batch * sum_l h_l w_l c_l  (+ image-sized arrays when tiled)

with the activation count taken from the backbone's layer shapes and the two constants fitted to peak
memory measured by `bench/speed.py` (see the constants). A tiled step keeps one tile's activations (the
tile plus its halo) and a few image-sized arrays: the image, its gradient, Adam's two moments and the
content targets.
"""
from __future__ import annotations

import functools
import math
import os
import subprocess

import keras

from nst_tf import backbones, registry, tiling
from nst_tf.config import MAX_SIZE_LIMIT, tiling_blocked
from nst_tf.errors import UserError

# Fitted to the peak resident memory of whole-image steps without XLA on the CPU (bench/speed.py, vgg16_hed,
# the default layers, chelsea at 96, 256, 512 and 1024 px: 0.91, 1.05, 1.76, 3.88 GiB for 1.8, 13.0, 52.1
# and 208.3 million activations), rounded up so that the prediction is above each (by 1 to 13%). With XLA
# the measured peak is lower (2.39 GiB at 1024 px), so the prediction errs on the safe side.
BASE_BYTES = 1.0 * 2**30            # TensorFlow, the weights, the targets
BYTES_PER_ACTIVATION = 16.0         # per activation element: float32 output and what its gradient keeps
IMAGE_ARRAYS = 8                    # tiled: image, gradient, Adam's moments, temporaries (x 3 channels x 4 B)
HEADROOM = 0.9                      # the share of free memory a run may plan to use


@functools.lru_cache(maxsize=8)
def _extractor(backbone: str, pooling: str, layers: tuple[str, ...]) -> keras.Model:
    """The backbone's architecture up to the selected layers (no weights loaded: shapes only)."""
    spec = registry.BACKBONES[backbone]
    model = (backbones.build_resnet(spec, pooling, None) if spec.family == "resnet"
             else backbones.build_vgg(spec, pooling))
    return backbones.build_extractor(model, layers)


def activations(backbone: str, pooling: str, layers: tuple[str, ...], height: int, width: int) -> int:
    """sum_l h_l w_l c_l over every layer the extractor runs, for one height x width image; an octave layer
    (conv1_1@4) runs the network on the image downsampled by its factor and mirrored out by
    registry.OCTAVE_MARGIN px (backbones.Downsample)."""
    by_factor: dict[int, list[str]] = {}
    for name in layers:
        layer, factor = registry.split_octave(name)
        by_factor.setdefault(factor, []).append(layer)
    total = 0
    for factor, plain in by_factor.items():
        extractor = _extractor(backbone, pooling, tuple(plain))
        every = keras.Model(extractor.input, [layer.output for layer in extractor.layers[1:]])
        margin = 0 if factor == 1 else 2 * registry.OCTAVE_MARGIN
        shapes = every.compute_output_shape((1, height // factor + margin, width // factor + margin, 3))
        total += sum(math.prod(shape[1:]) for shape in shapes)
    return total


def predict(backbone: str, pooling: str, layers: tuple[str, ...], height: int, width: int, batch: int = 1,
            tile_size: int = 0) -> float:
    """Predicted peak bytes of a step on `batch` images of height x width (in tiles of `tile_size`)."""
    if not tile_size:
        return BASE_BYTES + BYTES_PER_ACTIVATION * batch * activations(backbone, pooling, layers, height, width)
    tiles = tiling.Tiles(_extractor(backbone, pooling, tuple(layers)), tile_size)
    crop_h, crop_w = min(height, tiles.size + 2 * tiles.halo), min(width, tiles.size + 2 * tiles.halo)
    return (BASE_BYTES + BYTES_PER_ACTIVATION * batch * activations(backbone, pooling, layers, crop_h, crop_w)
            + IMAGE_ARRAYS * batch * height * width * 3 * 4)


def available(device: str) -> float | None:
    """Free bytes on `device` (a TensorFlow device name): NST_TF_FREE_MEMORY if set (to plan for less
    than is free, and for tests); the host's available memory for the CPU; the GPU's free memory from
    nvidia-smi; None when unknown."""
    if os.environ.get("NST_TF_FREE_MEMORY"):
        return float(os.environ["NST_TF_FREE_MEMORY"])
    if ":GPU:" not in device.upper():
        import psutil
        return float(psutil.virtual_memory().available)
    index = device.upper().rsplit(":", 1)[-1]
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=memory.free",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
        return float(out.stdout.strip()) * 2**20
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _layers(config, short_side: int) -> tuple[str, ...]:
    style = tuple(config.loss.style_layers)
    spec = registry.BACKBONES[config.model.backbone]
    octaves = registry.octave_layers(style, config.loss.style_octaves, spec, short_side)
    return tuple(config.loss.content_layers) + style + octaves


def _need(config, height: int, width: int, tile_size: int = 0) -> float:
    """The predicted peak of a run's step on a result of height x width: the optimized canvas is
    --canvas_margin px larger on each side."""
    margin = config.optim.canvas_margin
    layers = _layers(config, min(height, width))
    return predict(config.model.backbone, config.model.pooling, layers, height + 2 * margin,
                   width + 2 * margin, 1, tile_size)


def largest_size(config, budget: float) -> int | None:
    """The largest longest side (16 px steps, up to MAX_SIZE_LIMIT) whose whole-image step on a square
    image fits in `budget` bytes; None if not even 16 px does."""
    def fits(size):
        return _need(config, size, size) <= budget
    sizes = list(range(16, MAX_SIZE_LIMIT + 1, 16))
    lo, hi, best = 0, len(sizes) - 1, None   # fits() holds for every size below one that fits
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(sizes[mid]):
            best, lo = sizes[mid], mid + 1
        else:
            hi = mid - 1
    return best


def auto_size(config, free: float | None, say=print) -> int:
    """--max_size=auto: the largest size whose whole-image step fits in the free memory (a square image:
    an upper bound for any aspect ratio)."""
    if free is None:
        raise UserError("--max_size=auto needs the device's free memory, which is unknown here; give --max_size=N.")
    size = largest_size(config, free * HEADROOM)
    if size is None:
        raise UserError(f"--max_size=auto: not even 16 px fits in the {gib(free)} free; free some memory.")
    need = _need(config, size, size)
    say(f"--max_size=auto: {size} px (a step needs about {gib(need)} of the {gib(free)} free)")
    return size


TILE_SIZES = (2048, 1536, 1024, 768, 512, 384, 256)


def fit_tiles(config, shape: tuple[int, int], free: float | None, say=print) -> int:
    """The tile size a run of `shape` = (height, width) uses: --tile_size if given, 0 (whole images) when
    a whole-image step fits in the free memory, else the largest of TILE_SIZES that fits (said in one
    line). Raises UserError, naming a size that fits, when nothing does."""
    height, width = shape
    requested = config.optim.tile_size

    def need(tile):
        return _need(config, height, width, tile)

    budget = None if free is None else free * HEADROOM
    if budget is None or need(requested) <= budget:
        return requested
    blocked = tiling_blocked(config)
    tile = None if requested or blocked else next((t for t in TILE_SIZES if t < max(shape) and need(t) <= budget), None)
    if tile is not None:
        say(f"{max(shape)} px: a whole-image step needs about {gib(need(0))} of the {gib(free)} free; in tiles of "
            f"{tile} px (--tile_size={tile}) about {gib(need(tile))}")
        return tile
    whole = largest_size(config, budget)
    what = f"tiles of {requested} px need" if requested else "a whole-image step needs"
    fix = f"--max_size={whole} fits" if whole else "free some memory"
    if blocked:
        fix += f" (tiles, which would fit larger sizes, need {blocked.split(' (')[0]})"
    elif requested:
        fix += ", or give a smaller --tile_size"
    raise UserError(f"--max_size={max(shape)}: {what} about {gib(need(requested))} but {gib(free)} is free; {fix}.")
