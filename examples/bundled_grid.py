"""The README's grid: the default run on each bundled photo with each bundled style image.

  python examples/bundled_grid.py [--out=outputs/bundled_grid] [--save_as=docs/bundled_grid.jpg]

Every cell is `python run.py --content=PHOTO --style=STYLE` with nothing else changed (the defaults: 256 px,
the offline backbone here), one run folder per cell under --out; finished cells there are kept, so an
interrupted grid goes on. The first row shows the photos, the first column the style images.
"""
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from nst_tf import image_io, normalize, stylize  # noqa: E402
from nst_tf.config import config_with, options  # noqa: E402
from nst_tf.grid import render_grid, save_grid  # noqa: E402

PHOTOS = ["examples/chelsea.jpg"] + [os.path.join(os.path.relpath(normalize.BUNDLED_IMAGES, ROOT), name)
                                     for name in ("astronaut.jpg", "rocket.jpg", "coffee.jpg")]
STYLES = ["examples/swirls.jpg", os.path.join(os.path.relpath(normalize.BUNDLED_IMAGES, ROOT),
                                              "hubble_deep_field.jpg")]

flags.DEFINE_string("out", os.path.join(ROOT, "outputs", "bundled_grid"), "Folder of the cells and grid.png.")
flags.DEFINE_string("save_as", None, "Also save the grid here as JPEG (e.g. docs/bundled_grid.jpg).")
FLAGS = flags.FLAGS


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def cell(content: str, style: str) -> str:
    """The run folder of one cell, run now unless finished before."""
    name = f"{stem(content)}+{stem(style)}"
    config = config_with(content=os.path.join(ROOT, content), style=os.path.join(ROOT, style), output_dir=FLAGS.out,
                         run_name=name, save_every=0)
    run_dir = os.path.join(FLAGS.out, name)
    if not os.path.exists(os.path.join(run_dir, "result.png")):
        shutil.rmtree(run_dir, ignore_errors=True)   # an unfinished cell is run again
        print(name, flush=True)
        run_dir = stylize.run(config, show_progress=False)
    return run_dir


def main(argv):
    os.makedirs(FLAGS.out, exist_ok=True)
    size = next(opt.default for opt in options() if opt.name == "max_size")
    tiles = {}
    for c, photo in enumerate(PHOTOS, start=1):
        tiles[(0, c)] = image_io.load_resized(os.path.join(ROOT, photo), size)
    for r, style in enumerate(STYLES, start=1):
        tiles[(r, 0)] = image_io.load_resized(os.path.join(ROOT, style), size)
        for c, photo in enumerate(PHOTOS, start=1):
            tiles[(r, c)] = image_io.load_image(os.path.join(cell(photo, style), "result.png"))
    png = render_grid(tiles, len(STYLES) + 1, len(PHOTOS) + 1, ["photos"] + [stem(s) for s in STYLES],
                      ["style"] + [stem(p) for p in PHOTOS],
                      title="python run.py --content=PHOTO --style=STYLE (the defaults)")
    grid_path = os.path.join(FLAGS.out, "grid.png")
    save_grid(png, grid_path, FLAGS.save_as)
    print(f"grid: {grid_path}" + (f", saved as {FLAGS.save_as}" if FLAGS.save_as else ""))


if __name__ == "__main__":
    app.run(main)
