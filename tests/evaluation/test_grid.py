"""Experiment grid: config validation, expansion and keys, resume, truncated lines, mixtures, Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from deephide.data import load_dataset, save_imageset
from deephide.errors import DeephideError
from deephide.evaluation import grid as G

TRAIN = "synthetic?n=64&size=32&classes=4"
TEST = "synthetic?n=32&size=32&classes=4"


def write_config(tmp_path: Path, fname: str = "g.yaml", **over) -> Path:
    cfg = {"name": "t", "out": str(tmp_path / "res.jsonl"), "test": TEST, "train_sets": {"Clean": TRAIN},
           "models": ["resnet20"], "countermeasures": ["Vanilla", "GaussN"], "seeds": [0], "profile": "tiny"}
    cfg.update(over)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    p = tmp_path / fname
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def fake_trainer(calls: list | None = None):
    """A stand-in for train_victim: records its calls, returns a plausible result."""

    def train(train, test, model, profile, seed=0, countermeasure=None, device="auto", progress=True, **_):
        if calls is not None:
            calls.append((train, model, getattr(countermeasure, "name", "Vanilla"), seed))
        hist = [{"iteration": i, "test_acc": 20.0 + i + seed} for i in (4, 8, 12)]
        return {"config": {"train": {"source": train.source}, "test": {"source": test.source}},
                "history": hist, "final_acc": hist[-1]["test_acc"], "best_acc": hist[-1]["test_acc"],
                "last3_acc": float(np.mean([h["test_acc"] for h in hist])), "acc": hist[-1]["test_acc"],
                "select": getattr(countermeasure, "select", "final"), "finished": True, "train_time_s": 0.1,
                "wall_time_s": 0.1, "device": "cpu", "bf16": False, "versions": {}, "model_state": object()}

    return train


@pytest.fixture
def one_thread():
    """Real training with one torch thread: on a shared 2-core machine, more threads mostly wait."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def fake(monkeypatch):
    calls: list = []
    monkeypatch.setattr("deephide.training.trainer.train_victim", fake_trainer(calls))
    G._DATA_CACHE.clear()
    return calls


# ------------------------------------------------------------------------------- config & expansion


def test_expand_counts_order_and_stable_keys(tmp_path):
    p = write_config(tmp_path, train_sets={"Clean": TRAIN, "Other": TRAIN + "&seed=1"}, models=["resnet20", "airbench"],
                     countermeasures=["Vanilla", "JPEG10", {"JPEG4": "JPEG?quality=4"}], seeds=[0, 1])
    cells = G.expand(G.load_config(p))
    assert len(cells) == 2 * 2 * 3 * 2
    assert len({c["key"] for c in cells}) == len(cells)
    assert [c["order"] for c in cells] == sorted(c["order"] for c in cells)
    jp4 = [c for c in cells if c["countermeasure"] == "JPEG4"][0]
    assert jp4["countermeasure_name"] == "JPEG" and jp4["countermeasure_params"] == {"quality": 4}
    # same cells described again (other name, device, model order) -> same keys
    p2 = write_config(tmp_path, "g2.yaml", name="renamed", device="cpu",
                      train_sets={"Clean": TRAIN, "Other": TRAIN + "&seed=1"}, models=["airbench", "resnet20"],
                      countermeasures=["Vanilla", "JPEG10", {"JPEG4": "JPEG?quality=4"}], seeds=[1, 0])
    assert {c["key"] for c in G.expand(G.load_config(p2))} == {c["key"] for c in cells}
    # anything that changes what is measured changes the key
    p3 = write_config(tmp_path, "g3.yaml", train_sets={"Clean": TRAIN, "Other": TRAIN + "&seed=1"},
                      models=["resnet20", "airbench"], overrides={"iterations": 8},
                      countermeasures=["Vanilla", "JPEG10", {"JPEG4": "JPEG?quality=4"}], seeds=[0, 1])
    assert not {c["key"] for c in G.expand(G.load_config(p3))} & {c["key"] for c in cells}


def test_paper_columns_and_mixtures(tmp_path):
    from deephide.countermeasures import PAPER_COLUMNS

    cfg = G.load_config(write_config(tmp_path, countermeasures="paper", mixtures=[0.2, 0.5, 1.0], clean=TRAIN))
    assert [c.label for c in cfg.countermeasures] == PAPER_COLUMNS
    cells = G.expand(cfg)
    assert len(cells) == 13 * 3
    assert {c["mixture"] for c in cells} == {0.2, 0.5, 1.0} and all(c["clean"] == TRAIN for c in cells)


@pytest.mark.parametrize("over, key", [
    ({"colour": "red"}, "colour"),
    ({"models": "resnet20"}, "models"),
    ({"seeds": [0, "1"]}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"train_sets": ["a"]}, "train_sets"),
    ({"models": ["resnet999"]}, "models"),
    ({"countermeasures": ["NoSuchThing"]}, "countermeasures"),
    ({"countermeasures": ["JPEG?quality=500"]}, "countermeasures"),
    ({"countermeasures": "all"}, "countermeasures"),
    ({"overrides": {"iterations": "many"}}, "overrides.iterations"),
    ({"overrides": {"nope": 1}}, "overrides.nope"),
    ({"mixtures": [0.5]}, "clean"),
    ({"mixtures": [1.5], "clean": TRAIN}, "mixtures"),
    ({"resources": {"gpus": -1}}, "resources.gpus"),
    ({"profile": "huge"}, "profile"),
    ({"test": None}, "test"),
])
def test_config_errors_name_file_and_key(tmp_path, over, key):
    p = write_config(tmp_path, **over)
    with pytest.raises(DeephideError) as e:
        G.load_config(p)
    msg = str(e.value)
    assert str(p) in msg and f"'{key}'" in msg and "\n" not in msg


def test_config_file_problems(tmp_path):
    with pytest.raises(DeephideError, match="nope.yaml: no such config file"):
        G.load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [resnet20\nseeds: 1\n")
    with pytest.raises(DeephideError, match="bad.yaml: not valid YAML"):
        G.load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(DeephideError, match="list.yaml: expected a YAML mapping"):
        G.load_config(lst)


def test_missing_train_set_path_is_named_before_training(tmp_path, fake):
    p = write_config(tmp_path, train_sets={"DH-C": str(tmp_path / "runs" / "dh-class")})
    with pytest.raises(DeephideError, match=r"g\.yaml: key 'train_sets\.DH-C'"):
        G.run_grid(p, progress=False)
    assert not fake


# ------------------------------------------------------------------------------- running & resume


@pytest.mark.slow
def test_local_grid_trains_once_then_resumes(tmp_path, monkeypatch, one_thread):
    G._DATA_CACHE.clear()
    p = write_config(tmp_path)
    s = G.run_grid(p, progress=False)  # real training: tiny profile, 2 cells
    assert (s.total, s.ran, s.skipped) == (2, 2, 0)
    lines = G.read_results(tmp_path / "res.jsonl")
    assert [r["countermeasure"] for r in lines] == ["Vanilla", "GaussN"]
    for r in lines:
        assert r["finished"] and len(r["history"]) == 3 and r["final_acc"] == r["history"][-1]["test_acc"]
        assert {"last3_acc", "best_acc", "profile_settings", "data", "key"} <= set(r) and "model_state" not in r
    side = json.loads((tmp_path / "res.config.json").read_text())
    assert side["name"] == "t" and len(side["cell_keys"]) == 2

    calls: list = []
    monkeypatch.setattr("deephide.training.trainer.train_victim", fake_trainer(calls))
    s2 = G.run_grid(p, progress=False)
    assert (s2.ran, s2.skipped) == (0, 2) and calls == []


def test_truncated_last_line_is_dropped_and_grid_goes_on(tmp_path, fake):
    out = tmp_path / "res.jsonl"
    G.run_grid(write_config(tmp_path), progress=False)
    good = out.read_bytes()
    out.write_bytes(good + b'{"key": "abc", "row": "TRUNC')  # a writer killed mid-line
    assert len(G.read_results(out)) == 2  # readers ignore it
    s = G.run_grid(write_config(tmp_path, seeds=[0, 1]), progress=False)
    assert (s.ran, s.skipped) == (2, 2)
    data = out.read_bytes()
    assert data.startswith(good) and data.endswith(b"\n") and b'TRUNC' not in data
    assert all(json.loads(line)["key"] for line in data.splitlines())
    assert len(G.read_results(out)) == 4


def test_unreadable_middle_line_and_duplicates_are_skipped(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"key": "a", "v": 1}\nnot json\n[1, 2]\n{"key": "a", "v": 2}\n{"key": "b"}\n')
    recs = G.read_results(out)
    assert [(r["key"], r.get("v")) for r in recs] == [("a", 1), ("b", None)]


def test_second_writer_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with G.ResultsWriter(out) as w:
        w.append({"key": "x"})
        with pytest.raises(DeephideError, match="another grid run"):
            with G.ResultsWriter(out):
                pass
    assert G.read_results(out) == [{"key": "x"}]


def test_failed_cell_is_left_out_and_reported(tmp_path, monkeypatch):
    G._DATA_CACHE.clear()

    def boom(train, test, model, profile, countermeasure=None, **kw):
        if getattr(countermeasure, "name", "Vanilla") == "GaussN":
            raise DeephideError("synthetic failure")
        return fake_trainer()(train, test, model, profile, countermeasure=countermeasure, **kw)

    monkeypatch.setattr("deephide.training.trainer.train_victim", boom)
    with pytest.raises(DeephideError, match="1 of 2 cells failed.*synthetic failure"):
        G.run_grid(write_config(tmp_path), progress=False)
    assert [r["countermeasure"] for r in G.read_results(tmp_path / "res.jsonl")] == ["Vanilla"]


# ------------------------------------------------------------------------------- mixtures


def test_mixture_indices_nested_and_deterministic():
    a, b = G.mixture_indices(100, 0.2, 3), G.mixture_indices(100, 0.6, 3)
    assert len(a) == 20 and len(b) == 60 and set(a) <= set(b)
    assert np.array_equal(a, G.mixture_indices(100, 0.2, 3))
    assert not np.array_equal(a, G.mixture_indices(100, 0.2, 4))
    assert len(G.mixture_indices(100, 0.0, 0)) == 0 and len(G.mixture_indices(100, 1.0, 0)) == 100


def test_mixture_cell_trains_on_the_mixed_set(tmp_path, fake):
    clean = load_dataset(TRAIN, "train")
    prot = clean.replace(images=(255 - clean.images).astype(np.uint8))  # easy to tell apart
    save_imageset(prot, tmp_path / "prot")
    p = write_config(tmp_path, train_sets={"DH": str(tmp_path / "prot")}, countermeasures=["Vanilla"],
                     mixtures=[0.25, 1.0], clean=TRAIN)
    G.run_grid(p, progress=False)
    fracs = {}
    for train, *_ in fake:
        assert np.array_equal(train.labels, clean.labels)
        fracs[len(fracs)] = float(np.mean(np.all(train.images == prot.images, axis=(1, 2, 3))))
    assert sorted(fracs.values()) == [0.25, 1.0]
    recs = G.read_results(tmp_path / "res.jsonl")
    assert sorted(r["mixture"] for r in recs) == [0.25, 1.0]


def test_mixture_needs_matching_sets():
    a = load_dataset(TRAIN, "train")
    b = load_dataset(TRAIN + "&seed=5", "train")
    with pytest.raises(DeephideError, match="labels differ"):
        G.mix_sets(a, b, 0.5, 0)


# ------------------------------------------------------------------------------- Ray, for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.3)
    return False


@pytest.fixture(params=["token-file", "no-token"])
def ray_home(request, monkeypatch, tmp_path):
    """A home for head and driver: with a cluster token in ~/.ray/auth_token (Ray >= 2.59 then makes
    `ray start --head` require it) or without one. Ray sets RAY_AUTH_MODE in os.environ: undone after."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    if request.param == "token-file":
        (home / ".ray" / "auth_token").write_text("deephide-test-" + os.urandom(16).hex())
    monkeypatch.setenv("HOME", str(home))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    try:  # Ray caches the mode and the token per process: read this environment afresh
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        pass
    return request.param


@pytest.fixture
def ray_head(monkeypatch, ray_home):
    """A real Ray head on loopback (its own process group, ended by id); None if it cannot start."""
    # Linux Ray binds and dials the machine's network address unless told this is a loopback-only
    # node: the variable for the head's processes, the constant for this (driver) process
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    pytest.importorskip("ray", reason="ray is not installed")
    monkeypatch.setattr("ray._private.ray_constants.ENABLE_RAY_CLUSTER", False)
    ray_bin = Path(sys.executable).with_name("ray")
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    proc = None
    try:
        if ray_bin.exists():
            with open(os.path.join(tmp, "head.log"), "wb") as logf:
                proc = subprocess.Popen(
                    [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                     "--num-cpus=2", "--disable-usage-stats", "--include-dashboard=false", f"--temp-dir={tmp}"],
                    stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
            ok = _wait_port(port, proc, 60)
        else:
            ok = False
        yield f"127.0.0.1:{port}" if ok else None
    finally:
        if proc is not None:
            # the head and everything it spawned share the process group we created: end exactly that
            for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers (workers) of the same group
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_ray_executor_on_a_real_head(tmp_path, ray_head):
    import ray

    G._DATA_CACHE.clear()
    p = write_config(tmp_path, countermeasures=["Vanilla", "BDR"], resources={"cpus": 1})
    if ray_head is None:  # no head process possible here: a local in-process cluster instead
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            s = G.run_grid(p, executor="ray", progress=False)
        finally:
            ray.shutdown()
    else:
        s = G.run_grid(p, executor="ray", address=ray_head, progress=False)
        assert not ray.is_initialized()  # the driver disconnected after the grid
    assert (s.ran, s.skipped, s.failed) == (2, 0, [])
    recs = G.read_results(tmp_path / "res.jsonl")
    assert sorted(r["countermeasure"] for r in recs) == ["BDR", "Vanilla"]
    assert all(r["finished"] and r["history"] for r in recs)
    s2 = G.run_grid(p, executor="ray", address=ray_head or "local-unused", progress=False) if ray_head else None
    if s2 is not None:
        assert s2.ran == 0 and s2.skipped == 2


def test_ray_unreachable_head_fails_fast(tmp_path, fake):
    pytest.importorskip("ray", reason="ray is not installed")
    t0 = time.monotonic()
    with pytest.raises(DeephideError, match="no cluster answers at 127.0.0.1"):
        G.run_grid(write_config(tmp_path), executor="ray", address=f"127.0.0.1:{_free_port()}", progress=False)
    assert time.monotonic() - t0 < 30 and not fake


# ------------------------------------------------------------------------------- content identity, reuse, time limit


def test_content_identity_keys_by_bytes_not_label_or_path(tmp_path, fake):
    clean = load_dataset(TRAIN, "train")
    save_imageset(clean, tmp_path / "copy")  # the same bytes at another path, under another label
    inverted = clean.replace(images=(255 - clean.images).astype(np.uint8))
    save_imageset(inverted, tmp_path / "other")
    from deephide.evaluation.grid import cells as C
    C._IDENTITY_CACHE.clear()
    cfg = G.load_config(write_config(tmp_path, identity="content", countermeasures=["Vanilla"],
                                     train_sets={"Clean": TRAIN, "Copy": str(tmp_path / "copy"),
                                                 "Other": str(tmp_path / "other")}))
    keys = {c["row"]: c["key"] for c in G.expand(cfg)}
    assert keys["Clean"] == keys["Copy"] != keys["Other"]
    label = G.load_config(write_config(tmp_path, countermeasures=["Vanilla"],
                                       train_sets={"Clean": TRAIN, "Copy": str(tmp_path / "copy")}))
    lk = {c["row"]: c["key"] for c in G.expand(label)}
    assert lk["Clean"] != lk["Copy"]  # the default names cells by label and spec
    # a set that declares the canonical set it stands for takes that set's identity
    (tmp_path / "other" / G.IDENTITY_FILE).write_text(json.dumps({"canonical": G.set_identity(TRAIN)[7:]}))
    C._IDENTITY_CACHE.clear()
    assert G.set_identity(str(tmp_path / "other")) == G.set_identity(TRAIN)
    (tmp_path / "other" / G.IDENTITY_FILE).write_text("[1]")
    C._IDENTITY_CACHE.clear()
    with pytest.raises(DeephideError, match=r"identity.json: expected a JSON object"):
        G.set_identity(str(tmp_path / "other"))
    with pytest.raises(DeephideError, match=r"g.yaml: key 'identity'"):
        G.load_config(write_config(tmp_path, identity="bytes"))


def test_reuse_copies_finished_cells_of_another_results_file(tmp_path, fake):
    first = write_config(tmp_path, identity="content", countermeasures=["Vanilla"])
    G.run_grid(first, progress=False)
    assert len(fake) == 1
    second = write_config(tmp_path, "h.yaml", name="u", out=str(tmp_path / "other.jsonl"), identity="content",
                          countermeasures=["Vanilla", "GaussN"], train_sets={"Base": TRAIN},
                          reuse=[str(tmp_path / "res.jsonl")])
    s = G.run_grid(second, progress=False)
    assert (s.ran, s.skipped) == (1, 1) and len(fake) == 2  # only GaussN trained
    recs = {r["countermeasure"]: r for r in G.read_results(tmp_path / "other.jsonl")}
    assert recs["Vanilla"]["row"] == "Base" and recs["Vanilla"]["grid"] == "u"
    assert recs["Vanilla"]["reused_from"] == str(tmp_path / "res.jsonl") and "reused_from" not in recs["GaussN"]


def test_time_limit_leaves_cells_for_the_next_call(tmp_path, monkeypatch):
    G._DATA_CACHE.clear()
    calls: list = []
    inner = fake_trainer(calls)

    def slow(*a, **kw):
        time.sleep(0.3)
        return inner(*a, **kw)

    monkeypatch.setattr("deephide.training.trainer.train_victim", slow)
    p = write_config(tmp_path, seeds=[0, 1, 2])  # 6 cells of ~0.3 s
    s0 = G.run_grid(p, progress=False, time_limit_s=0.5)  # nothing recorded: a cell of unknown cost needs an hour
    assert s0.ran == 0 and s0.stopped == "time_limit"
    monkeypatch.setattr("deephide.evaluation.grid.clock.UNKNOWN_CELL_S", 0.1)
    s = G.run_grid(p, progress=False, time_limit_s=0.5)
    assert s.stopped == "time_limit" and 1 <= s.ran < 6 and len(G.read_results(tmp_path / "res.jsonl")) == s.ran
    s2 = G.run_grid(p, progress=False)
    assert s2.stopped is None and s2.skipped == s.ran and s.ran + s2.ran == 6


def test_reuse_rekeys_label_keyed_records_by_their_recorded_fingerprint(tmp_path, monkeypatch, one_thread):
    G._DATA_CACHE.clear()
    old = write_config(tmp_path, countermeasures=["Vanilla"])  # identity: label (an older grid)
    G.run_grid(old, progress=False)  # real training records the fingerprint of its training bytes
    calls: list = []
    monkeypatch.setattr("deephide.training.trainer.train_victim", fake_trainer(calls))
    new = write_config(tmp_path, "h.yaml", name="u", out=str(tmp_path / "new.jsonl"), identity="content",
                       countermeasures=["Vanilla"], train_sets={"Renamed": TRAIN}, reuse=[str(tmp_path / "res.jsonl")])
    s = G.run_grid(new, progress=False)
    assert (s.ran, s.skipped) == (0, 1) and calls == []
    (r,) = G.read_results(tmp_path / "new.jsonl")
    assert r["row"] == "Renamed" and r["key"] == G.expand(G.load_config(new))[0]["key"]


@pytest.mark.slow
def test_pool_executor_trains_cells_in_worker_processes_and_resumes(tmp_path):
    """``pool``: real cells in spawned worker processes (what several cells sharing one GPU use); the driver alone
    writes, a second call finds everything done, and a worker's error is recorded without stopping the others."""
    G._DATA_CACHE.clear()
    p = write_config(tmp_path, countermeasures=["Vanilla", "BDR", "GaussN"])
    s = G.run_grid(p, executor="pool", workers=2, progress=False)
    assert (s.ran, s.skipped, s.failed, s.stopped) == (3, 0, [], None)
    recs = G.read_results(tmp_path / "res.jsonl")
    assert sorted(r["countermeasure"] for r in recs) == ["BDR", "GaussN", "Vanilla"]
    assert all(r["finished"] and r["history"] and r["device"] == "cpu" for r in recs)
    assert len({r["key"] for r in recs}) == 3
    assert G.run_grid(p, executor="pool", workers=2, progress=False).skipped == 3
    broken = tmp_path / "broken-set"
    save_imageset(load_dataset(TRAIN, "train"), broken)
    for f in broken.iterdir():  # valid when the grid is planned, unreadable when a worker loads it
        if f.suffix == ".npy":
            f.write_bytes(f.read_bytes()[:100])
    bad = write_config(tmp_path, "bad.yaml", out=str(tmp_path / "bad.jsonl"), countermeasures=["Vanilla"],
                       train_sets={"Broken": str(broken)})
    with pytest.raises(DeephideError, match="1 of 1 cells failed"):
        G.run_grid(bad, executor="pool", workers=2, progress=False)


def test_pool_driver_handles_a_signal_while_it_waits_for_a_cell():
    """A campaign stopped with SIGTERM while the pool driver waited on a cell did not stop until that cell ended
    (minutes): the kernel gave the signal to another thread (the pool's), and Python runs handlers only in the main
    thread, which a blocking get() never woke. The driver now waits in short slices."""
    import queue
    import signal
    import threading

    from deephide.evaluation.grid.executors import _next_finished

    class Stop(Exception):
        pass

    def raise_stop(*_):
        raise Stop

    finished: queue.SimpleQueue = queue.SimpleQueue()
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, args=(30,), daemon=True)  # stands for the pool's threads
    other.start()
    late = threading.Timer(10.0, lambda: finished.put("late"))  # a cell that ends long after the signal
    kill = threading.Timer(0.2, lambda: signal.pthread_kill(other.ident, signal.SIGUSR1))  # to the other thread
    old = signal.signal(signal.SIGUSR1, raise_stop)
    t0 = time.monotonic()
    try:
        late.start()
        kill.start()
        with pytest.raises(Stop):
            _next_finished(finished)
        assert time.monotonic() - t0 < 2.0
    finally:
        signal.signal(signal.SIGUSR1, old)
        late.cancel()
        idle.set()
    finished.put("now")
    assert _next_finished(finished) == "now"
