"""The countermeasure interface, its registry and the helpers every transform shares.

A countermeasure is what a data *user* does to train on protected data anyway. Each one declares
where it acts (``stage``):

- ``"data"``: once, on the uint8 training set, before training (filters, quantisers, JPEG).
- ``"batch"``: on every training batch, after the standard crop/flip (Cutout, CutMix, Mixup, noise).
- ``"step"``: inside the training step, with access to the model (adversarial training).

The victim trainer (``deephide.training.trainer``) calls exactly the methods below.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..data.arrays import check_images
from ..errors import DeephideError
from .registry import COUNTERMEASURES

STAGES = ("data", "batch", "step")

# Data-stage transforms work on chunks of about this many uint8 values (N*H*W*C): a 3x3 filter
# holds ~10 float32 copies of a chunk, so 2^22 values keep the peak near 200 MB for any N.
CHUNK_VALUES = 1 << 22


class Countermeasure:
    """Base class: identity at every stage; subclasses override the method of their stage.

    Attributes:
        name: the registered name (set by :func:`build_countermeasure`).
        stage: ``"data"``, ``"batch"`` or ``"step"``.
        test_transform: apply the same data-stage transform to the test set as well
            (paper default False: the preprocessing acts on the training data only).
        select: ``"final"`` (report the final accuracy) or ``"best"`` (best evaluation; early stopping).
        params: the constructor parameters, JSON-serialisable, recorded with every result.
    """

    name: str = "Countermeasure"
    stage: str = "data"
    test_transform: bool = False
    select: str = "final"

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        """uint8 (N, H, W, C), C in {1, 3} -> uint8 of the same shape; deterministic for ``seed``."""
        return check_images(images, self.name).copy()

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x float (N, C, H, W) in [0, 1] on any device, y int64 (N,) -> (x', target).

        target is int64 (N,) labels or float (N, num_classes) probabilities for a soft cross-entropy.
        Random numbers come from ``gen`` (a CPU generator) so results do not depend on the device.
        """
        return x, y

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Stage ``"step"``: the input the model is trained on this step, float in [0, 1], x's shape."""
        return x

    def config(self) -> dict[str, Any]:
        """Everything that defines this countermeasure, for provenance records."""
        return {"name": self.name, "stage": self.stage, "params": dict(self.params),
                "test_transform": self.test_transform, "select": self.select}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


def build_countermeasure(name: str, test_transform: bool | None = None, **params: Any) -> Countermeasure:
    """Build the countermeasure registered as ``name`` with ``params``.

    test_transform: override whether a data-stage transform is also applied to the test set.
    Unknown names or parameters raise :class:`DeephideError` (one line).
    """
    factory = COUNTERMEASURES.get(name)
    try:
        cm = factory(**params)
    except TypeError as e:  # an unexpected keyword: report it in the user's terms
        raise DeephideError(f"countermeasure '{name}': bad parameters {sorted(params)} ({e})") from None
    cm.name = name
    if test_transform is not None:
        cm.test_transform = bool(test_transform)
    return cm


def register_variant(name: str, cls: Callable[..., Countermeasure], help: str, **fixed: Any) -> None:
    """Register ``name`` as ``cls(**fixed)``; the fixed parameters cannot be overridden (the name says them)."""

    def factory(**params: Any) -> Countermeasure:
        clash = sorted(set(params) & set(fixed))
        if clash:
            raise DeephideError(f"countermeasure '{name}' fixes {', '.join(clash)}; use the generic entry to change it")
        return cls(**fixed, **params)

    COUNTERMEASURES.register(name, help=help)(factory)


# ---------------------------------------------------------------------------------------------
# helpers for data-stage transforms


def chunk_slices(n: int, per_image: int, budget: int | None = None) -> Iterator[slice]:
    """Consecutive slices of ``range(n)``, each at most ``budget`` values (default CHUNK_VALUES), >= 1 image."""
    budget = CHUNK_VALUES if budget is None else budget
    step = max(1, budget // max(1, per_image))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def map_uint8_chunks(images: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], where: str) -> np.ndarray:
    """Apply ``fn`` chunk by chunk: uint8 (N, H, W, C) -> fn(uint8 tensor (n, C, H, W)) -> uint8 (N, H, W, C).

    ``fn`` must return a uint8 (n, C, H, W) tensor on the CPU (shape unchanged).
    """
    check_images(images, where)
    out = np.empty_like(images)
    per_image = int(np.prod(images.shape[1:]))
    for sl in chunk_slices(images.shape[0], per_image):
        # a read-only (memory-mapped) set is copied chunk by chunk: torch warns on tensors over read-only memory
        t = torch.from_numpy(np.require(images[sl], requirements=["C", "W"])).permute(0, 3, 1, 2)
        r = fn(t)
        out[sl] = r.permute(0, 2, 3, 1).numpy()
    return out


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float values on the 0..255 scale -> uint8, rounding to nearest (half to even) and clamping."""
    return x.round().clamp_(0, 255).to(torch.uint8)


def safe_border(mode: str, h: int, w: int) -> str:
    """``mode``, or ``"replicate"`` where the image is too small to reflect a 1-pixel border."""
    # torch's reflect padding needs a side of at least 2 pixels; a 1-pixel side has one neighbour: itself
    return "replicate" if mode == "reflect" and min(h, w) < 2 else mode


# ---------------------------------------------------------------------------------------------
# helpers for batch-stage transforms


def cpu_randint(high: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """int64 (n,) uniform in [0, high), drawn on the CPU from ``gen``."""
    return torch.randint(0, high, (n,), generator=gen, dtype=torch.int64)


def box_mask(y1: torch.Tensor, y2: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """bool (N, 1, h, w): True inside the half-open boxes [y1, y2) x [x1, x2) given per sample (N,)."""
    rows = torch.arange(h, device=y1.device)
    cols = torch.arange(w, device=x1.device)
    in_r = (rows[None, :] >= y1[:, None]) & (rows[None, :] < y2[:, None])
    in_c = (cols[None, :] >= x1[:, None]) & (cols[None, :] < x2[:, None])
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def centred_box(cy: torch.Tensor, cx: torch.Tensor, side_h: torch.Tensor, side_w: torch.Tensor,
                h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes of exact side (side_h, side_w) centred at (cy, cx), then clipped to the image.

    All int64 (N,). The box starts at ``c - side // 2`` so even sides are centred as in DeVries &
    Taylor's Cutout (``[c - s/2, c + s/2)``); odd sides put the extra pixel after the centre.
    Returns (y1, y2, x1, x2), half-open, inside [0, h] x [0, w].
    """
    y1 = cy - side_h // 2
    x1 = cx - side_w // 2
    return y1.clamp(0, h), (y1 + side_h).clamp(0, h), x1.clamp(0, w), (x1 + side_w).clamp(0, w)


@contextlib.contextmanager
def seeded_global_rng(gen: torch.Generator, device: torch.device) -> Iterator[None]:
    """Run code that draws from torch's global RNG (e.g. kornia augmentations) seeded from ``gen``.

    The global state of the CPU (and of ``device`` if it is a GPU) is restored on exit, so the
    caller's random stream is untouched and the result is a function of ``gen`` alone (per device type).
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield
