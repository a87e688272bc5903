"""Planning a run: config + files + free memory -> a resolved `Plan`, before anything slow happens.

Resolution happens once, here, and flows down: `backbone=auto` becomes a concrete backbone (said in one
line), a network the fixed weights were not chosen on gets the automatic balance (said too), the backbone's
defaults fill the layers, the feature transform and the style weight, an unset seed is drawn, the device is
picked, `--max_size=auto` becomes the largest size that fits, and a size whose whole-image step does not fit
is tiled (`nst_tf.memory`). The engine receives the plan; `summary.json`
records the effective weights each scale optimized (`EffectiveWeights`).
"""
from __future__ import annotations

import dataclasses
import random
import re

import tensorflow as tf

from nst_tf import backbones, color, memory, registry
from nst_tf.config import (AUTO_SIZE, BALANCED_TEMPORAL_WEIGHT, BFLOAT16_MIN_SIZE, DEFAULT_STRENGTH, REFERENCE_SIZE,
                           VIDEO_TEMPORAL_WEIGHT, Config, feature_terms_on, layer_weights, validate,
                           with_loss_defaults)
from nst_tf.errors import UserError
from nst_tf.inputs import Inputs, load_inputs


@dataclasses.dataclass(frozen=True)
class EffectiveWeights:
    """The weights one image is optimized with at one size, as the engine uses them, by term name.

    terms: {term: its weight}, one entry per term of `config.weighted_terms` that the image uses (content,
      style and tv always; another term only when its weight is not 0):
      content: alpha, times (REFERENCE_SIZE / longest side)^2 with --resolution_invariant (the content term is
      a sum over positions and grows with the size, the Gram terms are means and do not; not with
      --normalize_terms, whose terms are ratios); 0 in texture mode.
      style: beta (the backbone's default if unset, times color.LUMINANCE_STYLE_FACTOR for luminance-only
      transfer: both already in the resolved config); 0 in content mode. tv: the TV weight.
    layers: {term: {layer: w_l}} for each term that has layers (content and style always, maybe empty).
    """
    terms: dict[str, float]
    layers: dict[str, dict[str, float]]

    @classmethod
    def of(cls, config: Config, shape: tuple[int, ...]) -> "EffectiveWeights":
        """The weights of a resolved config for an image of `shape` (h, w, ...)."""
        loss = with_loss_defaults(config).loss
        used = {"content": config.content_term, "style": config.uses_style, "tv": True}
        terms, layers = {}, {}
        for term in ("content", "style", "tv", *feature_terms_on(config)):
            on = used.get(term, True)
            terms[term] = getattr(loss, f"{term}_weight") if on else 0.0
            if hasattr(loss, f"{term}_layers"):
                names = getattr(loss, f"{term}_layers") if on else ()
                layers[term] = dict(zip(names, layer_weights(names, getattr(loss, f"{term}_layer_weights", ()))))
        if loss.resolution_invariant and not loss.normalize_terms:   # relative terms do not grow with the size
            terms["content"] *= (REFERENCE_SIZE / max(shape[:2])) ** 2
        style = layers["style"]
        octaves = () if not (loss.style_octaves and style) else registry.octave_layers(
            tuple(style), loss.style_octaves, registry.BACKBONES[config.model.backbone], min(shape[:2]))
        for name in octaves:
            style.setdefault(name, style[registry.split_octave(name)[0]])   # its layer's weight
        return cls(terms, layers)

    def flat(self) -> dict[str, float]:
        """{term: weight, "<term>/<layer>": w_l}: one image's row of `objective.loss_weights`."""
        return {**self.terms, **{f"{term}/{name}": w for term, ws in self.layers.items() for name, w in ws.items()}}

    def term_layers(self) -> dict[str, tuple[str, ...]]:
        """{term: its layers}, for `objective.term_names` and the objective."""
        return {term: tuple(ws) for term, ws in self.layers.items()}

    def all_layers(self) -> tuple[str, ...]:
        """Every layer some term of this image reads (the extractor's outputs), without repeats."""
        return tuple(dict.fromkeys(name for ws in self.layers.values() for name in ws))


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run made concrete: its resolved config, its inputs at the result's size and the device."""
    config: Config
    inputs: Inputs
    device: str
    # The style weight is the fixed default beta of the sliced term, raised where the pair needs it
    # (nst_tf.balance.floored): no weights and no --strength given, a transfer without normalized terms.
    floor: bool = False


def pick_device(device: str) -> str:
    """`auto` -> the first GPU when TensorFlow sees one, else the CPU; `cpu`, `gpu`, `GPU:1` -> that device."""
    available = [d.name for d in tf.config.list_logical_devices()]   # e.g. /device:GPU:0
    if device == "auto":
        gpus = [d for d in available if ":GPU:" in d.upper()]
        return gpus[0] if gpus else "/device:CPU:0"
    wanted = {"cpu": "CPU:0", "gpu": "GPU:0"}.get(device.lower(), device.upper().split("DEVICE:")[-1].lstrip("/"))
    for name in available:
        if name.upper().endswith("DEVICE:" + wanted):
            return name
    raise UserError(f"--device={device} is not present; use auto or one of: {', '.join(available)}.")


def bfloat16_units(device: str, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The bfloat16 hardware of `device` in words ("this CPU has AVX512_BF16"), or None: a GPU of compute
    capability 8.0 or more, a CPU whose flags (Linux' /proc/cpuinfo) list amx_bf16 or avx512_bf16."""
    if ":GPU:" in device.upper():
        gpus = tf.config.list_physical_devices("GPU")
        index = int(device.rsplit(":", 1)[-1])
        capability = tf.config.experimental.get_device_details(gpus[index]).get("compute_capability") if gpus else None
        if capability and tuple(capability) >= (8, 0):
            return f"the GPU has compute capability {capability[0]}.{capability[1]}"
        return None
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return None
    for flag in ("amx_bf16", "avx512_bf16"):
        if re.search(rf"\b{flag}\b", flags):
            return f"this CPU has {flag.upper()}"
    return None


def resolve_precision(config: Config, shape: tuple[int, ...], device: str, say=print) -> Config:
    """--precision=auto made concrete (said in one line when it is bfloat16): mixed_bfloat16 for an Adam run
    whose result is at least BFLOAT16_MIN_SIZE px on `device` with bfloat16 units, float32 otherwise (L-BFGS's
    line search wants exact values; small runs are fast anyway and stay exact)."""
    if config.model.precision != "auto":
        return config
    units = None
    if config.mode in ("transfer", "content", "texture") and config.optim.optimizer == "adam" \
            and max(shape[:2]) >= BFLOAT16_MIN_SIZE:
        units = bfloat16_units(device)
    if units:
        say(f"precision: mixed_bfloat16 ({units}; --precision=float32 computes in float32)")
    return dataclasses.replace(config, model=dataclasses.replace(
        config.model, precision="mixed_bfloat16" if units else "float32"))


def with_seed_and_backbone(config: Config, say=print) -> Config:
    """`config` with an unset seed drawn and `backbone=auto` resolved (said in one line): what every cell
    of a sweep shares, so that cells differ only where the axes say."""
    if config.optim.seed is None:
        config = dataclasses.replace(config, optim=dataclasses.replace(
            config.optim, seed=random.SystemRandom().randrange(2**31)))
    if config.model.backbone == "auto":
        name, why = backbones.resolve_backbone("auto", config.model.weights)
        say(f"backbone: {name} ({why})")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, backbone=name))
    return config


def resolve(config: Config, say=print, clip: bool = False) -> Config:
    """The config made concrete: seed and backbone (`with_seed_and_backbone`), the automatic balance at the
    default strength on a network the fixed weights were not chosen on (`balanced_by_default`, said in one
    line), the mode's loss defaults
    (`config.with_loss_defaults`), the temporal weight measured for the weights in use (fixed or balanced,
    config.BALANCED_TEMPORAL_WEIGHT), the backbone's defaults filled in (layers, feature transform, style
    weight, `auto_style_loss`), layer names in our spelling (an unknown name is a UserError). `clip`: the
    config optimizes the frames of a clip (nst_tf.video.transfer)."""
    config = with_seed_and_backbone(config, say)
    if balanced_by_default(config):
        say(f"balance: the fixed weights were not chosen on {_network_words(config.model)}; "
            f"--strength={DEFAULT_STRENGTH:g} finds them from this pair (--style_weight sets them by hand)")
        config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, strength=DEFAULT_STRENGTH))
    if config.loss.style_loss == "auto":
        config = _with_style_loss(config, auto_style_loss(config, clip))
    if config.loss.style_octaves is None and config.optim.tile_size:   # tiles asked for: not the default octaves
        say(TILES_WITHOUT_OCTAVES)
        config = _without_octaves(config)
    if config.loss.style_octaves is None and registry.BACKBONES[config.model.backbone].family == "resnet":
        config = _without_octaves(config)   # ResNet: its softmax features' look was not checked with octaves
    config = with_loss_defaults(config)
    if config.video.temporal_weight is None:   # before the balance replaces --strength by the weights it finds
        weight = BALANCED_TEMPORAL_WEIGHT if config.automatic_balance else VIDEO_TEMPORAL_WEIGHT
        config = dataclasses.replace(config, video=dataclasses.replace(config.video, temporal_weight=weight))
    model, loss = config.model, config.loss
    spec = registry.BACKBONES[model.backbone]
    transform = spec.feature_transform if model.feature_transform == "auto" else model.feature_transform
    style_weight = loss.style_weight
    if style_weight is None and loss.style_loss == "sliced" and not config.automatic_balance:
        if loss.normalize_terms:
            raise UserError("--style_loss=sliced with --normalize_terms has no calibrated default beta: give "
                            "--style_weight, or --strength (which finds it), or leave out --normalize_terms.")
        if not loss.normalize_gradients:
            style_weight = registry.SLICED_STYLE_WEIGHTS.get((spec.family, transform, model.normalize_features))
            if style_weight is None:
                raise UserError("--style_loss=sliced has no calibrated default beta with --feature_transform or "
                                "--normalize_features: give --style_weight, or use --style_loss=gram.")
    if style_weight is None and loss.style_loss != "gram" and not loss.normalize_terms:
        beta = registry.NORMALIZED_TERMS_STYLE_WEIGHT
        raise UserError(f"--style_loss={loss.style_loss} has no calibrated default beta on its own: add "
                        f"--normalize_terms (scale-free terms, default beta {beta:g}) or give --style_weight.")
    if style_weight is None and not config.automatic_balance:   # else found from the pair (nst_tf/balance.py)
        style_weight = registry.default_style_weight(spec, transform, model.normalize_features,
                                                     loss.normalize_gradients, loss.normalize_terms)
        if config.images.preserve_colors == "luminance" and not (loss.normalize_gradients or loss.normalize_terms):
            style_weight *= color.LUMINANCE_STYLE_FACTOR
    loss = dataclasses.replace(
        loss, style_weight=style_weight,
        content_layers=tuple(registry.resolve_layer(n, spec) for n in loss.content_layers or spec.content_layers),
        style_layers=tuple(registry.resolve_layer(n, spec) for n in loss.style_layers or spec.style_layers),
        **{f"{term}_layers": tuple(registry.resolve_layer(n, spec) for n in getattr(loss, f"{term}_layers"))
           for term in feature_terms_on(config) if hasattr(loss, f"{term}_layers")})
    images = config.images
    if images.scales:   # the last scale is the result's size
        images = dataclasses.replace(images, max_size=images.scales[-1])
    # a stylizer trains and runs in float32 (--precision=auto is made concrete for the optimization by make_plan)
    precision = "float32" if model.precision == "auto" and config.mode in ("train", "apply") else model.precision
    return validate(dataclasses.replace(config, images=images, loss=loss, model=dataclasses.replace(
        model, feature_transform=transform, precision=precision)))


def balanced_by_default(config: Config) -> bool:
    """Whether a transfer that sets no weights finds them from the pair (nst_tf.balance, at the default strength):
    on a network whose fixed default beta was not chosen on it (`registry.BackboneSpec.calibrated`: any backbone
    but vgg16_hed, and any weights file or random weights), where the same beta pulls toward the style orders of
    magnitude more or less and through other layers (docs/balance.md: vgg16_hed rescaled to VGG-19's magnitudes
    gives another picture with the fixed weights, the same with the balance). Only where the balance can go and
    was measured: --mode=transfer, a still or a clip (its temporal weight measured under the balance too,
    docs/video.md), without --nonormalize_terms or --normalize_gradients, which set the terms' pull themselves.
    `config` has a concrete backbone."""
    loss, model = config.loss, config.model
    calibrated = registry.BACKBONES[model.backbone].calibrated and model.weights is None
    return (config.mode == "transfer" and not calibrated
            and loss.strength is None and loss.content_weight is None and loss.style_weight is None
            and loss.normalize_terms is not False and not loss.normalize_gradients)


def _network_words(model) -> str:
    weights = {None: "its own weights", "random": "random weights"}.get(model.weights, "this weights file")
    return f"{model.backbone} with {weights}"


def auto_style_loss(config: Config, clip: bool = False) -> str:
    """What --style_loss=auto is: sliced (losses.sliced_loss) for an optimized still image (--mode=transfer or
    texture) of a VGG's plain features, where blind judges preferred it to the Gram matrices (docs/quality.md),
    with fixed weights or --strength (whose ratio was calibrated for it, balance.RATIO_AT_HALF);
    gram where the sliced term cannot go (tiles, masks, --regions) or was not measured (--mode=train and
    content, --normalize_terms alone, --preserve_colors=luminance, resnet50, the softmax transform,
    --normalize_features, --normalize_gradients, and L-BFGS, whose line search compares values at nearby
    images, which the term's fresh directions make noisy; and the frames of a clip, whose temporal weight and
    steps per frame were measured with Gram terms, docs/video.md)."""
    transform = config.model.feature_transform
    if transform == "auto":
        transform = registry.spec_of(config.model.backbone).feature_transform
    whole_image = not config.optim.tile_size and not config.images.content_mask and config.images.regions == "none"
    measured = (config.mode in ("transfer", "texture")
                and (config.automatic_balance or not config.loss.normalize_terms) and transform == "none"
                and config.images.preserve_colors != "luminance" and not config.model.normalize_features
                and config.optim.optimizer == "adam" and not config.loss.normalize_gradients
                and registry.spec_of(config.model.backbone).family == "vgg")
    return "sliced" if whole_image and measured and not clip else "gram"


def _with_style_loss(config: Config, style_loss: str) -> Config:
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_loss=style_loss))


TILES_WITHOUT_OCTAVES = ("in tiles, without the style octaves (a downsampled copy of the image is not cut into "
                         "tiles; --style_octaves=0 says so)")


def _without_octaves(config: Config) -> Config:
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, style_octaves=0))


def make_plan(config: Config, say=print) -> Plan:
    """The plan of `config`; bad images and masks fail first, before any slow work. The memory a step will
    need is predicted here (`nst_tf.memory`): --max_size=auto becomes the largest size that fits, a size
    whose whole-image step does not fit is tiled, and one that does not fit at all is refused with the
    size that would."""
    auto = validate(config).images.max_size == AUTO_SIZE
    inputs = None if auto else load_inputs(config)
    octaves_by_default = config.loss.style_octaves is None
    default_weights = config.loss.style_weight is None and config.loss.content_weight is None
    sliced_by_default = config.loss.style_loss == "auto"
    config = resolve(config, say)
    device = pick_device(config.optim.device)
    free = memory.available(device)
    if auto:
        size = memory.auto_size(config, free, say)
        config = dataclasses.replace(config, images=dataclasses.replace(config.images, max_size=size))
        inputs = load_inputs(config)
    # the default octaves and the default sliced term cannot be cut into tiles: where a whole-image step with
    # them does not fit, the run goes without them (in tiles if need be) and says so
    try:
        tile_size = memory.fit_tiles(config, inputs.shape[:2], free, say)
    except UserError:
        octaves = octaves_by_default and config.loss.style_octaves
        sliced = sliced_by_default and config.loss.style_loss == "sliced"
        if not (octaves or sliced):
            raise
        dropped = []
        if octaves:
            config = _without_octaves(config)
            dropped.append("the style octaves")
        try:
            tile_size = memory.fit_tiles(config, inputs.shape[:2], free, say)
        except UserError:
            if not sliced:
                raise
            config = _with_style_loss(config, "gram")
            dropped.append("the sliced style term")
            tile_size = memory.fit_tiles(config, inputs.shape[:2], free, say)
        what = " and ".join(dropped)
        if not tile_size:
            say(f"without {what}: with them a whole-image step would not fit in the free memory "
                "(--style_octaves=0 says so)")
        elif dropped == ["the style octaves"]:
            say(TILES_WITHOUT_OCTAVES)
        else:
            say(f"in tiles, without {what} (whole feature maps are not cut into tiles; --style_octaves=0 and "
                "--style_loss=gram say so)")
    config = validate(dataclasses.replace(config, optim=dataclasses.replace(config.optim, tile_size=tile_size)))
    loss = config.loss
    floor = (default_weights and config.mode == "transfer" and not config.automatic_balance
             and loss.style_loss == "sliced" and not (loss.normalize_terms or loss.normalize_gradients))
    return Plan(resolve_precision(config, inputs.shape, device, say), inputs, device, floor)
