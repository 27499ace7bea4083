"""deephide.ops.wavelets: the Haar DWT/IWT (orthonormal, exact inverse, band meaning, errors)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.errors import DeephideError
from deephide.hiding import (
    dwt,
    iwt,
    lowpass,
)


def test_dwt_iwt_roundtrip_and_shapes() -> None:
    x = torch.rand(3, 5, 6, 10)
    y = dwt(x)
    assert y.shape == (3, 20, 3, 5)
    assert torch.allclose(iwt(y), x, atol=1e-6, rtol=0)


def test_dwt_is_orthonormal() -> None:
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    y = dwt(x)
    assert torch.allclose(y.square().sum(), x.square().sum(), rtol=1e-12)
    # the adjoint of an orthonormal map is its inverse: <dwt(x), z> == <x, iwt(z)>
    z = torch.randn_like(y)
    assert torch.allclose((y * z).sum(), (x * iwt(z)).sum(), rtol=1e-12)


def test_dwt_constant_image_and_channel_layout() -> None:
    x = torch.full((1, 3, 4, 4), 0.25)
    x[:, 1] = 0.5
    y = dwt(x)
    # group-major: channels 0..2 are LL of input channels 0..2, then HL, LH, HH
    assert torch.equal(y[:, 0], torch.full((1, 2, 2), 0.5))
    assert torch.equal(y[:, 1], torch.full((1, 2, 2), 1.0))
    assert torch.equal(y[:, 3:], torch.zeros(1, 9, 2, 2))
    assert torch.equal(lowpass(x), y[:, :3])


def test_dwt_band_meaning() -> None:
    # column-alternating pattern: only HL (column difference) is non-zero
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).repeat(1, 1, 2, 2)
    y = dwt(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_dwt_dtype_and_errors() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert dwt(x).dtype == torch.float64
    assert dwt(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(DeephideError, match="even"):
        dwt(torch.rand(1, 3, 5, 4))
    with pytest.raises(DeephideError, match="floating"):
        dwt(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(DeephideError, match="multiple of 4"):
        iwt(torch.rand(1, 6, 2, 2))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
def test_dwt_roundtrip_property(seed: int, c: int, h: int, w: int) -> None:
    x = torch.rand(2, c, 2 * h, 2 * w, generator=torch.Generator().manual_seed(seed))
    assert (iwt(dwt(x)) - x).abs().max() <= 1e-6
