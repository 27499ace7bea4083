"""Reveal-side distortions of hider training (hiding.distortions) and their use in train_hider."""

import json

import pytest
import torch

from deephide.data import load_dataset
from deephide.errors import DeephideError
from deephide.hiding import get_hider_profile
from deephide.hiding.distortions import DISTORTIONS, check_distortions, distort
from deephide.hiding.hiderdir import open_hider
from deephide.hiding.train import train_hider
from deephide.semantic import make_bank


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.rand(n, 3, 16, 16, generator=g)


def test_shift_flip_moves_image_and_target_together():
    x, s = _batch()
    # a stored image equal to its secret must stay equal to the target after any geometric draw
    out, tgt = DISTORTIONS["shift-flip"](s.clone(), s, torch.Generator().manual_seed(3))
    assert torch.equal(out, tgt) and not torch.equal(out, s)
    out, _ = DISTORTIONS["shift-flip"](x, s, torch.Generator().manual_seed(3))
    for i in range(len(x)):  # every output is a flip and/or circular shift of its input
        cands = [x[i].flip(-1) if f else x[i] for f in (False, True)]
        assert any(torch.equal(out[i], c.roll((dy, dx), dims=(-2, -1)))
                   for c in cands for dy in range(-2, 3) for dx in range(-2, 3))


def test_jpeg_and_blur_keep_target_and_pass_gradients():
    x, s = _batch()
    for name in ("jpeg", "blur"):
        xi = x.clone().requires_grad_(True)
        out, tgt = DISTORTIONS[name](xi, s, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and tgt is s
        assert float((out.detach() - x).abs().mean()) > 1e-3  # it did change the image
        out.sum().backward()
        assert xi.grad is not None and float(xi.grad.abs().sum()) > 0
    # a 3x3 mean of a constant image is the constant
    c = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(DISTORTIONS["blur"](c, c, torch.Generator())[0], c, atol=1e-6)


def test_distort_draws_from_the_list_and_checks_names():
    x, s = _batch()
    assert distort((), x, s, torch.Generator()) == (x, s)
    out, tgt = distort(("none",), x, s, torch.Generator())
    assert out is x and tgt is s
    assert check_distortions("shift-flip+jpeg") == ("shift-flip", "jpeg")
    assert check_distortions(["none", "blur"]) == ("none", "blur")
    with pytest.raises(DeephideError, match="unknown \\['rotate'\\]"):
        check_distortions(["rotate"])


def test_train_hider_with_distortions_is_deterministic_and_resumes(tmp_path):
    train = load_dataset("synthetic?n=48&size=16&classes=3", "train")
    bank = make_bank("next-class", train, "class", 16, seed=0)
    prof = get_hider_profile("tiny", lfc=False, iterations=4, checkpoint_every=2, log_every=1,
                             reveal_distortions=["none", "shift-flip", "jpeg", "blur"])
    a = train_hider(train, bank, prof, tmp_path / "a", mode="class", seed=2, progress=False)
    assert a["finished"] and json.loads(json.dumps(a["run"]["profile"]["reveal_distortions"])) == [
        "none", "shift-flip", "jpeg", "blur"]
    train_hider(train, bank, prof, tmp_path / "b", mode="class", seed=2, progress=False, stop_after=2)
    train_hider(train, bank, prof, tmp_path / "b", mode="class", seed=2, progress=False)
    sa, sb = open_hider(tmp_path / "a")[0].state_dict(), open_hider(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same distortion draws after a resume
    bad = get_hider_profile("tiny", lfc=False, reveal_distortions=["rotate"])
    with pytest.raises(DeephideError, match="reveal_distortions"):
        train_hider(train, bank, bad, tmp_path / "c", mode="class", progress=False)


from deephide.hiding.inn import Hider, HiderConfig  # noqa: E402
from deephide.hiding.surrogate import MIXES, SurrogateVictim, check_views  # noqa: E402
from deephide.hiding.train import HideRevealStep  # noqa: E402


def _tiny_hider(seed=0, size=16):
    torch.manual_seed(seed)
    return Hider(HiderConfig(eps_levels=8, blocks=1, growth=8, clamp=2.0, image_size=size, channels=3), init_scale=0.5)


def _grad_norm(hider):
    return sum(float(p.grad.abs().sum()) for p in hider.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_each_distortion_passes_the_reveal_gradient_to_the_inn(name):
    """Revealing from a distorted stored image: the reveal loss still trains the INN through every family."""
    hider = _tiny_hider()
    cover, secret = _batch(8)
    raw, stored, secret_hat, target = HideRevealStep(hider, 8 / 255, True, (name,))(
        cover, secret, None, torch.Generator().manual_seed(1))
    torch.nn.functional.mse_loss(secret_hat, target).backward()
    g = _grad_norm(hider)
    assert g > 0 and torch.isfinite(torch.tensor(g))


def test_the_new_families_do_what_their_countermeasures_do():
    x, s = _batch(4)
    g = torch.Generator().manual_seed(0)
    q = DISTORTIONS["bdr"](x, s, g)[0]
    assert torch.allclose(q * 3, torch.round(q * 3), atol=1e-6)  # 2 bits: values in {0, 1/3, 2/3, 1}
    gray = DISTORTIONS["gray"](x, s, g)[0]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    cut = DISTORTIONS["cutout"](torch.ones(4, 3, 16, 16), s, g)[0]
    holes = (cut == 0).float().mean((1, 2, 3))
    assert bool(((holes > 0) & (holes <= 0.25 + 1e-6)).all())  # one square of half the side, maybe off the edge
    noisy = DISTORTIONS["noise"](torch.full((4, 3, 16, 16), 0.5), s, g)[0]
    assert 0.08 < float(noisy.std()) < 0.12
    img, tgt = DISTORTIONS["crop-flip"](s.clone(), s, g)
    assert torch.equal(img, tgt)  # the target moves with the image


@pytest.mark.parametrize("view", ["none", "jpeg-any", "bdr", "bdr-soft", "noise", "median", "gauss", "gray", "cutout",
                                  *MIXES])
@pytest.mark.parametrize("adv", [0, 4])
def test_each_surrogate_view_passes_l_sv_to_the_inn(view, adv):
    """L_sv through each view (and at the surrogate's PGD point) reaches the INN's weights; the surrogate's do not
    take a gradient from it."""
    hider = _tiny_hider()
    cover, secret = _batch(8)
    y = torch.arange(8) % 4
    sv = SurrogateVictim("fastcnn", 4, 16, 0.05, torch.device("cpu"), seed=0, views=(view,), adv_levels=adv)
    g = torch.Generator().manual_seed(2)
    _, stored, _, _ = HideRevealStep(hider, 8 / 255, True)(cover, secret, None)
    assert sv.fit(stored, y, g) > 0
    sv.loss(stored, y, g).backward()
    assert _grad_norm(hider) > 0
    assert all(p.requires_grad for p in sv.net.parameters())  # the surrogate trains on as before


def test_surrogate_views_are_checked():
    assert check_views("none+mixup") == ("none", "mixup")
    with pytest.raises(DeephideError, match="sv_views: unknown \\['rotate'\\]"):
        check_views(["rotate"])


def test_surrogate_without_views_is_the_shipped_one():
    """No views and no radius: the same fit and loss, bit for bit, as the surrogate the shipped hiders trained with
    (crop + flip only), so their training resumes as before."""
    from deephide.training.augment import random_crop_flip

    x, _ = _batch(8)
    y = torch.arange(8) % 4
    a = SurrogateVictim("fastcnn", 4, 16, 0.05, torch.device("cpu"), seed=3)
    b = SurrogateVictim("fastcnn", 4, 16, 0.05, torch.device("cpu"), seed=3)
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    la = a.fit(x, y, ga)
    xb = random_crop_flip(x, gb)
    loss = torch.nn.functional.cross_entropy(b.net(xb), y)
    b.opt.zero_grad()
    loss.backward()
    b.opt.step()
    assert la == float(loss.detach())
    assert torch.equal(a.loss(x, y, ga), torch.nn.functional.cross_entropy(b.net(random_crop_flip(x, gb)), y))


def test_bdr_soft_is_bdr_forward_with_a_gradient_only_near_its_thresholds():
    from deephide.countermeasures.bdr import bdr_lut

    levels = torch.arange(256, dtype=torch.float32)
    x = (levels / 255.0).view(1, 1, 16, 16).expand(1, 3, 16, 16).clone().requires_grad_(True)
    out, _ = DISTORTIONS["bdr-soft"](x, x, torch.Generator())
    # forward: exactly the BDR countermeasure's 2-bit lookup table on every uint8 level
    assert torch.equal(torch.round(out.detach()[0, 0].flatten() * 255).to(torch.uint8),
                       torch.from_numpy(bdr_lut(2)))
    out.sum().backward()
    g = x.grad[0, 0].flatten()
    near = torch.tensor([min(abs(v + 0.5 - t) for t in (43, 128, 213)) for v in range(256)])
    assert float(g[near <= 2].min()) > 4 * float(g[near >= 20].max())  # the moves BDR keeps get the gradient
    assert float(g[near >= 40].max()) < 1e-2
    # each soft step is one BDR step high: the gradient over the range integrates to the range's BDR output, 1
    assert abs(float(g.sum()) / 255.0 - 1.0) < 0.02
