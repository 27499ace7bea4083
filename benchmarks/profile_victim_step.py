"""Where a grid cell's training step spends its time: torch.profiler over ``train_victim`` steps (issue 20, item 1).

    python benchmarks/profile_victim_step.py --out benchmarks/VICTIM_STEP_PROFILE.md
    python benchmarks/profile_victim_step.py --model resnet20 --profile cpu --steps 10 --out benchmarks/RESNET20_STEP_PROFILE.md

The campaign's cell (fastcnn, profile ``fast``: batch 128, bf16 autocast where native, channels-last, one thread)
on a synthetic 32x32x3 set, ``--steps`` steps after ``--warm`` unprofiled ones, one evaluation of 256 test images
at the end (the batch-256 rows). Two tables: the operators with the most self CPU time, grouped by input
shapes, and the same time summed by operator family (convolution forward / backward, max-pool with its backward,
the zero fills of gradient buffers (max-pool's among them), BatchNorm, GELU, ReLU, the adds, optimizer, the batch's
augmentation and copies, the rest). ``--model resnet20 --profile cpu`` profiles the ResNet-20 victim the same way
(`RESNET20_STEP_PROFILE.md`: why it stays below 3x the peer loop). The profiler's cost per step grows with the
steps it records (ResNet-20, one thread: 292 / 492 / 806 ms per profiled step over 10 / 20 / 30 steps, 197 ms
without it), so each table states the unprofiled step beside the profiled one; keep ``--steps`` small.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))

#: operator family by the first substring of the operator's name that matches (order matters)
FAMILIES = (("convolution_backward", "convolution backward"), ("convolution", "convolution forward"),
            ("max_pool", "max-pool (forward, backward)"), ("fill_", "zero fills (gradient buffers)"),
            ("batch_norm", "BatchNorm"), ("gelu", "GELU"), ("relu", "ReLU"), ("threshold_backward", "ReLU"),
            ("Optimizer", "optimizer"), ("sgd", "optimizer"), ("_foreach", "optimizer"),
            ("aten::add", "adds (residuals, counters)"),
            ("index", "augmentation and copies"), ("pad", "augmentation and copies"), ("copy_", "augmentation and copies"),
            ("cross_entropy", "loss"), ("log_softmax", "loss"), ("nll", "loss"))


def family(op: str) -> str:
    """The family of operator ``op`` (``other`` when none matches)."""
    return next((f for key, f in FAMILIES if key in op), "other")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fastcnn")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--warm", type=int, default=10, help="steps before the profiled ones (default 10)")
    ap.add_argument("--steps", type=int, default=30, help="profiled steps (default 30)")
    ap.add_argument("--top", type=int, default=16, help="operators listed (default 16)")
    ap.add_argument("--out", default=str(HERE / "VICTIM_STEP_PROFILE.md"))
    a = ap.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from deephide.data import load_dataset
    from deephide.profiles import get_profile
    from deephide.training.trainer import train_victim

    from benchlib import machine

    torch.set_num_threads(1)
    train = load_dataset("synthetic?n=4096&classes=10&size=32", "train")
    test = load_dataset("synthetic?n=256&classes=10&size=32", "test")  # one evaluation batch: the steps dominate
    prof = get_profile("victim", a.profile)
    warm = get_profile("victim", a.profile, iterations=a.warm, eval_every=a.warm)
    train_victim(train, test, a.model, warm, seed=0, device="cpu", progress=False)  # oneDNN's kernels made once
    run = get_profile("victim", a.profile, iterations=a.steps, eval_every=a.steps)
    bare = train_victim(train, test, a.model, run, seed=0, device="cpu", progress=False)  # the same steps unprofiled
    t0 = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        res = train_victim(train, test, a.model, run, seed=0, device="cpu", progress=False)
    wall = time.perf_counter() - t0
    events = p.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    fams: dict[str, float] = {}
    for e in events:
        fams[family(e.key)] = fams.get(family(e.key), 0.0) + e.self_cpu_time_total
    m = machine(torch.device("cpu"))
    per_step = res["train_time_s"] / a.steps
    lines = [f"# Where a {a.model} victim's training step spends its time", "",
             f"Command: `python benchmarks/profile_victim_step.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}; CPU: {m['cpu']}, {m['cpus']} logical cores, "
             f"native bf16: {m['bf16_native']}; torch {m['torch']}; one thread; profiler overhead included  ",
             f"Cell: {a.model}, profile `{a.profile}` (batch {prof['batch_size']}, bf16 {res['bf16']}, channels-last "
             f"{prof['channels_last']}); {a.steps} profiled steps at {1000 * per_step:.1f} ms per step under the "
             f"profiler (wall {wall:.1f} s with the final evaluation), {1000 * bare['train_time_s'] / a.steps:.1f} ms "
             "per step for the same steps without it", "",
             "## By operator family", "", "| family | share of self CPU time | ms per step |", "|---|---:|---:|"]
    for f, t in sorted(fams.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {f} | {100 * t / total:.1f}% | {t / 1000 / a.steps:.2f} |")
    lines += ["", "## Operators", "", "| operator | input shapes (first two) | share of self CPU time | ms per call | calls |",
              "|---|---|---:|---:|---:|"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:a.top]:
        lines.append(f"| {e.key} | `{e.input_shapes[:2]}` | {100 * e.self_cpu_time_total / total:.1f}% | "
                     f"{e.self_cpu_time_total / 1000 / max(1, e.count):.3f} | {e.count} |")
    out = Path(a.out)
    out.write_text("\n".join(lines) + "\n")
    print(f"profile_victim_step: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
