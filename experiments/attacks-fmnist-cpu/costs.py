"""Generation cost and budget of every attack set under a directory, as a Markdown table.

Usage: python experiments/attacks-fmnist-cpu/costs.py runs/attacks > results/attacks-fmnist-cpu/generation.md
Reads each set's manifest (provenance.protection) and its <name>.verify.json written by `deephide verify`.
"""

import json
import sys
from pathlib import Path

from deephide.data import load_imageset


def main(root: str) -> None:
    print("| attack | mode | budget | L-inf (levels) | mean abs delta (levels) | PSNR (dB) | SSIM | wall (s) "
          "| forward / backward image passes | threads | shortened from paper |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        p = load_imageset(d).provenance["protection"]
        v = json.loads((d.parent / f"{d.name}.verify.json").read_text())
        c = p["cost"]
        short = p["shortening"]
        changed = ", ".join(f"{k} {x['paper']}->{x['used']}" for k, x in (short.get("changed") or {}).items()) or "no"
        threads = p.get("versions", {}).get("cpu_threads", "")
        print(f"| {p['method']} | {p['mode']} | {p['budget']} | {v['linf_levels']} | {v['mean_abs_levels']:.2f} "
              f"| {v['psnr']:.2f} | {v['ssim']:.4f} | {c['seconds']:.0f} | {c['forward_images']:,} / {c['backward_images']:,} "
              f"| {threads} | {changed} |")


if __name__ == "__main__":
    main(sys.argv[1])
