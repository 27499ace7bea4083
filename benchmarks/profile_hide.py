"""Where protect's INN spends its time: torch.profiler over ``Hider.hide`` batches, fp32 and bf16 (issue 20, item 3).

    python benchmarks/profile_hide.py --out benchmarks/HIDE_PROFILE.md      # ~1 min on an idle 2-core CPU
    python benchmarks/profile_hide.py --quick --out /tmp/hp.md              # smoke test (seconds)

The bare INN of ``protect`` as benchmarks/hide_speed.py times it (``protect.hide_batch``: 16 blocks, growth 32,
random weights, batches of 256 channels-last 32x32 covers and secrets, each core hiding its own share,
``runtime.tune_for``, no gradient), timed over ``--batches`` batches, then profiled over as many, per precision.
torch.profiler records only the thread it runs on, so the profiled batches run each core's share in turn on that
thread, with one intra-op thread as on its core: the same operators on the same shapes; its ms per batch are
core-ms (the sum over the shares). For each precision: the operator families' share of self CPU time and ms per batch
(convolution, the DenseSubnets' concatenation, LeakyReLU, dtype casts and copies, the coupling's arithmetic, the
wavelet transforms), the top operators by input shape, and the INN's FLOPs (torch's FlopCounterMode) over the
convolutions' own core-seconds divided by the threads: the rate oneDNN reaches on these shapes, beside the matmul
rate measured in the same run.
The gap between that rate and the whole batch's rate is what the layers around the convolutions cost.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))

#: operator family by the first substring of the operator's name that matches (order matters)
FAMILIES = (("convolution", "convolution"), ("conv2d", "convolution"), ("cat", "concatenation (DenseSubnet)"),
            ("leaky_relu", "LeakyReLU"), ("copy_", "casts and copies"), ("_to_copy", "casts and copies"),
            ("clone", "casts and copies"), ("contiguous", "casts and copies"),
            ("exp", "coupling arithmetic (exp, clamp, add, mul)"), ("atan", "coupling arithmetic (exp, clamp, add, mul)"),
            ("tanh", "coupling arithmetic (exp, clamp, add, mul)"), ("add", "coupling arithmetic (exp, clamp, add, mul)"),
            ("sub", "coupling arithmetic (exp, clamp, add, mul)"), ("mul", "coupling arithmetic (exp, clamp, add, mul)"),
            ("slice", "views (slicing, reshapes)"), ("view", "views (slicing, reshapes)"),
            ("reshape", "views (slicing, reshapes)"), ("permute", "views (slicing, reshapes)"),
            ("empty", "allocation"))


def family(op: str) -> str:
    """The family of operator ``op`` (``other`` when none matches)."""
    return next((f for key, f in FAMILIES if key in op), "other")


def profile_precision(hider: Any, cover: Any, secret: Any, bf16: bool, batches: int) -> dict[str, Any]:
    """One precision's profile: events summed by family and by operator, the convolutions' time, wall per batch."""
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from deephide.protect import hide_batch
    from deephide.runtime import autocast, share_slices

    dev = torch.device("cpu")
    hide_batch(hider, cover, secret, dev, bf16)  # oneDNN's primitives made once
    t0 = time.perf_counter()
    for _ in range(batches):
        hide_batch(hider, cover, secret, dev, bf16)
    unprofiled = (time.perf_counter() - t0) / batches
    # torch.profiler sees only the thread it runs on, so each core's share runs here in turn, with one thread as on
    # its core: the same operators on the same shapes (without the other core's traffic beside it)
    threads = torch.get_num_threads()
    shares = share_slices(len(cover), threads)  # over_cores' shares
    torch.set_num_threads(1 if len(shares) > 1 else threads)
    try:
        with torch.no_grad(), autocast(dev, bf16), torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
            for _ in range(batches):
                for s in shares:
                    hider.hide(cover[s], secret[s])
    finally:
        torch.set_num_threads(threads)
    events = p.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    fams: dict[str, float] = {}
    for e in events:
        fams[family(e.key)] = fams.get(family(e.key), 0.0) + e.self_cpu_time_total
    ops = [{"op": e.key, "shapes": str(e.input_shapes[:2]), "share": e.self_cpu_time_total / total,
            "ms_per_call": e.self_cpu_time_total / 1000 / max(1, e.count), "calls": e.count}
           for e in sorted(events, key=lambda e: -e.self_cpu_time_total)]
    return {"s_per_batch": unprofiled, "self_core_ms_per_batch": total / 1000 / batches,
            "families": {f: {"share": t / total, "ms_per_batch": t / 1000 / batches}
                         for f, t in sorted(fams.items(), key=lambda kv: -kv[1])},
            "ops": ops}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=4, help="profiled batches of 256 per precision (default 4)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    ap.add_argument("--top", type=int, default=14, help="operators listed per precision (default 14)")
    ap.add_argument("--quick", action="store_true", help="2 blocks, growth 8, batch 32 (smoke test)")
    ap.add_argument("--out", default=str(HERE / "HIDE_PROFILE.md"))
    a = ap.parse_args(argv)
    import torch

    from benchlib import count_flops, machine, matmul_gflops, random_hider, save_result
    from deephide.runtime import bf16_supported, tune_for

    torch.set_num_threads(a.threads)
    dev = torch.device("cpu")
    tune_for(dev)  # the process settings protect makes
    blocks, growth, batch = (2, 8, 32) if a.quick else (16, 32, 256)
    hider = random_hider(blocks, growth).to(memory_format=torch.channels_last)  # protect's layout
    g = torch.Generator().manual_seed(0)
    cover = torch.rand(batch, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    secret = torch.rand(batch, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        flops = count_flops(lambda: hider.hide(cover, secret))
    t0 = time.perf_counter()
    res: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv, "machine": machine(dev),
                           "date": _dt.datetime.now().isoformat(timespec="seconds"), "blocks": blocks,
                           "growth": growth, "batch": batch, "threads": a.threads, "gflop_per_batch": flops / 1e9,
                           "precisions": {}}
    for prec in ["fp32"] + (["bf16"] if bf16_supported(dev) else []):
        dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        r = profile_precision(hider, cover, secret, prec == "bf16", a.batches)
        r["matmul_gflops"] = matmul_gflops(dev, dtype, 512 if a.quick else 2048, 3)
        # the convolutions' core-seconds spread over the threads: their rate had they kept every core busy
        conv_s = r["families"].get("convolution", {}).get("ms_per_batch", 0.0) / 1000 / a.threads
        r["conv_gflops"] = flops / 1e9 / conv_s if conv_s else None
        r["batch_gflops"] = flops / 1e9 / r["s_per_batch"]
        res["precisions"][prec] = r
    res["wall_s"] = time.perf_counter() - t0
    save_result(Path(a.out), {**res, "precisions": {p: {**r, "ops": r["ops"][:a.top]}
                                                    for p, r in res["precisions"].items()}}, render(res, a.top))
    return 0


def render(res: dict[str, Any], top: int) -> str:
    m = res["machine"]
    L = ["# Where protect's INN spends its time", "",
         f"Command: `python benchmarks/profile_hide.py {' '.join(res['argv'])}`  ",
         f"Date: {res['date']}; CPU: {m['cpu']}, {m['cpus']} logical cores, native bf16: {m['bf16_native']}; torch "
         f"{m['torch']}; {res['threads']} thread(s); profiler overhead included in the tables, not in the rates  ",
         f"INN: {res['blocks']} blocks, growth {res['growth']}, batch {res['batch']} (32x32 RGB), channels-last, "
         f"no gradient; {res['gflop_per_batch']:.1f} GFLOP per batch (FlopCounterMode)", "",
         "## Rates", "",
         "| precision | s per batch (unprofiled) | img/s | whole batch GFLOP/s | convolutions alone GFLOP/s | matmul "
         "GFLOP/s (same run) | batch / matmul | convolutions / matmul |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for prec, r in res["precisions"].items():
        conv = r["conv_gflops"]
        conv_rate = "–" if conv is None else f"{conv:,.0f}"
        conv_share = "–" if conv is None else f"{100 * conv / r['matmul_gflops']:.1f}%"
        L.append(f"| {prec} | {r['s_per_batch']:.3f} | {res['batch'] / r['s_per_batch']:.1f} | "
                 f"{r['batch_gflops']:,.0f} | {conv_rate} | {r['matmul_gflops']:,.0f} | "
                 f"{100 * r['batch_gflops'] / r['matmul_gflops']:.1f}% | "
                 f"{conv_share} |")
    for prec, r in res["precisions"].items():
        L += ["", f"## {prec}: by operator family", "", "| family | share of self CPU time | core-ms per batch |",
              "|---|---:|---:|"]
        L += [f"| {f} | {100 * v['share']:.1f}% | {v['ms_per_batch']:.1f} |" for f, v in r["families"].items()]
        L += ["", f"## {prec}: operators", "", "| operator | input shapes (first two) | share | ms per call | calls |",
              "|---|---|---:|---:|---:|"]
        L += [f"| {o['op']} | `{o['shapes']}` | {100 * o['share']:.1f}% | {o['ms_per_call']:.3f} | {o['calls']} |"
              for o in r["ops"][:top]]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
