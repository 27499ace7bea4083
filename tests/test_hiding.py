"""Tests for deephide.hiding: wavelets, INN hider, losses, budget, checkpoints, profiles."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.errors import DeephideError
from deephide.hiding import (
    HIDER_PROFILES, CouplingBlock, DenseSubnet, Hider, HiderConfig, dwt, freq_loss, get_hider_profile,
    hide_loss, hider_config, iwt, lfc_loss, load_hider, load_training_state, loss_weights, lowpass,
    project_to_budget, quantise_within_budget, read_checkpoint, reveal_loss, save_hider, total_loss,
)

EPS = 8 / 255


def _randomise(module: torch.nn.Module, scale: float, seed: int) -> None:
    """Non-zero random weights everywhere (incl. the zero-initialised last convs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def _tiny(size: int = 8, blocks: int = 2, growth: int = 4) -> Hider:
    return Hider(HiderConfig(blocks=blocks, growth=growth, clamp=2.0, image_size=size))


# ---------------------------------------------------------------- wavelets

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
def test_dense_subnet_keeps_its_values_and_gradients_bit_for_bit_under_autocast(amp: bool) -> None:
    # the subnet now casts its input to the autocast dtype at each use, so the cat stays bf16: a pure speed change
    net = DenseSubnet(12, 12, growth=8)
    _randomise(net, 0.1, seed=0)
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


def test_coupling_block_inverse_random_weights() -> None:
    block = CouplingBlock(12, 12, clamp=2.0, growth=4)
    _randomise(block, 0.05, seed=1)
    x = torch.randn(3, 24, 4, 4)
    y = block(x)
    assert (y - x).abs().max() > 1e-2  # really not the identity
    assert torch.allclose(block.inverse(y), x, atol=1e-5, rtol=0)


def test_inn_inverse_random_weights() -> None:
    h = _tiny(size=8, blocks=3, growth=4)
    _randomise(h, 0.05, seed=2)
    x = torch.rand(2, 24, 4, 4)
    y = h.inn_forward(x)
    assert (y - x).abs().max() > 1e-2
    assert (h.inn_inverse(y) - x).abs().max() <= 1e-5


def test_hider_is_identity_at_init() -> None:
    h = _tiny(size=8, blocks=2)
    cover, secret = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    stego, r = h.hide(cover, secret)
    assert torch.equal(stego, cover)
    assert torch.equal(r, dwt(secret))
    assert torch.equal(h(cover, secret)[0], cover)
    # z = r is the exact lost information: reveal gives the secret back
    assert torch.allclose(h.reveal(stego, r), secret, atol=1e-6)


def test_hide_then_reveal_with_true_residual_random_weights() -> None:
    h = _tiny(size=8, blocks=2, growth=4)
    _randomise(h, 0.05, seed=3)
    cover, secret = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    stego, r = h.hide(cover, secret)
    assert stego.shape == cover.shape and r.shape == (2, 12, 4, 4)
    assert (stego - cover).abs().max() > 1e-3
    assert torch.allclose(h.reveal(stego, r), secret, atol=1e-5)
    assert h.reveal(stego).shape == secret.shape  # z = zeros by default


def test_hider_input_validation() -> None:
    h = _tiny(size=8)
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


def test_hider_gradients_at_init_and_after() -> None:
    h = _tiny(size=8, blocks=2, growth=4)
    _hide_reveal_loss(h, bf16=False).backward()
    # at the identity only the secret-side subnets (eta, rho) see a gradient, in every block
    for block in h.blocks:
        assert block.eta.convs[4].weight.grad.abs().sum() > 0
    h.zero_grad()
    _randomise(h, 0.05, seed=6)
    _hide_reveal_loss(h, bf16=True).backward()
    for name, p in h.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- losses

def test_hide_loss_zero_inside_budget_and_positive_outside() -> None:
    cover = torch.rand(2, 3, 8, 8)
    inside = cover + (torch.rand_like(cover) * 2 - 1) * EPS
    assert hide_loss(inside, cover, EPS).item() == 0.0
    stego = cover.clone()
    stego[0, 0, 0, 0] += EPS + 0.1
    expected = 0.1**2 / cover.numel()
    assert math.isclose(hide_loss(stego, cover, EPS).item(), expected, rel_tol=1e-3)


def test_reveal_and_freq_loss_values() -> None:
    a = torch.zeros(1, 3, 4, 4)
    assert math.isclose(reveal_loss(a + 0.5, a).item(), 0.25)
    # a constant shift c changes LL by 2c: MSE = 4 c^2
    assert math.isclose(freq_loss(a + 0.1, a).item(), 0.04, rel_tol=1e-5)
    # a pure high-frequency (checkerboard) change leaves LL untouched
    checker = ((torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2 - 1) * 0.1  # +-0.1
    assert freq_loss(a + checker, a).item() < 1e-12


def _flat_features(x: torch.Tensor) -> torch.Tensor:
    return x - 0.5  # undoes perturbation_to_image's shift: features proportional to x_pm


def test_lfc_loss_hand_values() -> None:
    cover = torch.full((2, 1, 2, 2), 0.5)
    pm = torch.zeros(2, 1, 2, 2)
    pm[0, 0, 0, 0] = EPS
    pm[1, 0, 0, 0] = EPS
    same = torch.tensor([3, 3])
    assert abs(lfc_loss(_flat_features, cover + pm, cover, same).item()) < 1e-6  # identical -> 0
    pm[1] = 0
    pm[1, 0, 1, 1] = EPS
    assert math.isclose(lfc_loss(_flat_features, cover + pm, cover, same).item(), 1.0, rel_tol=1e-6)  # orthogonal
    pm[1] = -pm[0]
    assert math.isclose(lfc_loss(_flat_features, cover + pm, cover, same).item(), 2.0, rel_tol=1e-6)


def test_lfc_loss_mean_over_same_class_pairs_only() -> None:
    cover = torch.full((3, 1, 2, 2), 0.5)
    pm = torch.zeros(3, 1, 2, 2)
    pm[0, 0, 0, 0] = pm[1, 0, 0, 0] = EPS  # class 0: identical pair -> 0
    pm[2, 0, 1, 1] = EPS  # class 1 alone; orthogonal to class 0 but cross-class pairs do not count
    labels = torch.tensor([0, 0, 1])
    assert abs(lfc_loss(_flat_features, cover + pm, cover, labels).item()) < 1e-6


def test_lfc_loss_without_pairs_is_zero_with_graph() -> None:
    stego = torch.rand(3, 3, 4, 4, requires_grad=True)
    calls = []
    loss = lfc_loss(lambda x: calls.append(1) or x, stego, torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0 and not calls
    loss.backward()
    assert torch.equal(stego.grad, torch.zeros_like(stego))


def test_lfc_loss_gradient_flows_through_features() -> None:
    feat = torch.nn.Conv2d(3, 4, 3)
    for p in feat.parameters():
        p.requires_grad_(False)
    stego = (torch.full((4, 3, 6, 6), 0.5) + torch.randn(4, 3, 6, 6) * 0.01).requires_grad_(True)
    loss = lfc_loss(feat, stego, torch.full((4, 3, 6, 6), 0.5), torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert stego.grad.abs().sum() > 0
    with pytest.raises(DeephideError, match="labels"):
        lfc_loss(feat, stego, stego, torch.tensor([0, 1]))


def test_total_loss_weights_and_switches() -> None:
    terms = {"hide": torch.tensor(1.0), "reveal": torch.tensor(2.0), "freq": torch.tensor(3.0),
             "lfc": torch.tensor(1000.0)}
    total, log = total_loss(terms)
    assert math.isclose(total.item(), 1 + 2 + 3 + 0.1, rel_tol=1e-6)
    assert log["reveal"] == 2.0 and math.isclose(log["total"], 6.1, rel_tol=1e-6)
    total, _ = total_loss(terms, {"reveal": 0.5, "lfc": 0})
    assert math.isclose(total.item(), 1 + 1 + 3, rel_tol=1e-6)
    # Table K: L_hide only; a NaN in a disabled term does not leak into the total
    terms["lfc"] = torch.tensor(float("nan"))
    total, log = total_loss(terms, enabled={"hide"})
    assert total.item() == 1.0 and math.isnan(log["lfc"])
    total, log = total_loss({"hide": torch.tensor(0.5)}, enabled={"hide"})
    assert total.item() == 0.5 and set(log) == {"hide", "total"}
    with pytest.raises(DeephideError, match="not computed"):
        total_loss({"hide": torch.tensor(0.5)}, enabled={"hide", "reveal"})
    with pytest.raises(DeephideError, match="unknown"):
        total_loss({"hide": torch.tensor(0.5), "bogus": torch.tensor(1.0)})
    with pytest.raises(DeephideError, match="disabled"):
        total_loss({"lfc": torch.tensor(1.0)}, {"lfc": 0.0})


def test_total_loss_gradient() -> None:
    x = torch.tensor(2.0, requires_grad=True)
    total, _ = total_loss({"hide": x, "reveal": x * x}, {"reveal": 3.0})
    total.backward()
    assert x.grad.item() == 1 + 3 * 2 * 2


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


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), weight_scale=st.sampled_from([0.01, 0.1, 0.5]),
       extreme=st.booleans())
def test_budget_guarantee_property(seed: int, weight_scale: float, extreme: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    cover_u8 = torch.randint(0, 256, (2, 3, 8, 8), generator=g, dtype=torch.uint8)
    if extreme:  # saturated pixels stress the [0, 1] box
        cover_u8[:, 0] = 0
        cover_u8[:, 1] = 255
    secret = torch.rand(2, 3, 8, 8, generator=g)
    h = _tiny(size=8, blocks=1, growth=4)
    _randomise(h, weight_scale, seed)
    cover = cover_u8.float() / 255
    with torch.no_grad():
        stego, _ = h.hide(cover, secret)
    proj = project_to_budget(stego, cover, EPS)
    assert float((proj - cover).abs().max()) <= EPS + 1e-6
    assert float(proj.min()) >= 0.0 and float(proj.max()) <= 1.0
    q = quantise_within_budget(proj, cover_u8, levels=8)
    assert q.dtype == torch.uint8
    assert int((q.int() - cover_u8.int()).abs().max()) <= 8


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_with_optimizer(tmp_path) -> None:
    h = _tiny(size=8, blocks=2, growth=4)
    _randomise(h, 0.05, seed=4)
    prof = get_hider_profile("tiny")
    opt = torch.optim.Adam(h.parameters(), lr=prof["lr"], betas=prof["betas"], eps=prof["adam_eps"],
                           weight_decay=prof["weight_decay"])
    cover, secret = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)

    def step(model: Hider, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        stego, _ = model.hide(cover, secret)
        (reveal_loss(model.reveal(stego), secret) + freq_loss(stego, cover)).backward()
        o.step()

    step(h, opt)
    step(h, opt)
    ckpt = tmp_path / "hider"
    save_hider(ckpt, h, profile="tiny", training={"iteration": 2}, optimizer=opt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "optimizer.safetensors", "weights.safetensors"]
    meta = read_checkpoint(ckpt)
    assert meta["hider"] == h.config and meta["profile"] == "tiny"

    h2 = load_hider(ckpt, image_size=8)
    for (k, a), b in zip(h.state_dict().items(), h2.state_dict().values()):
        assert torch.equal(a, b), k
    opt2 = torch.optim.Adam(h2.parameters(), lr=1.0)
    assert load_training_state(ckpt, opt2) == {"iteration": 2}
    assert opt2.param_groups[0]["lr"] == prof["lr"] and opt2.param_groups[0]["betas"] == (0.5, 0.999)
    step(h, opt)
    step(h2, opt2)
    for a, b in zip(h.parameters(), h2.parameters()):
        assert torch.equal(a, b)  # resuming is bit-exact

    with pytest.raises(DeephideError, match="already exists"):
        save_hider(ckpt, h)
    save_hider(ckpt, h, overwrite=True)
    with pytest.raises(DeephideError, match="no optimizer state"):
        load_training_state(ckpt, opt2)


def test_checkpoint_errors(tmp_path) -> None:
    h = _tiny(size=8, blocks=2, growth=4)
    ckpt = tmp_path / "hider"
    save_hider(ckpt, h)
    with pytest.raises(DeephideError, match="trained for 8x8 images, data is 32x32"):
        load_hider(ckpt, image_size=32)
    with pytest.raises(DeephideError, match="not a hider checkpoint directory"):
        load_hider(tmp_path / "nope")

    cfg_file = ckpt / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["hider"]["growth"] = 8  # another architecture than the weights
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"weights\.safetensors.*has shape"):
        load_hider(ckpt)
    cfg["hider"]["growth"], cfg["hider"]["blocks"] = 4, 3
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"weights\.safetensors.*missing tensor"):
        load_hider(ckpt)
    cfg["hider"]["blocks"] = 2
    cfg["hider"]["depth"] = 1
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"config\.json.*unknown hider config keys"):
        load_hider(ckpt)
    cfg_file.write_text("{not json")
    with pytest.raises(DeephideError, match=r"config\.json: unreadable JSON"):
        load_hider(ckpt)
    del cfg["hider"]["depth"]
    cfg_file.write_text(json.dumps(cfg))
    (ckpt / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(DeephideError, match=r"weights\.safetensors: unreadable"):
        load_hider(ckpt)
    (ckpt / "weights.safetensors").unlink()
    with pytest.raises(DeephideError, match=r"weights\.safetensors: missing"):
        load_hider(ckpt)
    cfg_file.unlink()
    with pytest.raises(DeephideError, match=r"config\.json: missing"):
        load_hider(ckpt)


def test_checkpoint_rejects_nonfinite_weights(tmp_path) -> None:
    h = _tiny(size=8, blocks=1, growth=4)
    with torch.no_grad():
        h.blocks[0].phi.convs[0].weight[0, 0, 0, 0] = float("nan")
    save_hider(tmp_path / "h", h)
    with pytest.raises(DeephideError, match="NaN"):
        load_hider(tmp_path / "h")


# ---------------------------------------------------------------- profiles

def test_profiles() -> None:
    assert set(HIDER_PROFILES) == {"paper", "cpu", "long", "robust", "tiny"}
    for name in HIDER_PROFILES:
        prof = get_hider_profile(name)
        assert prof["profile"] == name
        cfg = hider_config(prof, 32)
        assert cfg.image_size == 32 and cfg.channels == 3
        if name != "robust":  # the paper's training path unless asked for
            assert prof["reveal_distortions"] == () and prof["sv_views"] == () and prof["sv_adv_levels"] == 0
    # robust (issue 33): no L_freq / L_LFC, the surrogate through the countermeasure families, the budget used
    r = get_hider_profile("robust")
    assert loss_weights(r) == {"hide": 1.0, "reveal": 1.0, "freq": 0.0, "lfc": 0.0, "use": 0.1, "sv": 0.1}
    assert {"jpeg-any", "bdr", "noise", "median", "gray", "cutout", "mixup", "cutmix"} <= set(r["sv_views"])
    assert "none" in r["reveal_distortions"]
    # the paper's weights (w1 = w2 = 1, w3 = 1e-4) in paper and tiny; cpu's short run is rebalanced (profiles.py)
    assert [loss_weights(get_hider_profile(n)) for n in ("paper", "tiny")] == [
        {"hide": 1.0, "reveal": 1.0, "freq": 1.0, "lfc": 1e-4, "use": 0.0, "sv": 0.0}] * 2
    assert loss_weights(get_hider_profile("cpu")) == {"hide": 1.0, "reveal": 1.0, "freq": 0.01, "lfc": 0.01, "use": 0.0, "sv": 0.0}
    p = get_hider_profile("paper")
    assert (p["blocks"], p["growth"], p["clamp"]) == (16, 32, 2.0)
    assert math.isclose(p["lr"], 10**-4.5) and p["betas"] == (0.5, 0.999)
    assert loss_weights(get_hider_profile("tiny", lfc=False))["lfc"] == 0.0
    with pytest.raises(DeephideError, match="unknown hider setting"):
        get_hider_profile("tiny", depth=3)
    with pytest.raises(DeephideError, match="unknown hider profile"):
        get_hider_profile("huge")


def test_lfc_sum_reduction_by_hand():
    """Sum over ordered same-class pairs: two orthogonal same-class maps give 2 pairs x (1 - 0)."""
    import torch as _t

    from deephide.hiding.losses import lfc_loss as _lfc

    cover = _t.zeros(3, 1, 2, 2)
    stego = cover.clone()
    stego[0, 0, 0, 0] = 0.01
    stego[1, 0, 1, 1] = 0.01
    stego[2, 0, 0, 1] = 0.01
    feats = lambda x: x.reshape(x.shape[0], -1) - 0.5  # noqa: E731  (the image map, centred back)
    labels = _t.tensor([0, 0, 1])
    assert float(_lfc(feats, stego, cover, labels, eps=0.01, reduction="sum")) == pytest.approx(2.0, abs=1e-5)
    assert float(_lfc(feats, stego, cover, labels, eps=0.01, reduction="mean")) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- grey covers

def _grey_and_colour_covers(size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    grey = torch.rand(2, 1, size, size, generator=g).expand(2, 3, size, size)
    return torch.cat((grey, torch.rand(2, 3, size, size, generator=g)))


def test_grey_covers_shared_keeps_grey_images_grey_and_colour_ones_as_rgb() -> None:
    cover, secret = _grey_and_colour_covers(), torch.rand(4, 3, 8, 8)
    rgb = _tiny()
    _randomise(rgb, 0.05, seed=2)
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


def test_grey_covers_config_validation_and_old_checkpoints(tmp_path) -> None:
    with pytest.raises(DeephideError, match="grey_covers must be one of rgb, shared"):
        HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, grey_covers="gray")
    h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, grey_covers="shared"))
    save_hider(tmp_path / "h", h, profile="tiny")
    assert load_hider(tmp_path / "h").config.grey_covers == "shared"
    cfg = json.loads((tmp_path / "h" / "config.json").read_text())
    del cfg["hider"]["grey_covers"]  # a checkpoint written before the option existed
    (tmp_path / "h" / "config.json").write_text(json.dumps(cfg))
    assert load_hider(tmp_path / "h").config.grey_covers == "rgb"
    assert hider_config(get_hider_profile("tiny", grey_covers="shared"), 8).grey_covers == "shared"
    assert all(p["grey_covers"] == "rgb" for name, p in HIDER_PROFILES.items() if name != "cpu")  # the paper's INN
    assert HIDER_PROFILES["cpu"]["grey_covers"] == "shared"


def test_delta_bands_ll_keeps_only_the_ll_band_of_the_perturbation() -> None:
    cover, secret = _grey_and_colour_covers(), torch.rand(4, 3, 8, 8)
    full = _tiny()
    _randomise(full, 0.05, seed=3)
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


# ---------------------------------------------------------------- the budget kept by the hider itself

from deephide.ops.budget import bounded_perturbation  # noqa: E402
from deephide.hiding.train import HideRevealStep, budget_stats  # noqa: E402


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


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), weight_scale=st.sampled_from([0.05, 0.5, 3.0]))
def test_bounded_hider_keeps_the_budget_before_any_clip(seed: int, weight_scale: float) -> None:
    """A randomly weighted hider with eps_levels: raw output within the budget and the box, every cover."""
    h = Hider(HiderConfig(blocks=2, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    _randomise(h, weight_scale, seed)
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


def test_straight_through_gradient_reaches_the_inn_from_the_stored_image() -> None:
    """Every loss sees the stored (bounded, rounded) image, yet its gradient reaches every subnet."""
    h = Hider(HiderConfig(blocks=2, growth=4, clamp=2.0, image_size=8, eps_levels=8))
    _randomise(h, 0.05, 3)
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


def test_lfc_repulsion_pushes_classes_apart() -> None:
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.1], [1.0, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])
    st_, cv = torch.zeros(4, 1, 2, 1), torch.zeros(4, 1, 2, 1)
    f = lambda x: feats  # noqa: E731
    plain = lfc_loss(f, st_, cv, labels, reduction="mean")
    rep = lfc_loss(f, st_, cv, labels, reduction="mean", repulsion=0.5)
    cos01 = float(torch.nn.functional.cosine_similarity(feats[0:1], feats[2:3]))
    assert float(plain) == pytest.approx(0.0, abs=1e-6)
    assert float(rep) == pytest.approx(0.5 * cos01, abs=1e-5)


def test_use_loss_pulls_small_perturbations_up_to_the_target_only() -> None:
    from deephide.hiding import use_loss

    eps = 8 / 255
    cover = torch.full((2, 3, 4, 4), 0.5)
    half = cover + torch.tensor([0.5 * eps, -0.9 * eps]).view(2, 1, 1, 1)  # image 0 uses 50%, image 1 90%
    # only image 0 falls short of 75%: (0.75 - 0.5)^2 / 2 images
    assert float(use_loss(half, cover, eps, 0.75)) == pytest.approx(0.25 ** 2 / 2, rel=1e-5)
    assert float(use_loss(half, cover, eps, 0.5)) == pytest.approx(0.0, abs=1e-7)
    x = half.clone().requires_grad_(True)
    use_loss(x, cover, eps, 0.75).backward()
    assert float(x.grad[0].abs().sum()) > 0 and float(x.grad[1].abs().sum()) == 0.0
    with pytest.raises(DeephideError, match="target"):
        use_loss(half, cover, eps, 1.5)
    total, vals = total_loss({"reveal": torch.tensor(1.0), "use": torch.tensor(2.0)}, {"use": 0.5})
    assert float(total) == pytest.approx(2.0) and vals["use"] == 2.0
