"""docs/controls.md's picture of the perceptual controls: each control's result beside the uncontrolled one, made
from the bundled images with the default backbone (vgg16_hed offline).

  python examples/controls_figure.py [--out=outputs/controls] [--save_as=docs/controls.jpg]

Every panel is an ordinary run.py command (listed in PANELS, printed as it starts) whose run folder goes
to --out/<name>/; finished runs there are kept, so an interrupted figure continues where it stopped.
Time on 2 CPU cores: about an hour, most of it the 1024 px run.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from absl import app, flags  # noqa: E402

import run as run_script  # noqa: E402  (its flags join these; each panel parses its own)
from nst_tf import image_io, rundir, stylize  # noqa: E402
from nst_tf.grid import render_grid  # noqa: E402

CHELSEA = "examples/chelsea.jpg"
SWIRLS = "examples/swirls.jpg"
HUBBLE = "nst_tf/data/images/hubble_deep_field.jpg"
BASE = [f"--content={CHELSEA}", "--backbone=vgg16_hed", "--seed=1", "--tv_weight=10", "--progress=false"]
# name -> run.py flags (besides BASE); the order is the order they run in
PANELS = {
    "swirls": [f"--style={SWIRLS}"],
    "hubble": [f"--style={HUBBLE}"],
    "blend": [f"--style={SWIRLS},{HUBBLE}", "--style_blend_weights=0.5,0.5"],
    "masked": [f"--style={SWIRLS},{HUBBLE}", "--content_mask=examples/chelsea_mask.png",
               "--style_mask=#ff0000,#0000ff"],
    "style_scale_0.5": [f"--style={SWIRLS}", "--style_scale=0.5"],
    "style_scale_2": [f"--style={SWIRLS}", "--style_scale=2"],
    "normalized_gradients": [f"--style={SWIRLS}", "--normalize_gradients", "--tv_weight=0.003"],
    "single_scale_512": [f"--style={SWIRLS}", "--max_size=512", "--noresolution_invariant"],
    "pyramid_1024": [f"--style={SWIRLS}", "--max_size=1024"],   # 256, 512, 1024 px; its 512 px stage is
}                                                               # what --max_size=512 computes
flags.DEFINE_string("out", os.path.join(ROOT, "outputs", "controls"), "Folder of the runs; finished ones are kept.")
flags.DEFINE_string("save_as", None, "Also save the figure here (e.g. docs/controls.jpg).")
FLAGS = flags.FLAGS
TILE = 320   # display width of a tile


def run_panel(out: str, name: str, args: list[str]) -> None:
    run_dir = os.path.join(out, name)
    if rundir.read_summary(run_dir).get("status") == "done":
        return
    if os.path.isdir(run_dir):
        os.rename(run_dir, f"{run_dir}.unfinished-{os.getpid()}")
    argv = ["run.py", *BASE, *args, f"--output_dir={out}", f"--run_name={name}"]
    print(" ".join(argv), flush=True)
    run_script.FLAGS.unparse_flags()
    config, _, _ = run_script.parse(argv)
    stylize.run(config, show_progress=False)


def tile(path: str, width: int = TILE, crop: bool = False) -> np.ndarray:
    image = image_io.load_image(path)
    h, w = image.shape[:2]
    if crop:   # a width x (width * 2/3) piece at full resolution, around the left eye
        top, left = int(0.25 * h), int(0.22 * w)
        return image[top:top + width * 2 // 3, left:left + width]
    return image_io.resize(image, (round(h * width / w), width))


def main(argv):
    del argv
    out, save_as = os.path.abspath(FLAGS.out), FLAGS.save_as   # read before the panels reparse the flags
    os.chdir(ROOT)
    for name, args in PANELS.items():
        run_panel(out, name, args)
    result = {name: os.path.join(out, name, "result.png") for name in PANELS}
    stage_512 = os.path.join(out, "pyramid_1024", "scales", "512", "result.png")
    rows = [
        ("several styles", [("swirls", result["swirls"]), ("deep field", result["hubble"]),
                            ("both, blended 0.5 / 0.5", result["blend"])]),
        ("spatial control", [("mask: red swirls, blue deep field,\nwhite (eyes) no style", "examples/chelsea_mask.png"),
                             ("no mask (swirls)", result["swirls"]), ("guided Grams", result["masked"])]),
        ("style scale", [("--style_scale=0.5", result["style_scale_0.5"]), ("1 (swirls)", result["swirls"]),
                         ("--style_scale=2", result["style_scale_2"])]),
        ("gradient\nnormalization", [("off (swirls)", result["swirls"]),
                                     ("--normalize_gradients\n--tv_weight=0.003", result["normalized_gradients"])]),
        ("512 px", [("one scale, 200 steps\n(--noresolution_invariant)", result["single_scale_512"]),
                    ("256 -> 512 px (default)", stage_512)]),
        ("same command\nat 1024 px", [("1024 px (256 -> 512 -> 1024)", result["pyramid_1024"]),
                                      ("1024 px, a 320 px piece at 1:1", result["pyramid_1024"])]),
    ]
    tiles, captions = {}, {}
    for r, (_, cells) in enumerate(rows):
        for c, (caption, path) in enumerate(cells):
            tiles[r, c] = tile(path, crop=caption.endswith("1:1"))
            captions[r, c] = caption
    png = render_grid(tiles, len(rows), 3, [label for label, _ in rows], ["", "", ""], captions,
                      inputs=[("content", tile(CHELSEA)), ("style: swirls", tile(SWIRLS)),
                              ("style: deep field", tile(HUBBLE))],
                      title="Perceptual controls on vgg16_hed, 256 px unless said, 200 Adam steps, tv_weight 10, seed 1")
    path = os.path.join(out, "controls.png")
    image_io.atomic_write(path, lambda f: f.write(png))
    print(f"figure: {path}")
    if save_as:
        Image.open(path).convert("RGB").save(save_as, quality=88)
        print(f"saved as {save_as}")


if __name__ == "__main__":
    app.run(main)
