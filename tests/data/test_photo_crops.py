"""The photo-crops loader: manifest roles, sha256 checks, multi-scale crops and random classes, seeded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deephide.data import load_dataset
from deephide.errors import DeephideError


def _manifest(tmp_path: Path, roles=("train", "train", "heldout"), sizes=((300, 200), (90, 140), (256, 256))) -> Path:
    rows = ["role\tpath\tsha256\tlicence"]
    rng = np.random.default_rng(0)
    for i, (role, (w, h)) in enumerate(zip(roles, sizes)):
        p = tmp_path / f"photo{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p, quality=95)
        rows.append(f"{role}\tphoto{i}.jpg\t{hashlib.sha256(p.read_bytes()).hexdigest()}\tCC0-1.0")
    m = tmp_path / "photos.tsv"
    m.write_text("\n".join(rows) + "\n")
    return m


def test_crops_shape_classes_and_seeded(tmp_path):
    m = _manifest(tmp_path)
    a = load_dataset(f"photo-crops:{m}?size=32&n=200&classes=5", "train")
    b = load_dataset(f"photo-crops:{m}?size=32&n=200&classes=5", "train")
    assert a.images.shape == (200, 32, 32, 3) and a.num_classes == 5
    assert set(np.unique(a.labels)) == set(range(5))  # 200 uniform draws over 5 classes
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    c = load_dataset(f"photo-crops:{m}?size=32&n=200&classes=5&seed=1", "train")
    assert not np.array_equal(a.images, c.images)
    # relative paths are read beside the manifest; licence columns kept in the provenance
    assert [p["licence"] for p in a.provenance["photos"]] == ["CC0-1.0", "CC0-1.0"]


def test_splits_read_their_own_photos(tmp_path):
    """train = role train, test = role heldout: a held-out photo never appears in the train split."""
    m = _manifest(tmp_path)
    tr = load_dataset(f"photo-crops:{m}?size=16&n=10", "train")
    te = load_dataset(f"photo-crops:{m}?size=16&n=10", "test")
    assert [p["path"] for p in tr.provenance["photos"]] == ["photo0.jpg", "photo1.jpg"]
    assert [p["path"] for p in te.provenance["photos"]] == ["photo2.jpg"]


def test_multi_scale(tmp_path):
    """Crops span scales: some are whole-photo views (smooth after reduction), some near-native (noisy)."""
    m = _manifest(tmp_path, roles=("train",), sizes=((1024, 1024),))
    ds = load_dataset(f"photo-crops:{m}?size=16&n=300", "train")
    std = ds.images.reshape(300, -1).astype(np.float64).std(axis=1)
    assert std.min() < 0.5 * std.max()


@pytest.mark.parametrize("change, msg", [
    ("sha", "another sha256"), ("missing", "cannot be read"), ("column", "lacks the column"),
    ("empty", "lists no photos"), ("role", "no photos with role 'heldout'")])
def test_bad_manifest_one_line_error(tmp_path, change, msg):
    m = _manifest(tmp_path)
    lines = m.read_text().splitlines()
    if change == "sha":
        lines[1] = lines[1].replace(lines[1].split("\t")[2], "0" * 64)
    elif change == "missing":
        (tmp_path / "photo0.jpg").unlink()
    elif change == "column":
        lines = [ln.replace("sha256", "sha") for ln in lines]
    elif change == "empty":
        lines = lines[:1]
    elif change == "role":
        lines = lines[:3]
    m.write_text("\n".join(lines) + "\n")
    split = "test" if change == "role" else "train"
    with pytest.raises(DeephideError, match=msg) as e:
        load_dataset(f"photo-crops:{m}?size=16&n=4", split)
    assert "\n" not in str(e.value) and str(m) in str(e.value)
