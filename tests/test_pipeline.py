"""The train-hider job (deephide.pipeline): its time limit counts the bank and L_LFC's feature network too."""

from __future__ import annotations

import pytest

from deephide.data import load_dataset
from deephide.hiding.profiles import get_hider_profile, loss_weights
from deephide.pipeline import train_hider_job

DATA = "synthetic?n=40&size=32&classes=4"


@pytest.mark.slow
def test_time_limit_covers_the_feature_network_and_a_rerun_finishes(tmp_path, monkeypatch):
    """A limit spent while the feature network trained stops the hider before its first step (a scheduler's limit is
    kept: before, the hider then got its full limit again); the cached network makes the rerun go straight on."""
    monkeypatch.setenv("DEEPHIDE_CACHE", str(tmp_path / "cache"))
    train, test = load_dataset(DATA, "train"), load_dataset(DATA, "test")
    prof = get_hider_profile("tiny", iterations=2)
    assert loss_weights(prof)["lfc"] > 0
    out = tmp_path / "hider"
    s = train_hider_job(train, test, "next-class", "class", prof, out, lfc_iterations=2, device="cpu",
                        progress=False, time_limit_s=1e-9)
    assert (s["iterations_done"], s["finished"], s["stopped"]) == (0, False, "time_limit")
    (cached,) = (tmp_path / "cache" / "lfc").rglob("*.safetensors")
    stamp = cached.stat().st_mtime_ns
    s = train_hider_job(train, test, "next-class", "class", prof, out, lfc_iterations=2, device="cpu",
                        progress=False, time_limit_s=600)
    assert s["finished"] and s["iterations_done"] == 2 and "reveal_gate" in s
    assert cached.stat().st_mtime_ns == stamp and s["lfc_feature_network"]["cache"] == str(cached.parent)


def test_init_takes_the_hiders_bank_unless_secrets_are_given_and_sample_mode_refuses_one_secret_per_class(tmp_path):
    """--init alone continues with the secrets the hider learnt to hide; an explicit --secrets wins (a class-wise
    hider continued sample-wise needs several secrets per class: its own bank has one, and is refused)."""
    from deephide.errors import DeephideError
    from deephide.semantic import load_bank

    train = load_dataset(DATA, "train")
    prof = get_hider_profile("tiny", iterations=1, lfc=False)
    first = tmp_path / "class"
    train_hider_job(train, None, "next-class", "class", prof, first, device="cpu", progress=False)
    cont = tmp_path / "cont"
    train_hider_job(train, None, None, "class", prof, cont, device="cpu", progress=False, init=str(first))
    assert (load_bank(cont / "bank").images == load_bank(first / "bank").images).all()
    with pytest.raises(DeephideError, match="several secrets per class"):
        train_hider_job(train, None, None, "sample", prof, tmp_path / "s1", device="cpu", progress=False,
                        init=str(first))
    own = tmp_path / "s2"
    train_hider_job(train, None, "sig", "sample", prof, own, device="cpu", progress=False, init=str(first),
                    per_class=3)
    bank = load_bank(own / "bank")
    assert all(bank.members(k).size == 3 for k in range(bank.num_classes))


def test_demo_victims_side_by_side_are_the_one_thread_victims_byte_for_byte(tmp_path):
    """On >= 2 threads the demo trains its two victims in two one-thread processes: each history equals the same
    victim trained here on one thread (the grid's cells), so the demo's numbers are the records' numbers."""
    import torch

    from deephide.data.stored import save_imageset
    from deephide.pipeline import _demo_victims
    from deephide.profiles import get_profile
    from deephide.training.trainer import train_victim

    spec = "synthetic?n=64&size=32&classes=4"
    train, test = load_dataset(spec, "train"), load_dataset(spec, "test")
    prot = load_dataset("synthetic?n=64&size=32&classes=4&seed=1", "train")  # any other set of the same shape
    save_imageset(prot, tmp_path / "protected")
    vprof = get_profile("victim", "tiny")
    lines = []
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        clean, protected, how = _demo_victims(train, prot, test, tmp_path / "protected",
                                         {"victim_model": "fastcnn", "seed": 0, "dataset": spec}, vprof, True,
                                         lines.append)
    finally:
        torch.set_num_threads(n)
    assert "side by side (1 thread(s) each)" in lines[0] and how == "side by side, 1 thread(s) each"
    assert any(line.strip().startswith("protected: step") for line in lines)  # each evaluation is reported
    torch.set_num_threads(1)
    for rec, data in ((clean, train), (protected, prot)):
        here = train_victim(data, test, "fastcnn", vprof, seed=0, progress=False)
        assert [h["test_acc"] for h in rec["history"]] == [h["test_acc"] for h in here["history"]]
        assert [h["train_loss"] for h in rec["history"]] == [h["train_loss"] for h in here["history"]]
