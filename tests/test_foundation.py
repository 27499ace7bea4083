"""The one-of-each helpers below every layer: error lines, derived seeds, image metrics, a training spec's test set."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from deephide.errors import error_line
from deephide.ops.metrics import correlation, mse_psnr, psnr, ssim_t, ssim_uint8, ssim_window
from deephide.runtime import SEED_STREAMS, derive_seed


def test_error_line_is_the_first_line_of_the_original_error():
    assert error_line(ValueError("bad header\n  at byte 12\n")) == "bad header"
    assert error_line(ValueError("")) == "ValueError" and error_line(KeyError()) == "KeyError"
    assert error_line(ValueError("\n\n  second\n")) == "second"
    assert error_line(OSError("x" * 500), limit=10) == "x" * 10
    assert error_line(ValueError("bad"), with_type=True) == "ValueError: bad"

    class TaskError(Exception):  # Ray's task errors: a traceback text, the original error in .cause
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last):\n  File ...\nValueError: boom")
            self.cause = cause

    assert error_line(TaskError(ValueError("boom")), with_type=True) == "ValueError: boom"


def test_derive_seed_is_stable_and_separates_streams():
    # the exact values the trainers drew before the helper existed (a stream id, then the step): results stay comparable
    old = int.from_bytes(hashlib.blake2b(repr((3, 1, 5)).encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)
    assert derive_seed(3, "epoch_order", 5) == old
    assert len(set(SEED_STREAMS.values())) == len(SEED_STREAMS)
    draws = {derive_seed(0, s, 1) for s in SEED_STREAMS} | {derive_seed(0, "augment", k) for k in range(50)}
    assert len(draws) == len(SEED_STREAMS) + 49 and all(0 <= d < 2 ** 63 for d in draws)
    with pytest.raises(KeyError):
        derive_seed(0, "nope")


def test_psnr_ssim_and_correlation_by_hand():
    a = torch.zeros(2, 3, 8, 8)
    assert psnr(a, a + 0.1) == pytest.approx(20.0) and psnr(a, a) == float("inf") and psnr(a, a, cap=100.0) == 100.0
    u = np.zeros((2, 8, 8, 3), np.uint8)
    assert psnr(u, u + 1) == pytest.approx(10 * np.log10(255.0 ** 2)) and mse_psnr(1.0, 255.0) == psnr(u, u + 1)
    assert ssim_window(28, 28) == 11 and ssim_window(8, 6) == 5 and ssim_window(2, 2) == 3
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim_t(x, x), torch.ones(2)) and float(ssim_t(x, 1 - x).mean()) < 0.5
    img = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype(np.uint8)
    assert ssim_uint8(img, img, batch=3) == pytest.approx(1.0)
    ref = img[0]
    c = correlation(np.stack([ref, 255 - ref, np.full_like(ref, 7)]), ref)
    assert c[0] == pytest.approx(1.0) and c[1] == pytest.approx(-1.0) and c[2] == 0.0


def test_test_spec_for_a_loader_a_stored_set_and_a_bare_path(tmp_path):
    from deephide.data import load_dataset
    from deephide.data.registry import test_spec_for
    from deephide.data.stored import save_imageset

    assert test_spec_for("synthetic?n=8") == "synthetic?n=8"
    ds = load_dataset("synthetic?n=8&size=16&classes=2", "train")
    save_imageset(ds.replace(test_spec="synthetic?n=4"), tmp_path / "s")
    stored = load_dataset(str(tmp_path / "s"), "train")
    assert test_spec_for(str(tmp_path / "s"), stored) == "synthetic?n=4"
    assert test_spec_for(str(tmp_path / "s")) is None and test_spec_for("no-such-loader") is None


def test_reuse_freed_memory_is_set_once_where_glibc_runs(monkeypatch):
    import platform
    import subprocess
    import sys

    from deephide import runtime

    # a fresh interpreter: the setting is process-wide, so the test does not depend on what ran before it
    code = ("import torch; from deephide import runtime as r; a = r.reuse_freed_memory(); "
            "r.tune_for(torch.device('cpu')); print(a, r.reuse_freed_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out == [str(glibc)] * 2
    monkeypatch.setattr(runtime, "_malloc_tuned", None)
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")  # elsewhere: nothing is done, and it says so
    assert runtime.reuse_freed_memory() is False


def test_over_cores_runs_one_share_per_thread_in_order_and_restores_the_thread_count():
    import threading

    from deephide import runtime

    cpu, n = torch.device("cpu"), torch.get_num_threads()
    seen = []

    def fn(s: slice):
        seen.append((s, threading.current_thread().name, torch.get_num_threads()))
        return list(range(10))[s]

    try:
        torch.set_num_threads(3)
        assert runtime.over_cores(fn, 10, cpu) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
        assert sorted(s.start for s, _, _ in seen) == [0, 3, 6] and all(t == 1 for _, _, t in seen)
        assert all(name.startswith("deephide-core") for _, name, _ in seen) and torch.get_num_threads() == 3
        seen.clear()
        assert runtime.over_cores(fn, 2, cpu) == [[0], [1]]  # never an empty share
        seen.clear()
        assert runtime.over_cores(fn, 1, cpu) == [[0]] and seen[0][1] == threading.current_thread().name

        def boom(s: slice):
            raise ValueError("share failed")

        with pytest.raises(ValueError, match="share failed"):
            runtime.over_cores(boom, 10, cpu)
        assert torch.get_num_threads() == 3  # restored on failure too
        torch.set_num_threads(1)
        seen.clear()
        assert runtime.over_cores(fn, 10, cpu) == [list(range(10))] and len(seen) == 1
    finally:
        torch.set_num_threads(n)
    seen.clear()  # another device (CUDA) is given the whole batch in the calling thread; fn touches no device here
    assert runtime.over_cores(fn, 10, torch.device("cuda")) == [list(range(10))] and len(seen) == 1


def test_over_cores_works_in_a_forked_child_of_a_process_that_used_it():
    """A forked child inherits the pool object without its threads: it must make its own, not wait forever."""
    import multiprocessing as mp
    import time

    from deephide import runtime

    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        # slow shares: the parent's pool then holds both threads (a fast first share would leave room for a new one)
        assert runtime.over_cores(lambda s: (time.sleep(0.2), s.stop - s.start)[1], 4, torch.device("cpu")) == [2, 2]
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            res = pool.apply_async(_shares_in_child)
            assert res.get(timeout=60) == [2, 2]
    finally:
        torch.set_num_threads(n)


def _shares_in_child() -> list[int]:
    from deephide import runtime

    torch.set_num_threads(2)
    return runtime.over_cores(lambda s: s.stop - s.start, 4, torch.device("cpu"))


def _whoami(x: int, report) -> tuple:
    import os

    report(f"hello {x}")
    return x * 2, os.getpid(), torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def _fails_on_one(x: int, report) -> int:
    from deephide.errors import DeephideError

    if x == 1:
        raise DeephideError("call one cannot\nsecond line")
    return x


def test_side_by_side_runs_each_call_in_its_own_process_with_its_thread_count():
    import os

    from deephide import runtime

    before = os.environ.get("OMP_NUM_THREADS")
    reports = []
    out = runtime.side_by_side(_whoami, [(3,), (5,)], 2, on_report=lambda i, m: reports.append((i, m)))
    assert [o[0] for o in out] == [6, 10]  # in the order of the calls
    assert len({o[1] for o in out}) == 2 and os.getpid() not in {o[1] for o in out}
    assert all(o[2] == 2 and o[3] == "2" for o in out)  # torch's count and OpenMP's, in each child
    assert sorted(reports) == [(0, "hello 3"), (1, "hello 5")]
    assert os.environ.get("OMP_NUM_THREADS") == before  # the parent's environment restored


def test_side_by_side_names_the_call_that_failed_with_its_one_line_error():
    from deephide import runtime

    with pytest.raises(runtime.SideError) as e:
        runtime.side_by_side(_fails_on_one, [(0,), (1,)], 1)
    assert e.value.index == 1 and e.value.message == "call one cannot"
