"""One grid cell (victim training with its evaluations), this tree against a baseline revision (issue 20, item 1).

    # VICTIM_CELL.md (~5 min on an idle 2-core CPU, longer beside other work):
    python benchmarks/victim_cell.py --baseline c4cc0ce --seeds 0 1 2
    python benchmarks/victim_cell.py --baseline HEAD --quick --out /tmp/vc    # smoke test (~1 min)

What is measured: the whole cell as the reference campaign runs it: ``train_victim`` on Fashion-MNIST (60,000
training images, 32x32x3, the 10,000 test images evaluated ``eval_every`` steps), the grid victim (fastcnn) and its
profile (``fast``: 937 steps of 128, bf16 autocast where the CPU has it natively, channels-last), one thread, no
countermeasure (Vanilla). Cell seconds = the worker's wall time from loading the data to the returned result (what a
cell of the campaign costs, less the interpreter's start); its parts: training steps, evaluations, the rest.

The baseline is the package of a git revision (``git archive REV src``, first on PYTHONPATH); each run is a fresh
interpreter; per seed both sides run, alternating which goes first, so a busy machine slows both alike; the ratio
of the medians is the result. Accuracy (the issue's "at equal accuracy, 3 seeds, final and peak"): mean +- std of
each side's final and peak test accuracy over the seeds, and whether both sides' evaluation histories (test
accuracy, training loss) are equal bit for bit.
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


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One cell in this interpreter (whichever package PYTHONPATH gives): its times, accuracies and history."""
    t0 = time.perf_counter()
    import torch

    from deephide.data import load_dataset
    from deephide.profiles import get_profile
    from deephide.training.trainer import train_victim

    torch.set_num_threads(spec["threads"])
    t_load = time.perf_counter()
    train, test = load_dataset(spec["data"], "train"), load_dataset(spec["data"], "test")
    prof = get_profile("victim", spec["profile"], **spec.get("override", {}))
    t1 = time.perf_counter()
    res = train_victim(train, test, spec["model"], prof, seed=spec["seed"], device="cpu", progress=False)
    t2 = time.perf_counter()
    hist = res["history"]
    accs = [h["test_acc"] for h in hist]
    return {"cell_s": t2 - t_load, "import_s": t_load - t0, "load_s": t1 - t_load, "train_s": res["train_time_s"],
            "eval_and_rest_s": (t2 - t1) - res["train_time_s"], "bf16": res["bf16"],
            "final": accs[-1], "peak": max(accs), "history": [[h["test_acc"], h["train_loss"]] for h in hist],
            "iterations": prof["iterations"], "batch": prof["batch_size"]}


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    from benchlib import side_parser, work_if_asked

    ap = side_parser(__doc__, HERE / "VICTIM_CELL.md")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="fastcnn")
    ap.add_argument("--profile", default="fast", help="victim profile (default: fast, the campaign's)")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="synthetic data, 40 steps, seed 0 (smoke test)")
    a = ap.parse_args(argv)
    if work_if_asked(a, worker):
        return 0
    import torch

    from benchlib import baseline_src, machine, run_side, save_result, short_rev

    script = Path(__file__).resolve()
    base = {"data": a.data, "profile": a.profile, "model": a.model, "threads": a.threads}
    if a.quick:
        base.update(data="synthetic?n=2048&classes=10&size=32", override={"iterations": 40, "eval_every": 20})
        a.seeds = [0]
    t_start = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
    with tempfile.TemporaryDirectory(prefix="victim-cell-") as tmp:
        sides = {"baseline": baseline_src(ROOT, a.baseline, Path(tmp)), "this tree": ROOT / "src"}
        for i, seed in enumerate(a.seeds):
            order = list(sides) if i % 2 == 0 else list(sides)[::-1]  # alternate who runs first
            for side in order:
                r = run_side(script, sides[side], {**base, "seed": seed})
                runs[side].append({"seed": seed, **r})
                print(f"seed {seed} {side}: cell {r['cell_s']:.1f} s (train {r['train_s']:.1f}, evaluations and rest "
                      f"{r['eval_and_rest_s']:.1f}, data {r['load_s']:.1f}); final {r['final']:.2f}, peak {r['peak']:.2f}",
                      flush=True)
    summary = {}
    for side, rs in runs.items():
        summary[side] = {k: statistics.median(r[k] for r in rs) for k in ("cell_s", "train_s", "eval_and_rest_s", "load_s")}
        summary[side]["final"] = mean_std([r["final"] for r in rs])
        summary[side]["peak"] = mean_std([r["peak"] for r in rs])
    identical = all(b["history"] == t["history"] for b, t in zip(runs["baseline"], runs["this tree"]))
    res = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
           "baseline": short_rev(ROOT, a.baseline), "machine": machine(torch.device("cpu")), "threads": a.threads,
           "wall_s": round(time.perf_counter() - t_start, 1), "spec": base, "seeds": a.seeds, "runs": runs,
           "summary": summary, "cell_ratio": summary["this tree"]["cell_s"] / summary["baseline"]["cell_s"],
           "histories_identical": identical}
    save_result(Path(a.out), res, render(res))
    return 0


def render(res: dict[str, Any]) -> str:
    from benchlib import baseline_header

    s, r0 = res["summary"], res["runs"]["this tree"][0]
    lines = baseline_header("A grid cell: this tree against a baseline revision", "victim_cell.py", res,
                            res["threads"]) + [
        f"Cell: {res['spec']['model']} on {res['spec']['data']}, profile `{res['spec']['profile']}` ({r0['iterations']} "
        f"steps of {r0['batch']}, bf16 used: {r0['bf16']}), Vanilla, seeds {res['seeds']}", "",
        "Seconds: median over the seeds (fresh interpreter per run, sides alternating). Accuracy: mean +- std over the "
        "seeds, %.", "",
        "| side | cell s | training steps s | evaluations and rest s | data load s | final acc | peak acc |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for side, v in s.items():
        lines.append(f"| {side} | {v['cell_s']:.1f} | {v['train_s']:.1f} | {v['eval_and_rest_s']:.1f} | "
                     f"{v['load_s']:.1f} | {v['final'][0]:.2f} +- {v['final'][1]:.2f} | "
                     f"{v['peak'][0]:.2f} +- {v['peak'][1]:.2f} |")
    lines += ["", f"**Cell cost, this tree / baseline: {res['cell_ratio']:.3f}x** (the issue's target: <= 0.5x). "
              f"Evaluation histories (test accuracy and training loss at every evaluation) equal bit for bit on every "
              f"seed: **{'yes' if res['histories_identical'] else 'no'}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
