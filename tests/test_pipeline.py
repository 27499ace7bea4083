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
