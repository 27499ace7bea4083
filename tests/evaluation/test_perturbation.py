"""Frequency and class statistics of a perturbation (evaluation.perturbation) on sets built by hand."""

import numpy as np
import pytest

from deephide.data import ImageSet
from deephide.errors import DeephideError
from deephide.evaluation.perturbation import perturbation_stats


def _sets(pattern_fn, n=80, k=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(40, 200, size=(n, size, size, 3)).astype(np.uint8)
    labels = np.arange(n) % k
    delta = np.stack([pattern_fn(int(y), i, rng) for i, y in enumerate(labels)])
    prot = (clean.astype(np.int16) + delta).astype(np.uint8)
    return (ImageSet(clean, labels, tuple(f"c{j}" for j in range(k)), source="clean"),
            ImageSet(prot, labels, tuple(f"c{j}" for j in range(k)), source="prot"))


def test_class_wise_checkerboard_is_all_hh_and_all_class():
    yy, xx = np.mgrid[:8, :8]
    board = np.where((yy + xx) % 2 == 0, 1, -1)

    def fn(y, i, rng):  # class y: a checkerboard of amplitude y + 1, the same in every image of the class
        return np.repeat((board * (y + 1) * 2)[..., None], 3, axis=2)

    s = perturbation_stats(*_sets(fn), holdout=0.25)
    assert s["band_energy"]["HH"] == pytest.approx(1.0)
    assert s["lag1_autocorr"] == pytest.approx(-1.0)
    assert s["class_share"] == pytest.approx(1.0)
    assert s["n"] == 80 and s["class_mean_rms_levels"] > 0
    # the class means differ only in scale, so cosine cannot tell them apart: NCM is not the point here


def test_smooth_class_patterns_are_ll_and_named_by_their_class_mean():
    def fn(y, i, rng):  # class y: +-4 on one quadrant (smooth), plus a little per-image noise
        d = np.zeros((8, 8, 3))
        d[(y // 2) * 4:(y // 2) * 4 + 4, (y % 2) * 4:(y % 2) * 4 + 4] = 4
        return d + rng.integers(-1, 2, size=d.shape)

    s = perturbation_stats(*_sets(fn), holdout=0.25)
    assert s["band_energy"]["LL"] > 0.8 and s["lag1_autocorr"] > 0.5
    assert 0.5 < s["class_share"] < 1.0
    assert s["ncm_accuracy"] == 100.0


def test_iid_noise_has_no_class_structure():
    s = perturbation_stats(*_sets(lambda y, i, rng: rng.integers(-8, 9, size=(8, 8, 3)), n=400), holdout=0.5)
    assert abs(s["lag1_autocorr"]) < 0.1 and s["class_share"] < 0.05
    assert all(0.15 < v < 0.35 for v in s["band_energy"].values())
    assert s["ncm_accuracy"] < 45.0  # chance is 25 % with 4 classes


def test_bad_inputs_name_the_set():
    clean, prot = _sets(lambda y, i, rng: np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(DeephideError, match="prot: labels differ"):
        perturbation_stats(clean, ImageSet(prot.images, (prot.labels + 1) % 4, prot.class_names, source="prot"))
    with pytest.raises(DeephideError, match="prot: shape"):
        perturbation_stats(clean, ImageSet(prot.images[:10], prot.labels[:10], prot.class_names, source="prot"))
    with pytest.raises(DeephideError, match="holdout"):
        perturbation_stats(clean, prot, holdout=1.0)
    s = perturbation_stats(clean, prot)  # no perturbation at all: zeros, not NaNs
    assert s["band_energy"]["LL"] == 0.0 and s["class_share"] == 0.0 and s["lag1_autocorr"] == 0.0
