"""deephide.hiding.train: hider training (logs, checkpoints, resume, the spike guard, warm starts, the surrogate victim)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deephide.data import load_dataset
from deephide.errors import DeephideError
from deephide.hiding import get_hider_profile
from deephide.hiding.hiderdir import open_hider
from deephide.hiding.train import balanced_batch, train_hider


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


def test_linear_shortcut_term_trains_logs_and_resumes_alike(train, bank, tmp_path):
    """L_lin (PIL's objective on the stored perturbation, issue 33): logged, and its linear classifier is fitted
    again, the same, when a run resumes (nothing stored for it)."""
    prof = get_hider_profile("tiny", lfc=False, w_lin=1.0, iterations=4, checkpoint_every=2, log_every=1)
    once = train_hider(train, bank, prof, tmp_path / "once", mode="class", seed=3, progress=False)
    assert "lin" in once["last_log"] and np.isfinite(once["last_log"]["lin"]) and once["last_log"]["share_lin"] > 0
    train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False, stop_after=2)
    twice = train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False)
    assert twice["last_log"]["lin"] == once["last_log"]["lin"]


def test_quiet_term_and_zoomed_secrets_train_log_and_resume_alike(train, bank, tmp_path):
    """The photo profile's additions (issue 35): L_quiet logged; the zoomed secrets drawn per step from the seed, so
    a resumed run repeats the uninterrupted one."""
    prof = get_hider_profile("tiny", lfc=False, w_quiet=1.0, quiet_target=0.01, secret_zoom=1.0, iterations=4,
                             checkpoint_every=2, log_every=1)
    once = train_hider(train, bank, prof, tmp_path / "once", mode="class", seed=3, progress=False)
    assert "quiet" in once["last_log"] and once["last_log"]["share_quiet"] >= 0
    train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False, stop_after=2)
    twice = train_hider(train, bank, prof, tmp_path / "twice", mode="class", seed=3, progress=False)
    assert twice["last_log"]["reveal"] == once["last_log"]["reveal"]


def test_zoom_secrets_replaces_the_drawn_share_with_smooth_zoomed_views():
    from deephide.hiding.step import zoom_secrets

    secret = torch.rand(64, 3, 32, 32)
    out = zoom_secrets(secret, 0.5, np.random.default_rng(0))
    changed = (out != secret).flatten(1).any(1)
    assert 16 < int(changed.sum()) < 48 and out.shape == secret.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # bilinear: within the range of its window
    # a zoomed view is smoother than the noise it came from (neighbouring pixels closer)
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731
    assert tv(out[changed]) < 0.8 * tv(secret[changed])
    assert torch.equal(zoom_secrets(secret, 0.0, np.random.default_rng(0)), secret)
    assert torch.equal(zoom_secrets(secret, 0.5, np.random.default_rng(0)), out)  # seeded


def test_grey_some_makes_the_drawn_share_grey_in_whole_levels():
    from deephide.hiding.step import grey_some

    cover = torch.rand(64, 3, 8, 8)
    out = grey_some(cover, 0.25, np.random.default_rng(0))
    grey = (out.amax(1) == out.amin(1)).flatten(1).all(1)
    assert 6 < int(grey.sum()) < 28 and torch.equal(out[~grey], cover[~grey])
    assert torch.equal(torch.round(out[grey] * 255) / 255, out[grey])  # whole uint8 levels, as a stored grey image
    assert torch.equal(grey_some(cover, 0.0, np.random.default_rng(0)), cover)
    prof = get_hider_profile("tiny", lfc=False, grey_share=0.5, iterations=2)
    assert prof["grey_share"] == 0.5
