"""Hider training speed, this tree against a baseline revision, with the loss curves of both (issue 20, item 2).

    # HIDER_STEP.md (~30 min, one thread beside other work):
    python benchmarks/hider_step.py --baseline 1c825c0 --profiles cpu long paper --precisions bf16 --curve-steps 40 --window 10
    python benchmarks/hider_step.py --baseline 1c825c0 --out benchmarks/HIDER_STEP.md   # every profile and precision
    python benchmarks/hider_step.py --baseline HEAD --quick --out /tmp/hs                 # smoke test (~1 min)

What is measured: ``train_hider`` itself (every loss term, the spike guard, the optimizer), profile by profile,
on the deterministic synthetic set (2,000 images of 32x32, 10 classes) with a stand-in bank and, where the
profile has L_LFC, its feature network with random weights (a trained one costs the same). Seconds per step
come from the training log (``log_every=1``) after ``--warm`` steps. The baseline is the package of a git
revision (``git archive REV src`` into a temporary folder, put first on PYTHONPATH); every measurement runs in
a fresh interpreter, baseline and this tree alternating for ``--rounds`` rounds, so a machine that is busy
with other work slows both alike; the ratio of the medians is the result. One thread (as a campaign worker
trains) unless ``--threads``.

Loss curves (the issue's "equal loss curves: same seed, first 200 steps within noise"): one run of each side for
``--curve-steps`` steps from seed 0, and the baseline once more from seed 1 as the yardstick of noise. The total loss
is averaged over windows of ``--window`` steps; the table gives the largest relative difference of those window
means between the two sides (seed 0 both) beside the one between the baseline's two seeds. Rows that compute the
same arithmetic (fp32 here) are checked bit for bit over ``--same-steps`` steps instead.
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
PROFILES = ("cpu", "long", "paper")


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One training run in this interpreter (whichever package PYTHONPATH gives): seconds per step and losses."""
    import torch

    from deephide.data import load_dataset
    from deephide.hiding import get_hider_profile
    from deephide.hiding.hiderdir import read_log
    from deephide.hiding.train import train_hider
    from deephide.models import build_model

    from benchlib import synthetic_bank

    torch.set_num_threads(spec["threads"])

    warm, n = spec["iters"]
    over = {"iterations": warm + n, "log_every": 1, "checkpoint_every": 10**9, "snapshot_at": ()}
    if spec.get("bf16") is not None:
        over["bf16"] = spec["bf16"]
    if spec.get("blocks"):
        over["blocks"] = spec["blocks"]
    over.update(spec.get("overrides") or {})  # a variant of the profile (robust_step.py)
    prof = get_hider_profile(spec["profile"], **over)
    train = load_dataset(f"synthetic?n={spec['n']}&classes=10&size=32", "train")
    bank = synthetic_bank(10, 32, per_class=4)
    feat = None
    if prof.get("lfc", True) and prof["w_lfc"] > 0:
        torch.manual_seed(0)
        net = build_model(prof["lfc_model"], num_classes=10)  # random weights: L_LFC's cost, not its features
        net = net.float().to(memory_format=torch.contiguous_format).eval().requires_grad_(False)  # as feature_model
        feat = net.features
    s = train_hider(train, bank, prof, spec["out"], mode="class", seed=spec.get("seed", 0), features=feat, device="cpu",
                    progress=False)
    log = read_log(spec["out"])
    secs = {r["iteration"]: r["seconds"] for r in log}
    per_step = (secs[warm + n] - secs[warm]) / n if warm else secs[n] / n
    return {"s_per_step": per_step, "bf16": s["bf16"], "batch": prof["batch_size"], "blocks": prof["blocks"],
            "total": [r["total"] for r in log], "rollbacks": log[-1].get("rollbacks", 0)}


def max_rel_diff(a: list[float], b: list[float], window: int = 1) -> float:
    """Largest relative difference between the means of ``a`` and ``b`` over consecutive windows of ``window`` steps."""
    means = lambda xs: [statistics.fmean(xs[i:i + window]) for i in range(0, len(xs) - window + 1, window)]  # noqa: E731
    return max((abs(x - y) / max(abs(x), 1e-12) for x, y in zip(means(a), means(b))), default=0.0)


def main(argv: list[str] | None = None) -> int:
    from benchlib import side_parser, work_if_asked

    ap = side_parser(__doc__, HERE / "HIDER_STEP.md")
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    ap.add_argument("--warm", type=int, default=3, help="steps not timed (default 3)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each side, alternating (default 3)")
    ap.add_argument("--curve-steps", type=int, default=200, help="steps of the bf16 loss-curve comparison (default 200)")
    ap.add_argument("--window", type=int, default=20, help="steps per window of the curve comparison (default 20)")
    ap.add_argument("--same-steps", type=int, default=10, help="steps of the fp32 bit-for-bit check (default 10)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 block, 2+2 steps, 1 round, 4-step curves (smoke test)")
    a = ap.parse_args(argv)
    if work_if_asked(a, worker):
        return 0
    import torch

    from benchlib import baseline_src, machine, run_side, save_result, short_rev

    script = Path(__file__).resolve()

    if a.quick:
        a.warm, a.steps, a.rounds, a.curve_steps, a.window, a.same_steps = 2, 2, 1, 4, 2, 2
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hider-step-") as tmp:
        tmp = Path(tmp)
        sides = {"baseline": baseline_src(ROOT, a.baseline, tmp), "this tree": ROOT / "src"}
        for prof in a.profiles:
            for prec in a.precisions:
                base = {"profile": prof, "bf16": prec == "bf16", "threads": a.threads, "n": 2000,
                        "blocks": 1 if a.quick else None}
                times: dict[str, list[float]] = {k: [] for k in sides}
                info: dict[str, Any] = {}
                for r in range(a.rounds):
                    for side, src in sides.items():
                        res = run_side(script, src, {**base, "iters": [a.warm, a.steps],
                                                     "out": str(tmp / f"{prof}-{prec}-t{r}-{side[:4]}")})
                        times[side].append(res["s_per_step"])
                        info = res
                n_curve = a.curve_steps if prec == "bf16" else a.same_steps
                curves = {side: run_side(script, src, {**base, "iters": [0, n_curve],
                                                       "out": str(tmp / f"{prof}-{prec}-curve-{side[:4]}")})
                          for side, src in sides.items()}
                window = a.window if prec == "bf16" else 1
                noise = None
                if prec == "bf16":
                    seed1 = run_side(script, sides["baseline"], {**base, "iters": [0, n_curve], "seed": 1,
                                                            "out": str(tmp / f"{prof}-{prec}-curve-seed1")})
                    noise = max_rel_diff(curves["baseline"]["total"], seed1["total"], window)
                tb, tn = statistics.median(times["baseline"]), statistics.median(times["this tree"])
                row = {"profile": prof, "precision": prec, "native_bf16_used": info["bf16"], "blocks": info["blocks"],
                       "batch": info["batch"], "baseline_s_per_step": tb, "this_s_per_step": tn, "speedup": tb / tn,
                       "baseline_times": times["baseline"], "this_times": times["this tree"],
                       "curve_steps": n_curve, "window": window, "seed_noise": noise,
                       "curve_max_rel_diff": max_rel_diff(curves["baseline"]["total"], curves["this tree"]["total"], window),
                       "curves": {k: v["total"] for k, v in curves.items()},
                       "curve_final": {k: v["total"][-1] for k, v in curves.items()},
                       "rollbacks": {k: v["rollbacks"] for k, v in curves.items()}}
                rows.append(row)
                print(f"{prof} {prec}: {tb:.3f} -> {tn:.3f} s/step ({tb / tn:.2f}x); loss curves differ by at most "
                      f"{row['curve_max_rel_diff']:.2e} (relative, {window}-step means) over {n_curve} steps"
                      + (f"; seed 0 vs 1 of the baseline: {noise:.2e}" if noise is not None else ""), flush=True)
    res = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
           "baseline": short_rev(ROOT, a.baseline), "machine": machine(torch.device("cpu")), "threads": a.threads,
           "wall_s": round(time.perf_counter() - t_start, 1), "rows": rows}
    save_result(Path(a.out), res, render(res))
    return 0


def render(res: dict[str, Any]) -> str:
    from benchlib import baseline_header

    lines = baseline_header("Hider training: this tree against a baseline revision", "hider_step.py", res,
                            res["threads"]) + [
        "",
        "Seconds per training step: median over alternating fresh runs of each side (each run's mean over its "
        "timed steps). Loss curves: largest relative difference of the total loss between the sides (seed 0), "
        "averaged over windows of the given steps (1 = step by step: 0 means bit for bit), beside the same between "
        "the baseline's seeds 0 and 1 (the noise).", "",
        "| profile | precision | blocks | batch | baseline s/step | this tree s/step | speedup | loss: max rel. diff, this vs baseline | seeds 0 vs 1 (noise) | steps (window) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rows"]:
        prec = r["precision"] + ("" if r["precision"] == "fp32" or r["native_bf16_used"] else " (not native: fp32)")
        lines.append(f"| {r['profile']} | {prec} | {r['blocks']} | {r['batch']} | {r['baseline_s_per_step']:.3f} | "
                     f"{r['this_s_per_step']:.3f} | **{r['speedup']:.2f}x** | {r['curve_max_rel_diff']:.1e} | "
                     f"{'-' if r['seed_noise'] is None else format(r['seed_noise'], '.1e')} | "
                     f"{r['curve_steps']} ({r['window']}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
