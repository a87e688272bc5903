"""Quality bench: border band, mesh, content structure, style distance, wall time; blind A/B sheets.

  PYTHONPATH=. python bench/quality.py                       # both public pairs at 512 px, the default
  PYTHONPATH=. python bench/quality.py --size=256 --pairs=chelsea:swirls \
      --variants='default=;reflect=--padding=reflect'        # quick, with the bundled images
  PYTHONPATH=. python bench/quality.py --corpus --size=256 \
      --variants='old=--flagfile=flags/old.flags;new=' --sheets=new,old   # the tuning corpus, blind sheets

--corpus runs every photo (tubingen, chicago and the bundled ones) against every painting of the tuning corpus
(../shared/images: starry_night, shipwreck and styles/); --photos and --paintings narrow it (file stems).
--sheets=A,B lays each pair's result of variant A beside variant B's in a random order without names
(../shared/tools/blind_ab.py make) in <out>/sheets_A_vs_B/, for judges who see only the sheets; the key stays
in that folder (key.json). Judge, then `blind_ab.py tally <folder> verdicts.txt`.

Each variant is a set of run.py flags; each (pair, variant) runs as an ordinary `run.py` command in a
subprocess (flags only, so the bench keeps working whatever the engine looks like inside), seed 0. The
figures are computed on the result PNGs here, with numpy only, and on jcjohnson/neural-style's VGG-19
reference outputs where a pair has one. Writes <out>/quality.md (a Markdown table) and <out>/sheet.png.

The figures (Y: luminance 0.299 R + 0.587 G + 0.114 B of an image in [0, 1]):
  border  fine detail d = |Y - box3(Y)| (3x3 box mean, interior positions only); the mean of d in the outer
          8 px band over its mean inside, divided by the same ratio of the content photo resized to the
          result's size. 1: the border is as detailed as the photo's; > 1: a band of artifacts.
  mesh    |FFT| of Y - mean(Y) (Hann window); at each period p in 2, 3, 4, 6, 8 px the peak at the frequencies
          1/p along y, along x and on both diagonals (max over +-1 bin) over the median of the 17 x 17
          bins around it (the centre 3 x 3 left out); the result's peak over the content photo's (resized
          to the result's size) at the same period; the figure is the largest over the periods.
  flat mesh  the same on the power spectrum averaged over the flattest quarter of the content's 64 x 64
          windows (tubingen: the sky), so a mesh confined to flat regions is not diluted by the rest.
  ssim    SSIM (Wang et al. 2004, Gaussian window sigma 1.5, K1 0.01, K2 0.03) of Y against the content
          photo's Y at the result's size: how much of the photo's structure is left.
  style   a style distance that no variant optimizes (no network): sliced Wasserstein-1 distances (32
          random directions) between the result's and the style image's distributions of (a) RGB colours
          and (b) luminance gradients (dy, dx) at 1, 1/2, 1/4 and 1/8 of the result's size (box-downsampled),
          the style image taken at the result's size; the mean of the five distances, x100. Lower: closer
          to the style's colours and to its strokes' directions and strengths at every scale.
  reached how far the result moved from the photo toward the painting in that style distance:
          1 - style(result, painting) / style(photo, painting); 0: still the photo's statistics, 1: the
          painting's. With SSIM (structure kept) it places a result between the photo and the painting, on a
          scale that means the same for every pair (bench/balance.py).
  wall    seconds of the run.py subprocess (start-up, all scales, saving), on this machine as loaded then.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The reference images (tubingen, starry_night, shipwreck and jcjohnson/neural-style's outputs) live beside
# the repository in ../shared/images when they are there (they are not part of the project); NST_TF_IMAGES
# names another folder.
SHARED = os.environ.get("NST_TF_IMAGES") or os.path.normpath(os.path.join(ROOT, "..", "shared", "images"))

# name: (content, style, reference or None)
PAIRS = {
    "starry": ("tubingen.jpg", "starry_night.jpg", "reference/tubingen_starry.png"),
    "shipwreck": ("tubingen.jpg", "shipwreck.jpg", "reference/tubingen_shipwreck.png"),
    "chelsea:swirls": (os.path.join(ROOT, "examples", "chelsea.jpg"), os.path.join(ROOT, "examples", "swirls.jpg"),
                       None),
}
BUNDLED = os.path.join(ROOT, "nst_tf", "data", "images")
TOOLS = os.path.normpath(os.path.join(SHARED, "..", "tools"))


def corpus(photos: str = "", paintings: str = "") -> list[str]:
    """The tuning corpus as content:style pairs (photo-major): every photo against every painting, narrowed to
    the given comma-separated file stems."""
    def stems(text):
        return {t.strip() for t in text.split(",") if t.strip()}
    all_photos = [os.path.join(SHARED, n) for n in ("tubingen.jpg", "chicago.jpg")] + sorted(
        os.path.join(BUNDLED, n) for n in os.listdir(BUNDLED) if n.endswith(".jpg"))
    styles = os.path.join(SHARED, "styles")
    all_paintings = [os.path.join(SHARED, n) for n in ("starry_night.jpg", "shipwreck.jpg")] + sorted(
        os.path.join(styles, n) for n in os.listdir(styles) if n.endswith(".jpg")) if os.path.isdir(styles) else []
    keep = lambda paths, wanted: [p for p in paths if os.path.exists(p) and (  # noqa: E731
        not wanted or os.path.splitext(os.path.basename(p))[0] in wanted)]
    return [f"{c}:{s}" for c in keep(all_photos, stems(photos)) for s in keep(all_paintings, stems(paintings))]


def pair_label(pair: str) -> str:
    """A pair's short name: starry, or photo+painting from the files' stems."""
    if pair in PAIRS:
        return pair.replace(":", "+")
    c, _, s = pair.partition(":")
    return f"{os.path.splitext(os.path.basename(c))[0]}+{os.path.splitext(os.path.basename(s))[0]}"
BAND = 8
PERIODS = (2, 3, 4, 6, 8)


# ------------------------------------------------------------------------------------------- images

def load(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB float in [0, 1]; resized (LANCZOS) to size = (height, width) if given."""
    img = Image.open(path).convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.LANCZOS)
    return np.asarray(img, np.float64) / 255.0


def fit(path: str, max_side: int) -> tuple[int, int]:
    w, h = Image.open(path).size
    s = max_side / max(w, h)
    return max(1, round(h * s)), max(1, round(w * s))


def luminance(x: np.ndarray) -> np.ndarray:
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


# ------------------------------------------------------------------------------------------ figures

def box3_detail(y: np.ndarray) -> np.ndarray:
    """|y - 3x3 box mean| at the interior positions (shape H-2, W-2)."""
    h, w = y.shape
    s = sum(y[i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3)) / 9.0
    return np.abs(y[1:-1, 1:-1] - s)


def border_ratio(y: np.ndarray, band: int = BAND) -> float:
    d = box3_detail(y)
    b = band - 1   # d starts one pixel in
    inner = d[b:-b, b:-b]
    mask = np.ones_like(d, bool)
    mask[b:-b, b:-b] = False
    return float(d[mask].mean() / max(inner.mean(), 1e-12))


def mesh_peaks(y: np.ndarray) -> dict[int, float]:
    """{period: peak over its neighbourhood's median} of the Hann-windowed spectrum of y."""
    h, w = y.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    spec = np.abs(np.fft.fft2((y - y.mean()) * win))
    out = {}
    for p in PERIODS:
        fy, fx = round(h / p), round(w / p)
        best = 0.0
        for ky, kx in ((fy, 0), (0, fx), (fy, fx), (fy, -fx)):
            rows = (ky + np.arange(-8, 9)) % h
            cols = (kx + np.arange(-8, 9)) % w
            patch = spec[np.ix_(rows, cols)]
            centre = patch[7:10, 7:10].max()
            ring = np.concatenate([patch[:7].ravel(), patch[10:].ravel(), patch[7:10, :7].ravel(),
                                   patch[7:10, 10:].ravel()])
            best = max(best, centre / max(np.median(ring), 1e-12))
        out[p] = float(best)
    return out


def flat_tiles(y_content: np.ndarray, tile: int = 64, fraction: float = 0.25) -> list[tuple[int, int]]:
    """Corners of the `fraction` of tile x tile windows (stride tile/2) with the least fine detail in the
    content photo: its flat regions (tubingen: the sky)."""
    d = np.pad(box3_detail(y_content), 1, mode="edge")
    h, w = y_content.shape
    scored = sorted((d[y:y + tile, x:x + tile].mean(), y, x) for y in range(0, h - tile + 1, tile // 2)
                    for x in range(0, w - tile + 1, tile // 2))
    return [(y, x) for _, y, x in scored[:max(1, int(len(scored) * fraction))]]


def flat_mesh_peaks(y: np.ndarray, tiles: list[tuple[int, int]], tile: int = 64) -> dict[int, float]:
    """`mesh_peaks` on the power spectrum averaged over the flat tiles (neighbourhood 13 x 13 bins)."""
    win = np.hanning(tile)[:, None] * np.hanning(tile)[None, :]
    power = sum(np.abs(np.fft.fft2((y[a:a + tile, b:b + tile] - y[a:a + tile, b:b + tile].mean()) * win)) ** 2
                for a, b in tiles) / len(tiles)
    spec, out = np.sqrt(power), {}
    for p in PERIODS:
        f, best = tile // p, 0.0
        for ky, kx in ((f, 0), (0, f), (f, f), (f, -f)):
            patch = spec[np.ix_((ky + np.arange(-6, 7)) % tile, (kx + np.arange(-6, 7)) % tile)]
            ring = np.concatenate([patch[:5].ravel(), patch[8:].ravel(), patch[5:8, :5].ravel(),
                                   patch[5:8, 8:].ravel()])
            best = max(best, patch[5:8, 5:8].max() / max(np.median(ring), 1e-12))
        out[p] = float(best)
    return out


def _gauss_filter(x: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    r = int(np.ceil(3.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.pad(x, r, mode="reflect")
    x = sum(k[i] * x[i:i + x.shape[0] - 2 * r, :] for i in range(2 * r + 1))
    return sum(k[i] * x[:, i:i + x.shape[1] - 2 * r] for i in range(2 * r + 1))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ma, mb = _gauss_filter(a), _gauss_filter(b)
    va = _gauss_filter(a * a) - ma * ma
    vb = _gauss_filter(b * b) - mb * mb
    cov = _gauss_filter(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return float(s.mean())


def _sliced_w1(a: np.ndarray, b: np.ndarray, directions: int = 32, samples: int = 5000) -> float:
    """Sliced Wasserstein-1 distance between two point sets [n, d] (quantiles at `samples` levels)."""
    rng = np.random.default_rng(0)
    a = a[rng.choice(len(a), min(len(a), 4 * samples), replace=False)]
    b = b[rng.choice(len(b), min(len(b), 4 * samples), replace=False)]
    dirs = rng.normal(size=(directions, a.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    def quantiles(x):   # [samples, directions]: each projection's sorted values at `samples` levels
        p = np.sort(x @ dirs.T, axis=0)
        return p[((np.arange(samples) + 0.5) / samples * len(p)).astype(int)]
    pa, pb = quantiles(a), quantiles(b)
    return float(np.abs(pa - pb).mean())


def _down(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[0] // f * f, x.shape[1] // f * f
    return x[:h, :w].reshape(h // f, f, w // f, f, *x.shape[2:]).mean(axis=(1, 3))


def style_distance(result: np.ndarray, style: np.ndarray) -> float:
    dists = [_sliced_w1(result.reshape(-1, 3), style.reshape(-1, 3))]
    yr, ys = luminance(result), luminance(style)
    for f in (1, 2, 4, 8):
        grads = []
        for y in (_down(yr, f), _down(ys, f)):
            grads.append(np.stack([(y[1:, :-1] - y[:-1, :-1]).ravel(), (y[:-1, 1:] - y[:-1, :-1]).ravel()], 1))
        dists.append(_sliced_w1(*grads))
    return 100 * float(np.mean(dists))


def figures(result_path: str, content_path: str, style_path: str) -> dict:
    result = load(result_path)
    size = result.shape[:2]
    content = load(content_path, size)
    style = load(style_path, fit(style_path, max(size)))
    yr, yc = luminance(result), luminance(content)
    peaks_r, peaks_c = mesh_peaks(yr), mesh_peaks(yc)
    per_period = {p: peaks_r[p] / peaks_c[p] for p in PERIODS}
    worst = max(per_period, key=per_period.get)
    tiles = flat_tiles(yc)
    flat_r, flat_c = flat_mesh_peaks(yr, tiles), flat_mesh_peaks(yc, tiles)
    flat = {p: flat_r[p] / flat_c[p] for p in PERIODS}
    flat_worst = max(flat, key=flat.get)
    base = style_distance(content, style)
    dist = style_distance(result, style)
    return {"border": border_ratio(yr) / border_ratio(yc),
            "reached": 1.0 - dist / max(base, 1e-12), "mesh": per_period[worst], "mesh_period": worst,
            "mesh_per_period": per_period,
            "mesh_flat": flat[flat_worst], "mesh_flat_period": flat_worst, "ssim": ssim(yr, yc), "style": dist,
            "size": f"{size[1]}x{size[0]}"}


# ------------------------------------------------------------------------------------------- runs

def parse_variants(text: str) -> list[tuple[str, list[str]]]:
    """'name=--a=1 --b;name2=' -> [(name, [flags])]. A flag --checkout=DIR runs that clone's run.py."""
    out = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, _, flags = item.partition("=")
        out.append((name.strip(), flags.split()))
    return out


def pair_paths(name: str) -> tuple[str, str, str | None]:
    if name in PAIRS:
        c, s, r = PAIRS[name]
    else:
        c, _, s = name.partition(":")
        r = None
    def resolve(p):
        if p is None:
            return None
        if os.path.isabs(p) or os.path.exists(p):
            return p
        for base in (SHARED, os.path.join(ROOT, "examples"), os.path.join(ROOT, "nst_tf", "data", "images")):
            if os.path.exists(os.path.join(base, p)):
                return os.path.join(base, p)
        return os.path.join(SHARED, p)
    return resolve(c), resolve(s), resolve(r)


def run_variant(content: str, style: str, size: int, flags: list[str], out_dir: str, run_name: str,
                python: str, log, checkout: str = ROOT) -> tuple[str, float]:
    """Runs run.py (of `checkout`, another clone of the project such as an earlier commit's); returns
    (result.png path, wall seconds). Reuses a finished run of the same name."""
    run_dir = os.path.join(out_dir, "runs", run_name)
    result = os.path.join(run_dir, "result.png")
    timing = os.path.join(run_dir, "bench_wall.json")
    if os.path.exists(result) and os.path.exists(timing):
        with open(timing) as f:
            return result, json.load(f)["wall_s"]
    cmd = [python, os.path.join(checkout, "run.py"), f"--content={content}", f"--style={style}",
           f"--max_size={size}", "--backbone=vgg16_hed", "--seed=0", "--save_every=0", "--progress=false",
           f"--output_dir={os.path.join(out_dir, 'runs')}", f"--run_name={run_name}", *flags]
    if os.path.isdir(run_dir):   # an unfinished earlier attempt
        import shutil
        shutil.rmtree(run_dir)
    log("$ " + " ".join(cmd[1:]))
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": checkout}
    proc = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{run_name} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    with open(timing, "w") as f:
        json.dump({"wall_s": wall, "cmd": cmd}, f)
    return result, wall


def sheet(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    cols = max(sum(1 for r in rows if r["pair"] == p) for p in pairs)
    fig, axes = plt.subplots(len(pairs), cols, figsize=(4.2 * cols, 3.6 * len(pairs)), squeeze=False)
    for i, p in enumerate(pairs):
        for j, r in enumerate([r for r in rows if r["pair"] == p]):
            ax = axes[i][j]
            ax.imshow(load(r["path"]))
            ax.set_title(f"{p}: {r['variant']}\nborder {r['border']:.2f} mesh {r['mesh']:.1f}@{r['mesh_period']} "
                         f"flat {r['mesh_flat']:.1f} ssim {r['ssim']:.2f} style {r['style']:.2f}", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    lines = ["| pair | variant | size | border | mesh (period px) | flat mesh (period) | SSIM | style dist. | reached "
             "| wall s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        wall = "-" if r["wall"] is None else f"{r['wall']:.0f}"
        lines.append(f"| {r['pair']} | {r['variant']} | {r['size']} | {r['border']:.2f} | "
                     f"{r['mesh']:.2f} ({r['mesh_period']}) | {r['mesh_flat']:.2f} ({r['mesh_flat_period']}) | "
                     f"{r['ssim']:.3f} | {r['style']:.2f} | {r['reached']:.2f} | {wall} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="starry,shipwreck", help="comma-separated: starry, shipwreck, "
                    "chelsea:swirls, or content:style paths")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--variants", default="default=", help="'name=flags;name=flags' (run.py flags)")
    ap.add_argument("--out", default=os.path.join(ROOT, "outputs", "quality"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--no_reference", action="store_true")
    ap.add_argument("--score", nargs="*", default=[], help="only score these PNGs against --pairs' first pair")
    ap.add_argument("--corpus", action="store_true", help="every photo x every painting of the tuning corpus")
    ap.add_argument("--photos", default="", help="with --corpus: only these photos (file stems, comma-separated)")
    ap.add_argument("--paintings", default="", help="with --corpus: only these paintings (file stems)")
    ap.add_argument("--sheets", default="", help="A,B: blind A/B sheets of variant A against variant B")
    ap.add_argument("--no_figure_sheet", action="store_true", help="skip the labelled sheet.png (large corpora)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    rows = []
    pairs = corpus(args.photos, args.paintings) if args.corpus else [p.strip() for p in args.pairs.split(",")
                                                                         if p.strip()]
    if args.score:
        content, style, _ = pair_paths(pairs[0])
        for path in args.score:
            f = figures(path, content, style)
            rows.append({"pair": pairs[0], "variant": os.path.basename(os.path.dirname(path)) or path,
                         "path": path, "wall": None, **f})
            log(table(rows[-1:]).splitlines()[-1])
        print(table(rows))
        return 0
    for pair in pairs:
        content, style, reference = pair_paths(pair)
        if not (os.path.exists(content) and os.path.exists(style)):
            log(f"skipping {pair}: {content} or {style} is missing")
            continue
        if reference and os.path.exists(reference) and not args.no_reference:
            rows.append({"pair": pair_label(pair), "variant": "jcjohnson reference (VGG-19)", "path": reference,
                         "wall": None, "content": content, "style_path": style, **figures(reference, content, style)})
            log(table(rows[-1:]).splitlines()[-1])
        for name, flags in parse_variants(args.variants):
            label = pair_label(pair)
            checkout = next((f.split("=", 1)[1] for f in flags if f.startswith("--checkout=")), ROOT)
            try:
                path, wall = run_variant(content, style, args.size, [f for f in flags if not f.startswith("--checkout=")],
                                         args.out, f"{label}_{args.size}_{name}", args.python, log,
                                         os.path.abspath(checkout))
            except RuntimeError as e:   # one failed run does not lose the corpus
                log(f"FAILED {e}")
                continue
            rows.append({"pair": label, "variant": name, "path": path, "wall": wall, "content": content,
                         "style_path": style, **figures(path, content, style)})
            log(table(rows[-1:]).splitlines()[-1])
    md = table(rows)
    print(md)
    with open(os.path.join(args.out, "quality.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(args.out, "quality.json"), "w") as f:
        json.dump(rows, f, indent=1, default=str)
    if rows and not args.no_figure_sheet:
        sheet(rows, os.path.join(args.out, "sheet.png"))
    if args.sheets:
        blind_sheets(rows, *[v.strip() for v in args.sheets.split(",")], args.out, args.size, log)
    return 0


def blind_sheets(rows: list[dict], a: str, b: str, out: str, size: int, log) -> str | None:
    """Blind A/B sheets of variant `a` against `b` on every pair that has both (../shared/tools/blind_ab.py);
    returns their folder. Each result is linked as <folder>/src/<variant>/<pair>.png, so the tally names
    the winning variant."""
    tool = os.path.join(TOOLS, "blind_ab.py")
    if not os.path.exists(tool):
        log(f"no blind sheets: {tool} is missing")
        return None
    folder = os.path.join(out, f"sheets_{a}_vs_{b}_{size}")
    by = {(r["pair"], r["variant"]): r for r in rows}
    args = []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        if (pair, a) in by and (pair, b) in by:
            links = []
            for v in (a, b):
                link = os.path.join(folder, "src", v, f"{pair}.png")
                os.makedirs(os.path.dirname(link), exist_ok=True)
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(os.path.abspath(by[(pair, v)]["path"]), link)
                links.append(link)
            args += [by[(pair, a)]["content"], by[(pair, a)]["style_path"], *links]
    subprocess.run([sys.executable, tool, "make", folder, "--seed=0", *args], check=True)
    with open(os.path.join(folder, "pairs.txt"), "w") as f:   # which pair each sheet shows (not which is which)
        f.write("\n".join(f"sheet_{n:02d}: {p}" for n, p in enumerate(
            p for p in dict.fromkeys(r["pair"] for r in rows) if (p, a) in by and (p, b) in by)) + "\n")
    log(f"blind sheets: {folder}")
    return folder


if __name__ == "__main__":
    sys.exit(main())
