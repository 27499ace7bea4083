"""The INN's hide throughput, this tree against a baseline revision, as a share of the measured matmul peak (issue 20).

    python benchmarks/hide_speed.py --baseline 1c825c0 --out benchmarks/HIDE_SPEED.md   # ~3 min on an idle 2-core CPU
    python benchmarks/hide_speed.py --baseline HEAD --quick --out /tmp/hs                 # smoke test (seconds)

What is measured: the 16-block HiNet INN (growth 32, random weights: a trained one costs the same) hiding batches
of 256 random 32x32 RGB covers and secrets already in memory, channels-last as ``protect`` holds them, in a process
set up as ``protect`` sets it up (``runtime.tune_for``), without gradients, in fp32 and under bf16 autocast (where
the CPU has native bf16), called as ``protect`` calls it: ``protect.hide_batch`` where the side's package has it
(each core hides its own share of the batch), else ``Hider.hide`` on the whole batch: the bare INN of ``protect``.
Each side runs in a fresh interpreter (the baseline is ``git archive REV src``, first on PYTHONPATH),
alternating for ``--rounds`` rounds; the median images/s of each side is compared, and given as a share of this
run's own matmul rate (2048x2048, same threads) with the INN's FLOPs per image from torch's FlopCounterMode.
Output: whether both sides produce the same stego tensor bit for bit (then the stored bytes are the same too),
and each side's minor page faults per timed batch (fresh pages the kernel zero-fills: allocator behaviour).
Run it on an otherwise idle machine: the share of peak is absolute (the ratio between the sides is not).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Hide throughput of whichever package PYTHONPATH gives, per precision, its page faults, a hash of each output."""
    import resource

    import torch

    from benchlib import random_hider
    from deephide.runtime import autocast, bf16_supported, tune_for

    torch.set_num_threads(spec["threads"])
    dev = torch.device("cpu")
    tune_for(dev)  # the process settings protect makes (where the side's package has any for the CPU)
    hider = random_hider(spec["blocks"], spec["growth"]).to(memory_format=torch.channels_last)  # protect's layout
    g = torch.Generator().manual_seed(0)
    cover = torch.rand(spec["batch"], 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    secret = torch.rand(spec["batch"], 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {}
    try:  # the INN as protect calls it (where the side's package has the function: each core its own share)
        from deephide.protect import hide_batch
    except ImportError:  # a baseline from before it: protect called the hider on the whole batch
        def hide_batch(hider, cover, secret, dev, bf16):
            with torch.no_grad(), autocast(dev, bf16):
                return hider.hide(cover, secret)[0]
    for prec in ["fp32"] + (["bf16"] if bf16_supported(dev) else []):
        bf16 = prec == "bf16"
        stego = hide_batch(hider, cover, secret, dev, bf16)  # warm-up: oneDNN primitive creation
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(spec["batches"]):
            hide_batch(hider, cover, secret, dev, bf16)
        dt = time.perf_counter() - t0
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / spec["batches"]
        out[prec] = {"images_per_s": spec["batches"] * spec["batch"] / dt, "page_faults_per_batch": faults,
                     "sha256": hashlib.sha256(stego.float().contiguous().numpy().tobytes()).hexdigest()[:16]}
    return out


def main(argv: list[str] | None = None) -> int:
    from benchlib import side_parser, work_if_asked

    ap = side_parser(__doc__, HERE / "HIDE_SPEED.md")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating (default 3)")
    ap.add_argument("--batches", type=int, default=4, help="timed batches of 256 per run and precision (default 4)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    ap.add_argument("--blocks", type=int, default=16,
                    help="coupling blocks of the INN (default 16, HiNet's; 4: the shipped Fashion-MNIST hiders)")
    ap.add_argument("--quick", action="store_true", help="2 blocks, growth 8, batch 32, 1 round (smoke test)")
    a = ap.parse_args(argv)
    if work_if_asked(a, worker):
        return 0
    import torch

    from benchlib import (baseline_src, count_flops, machine, matmul_gflops, random_hider, run_side, save_result,
                          short_rev)

    torch.set_num_threads(a.threads)
    spec = {"blocks": 2, "growth": 8, "batch": 32, "batches": 1} if a.quick else \
        {"blocks": a.blocks, "growth": 32, "batch": 256, "batches": a.batches}
    spec["threads"] = a.threads
    rounds = 1 if a.quick else a.rounds
    t_start = time.perf_counter()
    dev = torch.device("cpu")
    flops = count_flops(lambda: random_hider(spec["blocks"], spec["growth"]).hide(torch.rand(1, 3, 32, 32),
                                                                                   torch.rand(1, 3, 32, 32)))
    peak = {"fp32": matmul_gflops(dev, torch.float32, 256 if a.quick else 2048, 3)}
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
    with tempfile.TemporaryDirectory(prefix="hide-speed-") as tmp:
        sides = {"baseline": baseline_src(ROOT, a.baseline, Path(tmp)), "this tree": ROOT / "src"}
        for _ in range(rounds):
            for side, src in sides.items():
                runs[side].append(run_side(Path(__file__).resolve(), src, spec))
    precisions = list(runs["this tree"][0])
    if "bf16" in precisions:
        peak["bf16"] = matmul_gflops(dev, torch.bfloat16, 256 if a.quick else 2048, 3)
    rows = []
    for prec in precisions:
        ips = {side: statistics.median(r[prec]["images_per_s"] for r in rs) for side, rs in runs.items()}
        same = runs["baseline"][0][prec]["sha256"] == runs["this tree"][0][prec]["sha256"]
        rows.append({"precision": prec, "baseline_images_per_s": ips["baseline"], "this_images_per_s": ips["this tree"],
                     "speedup": ips["this tree"] / ips["baseline"], "matmul_gflops": peak[prec],
                     "baseline_share_of_peak": ips["baseline"] * flops / 1e9 / peak[prec],
                     "this_share_of_peak": ips["this tree"] * flops / 1e9 / peak[prec], "same_output": same,
                     "page_faults_per_batch": {side: statistics.median(r[prec]["page_faults_per_batch"] for r in rs)
                                               for side, rs in runs.items()},
                     "runs": {side: [r[prec]["images_per_s"] for r in rs] for side, rs in runs.items()}})
        print(f"hide {prec}: {ips['baseline']:.1f} -> {ips['this tree']:.1f} img/s "
              f"({ips['this tree'] / ips['baseline']:.2f}x), {100 * rows[-1]['this_share_of_peak']:.1f}% of the "
              f"{prec} matmul peak; same output: {same}", flush=True)
    res = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
           "baseline": short_rev(ROOT, a.baseline), "machine": machine(dev), "spec": spec,
           "gflop_per_image": flops / 1e9, "wall_s": round(time.perf_counter() - t_start, 1), "rows": rows}
    save_result(Path(a.out), res, render(res))
    return 0


def _faults(row: dict[str, Any], side: str) -> str:
    """A row's median minor page faults per timed batch of ``side`` (older results did not count them)."""
    f = row.get("page_faults_per_batch", {}).get(side)
    return "-" if f is None else f"{f:,.0f}"


def render(res: dict[str, Any]) -> str:
    from benchlib import baseline_header

    s = res["spec"]
    lines = baseline_header("The INN's hide throughput: this tree against a baseline revision", "hide_speed.py", res,
                            s["threads"]) + [
        f"INN: {s['blocks']} blocks, growth {s['growth']}, batch {s['batch']}, {res['gflop_per_image']:.4f} GFLOP per "
        "image (FlopCounterMode: convolutions of Hider.hide, the whole INN; both shares of peak count these, so a side "
        "that skips work it does not need shows it as a higher share)", "",
        "| precision | baseline img/s | this tree img/s | speedup | matmul peak (GFLOP/s) | baseline share of peak | this tree share of peak | page faults per batch (baseline -> this tree) | same output bit for bit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rows"]:
        lines.append(f"| {r['precision']} | {r['baseline_images_per_s']:.1f} | {r['this_images_per_s']:.1f} | "
                     f"**{r['speedup']:.2f}x** | {r['matmul_gflops']:,.0f} | {100 * r['baseline_share_of_peak']:.1f}% | "
                     f"**{100 * r['this_share_of_peak']:.1f}%** | {_faults(r, 'baseline')} -> {_faults(r, 'this tree')} | "
                     f"{'yes' if r['same_output'] else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
