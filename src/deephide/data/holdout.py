"""The validation hold-out: a fixed, stratified part of a training split that every choice is made on.

Why: a hider variant, a loss weight or a snapshot chosen by victims scored on the test split (or on the seeds the
tables report) makes the tables optimistic. Every selection instead trains on the rest of the training split and
scores victims on the hold-out; the test split is read only for the reported rows, after the choice is frozen.

A hold-out is committed as JSON in ``deephide/data/splits/`` (indices into the training split, the command that
made them, per-class counts and the sha256 of the labels at those indices) and is opened by the loader's
``holdout=1`` option (``fashion-mnist?holdout=1``): its ``train`` split is the training split without the hold-out
(55,000 images), its ``test`` split is the hold-out (5,000 training images). Loading checks the file against the
data it is applied to, so a different copy of the dataset is refused instead of silently split otherwise.

>>> import numpy as np
>>> idx = stratified_holdout(np.repeat(np.arange(3), 10), 6, seed=0)
>>> idx.size, np.bincount(np.repeat(np.arange(3), 10)[idx]).tolist()
(6, [2, 2, 2])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeephideError

SPLITS_DIR = Path(__file__).resolve().parent / "splits"


def stratified_holdout(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` items of ``labels`` (int (N,)), each class drawn in proportion to its size
    (largest remainders for the rounding), uniformly within the class by ``np.random.default_rng(seed)``."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0 < n < labels.size:
        raise DeephideError(f"hold-out: need 0 < n < {labels.size}, got {n}")
    exact = counts * n / labels.size
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]:
        take[k] += 1
    rng = np.random.default_rng(seed)
    parts = [rng.choice(np.flatnonzero(labels == c), size=t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(parts)).astype(np.int64)


def labels_digest(labels: np.ndarray) -> str:
    """sha256 of labels as int64 little-endian bytes (what a hold-out file records of its labels)."""
    return hashlib.sha256(np.asarray(labels, dtype="<i8").tobytes()).hexdigest()


def holdout_record(dataset: str, labels: np.ndarray, n: int, seed: int, command: str) -> dict[str, Any]:
    """The JSON record of a new hold-out of ``labels`` (the training split's labels)."""
    idx = stratified_holdout(labels, n, seed)
    return {"dataset": dataset, "split": "train", "n": int(idx.size), "of": int(labels.size), "seed": seed,
            "command": command, "per_class": np.bincount(labels[idx]).tolist(),
            "labels_sha256": labels_digest(labels[idx]), "indices": idx.tolist()}


def load_holdout(dataset: str, labels: np.ndarray, source: str) -> np.ndarray:
    """The committed hold-out of ``dataset`` as sorted indices, checked against ``labels`` (the training split's)."""
    path = SPLITS_DIR / f"{dataset}-holdout.json"
    if not path.exists():
        raise DeephideError(f"{source}: no validation hold-out is committed for {dataset} ({path.name})")
    rec = json.loads(path.read_text())
    idx = np.asarray(rec["indices"], dtype=np.int64)
    if rec.get("of") != labels.size or idx.size != rec.get("n") or (idx.size and int(idx.max()) >= labels.size):
        raise DeephideError(f"{source}: the hold-out {path.name} is for {rec.get('of')} training images, this copy has "
                            f"{labels.size}")
    if labels_digest(labels[idx]) != rec["labels_sha256"]:
        raise DeephideError(f"{source}: labels at the hold-out's indices differ from those {path.name} was made on "
                            "(another copy or order of the dataset)")
    return idx


def split_holdout(images: np.ndarray, labels: np.ndarray, split: str, dataset: str,
                  source: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The selection view of a training split: ``train`` = all but the hold-out, ``test`` = the hold-out.

    images (N, H, W, C) uint8 and labels (N,) of the *training* split. Returns (images, labels, provenance)."""
    idx = load_holdout(dataset, labels, source)
    keep = np.ones(labels.size, dtype=bool)
    keep[idx] = False
    pick = idx if split == "test" else np.flatnonzero(keep)
    part = "the validation hold-out" if split == "test" else "the training split without the validation hold-out"
    return images[pick], labels[pick], {"holdout": f"{dataset}-holdout.json", "part": part, "n": int(pick.size)}
