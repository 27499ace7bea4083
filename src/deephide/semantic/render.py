"""Rendering semantic images from an anchor pictogram: the offline analogue of ControlNet-Canny.

What the members of one class share (so a network can take them as one shortcut): the anchor's
global shape, large (``FILL`` of the canvas) and centred, a dark outline along its silhouette
(the "edge map", kept whatever the colours do), and the class's background colour. What varies,
scaled by ``variation`` v in [0, 1] (0 = every member is the anchor itself):
  geometry  scale x(1 +- 0.08 v), rotation +- 12 v degrees, shift +- 0.05 v of the side;
  colour    hue +- 0.15 v turn, saturation x(1 +- 0.3 v), value x(1 +- 0.15 v) inside the shape;
  texture   a multiplicative pattern inside the shape (smooth noise, stripes or dots) of
            amplitude 0.3 v.
The prototype that recoloured freely (large hue changes, random textures, no outline, white
background) gave a weak shortcut; these ranges keep the silhouette and most of the colour layout.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

FILL = 0.86
OUTLINE_RGB = (24, 24, 24)


def class_background(k: int, seed: int) -> tuple[int, int, int]:
    """A light, saturated-enough colour for class ``k``: hues spread by the golden ratio."""
    hue = (0.13 + k * 0.6180339887 + (seed % 997) * 0.0137) % 1.0
    sat = 0.28 + 0.14 * ((k * 7) % 3) / 2.0  # three saturation levels separate neighbouring hues
    r, g, b = colorsys.hsv_to_rgb(hue, sat, 0.96)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def work_size(size: int) -> int:
    """Side at which to draw before area-downsampling to ``size`` (>= 128, a multiple of ``size``)."""
    return size * max(1, math.ceil(128 / size))


def render_member(rgba: np.ndarray, size: int, background: tuple[int, int, int],
                  rng: np.random.Generator | None = None, variation: float = 0.0,
                  outline: bool = True) -> np.ndarray:
    """One semantic image, uint8 (size, size, 3).

    rgba: uint8 (S, S, 4) square crop of the pictogram. ``rng`` None or ``variation`` 0 gives the
    canonical rendering (the class's anchor itself).
    """
    from PIL import Image

    v = float(variation) if rng is not None else 0.0
    big = work_size(size)
    u = (lambda: rng.uniform(-1.0, 1.0)) if v > 0 else (lambda: 0.0)  # type: ignore[union-attr]
    scale, angle = FILL * (1.0 + 0.08 * v * u()), 12.0 * v * u()
    dx, dy = 0.05 * v * big * u(), 0.05 * v * big * u()

    side = max(2, int(round(scale * big)))
    glyph = Image.fromarray(rgba).resize((side, side), Image.Resampling.BICUBIC)
    if angle:
        glyph = glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    layer.paste(glyph, (int(round((big - glyph.width) / 2 + dx)), int(round((big - glyph.height) / 2 + dy))))
    arr = np.asarray(layer).astype(np.float32) / 255.0
    rgb, alpha = arr[..., :3], arr[..., 3:]
    if v > 0:
        rgb = _recolour(rgb, rng, v)  # type: ignore[arg-type]
        rgb = np.clip(rgb * (1.0 + 0.3 * v * _texture(big, rng)[..., None]), 0.0, 1.0)  # type: ignore[arg-type]
    bg = np.asarray(background, dtype=np.float32) / 255.0
    out = rgb * alpha + bg * (1.0 - alpha)
    if outline:
        edge = _silhouette_edge(alpha[..., 0], max(1, round(big / size * max(1.0, size / 64))))
        out = out * (1.0 - edge[..., None]) + np.asarray(OUTLINE_RGB, np.float32) / 255.0 * edge[..., None]
    img = Image.fromarray(np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if big != size:
        img = img.resize((size, size), Image.Resampling.BOX)  # exact area average: no aliasing
    return np.asarray(img, dtype=np.uint8).copy()


def _silhouette_edge(alpha: np.ndarray, width: int) -> np.ndarray:
    """float32 (H, W) in {0, 1}: a band of about ``width`` px along the shape's outer boundary."""
    from PIL import Image, ImageFilter

    mask = Image.fromarray(((alpha > 0.5) * 255).astype(np.uint8))
    k = 2 * width + 1
    grown = np.asarray(mask.filter(ImageFilter.MaxFilter(k))) > 127
    inner = np.asarray(mask.filter(ImageFilter.MinFilter(3))) > 127
    return (grown & ~inner).astype(np.float32)


def _recolour(rgb: np.ndarray, rng: np.random.Generator, v: float) -> np.ndarray:
    """Moderate HSV jitter of float (H, W, 3) in [0, 1]."""
    dh = 0.15 * v * rng.uniform(-1, 1)
    ds = 1.0 + 0.3 * v * rng.uniform(-1, 1)
    dv = 1.0 + 0.15 * v * rng.uniform(-1, 1)
    h, s, val = _rgb_to_hsv(rgb)
    return _hsv_to_rgb((h + dh) % 1.0, np.clip(s * ds, 0, 1), np.clip(val * dv, 0, 1))


def _texture(n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (n, n) pattern in [-1, 1]: smooth noise, stripes or dots (chosen by ``rng``)."""
    from PIL import Image

    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    if kind == 0:
        cells = int(rng.integers(3, 9))
        coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        t = np.asarray(Image.fromarray(coarse).resize((n, n), Image.Resampling.BICUBIC))
    elif kind == 1:
        th = rng.uniform(0, math.pi)
        freq = rng.uniform(5, 12)
        t = np.sin(2 * math.pi * freq * (xx * math.cos(th) + yy * math.sin(th)) + rng.uniform(0, 2 * math.pi))
    else:
        freq = rng.uniform(5, 10)
        ph = rng.uniform(0, 2 * math.pi, 2)
        t = np.sin(2 * math.pi * freq * xx + ph[0]) * np.sin(2 * math.pi * freq * yy + ph[1])
    return np.clip(t, -1, 1).astype(np.float32)


def _rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, (g - b) / safe, np.where(mx == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(d > 0, (h / 6.0) % 1.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def background_for(background: str, k: int, seed: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """The background of a member of class ``k``: ``class`` fixed per class, ``white``, or ``varied`` (a random
    light colour per member, drawn from ``rng``)."""
    if background == "white":
        return (255, 255, 255)
    if background == "varied":
        return class_background(int(rng.integers(1 << 30)), seed)
    return class_background(k, seed)
