"""deephide.hiding.losses: L_hide, L_reveal, L_freq, L_LFC, L_use and their weighted total."""

from __future__ import annotations

import math

import pytest
import torch

from deephide.errors import DeephideError
from deephide.hiding import (
    freq_loss,
    hide_loss,
    lfc_loss,
    reveal_loss,
    total_loss,
)

EPS = 8 / 255


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


def test_quiet_loss_pulls_loud_perturbations_down_to_the_target_only() -> None:
    from deephide.hiding.losses import quiet_loss

    eps = 8 / 255
    cover = torch.full((2, 3, 4, 4), 0.5)
    x = cover + torch.tensor([0.9 * eps, -0.3 * eps]).view(2, 1, 1, 1)  # RMS 90% and 30% of eps
    # only image 0 is above 45%: (0.9 - 0.45)^2 / 2 images
    assert float(quiet_loss(x, cover, eps, 0.45)) == pytest.approx(0.45 ** 2 / 2, rel=1e-5)
    x = x.clone().requires_grad_(True)
    quiet_loss(x, cover, eps, 0.45).backward()
    assert float(x.grad[0].abs().sum()) > 0 and float(x.grad[1].abs().sum()) == 0.0
    # an unchanged image (a fresh identity hider) gives 0 and a finite gradient, not sqrt(0)'s NaN
    y = cover.clone().requires_grad_(True)
    quiet_loss(y, cover, eps, 0.45).backward()
    assert torch.isfinite(y.grad).all() and float(y.grad.abs().sum()) == 0.0
    with pytest.raises(DeephideError, match="target"):
        quiet_loss(x, cover, eps, 0.0)
    total, vals = total_loss({"reveal": torch.tensor(1.0), "quiet": torch.tensor(2.0)}, {"quiet": 0.5})
    assert float(total) == pytest.approx(2.0) and vals["quiet"] == 2.0


def test_linear_shortcut_loss_by_hand_and_its_gradient() -> None:
    from deephide.hiding.losses import linear_shortcut_loss

    k = 3
    w = torch.zeros(4, k)
    w[0, 0], w[1, 1], w[2, 2] = 10.0, 10.0, 10.0
    lin = lambda x: x.flatten(1) @ w  # noqa: E731  (bias-free)
    cover = torch.zeros(1, 1, 2, 2)
    stored = cover.clone()
    stored.view(-1)[1] = -0.5  # -delta points at class 1: a shortcut for y = 1
    stored.requires_grad_(True)
    y = torch.tensor([1])
    loss = linear_shortcut_loss(lin, stored, cover, y, lmd=1.0)
    assert float(loss.detach()) == pytest.approx(float(torch.nn.functional.cross_entropy(lin(cover - stored), y)))
    # the obfuscation part alone: 0 when the stored image gives uniform logits (the cover here), > 0 otherwise
    assert float(linear_shortcut_loss(lin, cover, cover, y, lmd=0.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(linear_shortcut_loss(lin, stored.detach(), cover, y, lmd=0.0)) > 0
    loss.backward()
    assert stored.grad is not None and float(stored.grad.abs().sum()) > 0
    with pytest.raises(DeephideError, match="lmd"):
        linear_shortcut_loss(lin, cover, cover, y, lmd=1.5)


def test_class_loss_is_zero_for_one_pattern_per_class_and_pulls_towards_the_class_mean():
    from deephide.hiding.losses import class_loss

    eps = 8 / 255
    g = torch.Generator().manual_seed(0)
    cover = torch.rand(8, 3, 6, 6, generator=g) * 0.5 + 0.25
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    pattern = (torch.rand(3, 3, 6, 6, generator=g) - 0.5) * 2 * eps
    assert float(class_loss(cover + pattern[y], cover, y, eps)) == pytest.approx(0.0, abs=1e-10)
    # by hand: delta / eps minus its class mean, squared, mean over all values
    noise = (torch.rand(8, 3, 6, 6, generator=g) - 0.5) * 2 * eps
    d = (noise / eps).flatten(1)
    means = torch.stack([d[y == k].mean(0) for k in range(3)])
    want = (d - means[y]).square().mean()
    stored = (cover + noise).requires_grad_(True)
    got = class_loss(stored, cover, y, eps)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    got.backward()  # a step against the gradient brings each image nearer its class's mean
    after = class_loss((stored - 0.5 * eps * stored.grad / stored.grad.abs().max()).detach(), cover, y, eps)
    assert float(after) < float(got)
    with pytest.raises(DeephideError, match="eps"):
        class_loss(stored, cover, y, 0.0)


def test_smooth_loss_is_small_for_a_smooth_perturbation_and_large_for_a_checkerboard():
    from deephide.hiding.losses import smooth_loss

    eps = 8 / 255
    cover = torch.full((2, 3, 16, 16), 0.5)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    smooth = eps * torch.sin(2 * math.pi * xx / 16).expand(2, 3, 16, 16)
    checker = eps * (1 - 2 * ((yy + xx) % 2)).expand(2, 3, 16, 16)
    flat = smooth_loss(cover + eps, cover, eps)  # a constant perturbation: the blur keeps it exactly
    assert float(flat) == pytest.approx(0.0, abs=1e-10)
    s, c = float(smooth_loss(cover + smooth, cover, eps)), float(smooth_loss(cover + checker, cover, eps))
    assert s < 0.05 < 0.8 < c  # a checkerboard is all detail: the blur removes nearly all of it
    stored = (cover + checker).requires_grad_(True)
    smooth_loss(stored, cover, eps).backward()
    assert float(stored.grad.abs().sum()) > 0
    with pytest.raises(DeephideError, match="sigma"):
        smooth_loss(stored, cover, eps, sigma=0.0)


def test_bdr_linear_shortcut_loss_reads_only_what_bdr_keeps_and_passes_a_gradient_there():
    from deephide.hiding.losses import bdr_linear_shortcut_loss, linear_shortcut_loss

    torch.manual_seed(0)
    lin = torch.nn.Linear(3 * 4 * 4, 2, bias=False)
    linear = lambda x: lin(x.flatten(1))  # noqa: E731
    y = torch.tensor([0, 1])
    cover = torch.full((2, 3, 4, 4), 40 / 255)  # 3 levels below BDR-2's first threshold (42.5)
    cover[:, :, :2] = 100 / 255  # half the pixels far from any threshold
    up = torch.zeros_like(cover)
    up[:, :, 2:] = 5 / 255  # moves the near pixels across the threshold, and nothing else
    stored = (cover + up).requires_grad_(True)
    got = bdr_linear_shortcut_loss(linear, stored, cover, y)
    q = lambda x: torch.round(x * 3) / 3  # noqa: E731
    assert float(got) == pytest.approx(float(linear_shortcut_loss(linear, q(cover + up), q(cover), y)), rel=1e-6)
    got.backward()
    grad = stored.grad.abs()
    assert float(grad[:, :, 2:].sum()) > 100 * float(grad[:, :, :2].sum())  # the gradient is where BDR keeps a move
    # the far pixels' moves vanish under BDR: the loss does not see them
    far = cover.clone()
    far[:, :, :2] += 8 / 255
    assert float(bdr_linear_shortcut_loss(linear, far, cover, y)) == pytest.approx(
        float(bdr_linear_shortcut_loss(linear, cover, cover, y)))
