"""Table of the hider variants checked with check.sh (the runs under runs/diag/) -> README.md + results.json.

Usage: .venv/bin/python experiments/reference-fmnist/hider-tuning/summarise.py
Per variant: the command's settings, the hider's last training log (reveal PSNR), the perturbation
statistics of its protected set (deephide.evaluation.perturbation, first 20k images) and the victims'
final-epoch clean test accuracy, mean +- sample std over seeds 0-2.
"""

from __future__ import annotations

import json
from pathlib import Path

from deephide.data import load_dataset
from deephide.evaluation.grid import load_config, read_results
from deephide.evaluation.perturbation import perturbation_stats
from deephide.evaluation.stats import mean_std
from deephide.hiding.hiderdir import read_summary

ROOT = Path(__file__).resolve().parents[3]

HERE = ROOT / "results" / "reference-fmnist" / "hider-tuning"  # what this script reads and writes
R = ROOT / "runs" / "diag"
COLUMNS = [cm.label for cm in load_config(ROOT / "experiments" / "reference-fmnist" / "configs" / "main.yaml").countermeasures][:13]
# name -> (the check.sh settings, what it tests); order = the order they were run
VARIANTS = {
    "base": ("--set w_freq=1 --set w_lfc=1e-4", "paper loss weights (the reference run's first DH-C hider)"),
    "dist": ("--set w_freq=1 --set w_lfc=1e-4 --set 'reveal_distortions=[\"none\",\"shift-flip\",\"jpeg\"]'",
             "reveal through shift+flip / differentiable JPEG (hiding/distortions.py)"),
    "wf001": ("--set w_freq=0.01 --set w_lfc=1e-4", "w2 = 0.01 (paper Table B's smallest w2)"),
    "lfc001": ("--set w_freq=0.01 --set w_lfc=0.01", "w2 = 0.01, w3 = 0.01"),
    "lfc01": ("--set w_freq=0.01 --set w_lfc=0.1", "w2 = 0.01, w3 = 0.1 (w3 L_LFC ~ w1 L_reveal)"),
    # run after lfc001's weights became the cpu profile's, so the settings name only the change
    "grey": ("--set grey_covers=shared", "lfc001 + a channel-shared perturbation on grey covers (HiderConfig.grey_covers)"),
    "greyll": ("--set grey_covers=shared --set delta_bands=ll",
               "grey + only the LL band of the perturbation, 2x2 block means (HiderConfig.delta_bands)"),
    # the cpu profile as it is (= grey) with L_LFC through fastcnn features: a ~20x cheaper feature network
    "lfcfast": ("--set lfc_model=fastcnn", "grey with L_LFC through fastcnn instead of ResNet-18 (lfc_model)"),
}


def measure(name: str, settings: str, what: str, clean) -> dict:
    """One variant's entry of results.json, from its runs under runs/diag/."""
    recs = read_results(R / f"{name}.jsonl")
    if name == "lfc001":  # its protected set was the reference run's DH-C set: add that row's cells for comparison
        main_cells = ROOT / "runs" / "reference-old2-20261202" / "main.jsonl"  # archived when grey_covers came in
        recs += [r for r in read_results(main_cells) if r["row"] == "DH-C" and r["countermeasure"] != "Vanilla"]
    by: dict[str, list[float]] = {}
    for r in recs:
        by.setdefault(r["countermeasure"], []).append(r["final_acc"])
    summ = read_summary(R / f"hider-{name}")
    pert = perturbation_stats(clean, load_dataset(str(R / f"prot-{name}"), "train", mmap=True))
    accs = {cm: mean_std(v) for cm, v in by.items()}
    v = summ["versions"]
    entry = {"settings": settings, "what": what, "profile": summ["run"]["profile"],
             "reveal_psnr": summ["last_log"]["reveal_psnr"], "perturbation": pert,
             "machine": f"{v['cpu_model']}, native bf16 {v['cpu_bf16']}" if "cpu_model" in v else None,
             "final_acc": {cm: {"seeds": x, "mean": accs[cm][0], "std": accs[cm][1]} for cm, x in by.items()}}
    if len(accs) == 13:  # a full row: the main table's Mean column (mean over the 13 countermeasures)
        entry["mean_of_13"] = sum(m for m, _ in accs.values()) / 13
    return entry


def row(name: str, e: dict) -> str:
    b, pert = e["perturbation"]["band_energy"], e["perturbation"]
    # the main table's column order (results.json sorts its keys)
    order = sorted(e["final_acc"], key=lambda cm: COLUMNS.index(cm) if cm in COLUMNS else len(COLUMNS))
    cells = "; ".join(f"{cm} {a['mean']:.2f} ± {a['std']:.2f} ({', '.join(f'{x:.2f}' for x in a['seeds'])})"
                      for cm, a in ((cm, e["final_acc"][cm]) for cm in order))
    return (f"| {name} | {e['what']} | `{e['settings']}` | {e.get('machine') or 'not recorded'} | {e['reveal_psnr']:.2f} | "
            f"{100 * b['LL']:.0f} / {100 * b['HL']:.0f} / {100 * b['LH']:.0f} / {100 * b['HH']:.0f} | "
            f"{pert['lag1_autocorr']:+.2f} | {100 * pert['class_share']:.1f} | "
            f"{e.get('mean_of_13', float('nan')):.2f} | {cells} |")


def main() -> None:
    clean = load_dataset("fashion-mnist", "train", mmap=True)
    # runs/ does not outlive a machine: a variant whose runs are gone keeps its committed entry
    old = json.loads((HERE / "results.json").read_text()) if (HERE / "results.json").exists() else {}
    out = {}
    for name, (settings, what) in VARIANTS.items():
        if (R / f"{name}.jsonl").exists():
            out[name] = measure(name, settings, what, clean)
        elif name in old:
            out[name] = old[name]
    rows = [row(name, e) for name, e in out.items()]
    (HERE / "results.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    L = ["# Hider variants against the reference victim", "",
         "Generated by `.venv/bin/python experiments/reference-fmnist/hider-tuning/summarise.py` from runs made with",
         "`bash experiments/reference-fmnist/hider-tuning/check.sh NAME COUNTERMEASURES SETTINGS` (cpu hider profile: 4 blocks, 500",
         "steps; SIG secrets, class-wise, seed 0; 60k Fashion-MNIST protected; victim fastcnn, victim profile `fast`).",
         "`base` is the reference run's first class-wise hider (runs/reference/hider-sig-C of 2026-12-01, its Vanilla",
         "cells from that run's main grid), kept under runs/diag/ when the reference sets were regenerated. `lfc001`'s",
         "protected set was the reference run's DH-C set until grey_covers=shared was adopted (`grey` is the DH-C set now):",
         "its cells other than Vanilla are that row's cells of the main grid (same victims, same seeds; the main.jsonl of",
         "then is archived as runs/reference-old2-20261202/main.jsonl).", "",
         "Accuracy: clean test accuracy (%) after the last step, mean ± sample std over victim seeds 0, 1, 2 (per seed in",
         "brackets); lower is better for the protector. Bands: share of the perturbation's energy in the single-level Haar",
         "sub-bands LL / HL / LH / HH (%); lag-1: horizontal autocorrelation of the perturbation (< 0 checkerboard-like);",
         "class share: variance of the perturbation explained by its class means (%); first 20k images.", "",
         "Mean of 13: the main table's Mean column, where all 13 countermeasures were run (nan otherwise). Machine: where",
         "the hider and victims ran (recorded since 2026-12-02; 'not recorded' = the earlier sessions' Intel Xeon with",
         "native bf16, benchmarks/RESULTS.md). Without native bf16 the hider trains in fp32 instead of bf16.", "",
         "| variant | what | settings | machine | reveal PSNR (dB) | bands LL/HL/LH/HH | lag-1 | class share | Mean of 13 | final accuracy |",
         "|---|---|---|---|---|---|---|---|---|---|"] + rows + [""]
    (HERE / "README.md").write_text("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
