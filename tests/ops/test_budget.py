"""deephide.ops.budget: the L-inf budget (projection, quantisation on write, the bounded perturbation)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.errors import DeephideError
from deephide.hiding import (
    project_to_budget,
    quantise_within_budget,
)
from deephide.ops.budget import bounded_perturbation, parse_eps

EPS = 8 / 255


# ---------------------------------------------------------------- budget

def test_project_to_budget_clamps_ball_and_box() -> None:
    cover = torch.tensor([0.0, 0.5, 1.0, 0.5]).view(1, 1, 2, 2)
    stego = torch.tensor([-0.2, 0.9, 1.3, 0.51]).view(1, 1, 2, 2)
    out = project_to_budget(stego, cover, EPS).flatten()
    assert torch.allclose(out, torch.tensor([0.0, 0.5 + EPS, 1.0, 0.51]))


def test_quantise_edges_and_errors() -> None:
    cover = torch.tensor([0, 255, 100, 100], dtype=torch.uint8).view(1, 1, 2, 2)
    stego = torch.tensor([-1.0, 2.0, 0.0, 1.0]).view(1, 1, 2, 2)
    out = quantise_within_budget(stego, cover, levels=8).flatten().tolist()
    assert out == [0, 255, 92, 108]
    with pytest.raises(DeephideError, match="NaN"):
        quantise_within_budget(torch.full((1, 1, 2, 2), float("nan")), cover)
    with pytest.raises(DeephideError, match="uint8"):
        quantise_within_budget(stego, cover.float())




@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-3, 0.1, 10.0, 1e4]), levels=st.integers(1, 16))
def test_bounded_perturbation_property(seed: int, scale: float, levels: int) -> None:
    """Any raw value, any cover on the uint8 grid (0 and 255 included): inside the ball and the box."""
    g = torch.Generator().manual_seed(seed)
    cover = torch.randint(0, 256, (2, 3, 8, 8), generator=g).float() / 255
    cover[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.0, 1.0])
    raw = torch.randn((2, 3, 8, 8), generator=g) * scale
    raw.requires_grad_(True)
    eps = levels / 255
    d = bounded_perturbation(raw, cover, eps)
    assert torch.isfinite(d).all()
    assert float(d.detach().abs().max()) <= eps + 1e-7
    stego = cover + d.detach()
    assert float(stego.min()) >= -1e-7 and float(stego.max()) <= 1 + 1e-7
    # rounding what the hider made is already within budget: the clip on write changes nothing
    q = quantise_within_budget(stego, (cover * 255).round().to(torch.uint8), levels)
    assert torch.equal(q.float(), torch.round(stego * 255).clamp(0, 255))
    d.sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_bounded_perturbation_is_identity_near_zero_and_one_sided_at_the_box() -> None:
    cover = torch.full((1, 1, 1, 4), 0.5)
    small = torch.tensor([1e-4, -1e-4, 0.0, 2e-4]).view(1, 1, 1, 4)
    assert torch.allclose(bounded_perturbation(small, cover, EPS), small, atol=1e-9)
    black, white = torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2)
    pm = torch.tensor([1.0, -1.0]).view(1, 1, 1, 2)
    assert bounded_perturbation(pm, black, EPS).flatten().tolist() == pytest.approx([EPS, 0.0], abs=1e-6)
    assert bounded_perturbation(pm, white, EPS).flatten().tolist() == pytest.approx([0.0, -EPS], abs=1e-6)
    with pytest.raises(DeephideError, match="eps"):
        bounded_perturbation(pm, black, 0.0)


def test_parse_eps():
    assert parse_eps("8/255") == 8 and parse_eps("16") == 16 and parse_eps(8 / 255) == 8
    for bad in ("8/256", "abc", "0", "300"):
        with pytest.raises(DeephideError, match="--eps"):
            parse_eps(bad)
