"""The validation hold-out (data.holdout, `fashion-mnist?holdout=1`): fixed, stratified, disjoint from what
selection trains on, and refused on data it was not made for."""

import json

import numpy as np
import pytest

from deephide.data import load_dataset
from deephide.data.holdout import SPLITS_DIR, holdout_record, load_holdout, stratified_holdout
from deephide.errors import DeephideError


def test_stratified_holdout_is_proportional_seeded_and_sorted():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    idx = stratified_holdout(labels, 10, seed=1)
    assert idx.size == 10 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx], minlength=4).tolist() == [1, 2, 3, 4]
    assert np.array_equal(idx, stratified_holdout(labels, 10, seed=1))
    assert not np.array_equal(idx, stratified_holdout(labels, 10, seed=2))
    with pytest.raises(DeephideError, match="0 < n < 100"):
        stratified_holdout(labels, 100, seed=0)


def test_the_committed_holdout_is_what_its_command_makes():
    """experiments/robust-fmnist/holdout.py wrote the file; the same function and seed give it back exactly."""
    rec = json.loads((SPLITS_DIR / "fashion-mnist-holdout.json").read_text())
    labels = load_dataset("fashion-mnist", "train").labels
    again = holdout_record("fashion-mnist", labels, rec["n"], rec["seed"], rec["command"])
    assert again == rec
    assert rec["n"] == 5000 and rec["per_class"] == [500] * 10


@pytest.mark.slow
def test_selection_view_never_lets_the_holdout_into_training():
    full = load_dataset("fashion-mnist", "train")
    fit = load_dataset("fashion-mnist?holdout=1", "train")
    held = load_dataset("fashion-mnist?holdout=1", "test")
    idx = load_holdout("fashion-mnist", full.labels, "test")
    rest = np.setdiff1d(np.arange(len(full)), idx)
    assert len(fit) == 55_000 and len(held) == 5_000
    assert np.array_equal(held.images, full.images[idx]) and np.array_equal(held.labels, full.labels[idx])
    assert np.array_equal(fit.images, full.images[rest]) and np.array_equal(fit.labels, full.labels[rest])
    assert "hold-out" in held.provenance["selection"]["part"]
    # and the test split is not read at all by the selection view
    assert "t10k" not in " ".join(fit.provenance["idx_files"] + held.provenance["idx_files"])


def test_holdout_refuses_other_data():
    labels = load_dataset("fashion-mnist", "train").labels
    with pytest.raises(DeephideError, match="is for 60000 training images, this copy has 100"):
        load_holdout("fashion-mnist", labels[:100], "x")
    with pytest.raises(DeephideError, match="labels at the hold-out's indices differ"):
        load_holdout("fashion-mnist", labels[::-1].copy(), "x")
    with pytest.raises(DeephideError, match="no validation hold-out is committed for cifar10"):
        load_holdout("cifar10", labels, "x")
    with pytest.raises(DeephideError, match="holdout=2"):
        load_dataset("fashion-mnist?holdout=2", "train")
