"""experiments/robust-fmnist/run.py (issue 33): selection runs on the hold-out view with seeds >= 100 only."""

import argparse
import json
from pathlib import Path

import pytest

from deephide.hiding.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(script):
    return script("experiments/robust-fmnist/run.py", "robust_run_under_test")


def test_selection_refuses_the_reported_seeds(run):
    a = argparse.Namespace(rows=["Clean"], seeds=[0, 100], columns=["Vanilla"], models=["fastcnn"], workers=None)
    with pytest.raises(SystemExit, match="seeds >= 100"):
        run.cmd_select(a)


def test_every_row_is_made_from_the_selection_view(run, tmp_path, monkeypatch):
    """Variants train on, and every row's set is made from, `fashion-mnist?holdout=1`; the grid it writes scores
    on that view's test split (the hold-out), never on `fashion-mnist`'s test split."""
    assert run.DATA == "fashion-mnist?holdout=1" and run.make_set("Clean") == run.DATA
    for name in run.VARIANTS:
        cmd = run.command(name)
        assert cmd[cmd.index("--data") + 1] == run.DATA
        if "--init" in cmd:  # a warm start only from another variant's state, itself trained on the selection view
            init = Path(cmd[cmd.index("--init") + 1])
            assert init.parts[:3] == ("results", "robust-fmnist", "hiders") and init.parts[3] in run.VARIANTS
            assert read_checkpoint(run.ROOT / init)["training"]["run"]["train"] == run.DATA
    written = {}

    def fake_run(cmd, cwd=None, check=None):
        written.update(json.loads(Path(cmd[2]).read_text()))
        return argparse.Namespace(returncode=0)

    monkeypatch.setattr(run, "RUNS", tmp_path)
    monkeypatch.setattr(run.subprocess, "run", fake_run)
    run.cmd_select(argparse.Namespace(rows=["Clean"], seeds=[100, 101, 102], columns=["Vanilla", "AT-2/255"],
                                      models=["fastcnn"], workers=None))
    assert written["test"] == run.DATA and written["train_sets"] == {"Clean": run.DATA}
    assert written["seeds"] == [100, 101, 102] and written["out"] == "results/robust-fmnist/selection.jsonl"
    assert written["countermeasures"][1] == {"AT-2/255": run.AT["AT-2/255"]}


def test_structure_tells_a_class_pattern_in_sign_from_image_noise(run):
    """What BDR keeps of a class-wise +-8 pattern is few pixels per image (those near a threshold) but one way per
    class and pixel (sign agreement 1, class share low); random +-8 noise crosses as often with no agreement."""
    import numpy as np

    from deephide.data.imageset import ImageSet

    rng = np.random.default_rng(0)
    n, k = 400, 2
    clean_px = rng.integers(0, 256, size=(n, 8, 8, 1))
    labels = np.arange(n) % k
    pattern = np.where(rng.random((k, 8, 8, 1)) < 0.5, -8, 8)
    clean = ImageSet(clean_px.astype(np.uint8), labels, ("a", "b"))

    def protected(delta):
        return ImageSet(np.clip(clean_px + delta, 0, 255).astype(np.uint8), labels, ("a", "b"))

    cls = run.structure(clean, protected(pattern[labels]), chunk=128)
    noise = run.structure(clean, protected(np.where(rng.random(clean_px.shape) < 0.5, -8, 8)), chunk=128)
    assert cls["bdr_sign_agreement"] == pytest.approx(1.0)
    assert cls["bdr_class_share"] < 0.3 and cls["class_share"] > 0.95
    assert noise["bdr_sign_agreement"] < 0.5
    assert 0.03 < cls["bdr_kept"] < 0.1 and 0.03 < noise["bdr_kept"] < 0.1


def test_bdr_probe_reads_a_class_pattern_off_what_bdr_keeps_and_nothing_off_noise(script):
    """bdr_probe.readout: a class-wise +-8 pattern leaves BDR changes a linear model reads the class off; random +-8
    noise leaves as many changes that say nothing (chance: 50% for two classes)."""
    import numpy as np

    from deephide.countermeasures.bdr import bdr_lut

    probe = script("experiments/robust-fmnist/bdr_probe.py", "bdr_probe_under_test")
    rng = np.random.default_rng(0)
    n, k = 2000, 2
    clean = rng.integers(0, 256, size=(n, 8, 8))
    labels = np.arange(n) % k
    pattern = np.where(rng.random((k, 8, 8)) < 0.5, -8, 8)
    test = rng.integers(0, 256, size=(200, 8, 8)).astype(np.uint8)
    lut = bdr_lut(2)

    def stored(delta):
        return np.clip(clean + delta, 0, 255).astype(np.uint8)

    cls = probe.readout(clean.astype(np.uint8), stored(pattern[labels]), labels, test, labels[:200], lut)
    noise = probe.readout(clean.astype(np.uint8), stored(np.where(rng.random(clean.shape) < 0.5, -8, 8)), labels,
                          test, labels[:200], lut)
    assert cls["from_kept"] > 90 and noise["from_kept"] < 60
    assert 0.03 < cls["kept"] < 0.1 and 0.03 < noise["kept"] < 0.1 and len(cls["victims"]) == 2
