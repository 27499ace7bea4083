"""Regenerate this folder: python experiments/semantic-preview/make_preview.py (about 15 s on 2 cores).

Contact sheets of the default SIG banks (seed 0) for the Fashion-MNIST classes and the CIFAR-10
class names (no CIFAR images are needed: SIG only reads the names), plus the pixel-feature
Table-J statistics of SIG and of the ablation sources, in stats.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deephide.data import load_dataset
from deephide.data.imageset import ImageSet
from deephide.semantic import make_bank, semantic_stats, write_contact_sheets

OUT = Path(__file__).resolve().parents[2] / "results" / "semantic-preview"  # what this script writes
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def main() -> None:
    fm = load_dataset("fashion-mnist")
    cf = ImageSet(np.zeros((10, 32, 32, 3), np.uint8), np.arange(10), CIFAR10, {"note": "class names only"})
    rows: dict = {}

    def rec(tag: str, bank) -> None:
        rows[tag] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in semantic_stats(bank).items()}
        print(tag, rows[tag])

    for name, train in (("fashion-mnist", fm), ("cifar10-names", cf)):
        b = make_bank("sig", train, "sample", 32, seed=0)
        rec(f"{name}/sig/sample/32", b)
        write_contact_sheets(b, OUT / f"{name}-sig-sample-32")
        rec(f"{name}/sig/class/32", make_bank("sig", train, "class", 32, seed=0))
        write_contact_sheets(make_bank("sig", train, "sample", 64, seed=0, per_class=9), OUT / f"{name}-sig-sample-64")
        rec(f"{name}/random-prompt/sample/32", make_bank("random-prompt", train, "sample", 32, seed=0))
        if name == "fashion-mnist":
            nb = make_bank("next-class", train, "sample", 32, seed=0)
            rec(f"{name}/next-class/sample/32", nb)
            write_contact_sheets(nb, OUT / f"{name}-next-class-sample-32")
        else:
            rec(f"{name}/random-natural(fashion-mnist)/sample/32", make_bank("random-natural", train, "sample", 32, seed=0))
        rows[f"{name}/anchors"] = [
            {"class": c, "anchor": a["name"], "char": a["char"], "cluster": ex[:5]}
            for c, a, ex in zip(train.class_names, b.meta["anchors"], b.meta["cluster_examples"])
        ]
        rows[f"{name}/assignment"] = b.meta["assignment"]
    write_contact_sheets(make_bank("sig", fm, "sample", 224, seed=0, per_class=4), OUT / "fashion-mnist-sig-sample-224")
    (OUT / "stats.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
