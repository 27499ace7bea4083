"""Victim trainer: determinism, resume after interrupt, augmentation, schedules, incompatible sets."""

import numpy as np
import pytest
import torch

from deephide.data import ImageSet, load_dataset
from deephide.errors import DeephideError
from deephide.profiles import get_profile
from deephide.training.augment import random_crop_flip
from deephide.training.trainer import lr_at, result_record, train_victim


@pytest.fixture(scope="module")
def sets():
    return (load_dataset("synthetic?n=96&size=32&classes=4", "train"),
            load_dataset("synthetic?n=40&size=32&classes=4", "test"))


def _weights(res):
    return {k: v.detach().clone() for k, v in res["model_state"].state_dict().items()}


@pytest.mark.slow
def test_same_seed_same_numbers(sets):
    train, test = sets
    prof = get_profile("victim", "tiny")
    a = train_victim(train, test, "resnet20", prof, seed=3, progress=False)
    b = train_victim(train, test, "resnet20", prof, seed=3, progress=False)
    assert [r["test_acc"] for r in a["history"]] == [r["test_acc"] for r in b["history"]]
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train_victim(train, test, "resnet20", prof, seed=4, progress=False)
    assert not all(torch.equal(wa[k], v) for k, v in _weights(c).items())


@pytest.mark.slow
def test_resume_reaches_same_weights(sets, tmp_path):
    train, test = sets
    prof = get_profile("victim", "tiny")
    full = train_victim(train, test, "resnet20", prof, seed=1, progress=False)
    part = train_victim(train, test, "resnet20", prof, seed=1, progress=False,
                        checkpoint=tmp_path / "ck", stop_after=9)  # checkpoint at 8, one step lost
    assert not part["finished"] and part["history"][-1]["iteration"] == 8
    resumed = train_victim(train, test, "resnet20", prof, seed=1, progress=False, checkpoint=tmp_path / "ck")
    assert resumed["finished"]
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert [r["test_acc"] for r in full["history"]] == [r["test_acc"] for r in resumed["history"]]


def test_checkpoint_of_another_run_is_refused(sets, tmp_path):
    train, test = sets
    prof = get_profile("victim", "tiny")
    train_victim(train, test, "resnet20", prof, seed=1, progress=False, checkpoint=tmp_path / "ck", stop_after=4)
    with pytest.raises(DeephideError, match="another run"):
        train_victim(train, test, "resnet20", prof, seed=2, progress=False, checkpoint=tmp_path / "ck")


def test_result_record_is_json(sets):
    import json
    train, test = sets
    res = result_record(train_victim(train, test, "resnet20", get_profile("victim", "tiny"), progress=False))
    s = json.dumps(res)
    for key in ("final_acc", "best_acc", "last3_acc", "history", "versions", "config", "wall_time_s"):
        assert key in json.loads(s)
    assert res["best_acc"] >= res["final_acc"]


@pytest.mark.slow
def test_learns_a_learnable_set():
    train = load_dataset("synthetic?n=512&size=32&classes=4", "train")
    test = load_dataset("synthetic?n=128&size=32&classes=4", "test")
    prof = get_profile("victim", "tiny", iterations=60, eval_every=60, lr=0.05)
    res = train_victim(train, test, "resnet20", prof, seed=0, progress=False)
    assert res["final_acc"] > 50.0  # chance is 25%


def test_incompatible_sets(sets):
    train, _ = sets
    other = ImageSet(np.zeros((8, 32, 32, 3), np.uint8), np.zeros(8, np.int64), tuple("abcde"), source="other.npz")
    with pytest.raises(DeephideError, match="other.npz"):
        train_victim(train, other, "resnet20", get_profile("victim", "tiny"), progress=False)


def test_crop_flip_takes_windows_of_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        hits = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                if torch.equal(out[n], (xp[n, :, dy:dy + 8, dx:dx + 8].flip(-1) if f else xp[n, :, dy:dy + 8, dx:dx + 8]))]
        assert len(hits) == 1


def test_schedules():
    p = get_profile("victim", "paper")
    assert lr_at(0, p) == 0.1 and lr_at(16_000, p) == pytest.approx(0.01) and lr_at(32_000, p) == pytest.approx(0.001)
    c = get_profile("victim", "cpu", iterations=100)
    lrs = [lr_at(i, c) for i in range(100)]
    assert max(lrs) == pytest.approx(0.1) and lrs[-1] < 0.01 and lrs[0] < lrs[10]


def test_unknown_profile_and_setting():
    with pytest.raises(DeephideError, match="unknown victim profile"):
        get_profile("victim", "turbo")
    with pytest.raises(DeephideError, match="unknown victim setting"):
        get_profile("victim", "cpu", epochs=3)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_checkpoints_plain_weights(sets, tmp_path):
    # compile: true only fuses kernels: same draws, same arithmetic up to float reassociation, and the
    # checkpoint holds the plain model's keys (no torch.compile "_orig_mod." prefix), so it resumes either way
    train, test = sets
    prof = get_profile("victim", "tiny", iterations=4, eval_every=4)
    eager = train_victim(train, test, "airbench", prof, seed=1, progress=False)
    comp = train_victim(train, test, "airbench", dict(prof, compile=True), seed=1, progress=False,
                        checkpoint=tmp_path / "ck")
    we, wc = _weights(eager), _weights(comp)
    assert we.keys() == wc.keys()
    for k in we:
        assert torch.allclose(we[k].float(), wc[k].float(), atol=2e-3, rtol=1e-3), k
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ck" / "checkpoint.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any("_orig_mod" in k for k in keys)
