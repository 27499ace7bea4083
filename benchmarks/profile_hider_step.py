"""Where a hider training step spends its time: torch.profiler over a few steps of ``train_hider`` (issue 20).

    python benchmarks/profile_hider_step.py --profiles cpu long paper --out benchmarks/HIDER_STEP_PROFILE.md

The run of ``hider_step.py``'s worker (synthetic set, stand-in bank, random-weight L_LFC network, one thread, bf16
where native) under ``torch.profiler``; per profile, the operators with the most self CPU time, grouped by input
shapes, with their share of the whole: the INN's convolutions are the 16x16 ones with 12 + 32k input channels,
L_LFC's feature network (ResNet-18 or fastcnn) has the others.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))


def profile_steps(profile: str, steps: int, out: Path, top: int) -> tuple[float, list[tuple[str, str, float, int]]]:
    """(seconds per step, [(op, input shapes, share of self CPU time, calls)]) for ``steps`` steps after 2."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    import hider_step

    spec = {"profile": profile, "bf16": True, "threads": 1, "n": 2000, "blocks": None, "iters": [2, steps],
            "out": str(out)}
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        res = hider_step.worker(spec)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return res["s_per_step"], [(e.key, str(e.input_shapes[:2]), e.self_cpu_time_total / total, e.count) for e in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["cpu", "long", "paper"])
    ap.add_argument("--steps", type=int, default=4, help="profiled steps after 2 warm-up steps (default 4)")
    ap.add_argument("--top", type=int, default=12, help="operators listed per profile (default 12)")
    ap.add_argument("--out", default=str(HERE / "HIDER_STEP_PROFILE.md"))
    a = ap.parse_args(argv)
    import torch

    from benchlib import machine

    m = machine(torch.device("cpu"))
    lines = ["# Where a hider training step spends its time", "",
             f"Command: `python benchmarks/profile_hider_step.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}; CPU: {m['cpu']}, {m['cpus']} logical cores, "
             f"native bf16: {m['bf16_native']}; torch {m['torch']}; one thread; profiler overhead included", ""]
    with tempfile.TemporaryDirectory(prefix="hider-profile-") as tmp:
        for p in a.profiles:
            per_step, rows = profile_steps(p, a.steps, Path(tmp) / p, a.top)
            lines += [f"## Profile `{p}` ({per_step:.2f} s per step under the profiler)", "",
                      "| operator | input shapes (first two) | share of self CPU time | calls |", "|---|---|---:|---:|"]
            lines += [f"| {k} | `{s}` | {100 * f:.1f}% | {c} |" for k, s, f, c in rows] + [""]
            print(f"profile_hider_step: {p} done", flush=True)
    out = Path(a.out)
    out.write_text("\n".join(lines))
    print(f"profile_hider_step: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
