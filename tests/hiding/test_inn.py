"""deephide.hiding.inn: the invertible hider (coupling blocks, exact inverse, identity at init, grey covers, the bounded output)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.errors import DeephideError
from deephide.hiding import (
    CouplingBlock,
    DenseSubnet,
    Hider,
    HiderConfig,
    dwt,
    freq_loss,
    get_hider_profile,
    hider_config,
    project_to_budget,
    quantise_within_budget,
    reveal_loss,
)
from deephide.hiding.train import HideRevealStep, budget_stats

EPS = 8 / 255


# ---------------------------------------------------------------- INN

def test_paper_hider_has_hinet_parameter_count() -> None:
    prof = get_hider_profile("paper")
    h = Hider(hider_config(prof, 32), init_scale=None)
    assert h.num_parameters() == 4_050_240  # HiNet's "4.05 M"


def test_dense_subnet_starts_at_zero() -> None:
    net = DenseSubnet(12, 12, growth=4)
    assert torch.equal(net(torch.randn(2, 12, 4, 4)), torch.zeros(2, 12, 4, 4))


def _dense_before_issue_20(net: DenseSubnet, x: torch.Tensor) -> torch.Tensor:
    """DenseSubnet.forward as it was: one cat of the input with every feature so far (fp32 once x is fp32)."""
    feats = [x]
    for conv in net.convs[:4]:
        feats.append(net.act(conv(torch.cat(feats, dim=1))))
    return net.convs[4](torch.cat(feats, dim=1))


@pytest.mark.parametrize("amp", [False, True])
def test_dense_subnet_keeps_its_values_and_gradients_bit_for_bit_under_autocast(amp: bool, randomise) -> None:
    # the subnet now casts its input to the autocast dtype at each use, so the cat stays bf16: a pure speed change
    net = DenseSubnet(12, 12, growth=8)
    randomise(net, 0.1, seed=0)
    x = torch.randn(3, 12, 6, 6, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=torch.channels_last)
    results = []
    for forward in (net.forward, lambda t: _dense_before_issue_20(net, t)):
        xi = x.clone().requires_grad_(True)
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = forward(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append([y.detach(), xi.grad] + [p.grad for p in net.parameters()])
    assert results[0][0].dtype == (torch.bfloat16 if amp else torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(*results))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):  # protect's path: x cast once
        assert torch.equal(net(x), _dense_before_issue_20(net, x))


def test_coupling_block_inverse_random_weights(randomise) -> None:
    block = CouplingBlock(12, 12, clamp=2.0, growth=4)
    randomise(block, 0.05, seed=1)
    x = torch.randn(3, 24, 4, 4)
    y = block(x)
    assert (y - x).abs().max() > 1e-2  # really not the identity
    assert torch.allclose(block.inverse(y), x, atol=1e-5, rtol=0)


def test_inn_inverse_random_weights(tiny_hider, randomise) -> None:
    h = tiny_hider(size=8, blocks=3, growth=4)
    randomise(h, 0.05, seed=2)
    x = torch.rand(2, 24, 4, 4)
    y = h.inn_forward(x)
    assert (y - x).abs().max() > 1e-2
    assert (h.inn_inverse(y) - x).abs().max() <= 1e-5


def test_hider_is_identity_at_init(tiny_hider) -> None:
    h = tiny_hider(size=8, blocks=2)
    cover, secret = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    stego, r = h.hide(cover, secret)
    assert torch.equal(stego, cover)
    assert torch.equal(r, dwt(secret))
    assert torch.equal(h(cover, secret)[0], cover)
    # z = r is the exact lost information: reveal gives the secret back
    assert torch.allclose(h.reveal(stego, r), secret, atol=1e-6)


def test_hide_then_reveal_with_true_residual_random_weights(tiny_hider, randomise) -> None:
    h = tiny_hider(size=8, blocks=2, growth=4)
    randomise(h, 0.05, seed=3)
    cover, secret = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    stego, r = h.hide(cover, secret)
    assert stego.shape == cover.shape and r.shape == (2, 12, 4, 4)
    assert (stego - cover).abs().max() > 1e-3
    assert torch.allclose(h.reveal(stego, r), secret, atol=1e-5)
    assert h.reveal(stego).shape == secret.shape  # z = zeros by default


@pytest.mark.parametrize("amp", [False, True])
def test_stego_skips_the_residual_with_the_same_values_and_gradients(randomise, amp: bool) -> None:
    """Hider.stego (and perturbation(residual=False)) compute the last block's cover half only: the stego images and
    every weight's gradient through stego and reveal (a training step's losses) equal hide's bit for bit."""
    h = Hider(HiderConfig(blocks=3, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    randomise(h, 0.05, seed=5)
    cover, secret = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)

    def grads(stego_of):
        h.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            stego = stego_of()
            loss = (stego - cover).square().mean() + (h.reveal(stego).float() - secret).square().mean()
        loss.backward()
        return stego.detach(), {k: p.grad.clone() for k, p in h.named_parameters()}

    full, g_full = grads(lambda: h.hide(cover, secret)[0])
    fast, g_fast = grads(lambda: h.stego(cover, secret))
    assert torch.equal(full, fast) and (full - cover).abs().max() > 1e-3
    assert g_full.keys() == g_fast.keys() and all(torch.equal(g_full[k], g_fast[k]) for k in g_full)
    raw, r = h.perturbation(cover, secret, residual=False)
    assert r is None and torch.equal(raw, h.perturbation(cover, secret)[0])
    big = torch.rand(1, 3, 12, 18)
    with torch.no_grad():
        assert torch.equal(h.hide_any_size(big, big.flip(-1)),
                           big + h.bound(h._perturbation(big, big.flip(-1))[0], big))


def test_reveal_any_size_inverts_hide_any_size(tiny_hider, randomise) -> None:
    """At a size other than the training one (a photo): what hide_any_size stored, reveal_any_size reads back, the
    same as reveal at the training size with z = 0."""
    h = tiny_hider(size=8, blocks=2, growth=4)
    randomise(h, 0.05, seed=3)
    cover, secret = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    stego, _ = h.hide(cover, secret)
    assert torch.allclose(h.reveal_any_size(stego), h.reveal(stego), atol=1e-6)
    big = h.hide_any_size(torch.rand(2, 3, 20, 34), torch.rand(2, 3, 20, 34))
    assert h.reveal_any_size(big).shape == (2, 3, 20, 34)
    with pytest.raises(DeephideError, match="even"):
        h.reveal_any_size(torch.rand(1, 3, 9, 8))


def test_hider_input_validation(tiny_hider) -> None:
    h = tiny_hider(size=8)
    with pytest.raises(DeephideError, match="trained for 8x8 images, data is 16x16"):
        h.hide(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(DeephideError, match="float"):
        h.hide(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.rand(1, 3, 8, 8))
    with pytest.raises(DeephideError, match="covers but"):
        h.hide(torch.rand(2, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(DeephideError, match="z must have shape"):
        h.reveal(torch.rand(1, 3, 8, 8), torch.zeros(1, 12, 2, 2))
    with pytest.raises(DeephideError, match="even"):
        HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=7)
    with pytest.raises(DeephideError, match="blocks"):
        HiderConfig(blocks=0, growth=4, clamp=2.0, image_size=8)


def _hide_reveal_loss(h: Hider, bf16: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    cover, secret = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        stego, _ = h.hide(cover, secret)
        assert stego.dtype == torch.float32  # residual form keeps the image in fp32 under autocast
        return reveal_loss(h.reveal(stego, torch.randn(2, 12, 4, 4, generator=g)), secret) + freq_loss(stego, cover)


def test_hider_gradients_at_init_and_after(tiny_hider, randomise) -> None:
    h = tiny_hider(size=8, blocks=2, growth=4)
    _hide_reveal_loss(h, bf16=False).backward()
    # at the identity only the secret-side subnets (eta, rho) see a gradient, in every block
    for block in h.blocks:
        assert block.eta.convs[4].weight.grad.abs().sum() > 0
    h.zero_grad()
    randomise(h, 0.05, seed=6)
    _hide_reveal_loss(h, bf16=True).backward()
    for name, p in h.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- grey covers

def _grey_and_colour_covers(size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    grey = torch.rand(2, 1, size, size, generator=g).expand(2, 3, size, size)
    return torch.cat((grey, torch.rand(2, 3, size, size, generator=g)))


def test_grey_covers_shared_keeps_grey_images_grey_and_colour_ones_as_rgb(tiny_hider, randomise) -> None:
    cover, secret = _grey_and_colour_covers(), torch.rand(4, 3, 8, 8)
    rgb = tiny_hider()
    randomise(rgb, 0.05, seed=2)
    shared = Hider(dataclasses.replace(rgb.config, grey_covers="shared"))
    shared.load_state_dict(rgb.state_dict())
    with torch.no_grad():
        s_rgb, r_rgb = rgb.hide(cover, secret)
        s_sh, r_sh = shared.hide(cover, secret)
    d_rgb, d_sh = s_rgb - cover, s_sh - cover
    assert float((d_rgb[:2].amax(1) - d_rgb[:2].amin(1)).max()) > 1e-3  # the plain INN tints grey covers
    assert torch.equal(d_sh[:2].amax(1), d_sh[:2].amin(1))  # shared: grey in, grey out
    assert torch.allclose(d_sh[:2], d_rgb[:2].mean(1, keepdim=True).expand(2, 3, 8, 8), atol=1e-6)
    assert torch.equal(s_sh[2:], s_rgb[2:]) and torch.equal(r_sh, r_rgb)  # colour covers and r untouched


def test_delta_bands_ll_keeps_only_the_ll_band_of_the_perturbation(tiny_hider, randomise) -> None:
    cover, secret = _grey_and_colour_covers(), torch.rand(4, 3, 8, 8)
    full = tiny_hider()
    randomise(full, 0.05, seed=3)
    ll = Hider(dataclasses.replace(full.config, delta_bands="ll", grey_covers="shared"))
    ll.load_state_dict(full.state_dict())
    with torch.no_grad():
        d_full = full.hide(cover, secret)[0] - cover
        d_ll = ll.hide(cover, secret)[0] - cover
    bands = dwt(d_ll.double())
    assert float(bands[:, 3:].abs().max()) < 1e-6  # HL, LH, HH of the perturbation are zero
    keep = dwt(d_full.double())[:, :3]
    assert torch.allclose(bands[2:, :3], keep[2:], atol=1e-5)  # colour covers: the LL band itself
    assert torch.allclose(bands[:2, :3], keep[:2].mean(1, keepdim=True).expand(2, 3, 4, 4), atol=1e-5)  # grey: shared too
    with pytest.raises(DeephideError, match="delta_bands must be one of all, ll"):
        HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, delta_bands="low")
    assert hider_config(get_hider_profile("tiny", delta_bands="ll"), 8).delta_bands == "ll"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), weight_scale=st.sampled_from([0.05, 0.5, 3.0]))
def test_bounded_hider_keeps_the_budget_before_any_clip(seed: int, weight_scale: float, randomise) -> None:
    """A randomly weighted hider with eps_levels: raw output within the budget and the box, every cover."""
    h = Hider(HiderConfig(blocks=2, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    randomise(h, weight_scale, seed)
    g = torch.Generator().manual_seed(seed + 1)
    cover = torch.randint(0, 256, (3, 3, 8, 8), generator=g).float() / 255
    cover[0] = 0.0  # a black image: only upward room
    secret = torch.rand((3, 3, 8, 8), generator=g)
    with torch.no_grad():
        stego, _ = h.hide(cover, secret)
    assert torch.isfinite(stego).all()
    assert float((stego - cover).abs().max()) * 255 <= 8 + 1e-4
    assert float(stego.min()) >= 0.0 and float(stego.max()) <= 1.0 + 1e-6
    stats = budget_stats((stego - cover) * 100, stego - cover, cover, EPS)  # the clip never acts on it
    assert stats["clip_share"] == 0.0 and stats["linf_levels"] <= 8 + 1e-4


def test_bounded_hider_is_identity_at_init_and_config_checks() -> None:
    h = Hider(HiderConfig(blocks=2, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    cover, secret = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.equal(h.hide(cover, secret)[0], cover)
    for bad in (0, 256, 2.5, True):
        with pytest.raises(DeephideError, match="eps_levels"):
            HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, eps_levels=bad)
    assert hider_config(get_hider_profile("cpu"), 32).eps_levels == 8
    assert hider_config(get_hider_profile("cpu", budget="soft"), 32).eps_levels is None
    with pytest.raises(DeephideError, match="budget"):
        hider_config(get_hider_profile("cpu", budget="hard"), 32)


def test_straight_through_gradient_reaches_the_inn_from_the_stored_image(randomise) -> None:
    """Every loss sees the stored (bounded, rounded) image, yet its gradient reaches every subnet."""
    h = Hider(HiderConfig(blocks=2, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    randomise(h, 0.05, 3)
    step = HideRevealStep(h, EPS, from_stored=True)
    cover, secret = torch.randint(0, 256, (2, 3, 8, 8)).float() / 255, torch.rand(2, 3, 8, 8)  # covers are uint8
    raw, stored, secret_hat, _ = step(cover, secret, None)
    # stored is exactly what protect writes: uint8 levels within the budget
    assert torch.allclose(stored * 255, torch.round(stored * 255), atol=1e-4)
    assert float((stored - cover).detach().abs().max()) * 255 <= 8 + 1e-4
    (freq_loss(stored, cover) + reveal_loss(secret_hat, secret)).backward()
    for name, p in h.named_parameters():
        if name.endswith("convs.4.weight"):  # the output conv of every phi, rho, eta
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    # and the path through the stored image alone (no reveal) reaches the hiding side
    h.zero_grad()
    raw, stored, _, _ = step(cover, secret, None)
    freq_loss(stored, cover).backward()
    assert float(h.blocks[0].phi.convs[4].weight.grad.abs().sum()) > 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), weight_scale=st.sampled_from([0.01, 0.1, 0.5]),
       extreme=st.booleans())
def test_budget_guarantee_property(seed: int, weight_scale: float, extreme: bool, tiny_hider, randomise) -> None:
    g = torch.Generator().manual_seed(seed)
    cover_u8 = torch.randint(0, 256, (2, 3, 8, 8), generator=g, dtype=torch.uint8)
    if extreme:  # saturated pixels stress the [0, 1] box
        cover_u8[:, 0] = 0
        cover_u8[:, 1] = 255
    secret = torch.rand(2, 3, 8, 8, generator=g)
    h = tiny_hider(size=8, blocks=1, growth=4)
    randomise(h, weight_scale, seed)
    cover = cover_u8.float() / 255
    with torch.no_grad():
        stego, _ = h.hide(cover, secret)
    proj = project_to_budget(stego, cover, EPS)
    assert float((proj - cover).abs().max()) <= EPS + 1e-6
    assert float(proj.min()) >= 0.0 and float(proj.max()) <= 1.0
    q = quantise_within_budget(proj, cover_u8, levels=8)
    assert q.dtype == torch.uint8
    assert int((q.int() - cover_u8.int()).abs().max()) <= 8
