"""Device choice, bf16 support, seeding and provenance: the only place that knows about hardware."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; any torch device string is accepted."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 autocast is fast: CUDA with bf16, or a CPU with native bf16 (AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:  # older builds without the op
            return False
    return False


def autocast(device: torch.device, enabled: bool,
             dtype: torch.dtype = torch.bfloat16) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (bf16 by default, fp16 on CUDA) on ``device`` when ``enabled``, else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def full_fp32(device: torch.device):
    """fp32 arithmetic without TF32 while inside (restored after): what a set's bytes are made with, so that a set
    regenerated on a GPU differs from a CPU-made one by float rounding only (cuDNN convolutions use TF32 by default,
    ~1e-3 relative error, enough to move many uint8 roundings). A no-op off CUDA."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def amp_dtype(device: torch.device, wanted: bool, allow_fp16: bool = True) -> torch.dtype | None:
    """The reduced precision to train in, or None for fp32.

    ``wanted`` (a profile's ``bf16`` flag) asks for reduced precision where it is fast: bf16 on a CPU
    with native bf16 or a CUDA GPU with bf16; fp16 (needs a loss scaler) on an older CUDA GPU when
    ``allow_fp16``. Everything else trains in fp32.
    """
    if not wanted:
        return None
    if bf16_supported(device):
        return torch.bfloat16
    if device.type == "cuda" and allow_fp16:
        return torch.float16
    return None


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> Any:
    """A loss scaler for fp16 training; disabled (a pass-through: ``step`` is ``opt.step``) otherwise."""
    enabled = dtype == torch.float16
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch 2.2: CUDA only, as fp16 is


#: glibc mallopt parameters (malloc.h) and the largest block size glibc lets M_MMAP_THRESHOLD take on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX, _MMAP_THRESHOLD_MAX = -1, -3, -8, 32 << 20
_malloc_tuned: bool | None = None


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of returning them to the kernel.

    Why: a batch's activations are megabytes each, allocated and freed every step. By default glibc serves
    such blocks with mmap (its threshold adapts, but not reliably) and trims freed heap tops, so the next step
    gets fresh pages that the kernel zero-fills on first touch (benchmarks/HIDE_SPEED.md counts them per batch
    of the 16-block INN; protect's fp32 hide is 1.15-1.17x faster with this setting). Threads share the main heap
    (one arena): a thread's own arena lives in 64 MiB heaps that glibc unmaps when they empty, so the threads of
    ``over_cores`` would get fresh pages every batch again (~90,000 faults per bf16 batch; 1.04x with one arena).
    Early, as here, before torch starts its threads: set later, arenas made meanwhile stay in use (measured:
    thousands of faults per batch again).
    The arithmetic is untouched (same bytes out); the process keeps its peak heap instead of handing it back
    between steps. Once per process; glibc only (elsewhere nothing is done). Returns whether the setting is in force.
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            import ctypes

            try:
                libc = ctypes.CDLL(None)  # the C library this interpreter already runs on
                _malloc_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                                     and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
                                     and libc.mallopt(_M_ARENA_MAX, 1))
            except (OSError, AttributeError):
                pass
    return _malloc_tuned


@functools.lru_cache(maxsize=None)
def _share_pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """The threads ``over_cores`` runs its shares on: made on first use, kept for the process (no per-batch start).

    Keyed by the process id: a forked child inherits the pool object but not its threads, and would wait forever.
    """
    return ThreadPoolExecutor(workers, thread_name_prefix="deephide-core")


def share_slices(n: int, parts: int) -> list[slice]:
    """``n`` items cut into ``min(parts, n)`` contiguous shares (at least one) whose sizes differ by at most one.

    Example:
        >>> share_slices(10, 3)
        [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    k = max(1, min(parts, n))
    return [slice(n * i // k, n * (i + 1) // k) for i in range(k)]


def over_cores(fn: Callable[[slice], T], n: int, device: torch.device) -> list[T]:
    """``fn`` over ``n`` items in one contiguous share per CPU thread, each share on its own thread with one intra-op
    thread: ``[fn(slice(0, b1)), fn(slice(b1, b2)), ...]``, in order.

    Why: no-grad inference through many small layers (the INN's 16x16 convolutions, its concatenations and
    activations) loses time to the barrier that ends every multi-threaded op and to splitting each small op over the
    cores; giving each core its own images instead runs protect's INN 1.2-1.3x faster in bf16 on 2 cores with the
    same bytes out (benchmarks/HIDE_SPEED.md). Each share's activations are also smaller, so fewer of them fall
    outside what ``reuse_freed_memory`` keeps. ``fn`` runs on another thread, where grad mode and autocast are not
    inherited (both are thread-local): it sets them itself. Meant for inference: an autograd graph built across
    threads works but gains nothing here. On CUDA, with one thread, or for fewer than 2 items: ``[fn(slice(0, n))]``.
    The process's intra-op thread count is 1 while the shares run and restored afterwards, so two callers must not
    run it at once.

    Example:
        >>> x = torch.arange(10.0)
        >>> torch.cat(over_cores(lambda s: x[s] * 2, 10, torch.device("cpu"))).tolist() == (x * 2).tolist()
        True
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or n < 2:
        return [fn(slice(0, n))]
    shares = share_slices(n, threads)
    torch.set_num_threads(1)
    try:
        return list(_share_pool(len(shares), os.getpid()).map(fn, shares))
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def thread_count(n: int):
    """While inside, ``n`` threads: torch's own count in this process, and $OMP_NUM_THREADS for the processes
    started meanwhile (spawned workers read it before torch starts their thread pool); both restored after."""
    old_env, old_torch = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old_torch)
        if old_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_env


class SideError(RuntimeError):
    """A call of ``side_by_side`` failed: ``index`` (its place in ``calls``) and ``message`` (one line)."""

    def __init__(self, index: int, message: str):
        super().__init__(f"call {index}: {message}")
        self.index, self.message = index, message


def side_by_side(fn: Callable[..., T], calls: list[tuple], threads_each: int,
                 on_report: Callable[[int, Any], None] | None = None) -> list[T]:
    """``[fn(*args, report=...) for args in calls]``, each call in its own spawned process with ``threads_each``
    intra-op threads, all at once; results in the order of ``calls``.

    Why: small convolutional nets do not use a second thread fully, so two independent trainings finish sooner side
    by side than one after the other (the demo's two fastcnn victims, 937 steps each: 138.4 s side by side against
    149.6 s one after the other at 2 threads, process starts included, AVX2 capped; benchmarks/DEMO_TIME_AVX2.md),
    and each gives the same bytes as a one-thread run of it anywhere on that machine kind (a process's float sums
    depend on its thread count, not on what runs beside it).
    ``fn`` must be importable by name (spawn pickles it by reference) and takes a keyword ``report``: calling
    ``report(message)`` in the child calls ``on_report(index, message)`` here (progress lines). A child's exception
    is raised here with the child's one-line error, after the other children are
    stopped (a ``SideError`` with the call's index); so is an interrupt. Processes, not threads: the global RNG and
    the thread count are per process.
    """
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")  # fork would copy this process's OpenMP pool and any CUDA state
    q = ctx.Queue()
    with thread_count(threads_each):  # $OMP_NUM_THREADS: read by the child's OpenMP before torch starts it
        procs = [ctx.Process(target=_side_child, args=(fn, args, threads_each, q, i), daemon=True)
                 for i, args in enumerate(calls)]
        for p in procs:
            p.start()
    results: dict[int, Any] = {}
    try:
        while len(results) < len(calls):
            try:
                i, kind, payload = q.get(timeout=0.5)  # short waits: an interrupt is handled between them
            except queue_mod.Empty:
                dead = [k for k, p in enumerate(procs) if k not in results and not p.is_alive() and p.exitcode]
                if dead and q.empty():
                    raise SideError(dead[0], f"its process died (exit code {procs[dead[0]].exitcode})")
                continue
            if kind == "report":
                if on_report is not None:
                    on_report(i, payload)
            elif kind == "error":
                raise SideError(i, payload)
            else:
                results[i] = payload
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    return [results[i] for i in range(len(calls))]


def _side_child(fn: Callable[..., Any], args: tuple, threads: int, q: Any, i: int) -> None:
    """One call of ``side_by_side`` in its process: its thread count, its reports and its result or error."""
    from .errors import error_line

    torch.set_num_threads(threads)
    try:
        q.put((i, "done", fn(*args, report=lambda msg: q.put((i, "report", msg)))))
    except BaseException as e:  # noqa: BLE001 -- the parent raises it, named; a traceback here would be lost
        q.put((i, "error", error_line(e, 300)))


def tune_for(device: torch.device) -> None:
    """Process settings for a long run on ``device``: on CUDA, cuDNN times and picks its fastest conv kernels for
    the fixed shapes; on the CPU, freed activation memory is reused (``reuse_freed_memory``)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu":
        reuse_freed_memory()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; CPU work is already done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def versions() -> dict[str, Any]:
    """Library and machine versions recorded next to every result."""
    import deephide

    out = {
        "deephide": deephide.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    out["host_cpus"] = os.cpu_count()
    # CPU speed differs ~7x between 2-core machines with and without native bf16 (AVX512-BF16/AMX):
    # every timing is read against these two
    out["cpu_model"] = cpu_model()
    out["cpu_bf16"] = bf16_supported(torch.device("cpu"))
    return out


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor() or the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the random streams drawn from one run seed, each by its own id (ids are part of every result: never renumber)
SEED_STREAMS: dict[str, int] = {
    "epoch_order": 1,      # victim trainer: the sample order of an epoch
    "data_train": 2,       # victim trainer: a countermeasure's one-off change of the training images
    "data_test": 3,        # ... and of the test images
    "augment": 4,          # victim trainer: a step's augmentation draw
    "global": 5,           # victim trainer: the global RNG at a step (AT's random start)
    "hider_batch": 7,      # hider training: a step's class-balanced batch and secrets
    "hider_z": 8,          # hider training: a step's reveal-side z
    "hider_distortion": 9,  # hider training: a step's distortion between storing and revealing
    "surrogate_init": 10,  # hider training: the surrogate victim's initial weights (hiding.surrogate)
    "surrogate": 11,       # hider training: a step's augmentation of the surrogate's batch
    "linear_surrogate": 12,  # hider training: L_lin's linear classifier (init and epoch order)
    "hider_secret_zoom": 13,  # hider training: which secrets of a step's batch are zoomed in, and where
    "hider_grey": 14,      # hider training: which covers of a step's batch are made grey
}


def derive_seed(seed: int, stream: str, *parts: int) -> int:
    """A 63-bit seed for ``stream`` (a :data:`SEED_STREAMS` name) at ``parts`` (an epoch, a step) of a run seeded
    ``seed``: stable across runs, processes and platforms, independent between streams and steps."""
    h = hashlib.blake2b(repr((seed, SEED_STREAMS[stream]) + parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)
