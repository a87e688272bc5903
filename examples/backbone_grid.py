"""One grid of every backbone's result: rows are backbones (and feature settings), columns content/style pairs
from the bundled images.

  python examples/backbone_grid.py [--max_size=192] [--num_steps=200] [--rows=vgg16_hed,resnet50_random]
                                   [--save_as=docs/backbones.jpg]

Each cell is an ordinary run (`nst_tf.stylize.run`) with the backbone's default layers and style weight,
written to outputs/backbone_grid_<time>/<row>__<column>/ (or --out); the grid goes to grid.png beside
them. Cells already finished in --out are kept, so an interrupted grid continues, and deleting a row's
folders redoes that row. A backbone whose weights cannot be had here (ImageNet weights offline) is left
out of the grid, and its title says so.
"""
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from nst_tf import image_io, normalize, stylize  # noqa: E402
from nst_tf.config import Config, ImageConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig  # noqa: E402
from nst_tf.errors import UserError  # noqa: E402
from nst_tf.grid import render_grid, save_grid  # noqa: E402

BUNDLED = normalize.BUNDLED_IMAGES
EXAMPLES = os.path.join(ROOT, "examples")
# name -> (label, ModelConfig fields)
ROWS = {
    "vgg19": ("vgg19 (ImageNet)", dict(backbone="vgg19")),
    "vgg16": ("vgg16 (ImageNet)", dict(backbone="vgg16")),
    "resnet50": ("resnet50 (ImageNet), softmax", dict(backbone="resnet50")),
    "vgg16_hed": ("vgg16_hed", dict(backbone="vgg16_hed")),
    "vgg16_hed_normalized": ("vgg16_hed, normalized", dict(backbone="vgg16_hed", normalize_features=True)),
    "resnet50_random_plain": ("resnet50 random, no softmax",
                              dict(backbone="resnet50", weights="random", feature_transform="none")),
    "resnet50_random": ("resnet50 random, softmax", dict(backbone="resnet50", weights="random")),
}
# (label, content, style)
PAIRS = [("chelsea + swirls", os.path.join(EXAMPLES, "chelsea.jpg"), os.path.join(EXAMPLES, "swirls.jpg")),
         ("astronaut + swirls", os.path.join(BUNDLED, "astronaut.jpg"), os.path.join(EXAMPLES, "swirls.jpg")),
         ("coffee + hubble", os.path.join(BUNDLED, "coffee.jpg"), os.path.join(BUNDLED, "hubble_deep_field.jpg"))]

flags.DEFINE_list("rows", list(ROWS), f"Rows, from: {', '.join(ROWS)}.")
flags.DEFINE_integer("max_size", 192, "Longest side of each result.")
flags.DEFINE_integer("num_steps", 200, "Adam steps per cell.")
flags.DEFINE_float("tv_weight", 10.0, "Total variation weight.")
flags.DEFINE_integer("seed", 1, "Seed of every cell.")
flags.DEFINE_string("save_as", None, "Also save the grid here (e.g. docs/backbones.jpg).")
flags.DEFINE_string("out", None, "Grid folder (default: a new outputs/backbone_grid_<time>); finished cells "
                    "in it are kept.")
FLAGS = flags.FLAGS


def main(argv):
    unknown = [r for r in FLAGS.rows if r not in ROWS]
    if unknown:
        sys.exit(f"error: unknown rows {unknown}; choose from {', '.join(ROWS)}.")
    out = FLAGS.out or os.path.join(ROOT, "outputs", time.strftime("backbone_grid_%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    tiles, captions, rows, missing = {}, {}, [], []
    for row in FLAGS.rows:
        label, model = ROWS[row]
        r = len(rows)
        for c, (pair, content, style) in enumerate(PAIRS):
            config = Config(images=ImageConfig(content=content, style=style, max_size=FLAGS.max_size),
                            model=ModelConfig(**model), loss=LossConfig(tv_weight=FLAGS.tv_weight),
                            optim=OptimConfig(num_steps=FLAGS.num_steps, seed=FLAGS.seed),
                            output=OutputConfig(output_dir=out, run_name=f"{row}__{c}", save_every=0))
            print(f"{label} / {pair}", flush=True)
            run_dir = os.path.join(out, config.output.run_name)
            if not os.path.exists(os.path.join(run_dir, "summary.json")):
                shutil.rmtree(run_dir, ignore_errors=True)   # an unfinished cell is run again
                try:
                    run_dir = stylize.run(config, show_progress=False)
                except UserError as e:
                    print(f"  skipped: {e}")
                    missing.append(label)
                    break
            tiles[(r, c)] = image_io.load_image(os.path.join(run_dir, "result.png"))
            with open(os.path.join(run_dir, "summary.json")) as f:
                captions[(r, c)] = f"{json.load(f)['wall_time_s']:.0f} s"
        else:
            rows.append(label)
    inputs = [(f"{pair}: content", image_io.load_resized(content, FLAGS.max_size)) for pair, content, _ in PAIRS]
    inputs += [("style: swirls", image_io.load_resized(PAIRS[0][2], FLAGS.max_size)),
               ("style: hubble", image_io.load_resized(PAIRS[2][2], FLAGS.max_size))]
    title = f"{FLAGS.num_steps} Adam steps, {FLAGS.max_size} px, default layers and weights"
    if missing:
        title += f"\nnot here (no weights): {', '.join(missing)}"
    png = render_grid(tiles, len(rows), len(PAIRS), rows, [p[0] for p in PAIRS], captions, inputs, title)
    grid_path = os.path.join(out, "grid.png")
    save_grid(png, grid_path, FLAGS.save_as)
    print(f"grid: {grid_path}" + (f", saved as {FLAGS.save_as}" if FLAGS.save_as else ""))


if __name__ == "__main__":
    app.run(main)
