"""The run configuration: frozen dataclasses, validated once, with no TensorFlow in sight.

`run.py` builds a `Config` from its flags; the library only ever sees this object. Field names equal
flag names, so `to_flags` can write a flagfile that reproduces a run exactly.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

from nst_tf.errors import UserError

MODES = ("transfer", "content", "texture")
BACKBONES = ("auto", "vgg19", "vgg16", "vgg16_hed", "resnet50")   # nst_tf.backbones.BACKBONES
FEATURE_TRANSFORMS = ("auto", "none", "softmax")
PRESERVE_COLORS = ("none", "luminance", "swap", "histogram")   # nst_tf.color
COLOR_MATCHES = ("cholesky", "pca", "symmetric")

# Each backbone's default (content layers, style layers), used where --content_layers / --style_layers
# are empty. VGG: the paper's (Gatys et al. 2016, Sec. 3). ResNet-50: the layer set of the ResNet report
# in the seeds (Keras names). `auto` is always a VGG.
VGG_LAYERS = (("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
RESNET_LAYERS = (("conv5_block1_1_conv",),
                 ("conv1_relu", "conv2_block1_1_conv", "conv2_block3_2_conv", "conv3_block1_1_conv",
                  "conv3_block3_3_conv", "conv4_block6_3_conv", "conv5_block2_2_conv"))
DEFAULT_LAYERS = {"auto": VGG_LAYERS, "vgg19": VGG_LAYERS, "vgg16": VGG_LAYERS, "vgg16_hed": VGG_LAYERS,
                  "resnet50": RESNET_LAYERS}
POOLINGS = ("avg", "max")
PRECISIONS = ("float32", "mixed_bfloat16")   # Keras dtype policies of the backbone
CONTENT_LOSSES = ("l2", "l1")
GRAM_NORMS = ("paper", "positions", "elements")
INITS = ("auto", "noise", "content", "style")
OPTIMIZERS = ("adam", "lbfgs")

# Largest side we accept; beyond it a CPU run takes hours and memory runs out (tiling is issue 6).
MAX_SIZE_LIMIT = 4096
AUTO_SIZE = 0   # max_size of --max_size=auto, until stylize.prepare picks the size (nst_tf/memory.py)
# The size at which the look is defined (and the default weights were calibrated). With
# --resolution_invariant, larger results are reached coarse-to-fine from it and the content term is
# scaled by (REFERENCE_SIZE / longest side)^2 (README, "The same look at every size").
REFERENCE_SIZE = 256


@dataclass(frozen=True)
class ImageConfig:
    """Inputs and their sizes. Paths are None where the mode does not use that image."""
    content: Optional[str] = None
    style: Optional[str] = None  # one style image, or several separated by commas (their Grams blended)
    style_blend_weights: tuple[float, ...] = ()   # one per style image, normalized to sum 1; empty: equal
    content_mask: Optional[str] = None  # label image: K flat colours, the regions of the content
    style_mask: Optional[str] = None    # one entry per style image: a label image or a colour (#ff0000)
    max_size: int = 256          # longest side of the result, in pixels; about 1 s/step on 2 CPU cores
    style_scale: float = 1.0     # style image's longest side = max_size * style_scale
    # Coarse-to-fine: the sizes (longest sides) optimized in turn, each from the previous result
    # upsampled; the last is the result's size. Empty: max_size alone, or with --resolution_invariant a
    # pyramid from REFERENCE_SIZE doubling up to max_size.
    scales: tuple[int, ...] = ()
    scale_steps: tuple[int, ...] = ()   # steps per scale; empty: num_steps, then halved at each scale
    preserve_colors: str = "none"  # none, luminance, swap, histogram (nst_tf/color.py)
    color_match: str = "cholesky"  # how --preserve_colors=histogram and --color_only match colours
    color_only: bool = False     # the content with the style's colours, no texture, no optimization


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "auto"       # resolved to a concrete name before the run starts
    weights: Optional[str] = None  # a Keras weights file, or "random" (for tests and smoke runs)
    pooling: str = "avg"
    # What the losses see of the features: auto is the backbone's default (softmax for resnet50).
    feature_transform: str = "auto"
    softmax_temperature: float = 1.0   # T of the softmax transform (losses.softmax_features)
    normalize_features: bool = False   # the paper's normalized network (nst_tf/normalize.py)
    normalize_images: Optional[str] = None  # folder of images for the means; None: the bundled photos
    precision: str = "float32"   # or mixed_bfloat16: bfloat16 computation, float32 weights, losses, image


@dataclass(frozen=True)
class LossConfig:
    """What is matched and how strongly. Empty layer sets and an unset style weight mean the backbone's
    defaults (vgg: the paper's conv4_2 and conv1_1..conv5_1); empty per-layer weights mean 1/L each."""
    content_layers: tuple[str, ...] = ()
    content_layer_weights: tuple[float, ...] = ()
    style_layers: tuple[str, ...] = ()
    style_layer_weights: tuple[float, ...] = ()
    content_loss: str = "l2"
    # "elements" (the paper's E_l times 4/N_l^2, as jcjohnson/neural-style and the PyTorch tutorial) is
    # the default: with "paper" and equal layer weights, conv2_1/conv3_1 dominate and leave a regular
    # 4-pixel mesh in flat regions; weighting by 1/N_l^2 gives brush strokes (README, "Defaults").
    gram_norm: str = "elements"
    content_weight: float = 1.0   # alpha
    style_weight: Optional[float] = None   # beta; None: the backbone's (vgg: 2.5e7, README "Backbones")
    tv_weight: float = 1.0
    # The content term times (REFERENCE_SIZE / longest side)^2, and sizes above REFERENCE_SIZE reached
    # coarse-to-fine, so one set of flags gives the same look at every size.
    resolution_invariant: bool = True
    # Each content and style term's gradient with respect to its layer's features divided by its L1 norm,
    # per image, then times the term's weight, like jcjohnson/neural-style's -normalize_gradients (README;
    # the TV term is not normalized). The default beta changes with it (backbones.default_style_weight).
    normalize_gradients: bool = False


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"       # adam, or lbfgs (the paper's; TensorFlow Probability, nst_tf/optimize.py)
    num_steps: int = 200
    learning_rate: float = 0.02
    init: str = "auto"            # auto: content image for transfer, noise otherwise
    seed: Optional[int] = None    # None: drawn at start and recorded, so the run can be repeated
    device: str = "auto"          # auto, cpu, gpu, or a TensorFlow device string like /GPU:1
    tile_size: int = 0            # 0: whole image; N: tiles of ~N px with a halo, exact (nst_tf/tiling.py)
    jit_compile: bool = True      # XLA for images of 256 px and more (stylize.XLA_MIN_SIZE; README, Speed)


@dataclass(frozen=True)
class OutputConfig:
    output_dir: str = "outputs"
    run_name: Optional[str] = None
    save_every: int = 100         # snapshot period in steps; 0 disables snapshots
    log_every: int = 10           # loss logging period in steps (CSV, TensorBoard, progress line)


@dataclass(frozen=True)
class Config:
    mode: str = "transfer"
    images: ImageConfig = field(default_factory=ImageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    # A comparison run: one "axis:values" entry per --sweep flag (see `nst_tf.sweep`); empty for one run.
    sweep: tuple[str, ...] = field(default=(), metadata={"multi": True})
    sweep_batch: int = 0          # most cells optimized together in one batch; 0: automatic (sweep.py)

    @property
    def uses_content(self) -> bool:
        return self.mode in ("transfer", "content")

    @property
    def uses_style(self) -> bool:
        return self.mode in ("transfer", "texture")

    @property
    def style_paths(self) -> tuple[str, ...]:
        """The style images: --style split at commas."""
        return split_list(self.images.style)

    @property
    def style_mask_entries(self) -> tuple[str, ...]:
        """--style_mask split at commas: one label image or #rrggbb colour per style image."""
        return split_list(self.images.style_mask)

    @property
    def image_paths(self) -> dict[str, tuple[str, ...]]:
        """The files this run reads, by kind ("content", "style", "content_mask", "style_mask"), for the mode
        and the init; colours in --style_mask are not files."""
        im = self.images
        paths = {"content": (im.content,) if im.content and (self.uses_content or self.init == "content") else (),
                 "style": self.style_paths if self.uses_style or self.init == "style" else (),
                 "content_mask": (im.content_mask,) if im.content_mask else (),
                 "style_mask": tuple(e for e in self.style_mask_entries if not is_colour(e))}
        return {kind: files for kind, files in paths.items() if files}

    @property
    def init(self) -> str:
        """The init actually used: `auto` is the content image for transfer and noise otherwise."""
        if self.optim.init != "auto":
            return self.optim.init
        return "content" if self.mode == "transfer" else "noise"


def is_colour(entry: str) -> bool:
    """Whether a --style_mask entry is a colour (`#rrggbb` or `#rgb`) rather than a file."""
    return entry.startswith("#")


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else ()


def blend_weights(config: Config) -> tuple[float, ...]:
    """One weight per style image, summing to 1: --style_blend_weights normalized, or equal weights."""
    count = len(config.style_paths)
    weights = config.images.style_blend_weights or (1.0,) * count
    return tuple(float(w) / sum(weights) for w in weights)


def scale_sizes(config: Config) -> list[int]:
    """The longest sides optimized in turn, the last the result's: --scales, or without it max_size alone;
    with --resolution_invariant (the default) and no --scales, max_size halved while it stays at least
    REFERENCE_SIZE (1024: 256, 512, 1024)."""
    sizes = list(config.images.scales)
    if not sizes:
        sizes = [config.images.max_size]
        while config.loss.resolution_invariant and sizes[0] // 2 >= REFERENCE_SIZE:
            sizes.insert(0, sizes[0] // 2)
    return sizes


def schedule(config: Config) -> tuple[tuple[int, int], ...]:
    """The coarse-to-fine plan: ((longest side, steps), ...) over `scale_sizes`. Steps: --scale_steps, or
    num_steps at the first scale and half as many at each next one (the finer scales start close)."""
    sizes = scale_sizes(config)
    steps = config.images.scale_steps or tuple(max(1, config.optim.num_steps >> k) for k in range(len(sizes)))
    return tuple(zip(sizes, steps))


def layer_weights(layers: tuple[str, ...], weights: tuple[float, ...]) -> tuple[float, ...]:
    """Per-layer weights w_l: the given ones, or 1/L each (the paper's equal weighting)."""
    if weights:
        return tuple(float(w) for w in weights)
    return tuple(1.0 / len(layers) for _ in layers)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"--{name}={value!r} is not one of {', '.join(allowed)}.")


def _finite_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"--{name}={value} must be a finite number >= 0.")


def check_max_size(max_size: int) -> None:
    if not 16 <= max_size <= MAX_SIZE_LIMIT:
        raise UserError(f"--max_size={max_size} is out of range: use 16 to {MAX_SIZE_LIMIT} pixels.")


def _check_styles(config: Config) -> None:
    im, styles = config.images, config.style_paths
    if im.style_blend_weights:
        if len(im.style_blend_weights) != len(styles):
            raise UserError(f"--style_blend_weights has {len(im.style_blend_weights)} values for {len(styles)} "
                            "style images: give one weight per --style image.")
        for w in im.style_blend_weights:
            _finite_nonneg("style_blend_weights", w)
        if sum(im.style_blend_weights) <= 0:
            raise UserError("--style_blend_weights are all zero: give at least one style a positive weight.")
    if bool(im.content_mask) != bool(im.style_mask):
        raise UserError("--content_mask and --style_mask go together: give both (--style_mask: one label "
                        "image or #rrggbb colour per style image).")
    if im.content_mask and config.mode != "transfer":
        raise UserError(f"--content_mask and --style_mask need --mode=transfer, not {config.mode}.")
    if im.style_mask and len(config.style_mask_entries) != len(styles):
        raise UserError(f"--style_mask has {len(config.style_mask_entries)} entries for {len(styles)} style "
                        "images: give one per --style image (a label image, or #rrggbb for the whole image).")


def _check_scales(config: Config) -> None:
    im = config.images
    for size in im.scales:
        check_max_size(size)
    if list(im.scales) != sorted(set(im.scales)):
        raise UserError(f"--scales={','.join(map(str, im.scales))} must grow from scale to scale, e.g. 256,512,1024.")
    if im.scale_steps:
        count = len(scale_sizes(config))
        if len(im.scale_steps) != count:
            raise UserError(f"--scale_steps has {len(im.scale_steps)} values for {count} scales: give one step "
                            "count per scale.")
        if min(im.scale_steps) < 1:
            raise UserError("--scale_steps must all be at least 1.")


def tiling_blocked(config: Config) -> str | None:
    """What tiles would need that this config does not have (a phrase), or None: tiles work where every
    term is a sum over positions of features from a chain of convolutions."""
    if config.model.backbone == "resnet50" or config.model.feature_transform == "softmax":
        return ("a VGG backbone without the softmax transform (resnet50's branches and a softmax over whole "
                "feature maps cannot be cut into tiles)")
    if config.loss.normalize_gradients:
        return "no --normalize_gradients (it needs each whole feature map's gradient)"
    if config.optim.optimizer != "adam":
        return "--optimizer=adam (L-BFGS runs its iterations as one graph)"
    return None


def _check_tiling(config: Config) -> None:
    size = config.optim.tile_size
    if size < 64:
        raise UserError(f"--tile_size={size} must be 0 (whole images) or at least 64 pixels.")
    blocked = tiling_blocked(config)
    if blocked:
        raise UserError(f"--tile_size needs {blocked}.")


def validate(config: Config) -> Config:
    """Checks every field that can be checked without files or TensorFlow; returns the config."""
    _choice("mode", config.mode, MODES)
    im, model, loss, opt, out = config.images, config.model, config.loss, config.optim, config.output
    if config.uses_content and not im.content:
        raise UserError(f"--mode={config.mode} needs --content=IMAGE (a JPEG/PNG/... file).")
    if config.uses_style and not config.style_paths:
        raise UserError(f"--mode={config.mode} needs --style=IMAGE (a JPEG/PNG/... file).")
    if im.max_size == AUTO_SIZE and im.scales:
        raise UserError("--max_size=auto picks one size; with --scales, give the sizes instead.")
    if im.max_size != AUTO_SIZE:
        check_max_size(im.max_size)
    _check_styles(config)
    _check_scales(config)
    if not (math.isfinite(im.style_scale) and 0.05 <= im.style_scale <= 4):
        raise UserError(f"--style_scale={im.style_scale} is out of range: use 0.05 to 4.")
    _choice("preserve_colors", im.preserve_colors, PRESERVE_COLORS)
    _choice("color_match", im.color_match, COLOR_MATCHES)
    if (im.preserve_colors != "none" or im.color_only) and config.mode != "transfer":
        raise UserError(f"--preserve_colors and --color_only need --mode=transfer (both images), "
                        f"not {config.mode}.")
    if im.color_only and config.sweep:
        raise UserError("--color_only makes one image without optimizing; leave out --sweep.")
    _choice("backbone", model.backbone, BACKBONES)
    _choice("pooling", model.pooling, POOLINGS)
    _choice("precision", model.precision, PRECISIONS)
    _choice("feature_transform", model.feature_transform, FEATURE_TRANSFORMS)
    if not (math.isfinite(model.softmax_temperature) and model.softmax_temperature > 0):
        raise UserError(f"--softmax_temperature={model.softmax_temperature} must be a positive number.")
    _choice("content_loss", loss.content_loss, CONTENT_LOSSES)
    _choice("gram_norm", loss.gram_norm, GRAM_NORMS)
    _choice("init", opt.init, INITS)
    _choice("optimizer", opt.optimizer, OPTIMIZERS)
    for name in ("content_weight", "style_weight", "tv_weight"):
        if getattr(loss, name) is not None:
            _finite_nonneg(name, getattr(loss, name))
    for i, kind in enumerate(("content", "style")):
        layers = getattr(loss, f"{kind}_layers") or DEFAULT_LAYERS[model.backbone][i]
        weights = getattr(loss, f"{kind}_layer_weights")
        if len(set(layers)) != len(layers):
            raise UserError(f"--{kind}_layers={','.join(layers)} names a layer twice.")
        if weights and len(weights) != len(layers):
            raise UserError(f"--{kind}_layer_weights has {len(weights)} values but --{kind}_layers has "
                            f"{len(layers)} layers: give one weight per layer.")
        for w in weights:
            _finite_nonneg(f"{kind}_layer_weights", w)
    if config.init == "content" and not im.content:
        raise UserError("--init=content needs --content=IMAGE.")
    if config.init == "style" and not config.style_paths:
        raise UserError("--init=style needs --style=IMAGE.")
    if opt.num_steps < 1:
        raise UserError(f"--num_steps={opt.num_steps} must be at least 1.")
    if not (math.isfinite(opt.learning_rate) and opt.learning_rate > 0):
        raise UserError(f"--learning_rate={opt.learning_rate} must be a positive number.")
    if opt.seed is not None and not 0 <= opt.seed < 2**31:
        raise UserError(f"--seed={opt.seed} must be in [0, 2**31).")
    if opt.tile_size:
        _check_tiling(config)
    if out.save_every < 0 or out.log_every < 1:
        raise UserError("--save_every must be >= 0 (0: no snapshots) and --log_every >= 1.")
    if config.sweep_batch < 0:
        raise UserError(f"--sweep_batch={config.sweep_batch} must be >= 0 (0: automatic).")
    to_flags(config, skip=())   # every value must go through run.flags and come back the same
    if out.run_name is not None and (not out.run_name or "/" in out.run_name or out.run_name in (".", "..")):
        raise UserError(f"--run_name={out.run_name!r} must be a plain folder name (no '/').")
    return config


def _sections(config: Config) -> Iterator[object]:
    yield config
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield value


def to_flags(config: Config, skip: tuple[str, ...] = ("run_name",)) -> list[str]:
    """The config as flagfile lines (`--name=value`), one per field; None fields are left out.

    Floats are written with `repr` so they read back bit for bit.
    """
    lines = []
    for section in _sections(config):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value) or value is None or f.name in skip:
                continue
            if f.metadata.get("multi"):   # a repeated flag: one line per value
                lines.extend(f"--{f.name}={v}" for v in value)
                continue
            if isinstance(value, tuple):
                value = ",".join(repr(v) if isinstance(v, float) else str(v) for v in value)
            elif isinstance(value, float):
                value = repr(value)
            elif f.name == "max_size" and value == AUTO_SIZE:
                value = "auto"   # as run.py spells it (0 is refused there)
            lines.append(f"--{f.name}={value}")
    for line in lines:   # a flagfile holds one flag per line, each stripped of surrounding spaces
        if "\n" in line or "\r" in line or line != line.strip():
            name, value = line[2:].split("=", 1)
            raise UserError(f"--{name}={value!r} holds a line break or spaces at its ends, which a flagfile "
                            "(run.flags, one flag per line) cannot record: remove them (rename the file or folder).")
        try:
            line.encode("utf-8")   # run.flags is UTF-8 text
        except UnicodeEncodeError:   # a file name in another encoding: its bytes come through as surrogates
            name, value = line[2:].split("=", 1)
            raise UserError(f"--{name}={value!r} is not UTF-8 text (a name in another encoding), which a flagfile "
                            "(run.flags) cannot record: rename the file or folder.") from None
    return lines


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def field_sections(config: Config) -> dict[str, str]:
    """{field name: the section holding it ("" for Config itself)} for every settable field."""
    names = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            names.update({g.name: f.name for g in dataclasses.fields(value)})
        else:
            names[f.name] = ""
    return names


def _parse_scalar(kind: str, text: str, name: str):
    if kind == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UserError(f"--{name}: {text!r} is not true or false.")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise UserError(f"--{name}: {text!r} is not a{'n integer' if kind == 'int' else ' number'}.") from None
    return text


def parse_field(name: str, text: str):
    """A flag's value from its text, typed as the config field `name` is ("a,b" for tuples)."""
    kinds = {f.name: f.type for section in _sections(Config()) for f in dataclasses.fields(section)}
    kind = kinds[name].replace("Optional[", "").rstrip("]")
    if kind.startswith("tuple["):
        item = kind[len("tuple["):].split(",")[0]
        return tuple(_parse_scalar(item, t.strip(), name) for t in text.split(",") if t.strip())
    if text == "" and "Optional" in kinds[name]:
        return None
    return _parse_scalar(kind, text, name)


def with_field(config: Config, name: str, value) -> Config:
    """`config` with the field `name` (in whichever section holds it) set to `value`."""
    section = field_sections(config)[name]
    if not section:
        return dataclasses.replace(config, **{name: value})
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{name: value})})


def get_field(config: Config, name: str):
    section = field_sections(config)[name]
    return getattr(getattr(config, section) if section else config, name)
