"""deephide.cli.hider: train-hider, protect, verify and reveal from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deephide.cli import main
from deephide.data import ImageSet
from deephide.hiding import get_hider_profile
from deephide.hiding.hiderdir import open_hider
from deephide.hiding.train import train_hider
from deephide.protect import protect
from deephide.semantic import SecretBank


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


def test_warm_start_takes_the_init_hiders_profile_for_a_short_run(tmp_path):
    """`train-hider --init H` without --profile fine-tunes with H's own profile (its architecture) for
    WARM_START_ITERATIONS steps at a tenth of its lr; --profile, --set and --iterations still win."""
    from deephide.cli.hider import WARM_START_ITERATIONS, warm_start_profile

    data = "synthetic?n=64&size=32&classes=4"
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert main(["train-hider", "--data", data, "--secrets", "next-class", "--profile", "tiny", "--set", "lfc=false",
                 "--out", str(src), "--quiet"]) == 0
    lr = get_hider_profile("tiny")["lr"]
    assert warm_start_profile(None, str(src)) == ("tiny", {"iterations": WARM_START_ITERATIONS, "lr": lr * 0.1})
    assert warm_start_profile("cpu", str(src)) == ("cpu", {})
    assert warm_start_profile(None, None) == ("cpu", {})
    assert main(["train-hider", "--data", data, "--init", str(src), "--iterations", "2", "--set", "lfc=false",
                 "--out", str(dst), "--quiet"]) == 0
    summary = json.loads((dst / "summary.json").read_text())
    assert summary["run"]["profile"]["profile"] == "tiny" and summary["iterations_done"] == 2
    assert summary["run"]["profile"]["lr"] == pytest.approx(lr * 0.1)
