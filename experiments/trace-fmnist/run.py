"""Source tracing on Fashion-MNIST (issue 3): does a set of images carry the owner's logo?

Run: .venv/bin/python experiments/trace-fmnist/run.py   (needs runs/fmnist/hider-sig-C from
experiments/dh-fmnist-cpu/run.sh; writes trace.json here). The "logo" is the SIG anchor of class 0
(a picture the hider was trained to hide); it is hidden in 2,000 test images, and the threshold
is calibrated on 1,000 clean test images (target FPR 1%) and measured on 1,000 other clean ones,
before and after JPEG quality 75.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deephide.data import load_dataset
from deephide.fsutil import write_json
from deephide.hiding.hiderdir import bank_dir, open_hider
from deephide.protect import protect
from deephide.semantic import SecretBank, load_bank
from deephide.trace import evaluate_tracing

OUT = Path(__file__).resolve().parents[2] / "results" / "trace-fmnist"  # what this script writes
HIDER = Path("runs/fmnist/hider-sig-C")


def main() -> None:
    test = load_dataset("fashion-mnist", "test")
    hider, info = open_hider(HIDER, image_size=32)
    logo = load_bank(bank_dir(HIDER)).images[0]
    k = test.num_classes
    bank = SecretBank(np.repeat(logo[None], k, axis=0), np.arange(k), k, {"logo": "sig anchor of class 0"})
    owned = test.subset(np.arange(2000, 4000))
    prot = protect(owned, hider, bank, "class", progress=False)
    res = evaluate_tracing(test.images[:2000], prot.images, hider, logo, fpr=0.01, jpeg_quality=75)
    res.update(hider=str(HIDER), logo="SIG anchor of class 0 (32x32)", clean_calibration="test[0:1000]",
               clean_heldout="test[1000:2000]", protected="test[2000:4000] protected with the logo")
    write_json(OUT / "trace.json", res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
