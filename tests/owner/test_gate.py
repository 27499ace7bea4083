"""deephide.owner.gate: the reveal gate on photos at their own size, through the folder product's path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deephide.errors import DeephideError
from deephide.hiding.inn import Hider, HiderConfig
from deephide.owner.gate import photo_gate
from deephide.semantic.bank import SecretBank


def _bank(k: int = 3) -> SecretBank:
    return SecretBank(np.random.default_rng(0).integers(0, 256, (k, 16, 16, 3), dtype=np.uint8), np.arange(k), k)


def test_identity_hider_does_not_hide_and_changes_nothing():
    h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=16, eps_levels=8))
    photos = [np.random.default_rng(i).integers(0, 256, (30 + 2 * i, 41, 3), dtype=np.uint8) for i in range(3)]
    g = photo_gate(h, _bank(), photos)
    assert g["n"] == 3 and g["size"] == "41x30" and not g["hides"]
    assert g["mean_abs_levels"] == 0.0 and g["protected_psnr"] == 100.0  # unchanged: PSNR capped
    # the trivial answer is the mean secret resized to each photo: the same figure computed here by hand
    bank = _bank()
    mean = np.round(bank.images.astype(np.float64).mean(0)).astype(np.uint8)
    rng = np.random.default_rng(0)
    se = n = 0.0
    for a in photos:
        k = int(rng.integers(3))
        size = (a.shape[1] + a.shape[1] % 2, a.shape[0] + a.shape[0] % 2)
        up = lambda x: np.asarray(Image.fromarray(x).resize(size, Image.Resampling.BICUBIC), np.float64)  # noqa: E731
        t, s = up(mean)[:a.shape[0], :a.shape[1]], up(bank.images[k])[:a.shape[0], :a.shape[1]]
        se += float(((np.round(t) - s) ** 2).sum())
        n += s.size
    assert g["trivial_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / (se / n)), abs=1e-9)


def test_a_hider_that_hides_passes():
    """A stand-in with the Hider's interface whose reveal returns the secret it was given passes: the gate scores
    the reveal against each photo's own secret."""
    class Oracle(torch.nn.Module):
        config = HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=16, eps_levels=8)

        def hide_any_size(self, cover, secret):
            self.last = secret
            return cover

        def reveal_any_size(self, stego):
            return self.last

    g = photo_gate(Oracle(), _bank(), [np.full((24, 24, 3), 100, np.uint8)] * 2)
    assert g["hides"] and g["margin_db"] > 8


def test_bad_photos_one_line_error():
    h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=16, eps_levels=8))
    with pytest.raises(DeephideError, match="no photos"):
        photo_gate(h, _bank(), [])
    with pytest.raises(DeephideError, match="uint8"):
        photo_gate(h, _bank(), [np.zeros((8, 8), np.uint8)])
