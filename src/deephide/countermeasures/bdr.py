"""BDR: bit-depth reduction of the uint8 training set (data stage), exact integer lookup tables; BDR-1 ... BDR-7."""

from __future__ import annotations

import numpy as np

from ..errors import DeephideError
from ..data.arrays import check_images
from .base import Countermeasure, register_variant
from .registry import COUNTERMEASURES


def bdr_lut(bits: int) -> np.ndarray:
    """uint8 (256,) lookup table of bit-depth reduction to ``bits`` bits, in exact integer arithmetic.

    Quantiser: with L = 2^bits - 1 and x = v / 255, q = round(x * L) / L, stored as round(q * 255).
    Neither rounding ever meets a tie (255 and L are odd), so no tie rule is involved.
    2 bits -> levels {0, 85, 170, 255}: 0..42 -> 0, 43..127 -> 85, 128..212 -> 170, 213..255 -> 255.
    """
    levels = (1 << bits) - 1
    v = np.arange(256, dtype=np.int64)
    q = (2 * v * levels + 255) // 510  # round(v * L / 255)
    return ((2 * q * 255 + levels) // (2 * levels)).astype(np.uint8)  # round(q * 255 / L)


@COUNTERMEASURES.register("BDR")
class BitDepthReduction(Countermeasure):
    """Bit-depth reduction q = round(x(2^b-1))/(2^b-1) per channel (data); params: bits=2 (1..8)."""

    name = "BDR"
    stage = "data"

    def __init__(self, bits: int = 2) -> None:
        if not isinstance(bits, int) or not 1 <= bits <= 8:
            raise DeephideError(f"BDR: bits must be an integer in 1..8, got {bits!r}")
        super().__init__(bits=bits)
        self.bits = bits
        self._lut = bdr_lut(bits)

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        check_images(images, self.name)
        return self._lut[images]  # a per-value map: one table lookup, exact, no float


for _b in range(1, 8):
    register_variant(f"BDR-{_b}", BitDepthReduction, f"BDR with bits={_b}; no parameters", bits=_b)

