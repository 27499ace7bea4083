"""deephide.protect: protecting a set within the budget, determinism, reveal and the reveal gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.data import ImageSet, load_dataset
from deephide.errors import DeephideError
from deephide.hiding import Hider, HiderConfig
from deephide.protect import protect, reveal, verify
from deephide.runtime import bf16_supported
from deephide.semantic import SecretBank, make_bank


def _random_hider(size=32, seed=0):
    torch.manual_seed(seed)
    h = Hider(HiderConfig(blocks=1, growth=8, clamp=2.0, image_size=size))
    with torch.no_grad():  # every weight random, the zero-initialised last convs included
        for p in h.parameters():
            p.normal_(0.0, 0.05)
    return h


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.integers(1, 16), mode=st.sampled_from(["class", "sample"]))
def test_budget_guaranteed_for_random_hiders(seed, levels, mode):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    imgs[0] = 0
    imgs[1] = 255  # the box edges
    ds = ImageSet(imgs, np.arange(6) % 2, ("a", "b"))
    bank = SecretBank(rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8), np.array([0, 0, 1, 1]), 2)
    out = protect(ds, _random_hider(16, seed), bank, mode, levels=levels, progress=False)
    d = np.abs(out.images.astype(int) - imgs.astype(int))
    assert d.max() > 0  # the random hider really perturbs: the bound below is not vacuous
    assert d.max() <= levels and out.images.dtype == np.uint8 and np.array_equal(out.labels, ds.labels)


def test_protect_is_deterministic_and_class_structured(train, bank):
    h = _random_hider()
    a = protect(train, h, bank, "class", progress=False)
    b = protect(train, h, bank, "class", progress=False)
    assert np.array_equal(a.images, b.images)
    assign = np.asarray(a.provenance["protection"]["assignment"])
    for k in range(4):
        assert len(set(assign[train.labels == k].tolist())) == 1
    s = protect(train, h, bank, "sample", progress=False)
    assign = np.asarray(s.provenance["protection"]["assignment"])
    assert all(set(assign[train.labels == k].tolist()) <= set(bank.members(k).tolist()) for k in range(4))
    assert len(set(assign[train.labels == 0].tolist())) > 1


def test_protect_and_reveal_build_no_autograd_graph_and_keep_values(train, bank, monkeypatch):
    # inference only: a graph per batch would cost memory and time without changing a value
    h = _random_hider()
    plain = protect(train, _random_hider(), bank, "class", progress=False)  # a twin hider, not instrumented
    grad_seen = []
    hide, rev = h.hide, h.reveal
    monkeypatch.setattr(h, "hide", lambda *a, **k: (grad_seen.append(torch.is_grad_enabled()), hide(*a, **k))[1])
    monkeypatch.setattr(h, "reveal", lambda *a, **k: (grad_seen.append(torch.is_grad_enabled()), rev(*a, **k))[1])
    out = protect(train, h, bank, "class", progress=False)
    reveal(out, h, progress=False)
    assert grad_seen and not any(grad_seen)
    assert np.array_equal(out.images, plain.images)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in h.parameters() if p.ndim == 4)


@pytest.mark.parametrize("bf16", [False, True])
def test_protect_and_reveal_give_the_same_bytes_with_the_batch_shared_over_cores(train, bank, bf16):
    """Each core hiding its own share of a batch (runtime.over_cores) is pure speed: the stored bytes are the ones a
    single thread makes from the whole batch, in fp32 and under bf16 autocast."""
    if bf16 and not bf16_supported(torch.device("cpu")):
        pytest.skip("no native bf16 on this CPU")
    h, n = _random_hider(), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = protect(train, h, bank, "class", bf16=bf16, batch_size=48, progress=False)
        one_rev = reveal(one, h, batch_size=48, progress=False)
        torch.set_num_threads(3)  # three shares of 48 (16 each) and of the last 16 (5, 5, 6)
        shared = protect(train, h, bank, "class", bf16=bf16, batch_size=48, progress=False)
        shared_rev = reveal(shared, h, batch_size=48, progress=False)
    finally:
        torch.set_num_threads(n)
    assert np.array_equal(one.images, shared.images) and np.array_equal(one_rev, shared_rev)


def test_identity_hider_reveals_nothing_and_keeps_images(train, bank):
    h = Hider(HiderConfig(blocks=1, growth=8, clamp=2.0, image_size=32))  # zero-init: identity
    out = protect(train, h, bank, "class", progress=False)
    assert np.array_equal(out.images, train.images)
    v = verify(train, out)
    assert v["ok"] and v["linf_levels"] == 0
    assert reveal(train, h, progress=False).shape == train.images.shape


def test_protect_bad_inputs(train, bank):
    h = _random_hider()
    with pytest.raises(DeephideError, match="secrets are 16x16"):
        protect(train, h, SecretBank(np.zeros((4, 16, 16, 3), np.uint8), np.arange(4), 4), "class", progress=False)
    gray = ImageSet(train.images[..., :1].copy(), train.labels, train.class_names, source="gray.npz")
    with pytest.raises(DeephideError, match="gray.npz.*channel"):
        protect(gray, h, bank, "class", progress=False)
    with pytest.raises(DeephideError, match="classes without secrets"):
        SecretBank(np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 2]), 4)
    with pytest.raises(DeephideError, match="trained for 16x16"):
        protect(train, _random_hider(16), bank, "class", progress=False)
    other = make_bank("next-class", load_dataset("synthetic?n=24&size=32&classes=3", "train"), "class", 32)
    with pytest.raises(DeephideError, match="bank was made for 3"):
        protect(train, h, other, "class", progress=False)


# ---------------------------------------------------------------- the reveal gate

class _OracleHider(torch.nn.Module):
    """Hand-made: writes the class index (k + 1 levels) into pixel (0, 0) of the red channel, and reveals by
    reading it back and answering that class's secret. ``blind`` answers the mean of all secrets instead."""

    def __init__(self, secrets: torch.Tensor, class_of_secret: torch.Tensor, blind: bool = False):
        super().__init__()
        self.secrets, self.class_of_secret, self.blind = secrets, class_of_secret, blind

    def stego(self, cover, secret):  # what protect asks of a hider (Hider.stego)
        match = (secret[:, None] == self.secrets[None]).flatten(2).all(dim=2).float().argmax(dim=1)
        k = self.class_of_secret[match].float()
        stego = cover.clone()
        stego[:, 0, 0, 0] = (k + 1) / 255
        return stego

    def reveal(self, stego, z=None):
        if self.blind:
            return self.secrets.mean(dim=0, keepdim=True).expand(stego.shape[0], -1, -1, -1)
        k = torch.round(stego[:, 0, 0, 0] * 255).long() - 1
        first = torch.stack([torch.nonzero(self.class_of_secret == c)[0, 0] for c in range(int(self.class_of_secret.max()) + 1)])
        return self.secrets[first[k]]


def test_reveal_gate_on_a_hand_made_hider(train, bank):
    from deephide.ops.metrics import psnr
    from deephide.protect import reveal_gate

    covers = train.replace(images=np.array(train.images))
    covers.images[:, 0, 0, 0] = 0  # the oracle's carrier pixel starts at 0 on every cover
    secrets = torch.from_numpy(bank.images).permute(0, 3, 1, 2).float() / 255
    oracle = _OracleHider(secrets, torch.from_numpy(bank.group))
    g = reveal_gate(covers, oracle, bank, "class", levels=8)
    # class mode hides each class's first secret; the trivial answer is the mean of all secrets
    truth = bank.images[[bank.members(int(k))[0] for k in covers.labels]]
    mean = np.round(bank.images.astype(np.float64).mean(axis=0)).astype(np.uint8)
    assert g["trivial_psnr"] == pytest.approx(psnr(np.broadcast_to(mean, truth.shape), truth))
    assert g["reveal_psnr"] == float("inf") and g["reveal_ssim"] == pytest.approx(1.0, abs=1e-6) and g["hides"]
    assert len(g["corr_own"]) == covers.num_classes
    blind = reveal_gate(covers, _OracleHider(secrets, torch.from_numpy(bank.group), blind=True), bank, "class")
    assert not blind["hides"] and abs(blind["margin_db"]) < 0.5  # reading nothing = the trivial answer
    # sample mode: the trivial answer is the class group's mean, which the label alone gives
    s = reveal_gate(covers, _OracleHider(secrets, torch.from_numpy(bank.group), blind=True), bank, "sample")
    assert s["trivial_psnr"] > blind["trivial_psnr"] and not s["hides"]
