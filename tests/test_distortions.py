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
