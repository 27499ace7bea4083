"""Summary of results/dh-fmnist-cpu: hiders, protected sets and victims in one Markdown file.

Usage: python experiments/dh-fmnist-cpu/summarise.py > results/dh-fmnist-cpu/summary.md
Reads runs/fmnist/hider-*/summary.json, runs/fmnist/prot-*.verify.json and the grid's results.jsonl.
A set is tied to its victims by fingerprint (sha256 of images + labels, recorded in every result):
"match" means the set on disk is byte for byte the one the victims were trained on.
"""

import json
from pathlib import Path

from deephide.data import load_imageset
from deephide.evaluation.grid import read_results
from deephide.evaluation.stats import aggregate
from deephide.hiding.hiderdir import read_summary
from deephide.training.trainer import data_fingerprint

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "fmnist"
RESULTS = ROOT / "results" / "dh-fmnist-cpu" / "results.jsonl"


def main() -> None:
    records = read_results(RESULTS)
    prints = {}
    for r in records:
        prints.setdefault(Path(r["train"]).name, r["data"]["train"]["fingerprint"])
    print("## Hiders and protected sets (cpu hider profile, seed 0)\n")
    print("| set | hider s | iterations | final reveal PSNR (dB) | raw mean abs delta (levels) | L-inf | mean abs delta "
          "(levels) | at bound | PSNR (dB) | SSIM | same bytes as the victims' set |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for hider in sorted(RUNS.glob("hider-*")):
        name = hider.name[len("hider-"):]
        s = read_summary(hider)
        last = s.get("last_log") or {}
        vf = RUNS / f"prot-{name}.verify.json"
        v = json.loads(vf.read_text()) if vf.exists() else {}
        prot = RUNS / f"prot-{name}"
        match = "n/a"
        if prot.is_dir() and f"prot-{name}" in prints:
            match = "match" if data_fingerprint(load_imageset(prot)) == prints[f"prot-{name}"] else "DIFFERS"
        print(f"| {name} | {s['seconds']:.0f} | {s['iterations_done']} | {last.get('reveal_psnr', float('nan')):.2f} "
              f"| {last.get('mean_levels', float('nan')):.2f} | {v.get('linf_levels', '')} | {v.get('mean_abs_levels', float('nan')):.2f} "
              f"| {100 * v.get('frac_at_bound', float('nan')):.1f}% | {v.get('psnr', float('nan')):.2f} | {v.get('ssim', float('nan')):.4f} | {match} |")
    print("\n## Victims: ResNet-20, cpu victim profile, vanilla training, clean test accuracy (%)\n")
    print("| row | final (mean ± std) | last-3-evaluations mean | best evaluation | seeds | per seed (final) |")
    print("|---|---|---|---|---|---|")
    aggs = {stat: aggregate(records, stat) for stat in ("final", "last3", "best")}
    for key, a in aggs["final"].items():
        def fmt(x):
            return f"{x.mean:.2f} ± {x.std:.2f}" if x.std is not None else f"{x.mean:.2f}"
        print(f"| {key[0]} | {fmt(a)} | {fmt(aggs['last3'][key])} | {fmt(aggs['best'][key])} | {a.n} "
              f"| {', '.join(f'{v:.2f}' for v in a.values)} |")


if __name__ == "__main__":
    main()
