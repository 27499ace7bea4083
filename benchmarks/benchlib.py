"""Helpers shared by the benchmark scripts: timing, machine facts, FLOP counts, stand-in hiders and banks.

Nothing here is imported by the package; the scripts put this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from deephide.runtime import cpu_model


def median(xs: list[float]) -> float:
    """Median of a non-empty list of measurements."""
    return float(statistics.median(xs))


def timed(fn: Callable[[], Any], device: torch.device | None = None) -> float:
    """Wall seconds of one call of ``fn`` (CUDA work is waited for, so GPU time is counted)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this process's own address space.
    ru_maxrss is not used there: exec keeps the forking parent's peak in it, so a worker started by a
    large parent would report the parent's memory.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if platform.system() == "Linux" else kib / 2**20  # macOS: bytes


def memory_gib() -> float | None:
    """Physical memory, GiB (Linux), or None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


#: environment variables that cap the vector ISA below the CPU's (oneDNN's convolutions, torch's own kernels, MKL's
#: matmul): with all three at AVX2 an AVX-512/AMX CPU stands in for an AVX2 one without native bf16 (the slowest
#: machine kind), at its own clock and cache
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def env_prefix(m: dict[str, Any]) -> str:
    """The ISA caps a run was started with, as a command prefix ('' for an uncapped run)."""
    return "".join(f"{k}={v} " for k, v in (m.get("isa_caps") or {}).items())


def machine(device: torch.device) -> dict[str, Any]:
    """Machine and library facts printed at the top of every result file."""
    import PIL

    from deephide.runtime import bf16_supported, versions

    out = {"cpu": cpu_model(), "cpus": os.cpu_count(), "memory_gib": round(memory_gib() or 0, 1),
           "torch_threads": torch.get_num_threads(), "bf16_native": bf16_supported(device),
           # the vector ISA torch's kernels run with (ATEN_CPU_CAPABILITY may cap it below the CPU's, and
           # ONEDNN_MAX_CPU_ISA oneDNN's: how an AVX2 machine without native bf16 is stood in for)
           "cpu_isa": torch.backends.cpu.get_cpu_capability(),
           "isa_caps": {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)},
           "device": str(device), "pillow": PIL.__version__, **versions()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return out


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int, gflop_per_timing: float = 2.0) -> float:
    """Measured GFLOP/s of an (n x n) @ (n x n) matmul on ``device`` in ``dtype`` (median of repeats)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up: first-call dispatch and allocation
    per = max(1, int(gflop_per_timing * 1e9 // (2 * n**3)))  # several calls per timing on a fast device
    times = [timed(lambda: [a @ b for _ in range(per)], device) for _ in range(repeats)]
    return 2 * n**3 * per / median(times) / 1e9


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs torch's FlopCounterMode attributes to ``fn`` (convolutions and matmuls; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def random_hider(blocks: int, growth: int, size: int = 32, seed: int = 0, scale: float = 0.02):
    """A hider with small random weights everywhere (a trained hider's cost, non-trivial perturbations).

    At HiNet's initialisation the INN is the identity (stego == cover): timing that would be honest but
    the bf16 drift and budget checks would be vacuous, so every weight is drawn from N(0, scale^2).
    """
    from deephide.hiding import Hider, HiderConfig

    torch.manual_seed(seed)
    h = Hider(HiderConfig(blocks=blocks, growth=growth, clamp=2.0, image_size=size))
    with torch.no_grad():
        for p in h.parameters():
            p.normal_(0.0, scale)
    return h.eval()


def synthetic_bank(num_classes: int, size: int, per_class: int = 1, seed: int = 0):
    """A secret bank of random-noise secrets (``per_class`` per class): cost is what is benchmarked."""
    from deephide.semantic import SecretBank

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_classes * per_class, size, size, 3), dtype=np.uint8)
    group = np.repeat(np.arange(num_classes), per_class)
    return SecretBank(images, group, num_classes, {"source": "benchmark-random"})


def baseline_src(root: Path, rev: str, into: Path) -> Path:
    """The ``src`` folder of git revision ``rev`` of the repository at ``root``, extracted under ``into``: put it
    first on PYTHONPATH to run the package as it was at ``rev``."""
    blob = subprocess.run(["git", "-C", str(root), "archive", rev, "src"], capture_output=True, check=False)
    if blob.returncode != 0:
        raise SystemExit(f"benchmarks: git archive {rev} failed: {blob.stderr.decode().strip()}")
    tar = into / "baseline.tar"
    tar.write_bytes(blob.stdout)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "src"


def short_rev(root: Path, rev: str) -> str:
    """``rev`` as a short commit hash (``rev`` itself when git cannot resolve it)."""
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", rev], capture_output=True, text=True)
    return out.stdout.strip() or rev


def side_parser(doc: str, out: Path) -> argparse.ArgumentParser:
    """The arguments every this-tree-against-a-baseline script shares: ``--baseline``, ``--out`` and the hidden
    ``--worker`` that ``run_side`` calls the script with; the script adds its own before parsing."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="HEAD", help="git revision to compare against (default: HEAD)")
    ap.add_argument("--out", default=str(out), help="markdown file (a .json beside it)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    return ap


def work_if_asked(a: argparse.Namespace, worker: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """With ``--worker SPEC``: run ``worker`` on the JSON spec and print its JSON result (the line ``run_side``
    reads); whether it did."""
    if not a.worker:
        return False
    print(json.dumps(worker(json.loads(a.worker))))
    return True


def run_side(script: Path, src: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """``script --worker SPEC`` in a fresh interpreter running the package in ``src`` (first on PYTHONPATH) with
    ``spec["threads"]`` threads; the JSON object its last output line holds. A failed run stops the benchmark."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(spec["threads"]))
    res = subprocess.run([sys.executable, str(script), "--worker", json.dumps(spec)], capture_output=True, text=True,
                         env=env, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"{script.name}: a run of {src} failed ({json.dumps(spec)}): {tail}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def baseline_header(title: str, script: str, res: dict[str, Any], threads: int) -> list[str]:
    """The first lines of a this-tree-against-a-baseline result file: title, command, date, baseline, machine."""
    m = res["machine"]
    return [f"# {title}", "",
            f"Command: `{env_prefix(m)}python benchmarks/{script} {' '.join(res['argv'])}`  ",
            f"Date: {res['date']}; wall time {res['wall_s'] / 60:.1f} min; baseline `{res['baseline']}`  ",
            f"CPU: {m.get('cpu')}, {m.get('cpus')} logical cores, native bf16: {m.get('bf16_native')}, vector ISA "
            f"{m.get('cpu_isa')}{' (capped)' if m.get('isa_caps') else ''}; torch {m.get('torch')}; "
            f"{threads} thread(s) per run  "]


def save_result(out: Path, res: dict[str, Any], markdown: str) -> None:
    """``res`` as JSON beside the markdown file ``out`` (same name, .json), both written; says where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    out.write_text(markdown)
    print(f"benchmarks: wrote {out} and {out.with_suffix('.json')}")
