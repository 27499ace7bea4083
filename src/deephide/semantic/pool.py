"""The offline candidate pool: colour emoji rendered from Noto Color Emoji, named by PyPI ``emoji``.

Only fully-qualified emoji of a single code point are used (about 1,400; after dropping the
ones this font has no glyph for, about 1,380): they render identically with or without
Pillow's raqm layout engine, and the multi-code-point sequences (skin tones, ZWJ families,
flags) mostly repeat the same shapes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DeephideError

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_PX = 109  # the only strike size of Noto Color Emoji's bitmaps (CBDT)
_FONT_HINT = ("install Debian's fonts-noto-color-emoji (apt-get install fonts-noto-color-emoji) "
              "or pass font=<colour emoji .ttf>")


@dataclass(frozen=True, eq=False)
class EmojiPool:
    """Renderable emoji with names.

    chars: one code point per entry (without U+FE0F).
    names: English names ("grinning face"), index-aligned with ``chars``.
    thumbs: float32 (N, 16, 16, 3) in [0, 1], each emoji composited on white (colour layout).
    masks: float32 (N, 16, 16) in [0, 1], the opacity (silhouette).
    coverage: float32 (N,), fraction of the emoji's square crop that is opaque (shape strength).
    detail: float32 (N,), mean luminance gradient inside the silhouette at 32x32 (0 for a flat
        square; high for faces, objects, characters): how much "intricate shape" it carries.
    font: path of the font the pool was rendered from.
    """

    chars: tuple[str, ...]
    names: tuple[str, ...]
    thumbs: np.ndarray
    masks: np.ndarray
    coverage: np.ndarray
    detail: np.ndarray
    font: str

    def __len__(self) -> int:
        return len(self.chars)


def emoji_name(short: str) -> str:
    """':T-Rex:' -> 'T-Rex'; ':seven_o’clock:' -> "seven o'clock"."""
    return short.strip(":").replace("_", " ").replace("\u2019", "'")


def candidate_emoji() -> list[tuple[str, str]]:
    """(char, name) of every fully-qualified single-code-point emoji, sorted by code point."""
    try:
        import emoji
    except ImportError:
        raise DeephideError("semantic pool: package 'emoji' is not installed (pip install emoji)") from None
    fq = emoji.STATUS["fully_qualified"]
    out = {}
    for seq, info in emoji.EMOJI_DATA.items():
        base = seq.replace("\ufe0f", "")
        if info.get("status") == fq and len(base) == 1 and "en" in info:
            out[base] = emoji_name(info["en"])
    return sorted(out.items(), key=lambda kv: ord(kv[0]))


def check_font(font: str | None) -> str:
    """Resolve the font path (None -> default) and check Pillow can open it at 109 px."""
    path = Path(font or DEFAULT_FONT).expanduser()
    if not path.is_file():
        raise DeephideError(f"font={path}: emoji font not found; {_FONT_HINT}")
    _open_font(str(path))
    return str(path)


@functools.lru_cache(maxsize=4)
def _open_font(path: str):
    from PIL import ImageFont

    try:
        # BASIC layout: identical rendering whether or not this Pillow has raqm
        return ImageFont.truetype(path, FONT_PX, layout_engine=ImageFont.Layout.BASIC)
    except OSError as e:
        raise DeephideError(f"font={path}: Pillow cannot open it at {FONT_PX} px ({e}); {_FONT_HINT}") from None


@functools.lru_cache(maxsize=8192)
def emoji_rgba(font: str, char: str) -> np.ndarray:
    """uint8 (S, S, 4) RGBA of ``char`` cropped to its opaque part and centred in a square, S <= 136.

    An empty (0, 0, 4) array when the font draws nothing for ``char``.
    """
    from PIL import Image, ImageDraw

    f = _open_font(font)
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), char, font=f, embedded_color=True)
    a = np.asarray(canvas)
    ys, xs = np.nonzero(a[..., 3] > 8)
    if ys.size == 0:
        return np.zeros((0, 0, 4), dtype=np.uint8)
    crop = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    s = max(h, w)
    out = np.zeros((s, s, 4), dtype=np.uint8)
    out[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = crop
    out.setflags(write=False)
    return out


def load_pool(font: str | None = None, limit: int | None = None) -> EmojiPool:
    """The rendered pool; ``limit`` keeps that many candidates evenly spaced over code points."""
    path = check_font(font)
    if limit is not None and limit < 2:
        raise DeephideError(f"pool_limit={limit}: need at least 2 emoji")
    return _load_pool(path, limit)


@functools.lru_cache(maxsize=4)
def _load_pool(font: str, limit: int | None) -> EmojiPool:
    # cached per process: rendering all ~1.4k glyphs takes about a second
    from PIL import Image

    cands = candidate_emoji()
    if limit is not None and limit < len(cands):
        # evenly spaced over code points, so a small pool still spans every emoji block
        idx = np.unique(np.linspace(0, len(cands) - 1, limit).round().astype(int))
        cands = [cands[i] for i in idx]
    chars, names, thumbs, masks, cover, detail = [], [], [], [], [], []
    for ch, name in cands:
        rgba = emoji_rgba(font, ch)
        if rgba.size == 0:
            continue  # the font lacks this (usually newer) emoji
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        if alpha.mean() < 0.02:
            continue
        t = np.asarray(Image.fromarray(rgba).resize((16, 16), Image.Resampling.BOX)).astype(np.float32) / 255.0
        thumbs.append(t[..., :3] * t[..., 3:] + (1.0 - t[..., 3:]))
        masks.append(t[..., 3])
        detail.append(_inner_detail(rgba))
        chars.append(ch)
        names.append(name)
        cover.append(float(alpha.mean()))
    if len(chars) < 2:
        raise DeephideError(f"font={font}: fewer than 2 emoji render with this font; {_FONT_HINT}")
    return EmojiPool(tuple(chars), tuple(names), np.stack(thumbs).astype(np.float32),
                     np.stack(masks).astype(np.float32), np.asarray(cover, dtype=np.float32),
                     np.asarray(detail, dtype=np.float32), font)


def _inner_detail(rgba: np.ndarray) -> float:
    """Mean luminance gradient (0..1 per px) over the opaque interior of the 32x32 rendering."""
    from PIL import Image

    t = np.asarray(Image.fromarray(rgba).resize((32, 32), Image.Resampling.BOX)).astype(np.float32) / 255.0
    a = t[..., 3]
    lum = (t[..., :3] @ np.asarray([0.299, 0.587, 0.114], np.float32)) * a + (1.0 - a)
    gy, gx = np.abs(np.diff(lum, axis=0))[:, :-1], np.abs(np.diff(lum, axis=1))[:-1, :]
    # interior: the pixel and its right/lower neighbours are opaque, so the silhouette edge is ignored
    inner = (a[:-1, :-1] > 0.99) & (a[1:, :-1] > 0.99) & (a[:-1, 1:] > 0.99)
    return float((gx + gy)[inner].mean()) if inner.any() else 0.0
