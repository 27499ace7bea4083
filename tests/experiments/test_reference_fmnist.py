"""The reference campaign's scripts (experiments/reference-fmnist): the summary's time-left line and JPEG paragraph,
the JPEG block analysis, and the committed selection record. The engine they run on is tested in
tests/evaluation/test_campaign.py."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from deephide.profiles import get_profile

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "experiments" / "reference-fmnist"
CLEAN = "synthetic?n=200&size=32&classes=4"


def _summarise(script, tmp_path: Path):
    """A fresh copy of the summary script's module, and an empty configs folder under ``tmp_path`` for its grids."""
    mod = script("experiments/reference-fmnist/summarise.py", "summarise_under_test")
    (tmp_path / "configs").mkdir()
    return mod


def test_time_left_counts_missing_cells_at_recorded_wall_times(script, tmp_path, monkeypatch):
    """The status line's estimate: each missing cell at the median wall time of recorded cells of its (model,
    countermeasure) on that CPU kind, else of its model; a model never trained there is named and scaled by training
    FLOPs from the recorded one (ResNet-18 does far more work per image than fastcnn)."""
    mod = _summarise(script, tmp_path)
    (tmp_path / "configs" / "g.yaml").write_text(yaml.safe_dump({
        "name": "g", "out": "g.jsonl", "test": CLEAN, "seeds": [0, 1], "profile": "fast",
        "models": ["fastcnn", "resnet18"], "train_sets": {"A": "a"}, "countermeasures": ["Vanilla", "Cutout"]}))
    camp = dataclasses.replace(mod.CAMPAIGN, root=tmp_path, configs=tmp_path / "configs", results=tmp_path,
                               hiders_dir=tmp_path / "hiders")  # no ablation hider trained
    monkeypatch.setattr(mod, "CAMPAIGN", camp)
    cpu = {"cpu_model": "X", "cpu_bf16": True}
    with open(tmp_path / "g.jsonl", "w") as f:
        for key, cm, seed, wall in (("k1", "Vanilla", 0, 3600.0), ("k2", "Cutout", 0, 1800.0)):
            f.write(json.dumps({"key": key, "row": "A", "model": "fastcnn", "countermeasure": cm, "seed": seed,
                                "profile": "fast", "profile_settings": get_profile("victim", "fast"), "final_acc": 50.0, "wall_time_s": wall, "device": "cpu",
                                "versions": cpu, "data": {"train": {"fingerprint": "fa"}}}) + "\n")
    grids = {"g": mod.grid_records(camp, "g", {"A": {"fa"}})}
    line = mod.time_left_line(grids)
    # missing: fastcnn Vanilla seed 1 (1 h) + fastcnn Cutout seed 1 (0.5 h) = 1.5 core-hours; 4 resnet18 cells unknown
    assert "6 cells" in line and "1.5 core-hours on a CPU with native bf16 True" in line
    scaled = re.search(r"4 cells of resnet18, never trained there: ~([0-9.]+) core-hours scaled by training FLOPs", line)
    assert scaled and float(scaled.group(1)) > 10 * 4 * 2700 / 3600  # > 10x fastcnn's median (0.75 h) per cell
    assert f"{len(camp.hiders)} ablation hiders" in line


def _jpeg_blocks(script):
    return script("experiments/reference-fmnist/jpeg_blocks.py", "jpeg_blocks_under_test")


def test_jpeg_blocks_reach_follows_the_dc_bin_not_the_step(script):
    """The DC steps Pillow writes, and the rise a black block needs to leave its bin: out of the budget's reach at
    qualities 2, 4, 8, within it at 6 and 10 (the JPEG table's pattern)."""
    mod = _jpeg_blocks(script)
    steps = {q: mod.dc_step(q) for q in (2, 4, 6, 8, 10, 50)}
    assert steps == {2: 255, 4: 200, 6: 133, 8: 100, 10: 80, 50: 16}
    reach = {q: mod.black_block_reach(s) for q, s in steps.items()}
    assert reach[8] == pytest.approx(9.25) and reach[6] == pytest.approx(3.3125) and reach[10] == pytest.approx(3.0)
    assert [q for q, r in reach.items() if r > mod.BUDGET_LEVELS] == [2, 4, 8]


def test_jpeg_blocks_measures_what_each_quality_leaves_of_a_background_signal(script):
    """A class-keyed rise of the black background: 6 levels survives quality 6 and 10, and is erased (black blocks
    decode as the clean ones, the probe falls to one class) at 8, as the reach predicts."""
    mod = _jpeg_blocks(script)
    rng = np.random.default_rng(0)
    n = 80
    labels = np.arange(n) % 2
    clean = np.zeros((n, 32, 32, 3), np.uint8)
    clean[:, 8:24, 8:24] = rng.integers(60, 200, (n, 16, 16, 1), dtype=np.uint8)  # foreground: the middle 4 blocks
    protected = clean.copy()
    protected[labels == 1, :8] = 6  # class 1: the top row of black blocks raised by 6 levels
    res = mod.analyse(protected, clean, labels)
    assert res["black_block_share"] == pytest.approx(12 / 16)
    by_q = {e["quality"]: e for e in res["qualities"]}
    assert by_q[8]["black_changed"] == 0.0 and by_q[8]["probe_black"] == pytest.approx(50.0)
    for q in (6, 10):
        assert by_q[q]["black_changed"] == pytest.approx(4 / 12 / 2) and by_q[q]["probe_black"] == 100.0
    assert res["none"]["probe"] == 100.0 and res["none"]["mean_abs_levels"] == pytest.approx(6 * 0.25 / 2)


def test_summary_jpeg_paragraph_reads_every_number_from_the_analysis(script, tmp_path):
    mod = _summarise(script, tmp_path)
    q = lambda quality, reach, changed, acc: {"quality": quality, "reach_levels": reach, "black_changed": changed,  # noqa: E731
                                              "victim_final": None if acc is None else {"mean": acc, "std": 1.0, "seeds": 3}}
    res = {"n": 500, "rows": {"DH-C": {"qualities": [q(4, 15.5, 0.0, 86.0), q(6, 3.3, 0.5, 48.0), q(20, 0.5, 1.0, None),
                                                     q(8, 9.25, 0.0, 87.0)]}}}
    text = mod.jpeg_blocks_line(res)
    assert "qualities 4 (15.5), 8 (9.2), within them at 6 (3.3), 20 (0.5)" in text and "first 500 images" in text
    assert "DH-C: black blocks unchanged at 4, 8 (victim final 86.0-87.0%), changed at 6, 20 (victim final 48.0-48.0%)" in text


def test_the_selection_record_names_real_commits_and_evidence():
    """results/reference-fmnist/selection-record.jsonl (issue 34): each choice names the commit that made it (its date
    as git has it), the seeds and split of its evidence, and evidence files that exist."""
    import subprocess

    root = ROOT
    recs = [json.loads(x) for x in (root / "results/reference-fmnist/selection-record.jsonl").read_text().splitlines()]
    assert len(recs) >= 10
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True, text=True)
    has_git = shallow.returncode == 0 and shallow.stdout.strip() == "false"  # a full history to check the commits in
    for r in recs:
        assert r["split"] in ("test", "hold-out", "-") and r["seeds"] and r["verdict"], r
        assert all((root / p).exists() for p in r["evidence"]), r["evidence"]
        if has_git:
            d = subprocess.run(["git", "show", "-s", "--format=%cs", r["commit"]], cwd=root, capture_output=True,
                               text=True)
            assert d.returncode == 0 and d.stdout.strip() == r["date"], (r["commit"], d.stdout, d.stderr)
    assert any(r["split"] == "hold-out" for r in recs) and any(r["split"] == "test" for r in recs)
