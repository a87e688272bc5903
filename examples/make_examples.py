"""Makes the example images in this folder (run from the repository root: python examples/make_examples.py).

swirls.jpg   a painting-like style image made here: noise smeared along a swirling flow field (line integral
             convolution, Cabral & Leedom 1993), coloured with a night-sky palette of blues and yellows.
             Brush-stroke texture, strong colours, structures at several scales: what a style image needs.
chelsea.jpg  the cat photograph from scikit-image's data module (CC0), copied when scikit-image is
             installed; the repository ships the copy, so nothing here is needed to run the examples.
chelsea_mask.png  labels over chelsea.jpg for spatial control: red the cat, blue the background, white
             the eyes (drawn as ellipses by hand-measured coordinates).
"""
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def _bilinear(img, y, x):
    h, w = img.shape
    y, x = np.clip(y, 0, h - 1.001), np.clip(x, 0, w - 1.001)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * img[y0, x0] + (1 - fy) * fx * img[y0, x0 + 1]
            + fy * (1 - fx) * img[y0 + 1, x0] + fy * fx * img[y0 + 1, x0 + 1])


def swirls(h=384, w=512, seed=1889):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Flow: a rolling wind plus a few vortices of different sizes and spins.
    vy = 0.35 * np.sin(2 * np.pi * xx / (0.6 * w) + 1.3)
    vx = np.ones_like(xx)
    glow = np.zeros_like(xx)
    for _ in range(7):
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.05, 0.95) * w
        r = rng.uniform(0.06, 0.2) * w
        spin = rng.choice([-1, 1]) * rng.uniform(2.0, 4.0)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        fall = np.exp(-d2 / (2 * r * r))
        vy += spin * (xx - cx) / r * fall
        vx += -spin * (yy - cy) / r * fall
        glow += np.exp(-d2 / (2 * (0.35 * r) ** 2))
    norm = np.hypot(vx, vy) + 1e-9
    vy, vx = vy / norm, vx / norm
    # Stroke-sized noise: coarse white noise, upsampled, so strokes are a few pixels wide.
    coarse = rng.uniform(size=(h // 3 + 2, w // 3 + 2))
    noise = _bilinear(coarse, yy / 3, xx / 3)
    noise = (noise > 0.55).astype(np.float64) * rng.uniform(0.5, 1.0, size=noise.shape) + 0.2 * noise
    # Line integral convolution along the flow, both directions.
    acc, count = noise.copy(), 1.0
    for direction in (1.0, -1.0):
        py, px = yy.copy(), xx.copy()
        for _ in range(14):
            dy, dx = _bilinear(vy, py, px), _bilinear(vx, py, px)
            py, px = py + direction * dy, px + direction * dx
            acc += _bilinear(noise, py, px)
            count += 1
    lic = acc / count
    lic = (lic - lic.mean()) / (lic.std() + 1e-9)
    # Colour: deep blue sky, lighter blue bands, yellow-white where the vortices glow.
    base = 0.25 + 0.12 * np.sin(2 * np.pi * yy / (0.45 * h) + 2 * np.sin(2 * np.pi * xx / w))
    t = np.clip(base + 0.75 * np.clip(glow, 0, 1) + 0.13 * lic, 0, 1)
    palette = np.array([[0.03, 0.06, 0.20], [0.07, 0.22, 0.52], [0.30, 0.52, 0.80], [0.85, 0.82, 0.45],
                        [0.98, 0.90, 0.30], [1.0, 0.98, 0.85]])
    stops = np.linspace(0, 1, len(palette))
    rgb = np.stack([np.interp(t, stops, palette[:, c]) for c in range(3)], -1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def chelsea_mask(h=300, w=451):
    """Three label colours over chelsea.jpg: the cat, the background, the eyes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    mask = np.zeros((h, w, 3), np.uint8)
    mask[:] = (0, 0, 255)                                                       # background
    cat = ((xx - 190) / 215) ** 2 + ((yy - 175) / 205) ** 2 <= 1
    mask[cat] = (255, 0, 0)
    for cx, cy, rx, ry in ((170, 113, 40, 33), (318, 136, 28, 27)):             # the eyes
        mask[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = (255, 255, 255)
    return mask


def main():
    Image.fromarray(swirls()).save(os.path.join(HERE, "swirls.jpg"), quality=92)
    Image.fromarray(chelsea_mask()).save(os.path.join(HERE, "chelsea_mask.png"))
    try:
        from skimage import data
        Image.fromarray(data.chelsea()).save(os.path.join(HERE, "chelsea.jpg"), quality=92)
    except ImportError:
        print("scikit-image is not installed: chelsea.jpg left as it is")


if __name__ == "__main__":
    main()
