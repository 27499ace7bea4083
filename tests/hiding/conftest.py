"""Helpers of the hider tests: a small INN and random weights for it (session-scoped factories, so hypothesis
tests can take them too)."""

import pytest
import torch

from deephide.hiding import Hider, HiderConfig


@pytest.fixture(scope="session")
def randomise():
    """``randomise(module, scale, seed)``: non-zero random weights everywhere (incl. the zero-initialised last convs)."""
    def fn(module: torch.nn.Module, scale: float, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return fn


@pytest.fixture(scope="session")
def tiny_hider():
    """``tiny_hider(size=8, blocks=2, growth=4)``: a small Hider (clamp 2)."""
    def fn(size: int = 8, blocks: int = 2, growth: int = 4) -> Hider:
        return Hider(HiderConfig(blocks=blocks, growth=growth, clamp=2.0, image_size=size))
    return fn
