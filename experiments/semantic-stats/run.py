"""Table J statistic of the secret banks with ResNet-18 features (issue 4).

Run: .venv/bin/python experiments/semantic-stats/run.py   (writes stats.json and stats.md here)
Features: the ResNet-18 trained on clean Fashion-MNIST with the `cpu` victim profile (seed 0), the
same network L_LFC uses (cached; trained on first use), penultimate layer. Pixel features
(16x16 average-pooled pixels) are given beside them. CIFAR-10 banks use only the class names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deephide.data import load_dataset
from deephide.data.imageset import ImageSet
from deephide.hiding.lfc import feature_model
from deephide.semantic import make_bank, semantic_stats
from deephide.semantic.stats import network_features

OUT = Path(__file__).resolve().parents[2] / "results" / "semantic-stats"  # what this script writes
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def main() -> None:
    fm_train, fm_test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    net = feature_model(fm_train, fm_test, profile="cpu", seed=0, progress=False)
    r18 = network_features(net)
    cf = ImageSet(np.zeros((10, 32, 32, 3), np.uint8), np.arange(10), CIFAR10, {"note": "class names only"})
    rows = []
    banks = [("fashion-mnist", fm_train, src, mode) for src in ("sig", "random-prompt", "next-class") for mode in ("class", "sample")]
    banks += [("cifar10-names", cf, src, mode) for src in ("sig", "random-prompt") for mode in ("class", "sample")]
    for name, train, src, mode in banks:
        b = make_bank(src, train, mode, 32, seed=0)
        px, rf = semantic_stats(b), semantic_stats(b, r18)
        rows.append({"classes": name, "source": src, "mode": mode, "secrets": px["secrets"],
                     "intra_r18": round(rf["intra"], 4), "inter_r18": round(rf["inter"], 4), "between_r18": round(rf["between"], 4),
                     "intra_px": round(px["intra"], 4), "inter_px": round(px["inter"], 4)})
        print(rows[-1])
    (OUT / "stats.json").write_text(json.dumps(rows, indent=1) + "\n")
    head = "| classes | source | mode | secrets | intra (R18) | inter (R18) | between (R18) | intra (px) | inter (px) |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['classes']} | {r['source']} | {r['mode']} | {r['secrets']} | {r['intra_r18']} | {r['inter_r18']} | "
                     f"{r['between_r18']} | {r['intra_px']} | {r['inter_px']} |")
    (OUT / "stats.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
