"""Hider training loop, protection with a guaranteed budget, reveal/verify, and their CLI."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deephide.cli import main
from deephide.data import ImageSet, load_dataset
from deephide.errors import DeephideError
from deephide.hiding import Hider, HiderConfig, get_hider_profile
from deephide.hiding.hiderdir import open_hider
from deephide.hiding.train import balanced_batch, train_hider
from deephide.ops.budget import parse_eps
from deephide.protect import protect, reveal, verify
from deephide.runtime import bf16_supported
from deephide.semantic import SecretBank, make_bank


@pytest.fixture(scope="module")
def train():
    return load_dataset("synthetic?n=64&size=32&classes=4", "train")


@pytest.fixture(scope="module")
def bank(train):
    return make_bank("next-class", train, "sample", 32, seed=0, per_class=3)


def _random_hider(size=32, seed=0):
    torch.manual_seed(seed)
    h = Hider(HiderConfig(blocks=1, growth=8, clamp=2.0, image_size=size))
    with torch.no_grad():  # every weight random, the zero-initialised last convs included
        for p in h.parameters():
            p.normal_(0.0, 0.05)
    return h


def test_balanced_batches_hold_same_class_pairs():
    by_class = [np.arange(10) + 10 * k for k in range(5)]
    idx = balanced_batch(by_class, per_class=3, n_classes_batch=4, rng=np.random.default_rng(0))
    cls = idx // 10
    assert idx.size == 12 and len(set(cls.tolist())) == 4 and all((cls == k).sum() == 3 for k in set(cls.tolist()))


def test_train_hider_logs_checkpoints_and_resumes(train, bank, tmp_path):
    prof = get_hider_profile("tiny", lfc=False, iterations=4, checkpoint_every=2, log_every=1)
    full = train_hider(train, bank, prof, tmp_path / "a", mode="sample", seed=1, progress=False)
    assert full["finished"] and full["iterations_done"] == 4
    log = [json.loads(s) for s in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3, 4]
    for key in ("hide", "reveal", "freq", "total", "psnr_stego", "linf_levels", "reveal_psnr"):
        assert key in log[-1]
    part = train_hider(train, bank, prof, tmp_path / "b", mode="sample", seed=1, progress=False, stop_after=3)
    assert not part["finished"]
    train_hider(train, bank, prof, tmp_path / "b", mode="sample", seed=1, progress=False)
    ha, _ = open_hider(tmp_path / "a")
    hb, _ = open_hider(tmp_path / "b")
    sa, sb = ha.state_dict(), hb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    again = train_hider(train, bank, prof, tmp_path / "a", mode="sample", seed=1, progress=False)  # already finished
    assert again["finished"] and again["iterations_done"] == 4
    sc = open_hider(tmp_path / "a")[0].state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)


def test_train_hider_with_lfc(train, bank, tmp_path):
    from deephide.models import build_model

    net = build_model("resnet20", num_classes=4).eval()
    prof = get_hider_profile("tiny", iterations=2)
    s = train_hider(train, bank, prof, tmp_path / "h", mode="class", features=net.features, progress=False)
    assert "lfc" in s["last_log"] and np.isfinite(s["last_log"]["lfc"])
    with pytest.raises(DeephideError, match="feature network"):
        train_hider(train, bank, prof, tmp_path / "h2", mode="class", progress=False)


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


def test_parse_eps():
    assert parse_eps("8/255") == 8 and parse_eps("16") == 16 and parse_eps(8 / 255) == 8
    for bad in ("8/256", "abc", "0", "300"):
        with pytest.raises(DeephideError, match="--eps"):
            parse_eps(bad)


def test_cli_train_protect_verify_evaluate(tmp_path, capsys):
    data = "synthetic?n=64&size=32&classes=4"
    hd, pd = tmp_path / "hider", tmp_path / "prot dir é"  # spaces and non-ASCII in paths
    assert main(["train-hider", "--data", data, "--secrets", "next-class", "--profile", "tiny", "--set", "lfc=false",
                 "--out", str(hd), "--quiet"]) == 0
    assert main(["protect", "--data", data, "--hider", str(hd), "--out", str(pd), "--quiet",
                 "--export-png", str(tmp_path / "png")]) == 0
    assert main(["protect", "--data", data, "--hider", str(hd), "--out", str(pd), "--quiet"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["verify", "--clean", data, "--protected", str(pd)]) == 0
    assert main(["verify", "--clean", data, "--protected", str(tmp_path / "png"), "--out", str(tmp_path / "v.json")]) == 0
    pert = json.loads((tmp_path / "v.json").read_text())["perturbation"]  # frequency + class statistics recorded
    assert sum(pert["band_energy"].values()) == pytest.approx(1.0) and 0.0 <= pert["class_share"] <= 1.0
    assert "perturbation: Haar energy LL" in capsys.readouterr().out
    assert main(["reveal", "--data", str(pd), "--hider", str(hd), "--out", str(tmp_path / "rev"), "--quiet"]) == 0
    out = tmp_path / "ev.json"
    assert main(["evaluate", "--train", str(pd), "--model", "resnet20", "--profile", "tiny", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text())["config"]["test"]["n"] > 0


def test_cli_bad_hider(tmp_path, capsys):
    (tmp_path / "nothider").mkdir()
    assert main(["protect", "--data", "synthetic?n=8", "--hider", str(tmp_path / "nothider"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothider" in err[0]
    assert not (tmp_path / "o").exists()


def test_grey_covers_shared_end_to_end(tmp_path):
    # grey covers (Fashion-MNIST's RGB view): trained and protected with grey_covers=shared, the stored images stay grey
    imgs = np.repeat(np.random.default_rng(0).integers(0, 256, size=(32, 16, 16, 1), dtype=np.uint8), 3, axis=3)
    ds = ImageSet(imgs, np.arange(32) % 4, tuple("abcd"))
    bank = SecretBank(np.random.default_rng(1).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8), np.arange(4), 4)
    prof = get_hider_profile("tiny", lfc=False, iterations=3, grey_covers="shared", init_scale=0.5)
    train_hider(ds, bank, prof, tmp_path / "h", mode="class", progress=False)
    h, _ = open_hider(tmp_path / "h")
    assert h.config.grey_covers == "shared"
    out = protect(ds, h, bank, "class", progress=False).images
    assert np.abs(out.astype(int) - imgs).max() > 0
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])


# ---------------------------------------------------------------- the reveal gate

class _OracleHider(torch.nn.Module):
    """Hand-made: writes the class index (k + 1 levels) into pixel (0, 0) of the red channel, and reveals by
    reading it back and answering that class's secret. ``blind`` answers the mean of all secrets instead."""

    def __init__(self, secrets: torch.Tensor, class_of_secret: torch.Tensor, blind: bool = False):
        super().__init__()
        self.secrets, self.class_of_secret, self.blind = secrets, class_of_secret, blind

    def hide(self, cover, secret):
        match = (secret[:, None] == self.secrets[None]).flatten(2).all(dim=2).float().argmax(dim=1)
        k = self.class_of_secret[match].float()
        stego = cover.clone()
        stego[:, 0, 0, 0] = (k + 1) / 255
        return stego, None

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


def test_train_hider_continues_past_its_length(train, bank, tmp_path):
    """A finished hider trained further (a longer --iterations) equals one trained that long at once."""
    prof = get_hider_profile("tiny", lfc=False, iterations=6, checkpoint_every=2, log_every=1)
    train_hider(train, bank, prof, tmp_path / "once", mode="class", seed=2, progress=False)
    train_hider(train, bank, dict(prof, iterations=4), tmp_path / "twice", mode="class", seed=2, progress=False)
    s = train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=2, progress=False)
    assert s["finished"] and s["iterations_done"] == 6
    a, b = open_hider(tmp_path / "once")[0].state_dict(), open_hider(tmp_path / "twice")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(DeephideError, match="other settings"):
        train_hider(train, bank, dict(prof, w_reveal=2.0), tmp_path / "twice", mode="class", seed=2, progress=False)


def test_train_hider_logs_the_budget_and_loss_shares(train, bank, tmp_path):
    prof = get_hider_profile("tiny", lfc=False, iterations=2, log_every=1, snapshot_at=(1,))
    s = train_hider(train, bank, prof, tmp_path / "h", mode="class", progress=False)
    last = s["last_log"]
    assert last["clip_share"] == 0.0 and last["linf_levels"] <= 8 + 1e-4
    assert sum(v for k, v in last.items() if k.startswith("share_")) == pytest.approx(1.0)
    assert (tmp_path / "h" / "snapshots" / "1" / "weights.safetensors").exists()


def test_cli_verify_hider_and_shipped_names(tmp_path, capsys, monkeypatch):
    from deephide.hiding import hiderdir

    out = tmp_path / "h"
    assert main(["train-hider", "--data", "synthetic?n=40&size=32&classes=4", "--secrets", "next-class",
                 "--profile", "tiny", "--set", "lfc=false", "--out", str(out), "--quiet"]) == 0
    assert "reveal_gate" in json.loads((out / "summary.json").read_text())
    rc = main(["verify", "--clean", "synthetic?n=40&size=32&classes=4", "--hider", str(out), "--limit", "20",
               "--out", str(tmp_path / "gate.json")])
    text = capsys.readouterr().out
    assert rc == 1 and "DOES NOT HIDE" in text and "trivial answer" in text  # 4 steps hide nothing
    assert json.loads((tmp_path / "gate.json").read_text())["reveal_gate"]["n"] == 20
    # a shipped hider is found by name
    monkeypatch.setattr(hiderdir, "SHIPPED_DIR", tmp_path)
    assert hiderdir.resolve_hider("h") == out and "h" in hiderdir.shipped_hiders()
    assert main(["protect", "--data", "synthetic?n=40&size=32&classes=4", "--hider", "h", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    assert main(["protect", "--data", "synthetic?n=40&size=32&classes=4", "--hider", "nosuch", "--out",
                 str(tmp_path / "q"), "--quiet"]) != 0
    assert "not the name of a known hider" in capsys.readouterr().err


@pytest.mark.slow
def test_train_hider_rolls_back_a_loss_spike(train, bank, tmp_path, monkeypatch):
    """A finite loss far above its running mean (the INN blowing up) is rolled back like a NaN."""
    from deephide.hiding import train as train_mod

    real = train_mod.reveal_loss
    calls = {"n": 0}

    def spiking(a, b):
        calls["n"] += 1
        v = real(a, b)
        return v * 1e6 if calls["n"] == train_mod.SPIKE_WARMUP + 5 else v

    monkeypatch.setattr(train_mod, "reveal_loss", spiking)
    prof = get_hider_profile("tiny", lfc=False, iterations=train_mod.SPIKE_WARMUP + 10, checkpoint_every=10,
                             log_every=10)
    s = train_hider(train, bank, prof, tmp_path / "h", mode="class", progress=False)
    assert s["rollbacks"] == 1 and s["finished"]
    assert all(torch.isfinite(p).all() for p in open_hider(tmp_path / "h")[0].parameters())


def _spike_at(monkeypatch, call: int) -> None:
    """reveal_loss x 1e6 at its ``call``-th call (one call per forward: iteration i is call i + 1)."""
    from deephide.hiding import train as train_mod

    real, calls = train_mod.reveal_loss, {"n": 0}

    def spiking(a, b):
        calls["n"] += 1
        v = real(a, b)
        return v * 1e6 if calls["n"] == call else v

    monkeypatch.setattr(train_mod, "reveal_loss", spiking)


@pytest.mark.slow
def test_only_judged_states_are_kept_a_snapshot_before_a_spike_is_the_rolled_back_state(train, bank, tmp_path,
                                                                                       monkeypatch):
    """The weights right after an update are unjudged until the next forward: a 16-block hider's snapshot taken
    there revealed 11.2 dB between states at 23.4 and 22.3 dB. A snapshot (or checkpoint) is now written only once a
    forward has judged its state; when that forward spikes, the state training goes on from (the rollback) is kept."""
    from deephide.hiding import train as train_mod
    from deephide.hiding.checkpoint import load_hider

    w = train_mod.SPIKE_WARMUP  # the guard arms after this many accepted steps; GOOD_EVERY divides w
    assert w % train_mod.GOOD_EVERY == 0
    prof = get_hider_profile("tiny", lfc=False, iterations=w + 10, checkpoint_every=w + 10, log_every=10,
                             snapshot_at=[w, w + 5])
    state = lambda d, n: load_hider(d / "snapshots" / str(n)).state_dict()  # noqa: E731
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731

    s = train_hider(train, bank, prof, tmp_path / "calm", mode="class", progress=False)
    assert s["rollbacks"] == 0 and not same(state(tmp_path / "calm", w), state(tmp_path / "calm", w + 5))
    _spike_at(monkeypatch, w + 5 + 1)  # the forward that judges the state after w + 5 updates
    s = train_hider(train, bank, prof, tmp_path / "spiked", mode="class", progress=False)
    assert s["rollbacks"] == 1 and s["finished"]
    # snapshot w+5 is the state training went on from (the kept state of step w), not the rejected one
    assert same(state(tmp_path / "spiked", w + 5), state(tmp_path / "spiked", w))
    assert same(state(tmp_path / "spiked", w), state(tmp_path / "calm", w))


@pytest.mark.slow
def test_the_last_update_is_judged_too(train, bank, tmp_path, monkeypatch):
    """A run ends with one more forward (no update) on the next batch: a final state that spikes is rolled back to
    the last kept one, so a finished hider never ends on an unjudged update."""
    from deephide.hiding import train as train_mod
    from deephide.hiding.checkpoint import load_hider

    w = train_mod.SPIKE_WARMUP
    prof = get_hider_profile("tiny", lfc=False, iterations=w + 10, checkpoint_every=w + 10, log_every=10,
                             snapshot_at=[w, w + 10])
    state = lambda d, n: load_hider(d / "snapshots" / str(n)).state_dict()  # noqa: E731
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    train_hider(train, bank, prof, tmp_path / "calm", mode="class", progress=False)
    _spike_at(monkeypatch, w + 10 + 1)  # the judge's forward: iterations 0 .. w+9 are calls 1 .. w+10
    s = train_hider(train, bank, prof, tmp_path / "h", mode="class", progress=False)
    assert s["rollbacks"] == 1 and s["finished"] and s["iterations_done"] == w + 10
    final = open_hider(tmp_path / "h")[0].state_dict()
    assert same(final, state(tmp_path / "calm", w)) and same(final, state(tmp_path / "h", w + 10))
    assert not same(final, state(tmp_path / "calm", w + 10))  # without the spike it ends on the last update


def test_train_hider_continues_with_a_new_lr_schedule_recorded(train, bank, tmp_path):
    prof = get_hider_profile("tiny", lfc=False, iterations=4, checkpoint_every=2, log_every=1)
    train_hider(train, bank, prof, tmp_path / "h", mode="class", progress=False)
    s = train_hider(train, bank, dict(prof, iterations=6, lr=1e-5), tmp_path / "h", mode="class", progress=False)
    assert s["finished"] and s["iterations_done"] == 6
    assert [r["from_iteration"] for r in s["schedule"]] == [0, 4] and s["schedule"][1]["lr"] == 1e-5
    log = [json.loads(x) for x in (tmp_path / "h" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["lr"] == pytest.approx(1e-5) and log[0]["lr"] == pytest.approx(prof["lr"])


def test_lfc_feature_network_is_sized_by_the_set(tmp_path):
    """A data owner's folder of 96 images trains its L_LFC network (no 'fewer than one batch' stop) in a few
    dozen steps, not 1,400 steps of 128; the hider's summary says how it was trained."""
    from deephide.hiding.lfc import feature_model, sized_schedule

    assert sized_schedule(60_000, 1_400, 128) == (1_400, 128)  # the full set keeps the victim profile's schedule
    assert sized_schedule(320, 1_400, 128) == (120, 80) and sized_schedule(96, 1_400, 128) == (120, 24)
    with pytest.raises(DeephideError, match="at least 2"):
        sized_schedule(1, 1_400, 128)
    small = load_dataset("synthetic?n=96&size=32&classes=4", "train")
    test = load_dataset("synthetic?n=32&size=32&classes=4", "test")
    record: dict = {}
    net = feature_model(small, test, profile="tiny", model="resnet20", cache=tmp_path, progress=False, record=record)
    assert record["batch_size"] == 24 and record["iterations"] == 12 and record["epochs"] == 3.0  # tiny: 12 steps
    assert "final_acc" in record and net(torch.rand(2, 3, 32, 32)).shape[0] == 2


def test_train_hider_warm_start_from_another_hider(train, bank, tmp_path):
    """--init: a new objective from another hider's weights; the run records where it came from, resumes as
    itself, and an architecture that differs is refused in one line."""
    prof = get_hider_profile("tiny", lfc=False, iterations=3, checkpoint_every=1, log_every=1)
    train_hider(train, bank, prof, tmp_path / "base", mode="class", progress=False)
    base = open_hider(tmp_path / "base")[0].state_dict()
    tuned = dict(prof, w_use=1.0, use_target=0.9, iterations=2)
    s = train_hider(train, bank, tuned, tmp_path / "ft", mode="class", progress=False, stop_after=0,
                    init=tmp_path / "base" / "checkpoint")
    assert s["iterations_done"] == 0 and s["run"]["init"]["iteration"] == 3
    s = train_hider(train, bank, tuned, tmp_path / "ft", mode="class", progress=False,
                    init=tmp_path / "base" / "checkpoint")
    assert s["finished"] and s["run"]["init"]["from"].endswith("checkpoint")
    log = [json.loads(x) for x in (tmp_path / "ft" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2] and "use" in log[0] and log[0]["share_use"] > 0
    moved = open_hider(tmp_path / "ft")[0].state_dict()
    assert any(not torch.equal(base[k], moved[k]) for k in base)  # it trained on from the base weights ...
    # ... and a resume of it (without --init) continues the same run
    s = train_hider(train, bank, dict(tuned, iterations=3), tmp_path / "ft", mode="class", progress=False)
    assert s["iterations_done"] == 3 and s["run"]["init"]["iteration"] == 3
    with pytest.raises(DeephideError, match="architecture differs.*blocks"):
        train_hider(train, bank, dict(prof, blocks=2), tmp_path / "other", mode="class", progress=False,
                    init=tmp_path / "base" / "checkpoint")


def test_snapshot_steps_parse_cli_forms():
    from deephide.hiding.train import snapshot_steps

    assert snapshot_steps("250,500") == {250, 500} == snapshot_steps([250, 500]) and snapshot_steps(7) == {7}
    assert snapshot_steps(()) == set()
    with pytest.raises(DeephideError, match="snapshot_at"):
        snapshot_steps("250;500")


def test_surrogate_victim_term_trains_logs_and_resumes_to_the_same_weights(train, bank, tmp_path):
    """w_sv: a surrogate victim trains beside the hider (its state saved with the checkpoint); an interrupted run
    resumes to the same hider and surrogate as an uninterrupted one."""
    from safetensors.torch import load_file

    prof = get_hider_profile("tiny", lfc=False, iterations=4, checkpoint_every=1, log_every=1, w_sv=1.0,
                             sv_model="resnet20")
    s = train_hider(train, bank, prof, tmp_path / "once", mode="class", seed=3, progress=False)
    log = [json.loads(x) for x in (tmp_path / "once" / "log.jsonl").read_text().splitlines()]
    assert s["finished"] and all("sv" in r and r["share_sv"] > 0 and "sv_fit" in r for r in log)
    train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False, stop_after=2)
    train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False)
    a, b = open_hider(tmp_path / "once")[0].state_dict(), open_hider(tmp_path / "twice")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = load_file(str(tmp_path / "once" / "surrogate.safetensors")), load_file(str(tmp_path / "twice" / "surrogate.safetensors"))
    assert sa.keys() == sb.keys() and any(k.startswith("momentum.") for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    (tmp_path / "twice" / "surrogate.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DeephideError, match="unusable surrogate state"):
        train_hider(train, bank, dict(prof, iterations=5), tmp_path / "twice", mode="class", seed=3, progress=False)


def test_surrogate_restarts_every_sv_reset_steps_and_the_spike_guard_lets_it(train, bank, tmp_path, monkeypatch):
    """sv_reset: the surrogate starts afresh at every multiple of sv_reset (seeded by the step); its cross-entropy
    jumps then, which the divergence guard must not roll back (it watches the hider's own terms)."""
    import deephide.hiding.train as T
    from deephide.hiding.surrogate import SurrogateVictim

    resets, jump = [], {"on": False}
    orig_reset, orig_loss = SurrogateVictim.reset, SurrogateVictim.loss

    def reset(self, seed):
        resets.append(seed)
        jump["on"] = len(resets) > 1  # the first call is the surrogate's construction
        orig_reset(self, seed)

    def loss(self, *a):
        out = orig_loss(self, *a)
        return out * 1e4 if jump.pop("on", False) else out  # a restart's jump, far past 10x the running mean

    monkeypatch.setattr(SurrogateVictim, "reset", reset)
    monkeypatch.setattr(SurrogateVictim, "loss", loss)
    monkeypatch.setattr(T, "SPIKE_WARMUP", 1)
    prof = get_hider_profile("tiny", lfc=False, iterations=6, checkpoint_every=10, log_every=1, w_sv=1.0, sv_reset=2)
    train_hider(train, bank, prof, tmp_path / "h", mode="class", seed=3, progress=False)
    log = [json.loads(x) for x in (tmp_path / "h" / "log.jsonl").read_text().splitlines()]
    assert len(resets) == 3 and len(set(resets)) == 3  # built once, restarted at steps 2 and 4, each its own seed
    assert log[-1]["rollbacks"] == 0 and [r["iteration"] for r in log] == [1, 2, 3, 4, 5, 6]
