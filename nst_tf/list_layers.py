"""`run.py --list_layers`: every selectable layer of a backbone with its output shape at a size, and its
defaults. Random weights: nothing is downloaded."""
from __future__ import annotations

import tensorflow as tf

from nst_tf import backbones, image_io, registry
from nst_tf.config import DEFAULT_STRENGTH, check_max_size


def describe(name: str, max_size: int, pooling: str = "avg", content: str | None = None) -> str:
    """`run.py --list_layers`: every selectable layer of backbone `name` with its output shape for a
    result of `max_size` px (with the content image's aspect, if given), and the backbone's defaults."""
    check_max_size(max_size)
    note = ""
    if name == "auto":
        name, note = "vgg19", "; --backbone=auto is this one when its ImageNet weights can be had, else vgg16_hed"
    spec = registry.BACKBONES[name]
    height, width = max_size, max_size
    if content:
        shape = image_io.load_image(content).shape
        height, width = image_io.fit_size(shape[0], shape[1], max_size)
    model = backbones.load_backbone(name, pooling, "random")
    table = registry.layer_table(spec)
    outputs = backbones.build_extractor(model, tuple(ours for ours, _ in table))(tf.zeros((1, height, width, 3)))
    roles = {**{n: "content" for n in spec.content_layers}, **{n: "style" for n in spec.style_layers}}
    lines = [f"{name}: {spec.description}{note}",
             f"output shapes (height x width x channels) for a {height} x {width} image:"]
    for ours, keras_layer in table:
        h, w, c = outputs[ours].shape[1:]
        alias = f"  ({keras_layer})" if keras_layer != ours else ""
        lines.append(f"  {ours:<22} {h:>5} x {w:<5} x {c:<5} {roles.get(ours, ''):<8}{alias}".rstrip())
    transform = spec.feature_transform
    lines += [f"default content layers: {','.join(spec.content_layers)}",
              f"default style layers:   {','.join(spec.style_layers)}",
              f"default feature transform: {transform}; default style weight (beta): "
              f"{registry.default_style_weight(spec, transform, False):g}, with --normalize_features "
              f"{registry.default_style_weight(spec, transform, True):g}"]
    sliced = registry.SLICED_STYLE_WEIGHTS.get((spec.family, transform, False))
    if sliced is not None:
        lines.append(f"with --style_loss=sliced (the default for a still image): {sliced:g}")
    if not spec.calibrated:
        lines.append("these weights were chosen on vgg16_hed: a transfer on this network that sets neither alpha nor "
                     f"beta finds them from the pair (--strength={DEFAULT_STRENGTH:g})")
    return "\n".join(lines)


