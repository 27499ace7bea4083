"""The ``logo`` source: one owner-supplied picture hidden in every image (for source tracing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DeephideError
from .registry import SEMANTIC_SOURCES
from .bank import SecretBank

if TYPE_CHECKING:
    from ..data.imageset import ImageSet


def read_logo(path: str | Path, size: int) -> np.ndarray:
    """A logo file as uint8 (size, size, 3): RGB conversion (transparency onto white), square resize."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    except FileNotFoundError:
        raise DeephideError(f"{path}: logo file not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DeephideError(f"{path}: not a readable image ({e})") from None
    return np.asarray(im, dtype=np.uint8)


@SEMANTIC_SOURCES.register("logo")
def logo_source(train: "ImageSet", mode: str, size: int, seed: int, **options: Any) -> SecretBank:
    """An owner's logo (option path=<png>) hidden in every image, for `deephide trace` later."""
    path = options.pop("path", None)
    if options:
        raise DeephideError(f"semantic source 'logo': unknown options {sorted(options)}; known: path")
    if not path:
        raise DeephideError("semantic source 'logo': give the picture with path=<file.png>")
    img = read_logo(path, size)
    k = train.num_classes
    return SecretBank(np.repeat(img[None], k, axis=0), np.arange(k), k, {"logo": str(path)})
