"""What the robust hider's training step costs against today's long-profile step (issue 33, item 6), in one run.

    # ROBUST_STEP.md (~10 min, one thread):
    python benchmarks/robust_step.py
    python benchmarks/robust_step.py --quick --out /tmp/rs.md     # smoke test (~1 min)

Rows, each ``train_hider`` itself through hider_step.py's worker (the synthetic 2,000-image set, a stand-in bank,
L_LFC's feature network with random weights where the profile has it), measured in fresh interpreters, the rows
alternating for ``--rounds`` rounds so a machine busy with other work slows every row alike; the ratio of medians
against the first row is the result:
  long            today's long profile (the paper's objective, L_LFC through fastcnn): the issue's yardstick
  long + L_sv     what the shipped fmnist-class / fmnist-sample trained with (w_sv 0.1, restarts every 200 steps)
  robust          profile robust: the distortion layer on the reveal and the surrogate's countermeasure views
  robust + AT-4   robust with the surrogate trained adversarially (PGD-2 at 4/255, REM's min-min-max)
The target: robust and robust + AT-4 <= 1.5x long.
"""

from __future__ import annotations

import datetime as _dt
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

#: row label -> (profile, overrides)
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "long": ("long", {}),
    "long + L_sv": ("long", {"w_sv": 0.1, "sv_reset": 200}),
    "robust": ("robust", {}),
    "robust + AT-4": ("robust", {"sv_adv_levels": 4}),
}
TARGET = 1.5


def main(argv: list[str] | None = None) -> int:
    from benchlib import side_parser, work_if_asked
    from hider_step import worker

    ap = side_parser(__doc__, HERE / "ROBUST_STEP.md")
    ap.add_argument("--warm", type=int, default=5, help="steps not timed (default 5)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each row, alternating (default 3)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 block, 2+2 steps, 1 round (smoke test)")
    a = ap.parse_args(argv)
    if work_if_asked(a, worker):
        return 0
    import torch

    from benchlib import machine, run_side, save_result

    if a.quick:
        a.warm, a.steps, a.rounds = 2, 2, 1
    t0 = time.perf_counter()
    times: dict[str, list[float]] = {k: [] for k in ROWS}
    with tempfile.TemporaryDirectory(prefix="robust-step-") as tmp:
        for r in range(a.rounds):
            for label, (prof, over) in ROWS.items():
                spec = {"profile": prof, "overrides": over, "threads": a.threads, "n": 2000, "bf16": True,
                        "blocks": 1 if a.quick else None, "iters": [a.warm, a.steps],
                        "out": str(Path(tmp) / f"{label.replace(' ', '')}-{r}")}
                times[label].append(run_side(Path(__file__).resolve(), ROOT / "src", spec)["s_per_step"])
                print(f"round {r + 1}: {label}: {times[label][-1]:.3f} s/step", flush=True)
    base = statistics.median(times["long"])
    rows = [{"row": k, "profile": ROWS[k][0], "overrides": ROWS[k][1], "s_per_step": statistics.median(v),
             "times": v, "vs_long": statistics.median(v) / base} for k, v in times.items()]
    res = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
           "machine": machine(torch.device("cpu")), "threads": a.threads, "warm": a.warm, "steps": a.steps,
           "rounds": a.rounds, "quick": a.quick, "wall_s": round(time.perf_counter() - t0, 1), "rows": rows}
    save_result(Path(a.out), res, render(res))
    return 0


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# Robust hider training step against today's long-profile step (issue 33, item 6)", "",
             f"Command: `python benchmarks/robust_step.py {' '.join(res['argv'])}`  ",
             f"Date: {res['date']}; wall time {res['wall_s'] / 60:.1f} min  ",
             f"CPU: {m['cpu']}, {m['cpus']} logical cores, native bf16: {m['bf16_native']}; torch {m['torch']}; "
             f"{res['threads']} thread(s) per run, bf16 autocast as the profiles train  ", "",
             f"Seconds per step: median over {res['rounds']} alternating fresh runs of each row (each the mean of "
             f"{res['steps']} steps after {res['warm']} untimed ones); batch 40, 4 coupling blocks"
             + (" (quick: 1 block)" if res["quick"] else "") + f". Target: robust <= {TARGET}x long.", "",
             "| row | s/step | x long | within target |", "|---|---:|---:|---|"]
    for r in res["rows"]:
        ok = "-" if r["row"].startswith("long") else ("yes" if r["vs_long"] <= TARGET else "no")
        lines.append(f"| {r['row']} | {r['s_per_step']:.3f} | {r['vs_long']:.2f}x | {ok} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
