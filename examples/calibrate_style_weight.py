"""Measures the default style weight (beta) of each backbone and feature setting (registry.STYLE_WEIGHTS).

  python examples/calibrate_style_weight.py [--resnet_weights=random|PATH] [--vgg_weights=...]

A transform (softmax, normalized features) or another network changes the scale of the content term C
and of the style term S by different factors, so the beta chosen by eye for plain VGG features would
not keep the balance of the two. This script measures, for every pair of the bundled photographs,
C (default content layers, l2) and S (default style layers, weights 1/L, elements Gram norm) between the
two images, and prints the beta that keeps C/S's ratio to beta as it is for plain vgg16_hed:

  beta = beta_vgg16_hed * (C / S) / (C_vgg16_hed / S_vgg16_hed)     (medians over the pairs)

ImageNet weights for resnet50 need a download; offline, --resnet_weights=random measures a random
network (Wang et al. 2021 show that random ResNets stylize with the softmax transform), and docs/backbones.md
says which weights the table's numbers come from.
"""
import itertools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from nst_tf import backbones, color, image_io, losses, normalize, registry  # noqa: E402

flags.DEFINE_string("resnet_weights", "random", "resnet50 weights: random, a file, or '' for ImageNet.")
flags.DEFINE_integer("size", 256, "Longest side of the photographs.")
FLAGS = flags.FLAGS


def terms(name: str, weights, transform: str, normalized: bool, images, colors="none") -> tuple[float, float]:
    """Median content and style terms over all ordered pairs of `images` (as the network sees them under
    --preserve_colors=`colors`)."""
    spec = registry.BACKBONES[name]
    model = backbones.load_backbone(name, "avg", weights, seed=0)
    scales = normalize.feature_scales(model, "avg", weights, 0) if normalized else None
    extractor = backbones.build_extractor(model, spec.content_layers + spec.style_layers, transform, scales)
    c_terms, s_terms = [], []
    for a, b in itertools.permutations(range(len(images)), 2):
        # a is the content, b the style; for the content term b is resized to a's size.
        content, style = color.working_inputs(colors, "cholesky", images[a], images[b])
        fa, fb = extractor(content[None]), extractor(style[None])
        fb_resized = extractor(image_io.resize(style, content.shape[:2])[None])
        c_terms.append(np.mean([float(losses.content_loss(fb_resized[n], fa[n])[0]) for n in spec.content_layers]))
        s_terms.append(np.mean([float(losses.style_layer_loss(losses.gram_matrix(fb[n]),
                                                              losses.gram_matrix(fa[n]), "elements")[0])
                                for n in spec.style_layers]))
    return float(np.median(c_terms)), float(np.median(s_terms))


def main(argv):
    images = [image_io.load_resized(f, FLAGS.size) for f in normalize.image_files(None)]
    c_ref, s_ref = terms("vgg16_hed", None, "none", False, images)
    beta_ref = registry.STYLE_WEIGHTS[("vgg", "none", False)]
    resnet_weights = FLAGS.resnet_weights or None
    print("| backbone | weights | transform | normalized | C | S | beta |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    c, s = terms("vgg16_hed", None, "none", False, images, colors="luminance")
    print(f"| vgg16_hed, --preserve_colors=luminance | default | none | False | {c:.3g} | {s:.3g} | "
          f"{beta_ref * (c / s) / (c_ref / s_ref):.2g} (x{(c / s) / (c_ref / s_ref):.2g}) |")
    for name, weights in (("vgg16_hed", None), ("resnet50", resnet_weights)):
        for transform, normalized in itertools.product(("none", "softmax"), (False, True)):
            c, s = terms(name, weights, transform, normalized, images)
            beta = beta_ref * (c / s) / (c_ref / s_ref)
            print(f"| {name} | {weights or 'default'} | {transform} | {normalized} | {c:.3g} | {s:.3g} | {beta:.2g} |")


if __name__ == "__main__":
    app.run(main)
