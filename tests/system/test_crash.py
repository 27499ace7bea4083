"""Crash safety: kill -9 a real ``deephide`` process mid-run, rerun the same command, get the same result.

protect is not resumable but must leave no partial output and give the same bytes on a rerun;
train-hider and evaluate --checkpoint resume to exactly the weights / accuracy history of an
uninterrupted run; a grid resumes to the same per-cell results. The kill point is random
(seeded: set DEEPHIDE_CRASH_SEED to vary it) after a progress marker appears.
The uninterrupted reference and the rerun run in-process with one torch thread, as the killed
subprocess does (OMP_NUM_THREADS=1), so results are bitwise comparable.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from deephide.cli import main
from deephide.data import load_imageset
from deephide.hiding import Hider, HiderConfig
from deephide.hiding.checkpoint import save_hider

DEEPHIDE = str(Path(sys.executable).with_name("deephide"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SEED = int(os.environ.get("DEEPHIDE_CRASH_SEED", "20240"))
DATA = "synthetic?n=64&size=32&classes=4"


@contextlib.contextmanager
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def run_inproc(args: list[str]) -> None:
    with one_thread():
        assert main([str(a) for a in args]) == 0


def kill_midway(args: list[str], ready: Callable[[Path], bool], delay: float, log: Path, timeout: float = 120) -> None:
    """Start ``deephide ARGS``; once ``ready(stderr_file)``, wait ``delay`` s and SIGKILL it; it must not have finished."""
    with open(log, "wb") as err:
        p = subprocess.Popen([DEEPHIDE, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        t0 = time.monotonic()
        try:
            while not ready(log):
                assert p.poll() is None, f"finished before the marker: {log.read_text()[-2000:]}"
                assert time.monotonic() - t0 < timeout, "no progress marker"
                time.sleep(0.02)
            time.sleep(delay)
            p.kill()
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert p.returncode == -9, f"the run finished before the kill (rc {p.returncode}); lengthen it"
    assert "Traceback" not in log.read_text(errors="replace")


def litter(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}-{name}")


# ---------------------------------------------------------------- protect


@pytest.fixture(scope="module")
def hider32(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    h = Hider(HiderConfig(blocks=1, growth=8, clamp=2.0, image_size=32))
    with torch.no_grad():
        for p in h.parameters():
            p.normal_(0.0, 0.05)
    d = tmp_path_factory.mktemp("h32") / "hider"
    save_hider(d, h)
    return d


@pytest.mark.slow
def test_protect_killed_leaves_nothing_and_rerun_is_bitwise(tmp_path, hider32):
    args = ["protect", "--data", "synthetic?n=4500&size=32&classes=4", "--hider", hider32, "--secrets", "next-class",
            "--batch-size", "64", "--seed", "3"]
    run_inproc(args + ["--out", tmp_path / "ref", "--quiet"])
    out = tmp_path / "run" / "out"
    delay = rng_for("protect").uniform(0.0, 1.0)
    kill_midway(args + ["--out", out], lambda log: b"protect (" in log.read_bytes(), delay, tmp_path / "err.log")
    # no partial output: either nothing, or (a kill after the final rename) a complete, verified set
    if out.exists():
        load_imageset(out)
    run_inproc(args + ["--out", out, "--quiet", "--force"])
    for name in ("images.npy", "labels.npy"):  # bitwise: the files themselves
        assert (tmp_path / "ref" / name).read_bytes() == (out / name).read_bytes()
    mref = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    mgot = json.loads((out / "manifest.json").read_text())
    assert mref["sha256"] == mgot["sha256"]
    assert litter(tmp_path / "run") == []


@pytest.mark.slow
def test_protect_terminated_removes_its_temporary_output_at_once(tmp_path, hider32):
    """SIGTERM (a scheduler's time limit): the hidden temporary output is gone when the process exits."""
    import signal

    out = tmp_path / "run" / "out"
    args = ["protect", "--data", "synthetic?n=4500&size=32&classes=4", "--hider", hider32, "--secrets", "next-class",
            "--batch-size", "64", "--out", out]
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        p = subprocess.Popen([DEEPHIDE, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        t0 = time.monotonic()
        while b"protect (" not in log.read_bytes():
            assert p.poll() is None and time.monotonic() - t0 < 120, log.read_text()[-2000:]
            time.sleep(0.02)
        time.sleep(rng_for("sigterm").uniform(0.0, 0.5))
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    assert p.returncode == 143, f"rc {p.returncode}: {log.read_text()[-2000:]}"
    assert "terminated" in log.read_text() and "Traceback" not in log.read_text()
    assert litter(tmp_path / "run") == [] and not out.exists()


# ---------------------------------------------------------------- train-hider


def _hider_tensors(d: Path) -> dict[str, np.ndarray]:
    return {**load_file(d / "checkpoint" / "weights.safetensors"),
            **{f"opt/{k}": v for k, v in load_file(d / "checkpoint" / "optimizer.safetensors").items()}}


def _log(d: Path) -> list[dict]:
    rows = [json.loads(s) for s in (d / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
def test_train_hider_killed_resumes_to_identical_weights(tmp_path):
    args = ["train-hider", "--data", DATA, "--secrets", "next-class", "--profile", "tiny", "--set", "lfc=false",
            "--set", "checkpoint_every=5", "--iterations", "120", "--seed", "2"]
    run_inproc(args + ["--out", tmp_path / "ref", "--quiet"])
    out = tmp_path / "run" / "hider"
    delay = rng_for("train-hider").uniform(0.1, 1.5)
    kill_midway(args + ["--out", out, "--quiet"], lambda _: (out / "checkpoint" / "config.json").exists(), delay,
                tmp_path / "err.log")
    state = json.loads((out / "checkpoint" / "config.json").read_text())["training"]
    assert 0 < state["iteration"] < 120 and state["iteration"] % 5 == 0  # a complete mid-run checkpoint
    run_inproc(args + ["--out", out, "--quiet"])
    ref, got = _hider_tensors(tmp_path / "ref"), _hider_tensors(out)
    assert ref.keys() == got.keys()
    assert all(np.array_equal(ref[k], got[k]) for k in ref)
    assert _log(out) == _log(tmp_path / "ref")  # every iteration logged once, same losses
    assert json.loads((out / "summary.json").read_text())["finished"]
    assert litter(tmp_path / "run") == []


@pytest.mark.slow
def test_train_hider_terminated_keeps_its_last_good_state(tmp_path):
    """SIGTERM between checkpoints: the last good in-memory state (<= 25 steps old) is saved, not lost."""
    import signal

    args = ["train-hider", "--data", DATA, "--secrets", "next-class", "--profile", "tiny", "--set", "lfc=false",
            "--set", "checkpoint_every=1000", "--iterations", "400", "--seed", "2"]
    run_inproc(args + ["--out", tmp_path / "ref", "--quiet"])
    out = tmp_path / "run" / "hider"
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        p = subprocess.Popen([DEEPHIDE, *map(str, args + ["--out", out, "--quiet"])], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=err)
        t0 = time.monotonic()
        while not (out / "log.jsonl").exists() or len((out / "log.jsonl").read_text().splitlines()) < 60:
            assert p.poll() is None and time.monotonic() - t0 < 120, log.read_text()[-2000:]
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    assert p.returncode == 143, log.read_text()[-2000:]
    state = json.loads((out / "checkpoint" / "config.json").read_text())["training"]
    assert 50 <= state["iteration"] < 400 and state["iteration"] % 25 == 0  # no checkpoint was due: the good state
    run_inproc(args + ["--out", out, "--quiet"])
    ref, got = _hider_tensors(tmp_path / "ref"), _hider_tensors(out)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)
    assert _log(out) == _log(tmp_path / "ref")
    assert litter(tmp_path / "run") == []


# ---------------------------------------------------------------- evaluate --checkpoint


def _history(path: Path) -> list[dict]:
    rec = json.loads(path.read_text())
    return [{k: v for k, v in h.items() if k != "time"} for h in rec["history"]]


@pytest.mark.slow
def test_evaluate_killed_resumes_to_identical_history(tmp_path):
    args = ["evaluate", "--train", DATA, "--model", "resnet20", "--profile", "tiny", "--iterations", "40",
            "--seed", "1"]
    run_inproc(args + ["--checkpoint", tmp_path / "ref-ck", "--out", tmp_path / "ref.json", "--quiet"])
    ck, out = tmp_path / "run" / "ck", tmp_path / "run" / "ev.json"
    delay = rng_for("evaluate").uniform(0.0, 1.0)
    kill_midway(args + ["--checkpoint", ck, "--out", out, "--quiet"], lambda _: (ck / "state.json").exists(), delay,
                tmp_path / "err.log")
    assert not out.exists()
    done = json.loads((ck / "state.json").read_text())["iteration"]
    assert 0 < done < 40
    run_inproc(args + ["--checkpoint", ck, "--out", out, "--quiet"])
    ref, got = _history(tmp_path / "ref.json"), _history(out)
    assert [h["test_acc"] for h in got] == [h["test_acc"] for h in ref]
    assert got == ref  # losses and train accuracies too
    assert json.loads(out.read_text())["final_acc"] == json.loads((tmp_path / "ref.json").read_text())["final_acc"]
    assert litter(tmp_path / "run") == []


# ---------------------------------------------------------------- grid


def _grid_available() -> bool:
    try:
        from deephide.evaluation import grid
    except ImportError:
        return False
    return hasattr(grid, "run_grid")


@pytest.mark.slow
@pytest.mark.skipif(not _grid_available(), reason="evaluation/grid.py with run_grid not present")
def test_grid_killed_resumes_to_the_same_results(tmp_path):
    import yaml

    def config(name: str) -> Path:
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump({
            "out": str(tmp_path / f"{name}.jsonl"), "test": "synthetic?n=32&size=32&classes=4",
            "train_sets": {"Clean": DATA}, "models": ["resnet20"], "countermeasures": ["Vanilla"],
            "seeds": [0, 1, 2], "profile": "tiny", "overrides": {"iterations": 16}}))
        return p

    run_inproc(["grid", config("ref"), "--quiet"])
    res = tmp_path / "run.jsonl"
    delay = rng_for("grid").uniform(0.0, 0.6)
    kill_midway(["grid", config("run"), "--quiet"], lambda _: res.exists() and res.read_bytes().count(b"\n") >= 1,
                delay, tmp_path / "err.log")
    run_inproc(["grid", config("run"), "--quiet"])

    def by_cell(path: Path) -> dict:
        rows = [json.loads(s) for s in path.read_text().splitlines()]
        return {(r["seed"] if "seed" in r else r["key"]): [h["test_acc"] for h in r["history"]] for r in rows}

    ref, got = by_cell(tmp_path / "ref.jsonl"), by_cell(res)
    assert len(got) == 3 and got == ref


@pytest.mark.slow
def test_evaluate_kill_between_the_two_checkpoint_files(tmp_path):
    from unittest import mock

    from deephide.training import trainer

    args = ["evaluate", "--train", DATA, "--model", "resnet20", "--profile", "tiny", "--iterations", "12", "--seed", "1"]
    run_inproc(args + ["--out", tmp_path / "ref.json", "--quiet"])
    ck, out = tmp_path / "ck", tmp_path / "ev.json"
    real, calls = trainer.write_json, []

    def killed_before_second_state(path, obj):
        calls.append(path)
        if len(calls) == 2:  # weights of iteration 8 are in place, state.json still says 4
            raise KeyboardInterrupt
        return real(path, obj)

    with one_thread(), mock.patch.object(trainer, "write_json", killed_before_second_state):
        assert main([str(a) for a in args + ["--checkpoint", ck, "--out", out, "--quiet"]]) == 130
    run_inproc(args + ["--checkpoint", ck, "--out", out, "--quiet"])
    assert _history(out) == _history(tmp_path / "ref.json")
