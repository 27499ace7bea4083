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
