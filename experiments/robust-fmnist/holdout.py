"""Makes the Fashion-MNIST validation hold-out (issue 33): 5,000 of the 60,000 training images, stratified.

Command (repository root, after `make setup`); it wrote src/deephide/data/splits/fashion-mnist-holdout.json:
  .venv/bin/python experiments/robust-fmnist/holdout.py
The seed is fixed; rerunning reproduces the committed file byte for byte (tests/data/test_holdout.py checks it).
"""

from __future__ import annotations

import json

from deephide.data import load_dataset
from deephide.data.holdout import SPLITS_DIR, holdout_record

N, SEED = 5_000, 20261207
COMMAND = "python experiments/robust-fmnist/holdout.py"


def main() -> None:
    labels = load_dataset("fashion-mnist", "train").labels
    rec = holdout_record("fashion-mnist", labels, N, SEED, COMMAND)
    out = SPLITS_DIR / "fashion-mnist-holdout.json"
    out.write_text(json.dumps(rec) + "\n")
    print(f"{out}: {rec['n']} of {rec['of']} training images, per class {rec['per_class']}")


if __name__ == "__main__":
    main()
