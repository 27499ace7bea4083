"""The reference campaign (experiments/reference-fmnist/campaign.py): the set ledger's verdicts and the runtime grid
configs, on small synthetic sets."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from deephide.data import load_dataset, save_imageset
from deephide.evaluation import grid as G
from deephide.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
CLEAN = "synthetic?n=200&size=32&classes=4"


@pytest.fixture
def campaign(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("campaign_under_test", ROOT / "experiments" / "reference-fmnist" / "campaign.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    here, runs = tmp_path / "results", tmp_path / "runs"
    monkeypatch.setattr(mod, "HERE", here)
    monkeypatch.setattr(mod, "RUNS", runs)
    monkeypatch.setattr(mod, "LEDGER", here / "sets.jsonl")
    monkeypatch.setattr(mod, "PREVIOUS", here / "previous")
    monkeypatch.setattr(mod, "CLEAN", CLEAN)
    monkeypatch.setattr(mod, "SAMPLE_N", 1 << 14)
    monkeypatch.setattr(mod, "SETS", {"Clean": None, "P": ["attack", "random-noise-C"]})
    return mod


def write_set(mod, images: np.ndarray) -> None:
    clean = load_dataset(CLEAN, "train")
    save_imageset(clean.replace(images=images), mod.set_dir("P"), force=True)
    from deephide.evaluation.grid import cells as C
    C._IDENTITY_CACHE.clear()


def test_ledger_canonical_equivalent_and_refused(campaign):
    clean = load_dataset(CLEAN, "train").images
    assert campaign.check_set("Clean")["verdict"] == "canonical"
    base = np.clip(clean.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    write_set(campaign, base)
    first = campaign.check_set("P")
    assert first["verdict"] == "canonical" and first["budget"]["linf_levels"] == 3
    assert set(first["changed_by"]) >= {"JPEG10", "Gray", "MedianF"} and "Vanilla" not in first["changed_by"]
    assert campaign.check_set("P") == first  # the same bytes again: nothing new in the ledger
    # float rounding on another CPU: a few values one level off -> stands for the canonical set
    near = base.copy()
    near.reshape(-1)[:5] ^= 1
    write_set(campaign, near)
    v = campaign.check_set("P")
    assert v["verdict"] == "equivalent" and v["fingerprint"] != first["fingerprint"] and v["pixel_diff_share"] <= 1e-3
    ident = json.loads((campaign.set_dir("P") / G.IDENTITY_FILE).read_text())
    assert ident["canonical"] == first["fingerprint"]
    assert G.set_identity(str(campaign.set_dir("P"))) == f"sha256:{first['fingerprint']}"
    # another set altogether -> refused, and no identity file claims otherwise
    write_set(campaign, clean)
    v = campaign.check_set("P")
    assert v["verdict"] == "refused" and v["pixel_diff_share"] > 0.5
    assert not (campaign.set_dir("P") / G.IDENTITY_FILE).exists()
    verdicts = [r["verdict"] for r in campaign.read_jsonl(campaign.LEDGER) if r["row"] == "P"]
    assert verdicts == ["canonical", "equivalent", "refused"]


def test_runtime_config_names_ready_rows_and_reuses_other_results(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "archs-r20.jsonl").write_text("")
    (tmp_path / "victims.jsonl").write_text("")
    monkeypatch.setattr(campaign, "ALSO_REUSE", (tmp_path / "victims.jsonl", tmp_path / "gone.jsonl"))
    cfg_path, missing = campaign.runtime_config("main", {"Clean", "DH-C"}, "cuda")
    raw = yaml.safe_load(cfg_path.read_text())
    assert set(raw["train_sets"]) == {"Clean", "DH-C"} and missing == 14  # the main table's 16 rows, 2 ready
    assert raw["device"] == "cuda" and raw["identity"] == "content"
    assert raw["reuse"] == ["results/archs-r20.jsonl", "victims.jsonl"]


def test_ablation_tables_label_rows_their_own_way_and_still_find_their_sets(campaign, tmp_path, monkeypatch):
    """The weights table calls row w1x10-C "w1 x10 (10)": a ready set is found by its path, not its label."""
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    monkeypatch.setattr(campaign, "ALSO_REUSE", ())
    assert campaign.row_of("runs/reference/sets/w1x10-C") == "w1x10-C"
    assert campaign.row_of(campaign.CLEAN) == "Clean" == campaign.row_of("fashion-mnist")
    assert campaign.row_of("some/folder") is None
    raw = yaml.safe_load(campaign.runtime_config("weights", {"base-C", "w1x10-C"}, "cpu")[0].read_text())
    assert raw["train_sets"] == {"recipe, 500 steps": "runs/reference/sets/base-C",
                                 "w1 x10 (10)": "runs/reference/sets/w1x10-C"}
    sources = yaml.safe_load(campaign.runtime_config("sources", {"ISGAN"}, "cpu")[0].read_text())
    assert list(sources["train_sets"]) == ["ISGAN"]


@pytest.mark.slow
def test_hider_stage_trains_copies_without_optimizer_and_its_set_is_made(campaign, tmp_path, monkeypatch):
    data = "synthetic?n=120&size=32&classes=10"
    monkeypatch.setattr(campaign, "CLEAN", data)
    monkeypatch.setattr(campaign, "HIDER_PROFILE", "tiny")
    monkeypatch.setattr(campaign, "HIDER_STEPS", 2)
    monkeypatch.setattr(campaign, "HIDERS_DIR", tmp_path / "results" / "hiders")
    monkeypatch.setattr(campaign, "HIDERS", {"base-C": ("class", "next-class", []), "hs-C": ("class", "next-class", ["w_reveal=0"])})
    monkeypatch.setattr(campaign, "SETS", {h: ["protect", "--data", data, "--hider", str(tmp_path / "results" / "hiders" / h),
                                               "--mode", "class"] for h in ("base-C", "hs-C")})
    monkeypatch.setattr(campaign, "describe", lambda ds: {})
    assert campaign.train_hider("hs-C", "cpu", 600)
    done = tmp_path / "results" / "hiders" / "hs-C"
    assert sorted(p.name for p in (done / "checkpoint").iterdir()) == ["config.json", "weights.safetensors"]
    assert (done / "bank").is_dir() and json.loads((done / "summary.json").read_text())["finished"]
    assert campaign.train_hider("hs-C", "cpu", 600)  # done: not trained again
    assert campaign.make_set("hs-C", "cpu", 600)
    assert campaign.check_set("hs-C")["verdict"] == "canonical"
    prot = load_dataset(str(campaign.set_dir("hs-C")), "train")
    assert len(prot) == 120 and np.abs(prot.images.astype(int) - load_dataset(data, "train").images).max() <= 8


def test_runtime_config_column_pass_trains_the_same_cells(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    monkeypatch.setattr(campaign, "ALSO_REUSE", ())
    cfg_path, _ = campaign.runtime_config("main", {"Clean"}, "cpu", ("Vanilla", "AT-2/255"))
    part = G.load_config(cfg_path)
    assert [c.label for c in part.countermeasures] == ["Vanilla", "AT-2/255"]
    full = G.load_config(campaign.runtime_config("main", {"Clean"}, "cpu")[0])
    keys = {(c["countermeasure"], c["seed"]): c["key"] for c in G.expand(full)}
    assert all(keys[(c["countermeasure"], c["seed"])] == c["key"] for c in G.expand(part))


def test_new_recipe_starts_a_new_canonical_set_and_supersedes_the_old(campaign, tmp_path, monkeypatch):
    clean = load_dataset(CLEAN, "train").images
    hider = tmp_path / "hider"
    for f, data in (("checkpoint/weights.safetensors", b"w1"), ("checkpoint/config.json", b"{}"), ("bank/secrets.npz", b"b")):
        (hider / f).parent.mkdir(parents=True, exist_ok=True)
        (hider / f).write_bytes(data)
    monkeypatch.setattr(campaign, "SETS", {"P": ["protect", "--data", CLEAN, "--hider", str(hider), "--mode", "class"]})
    old_recipe = campaign.recipe("P")
    write_set(campaign, np.clip(clean.astype(np.int16) + 3, 0, 255).astype(np.uint8))
    first = campaign.check_set("P")
    assert first["verdict"] == "canonical" and first["recipe"] == old_recipe and first["sample"] == "sets/P.npz"
    # the same command with other hider weights (a new shipped hider) is a new recipe ...
    (hider / "checkpoint" / "weights.safetensors").write_bytes(b"w2")
    assert campaign.recipe("P") != old_recipe and campaign.row_ledger("P") == []
    # ... whose set, with wholly other bytes, is canonical for it, not refused against the old one
    write_set(campaign, np.clip(clean.astype(np.int16) - 3, 0, 255).astype(np.uint8))
    second = campaign.check_set("P")
    assert second["verdict"] == "canonical" and second["fingerprint"] != first["fingerprint"]
    assert second["sample"] == f"sets/P-{campaign.recipe('P')}.npz" and (campaign.HERE / second["sample"]).exists()
    assert [r["recipe"] for r in campaign.read_jsonl(campaign.LEDGER)] == [old_recipe, campaign.recipe("P")]
    # the recipe ignores where the repository is: paths inside it are taken relative to it
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    moved = campaign.recipe("P")
    monkeypatch.setattr(campaign, "SETS", {"P": ["protect", "--data", CLEAN, "--hider", "hider", "--mode", "class"]})
    monkeypatch.chdir(tmp_path)
    assert campaign.recipe("P") == moved


def _summarise(tmp_path: Path):
    """A fresh copy of the summary script's module, and an empty configs folder under ``tmp_path`` for its grids."""
    spec = importlib.util.spec_from_file_location("summarise_under_test", ROOT / "experiments" / "reference-fmnist" / "summarise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "configs").mkdir()
    return mod


def test_summary_finds_cells_by_their_training_bytes(tmp_path, monkeypatch):
    """A row's cells are the ones trained on its current accepted sets, whatever label they were trained under:
    DH-C-paper takes over the cells DH-C trained before its hider changed; superseded and refused sets count for
    no row."""
    mod = _summarise(tmp_path)
    (tmp_path / "configs" / "g.yaml").write_text(yaml.safe_dump({
        "name": "g", "out": "g.jsonl", "test": CLEAN, "seeds": [0], "profile": "fast", "models": ["fastcnn"],
        "train_sets": {"DH-C": "a", "DH-C-paper": "b", "w1 x10 (10)": "runs/reference/sets/w1x10-C"},
        "countermeasures": ["Vanilla"]}))
    monkeypatch.setattr(mod, "CONFIGS", tmp_path / "configs")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    rec = lambda key, row, fp, acc: {"key": key, "row": row, "model": "fastcnn", "countermeasure": "Vanilla",  # noqa: E731
                                     "seed": 0, "profile": "fast", "final_acc": acc, "data": {"train": {"fingerprint": fp}}}
    with open(tmp_path / "g.jsonl", "w") as f:
        for r in (rec("k1", "DH-C", "old", 76.0), rec("k2", "DH-C", "bad", 50.0), rec("k3", "DH-C", "new", 30.0),
                  rec("k4", "w1 x10 (10)", "w1", 61.0)):
            f.write(json.dumps(r) + "\n")
    ledger = [{"row": "DH-C", "fingerprint": "old", "verdict": "canonical", "current": False},
              {"row": "DH-C", "fingerprint": "new", "verdict": "canonical", "current": True},
              {"row": "DH-C", "fingerprint": "bad", "verdict": "refused", "current": True},
              {"row": "DH-C-paper", "fingerprint": "old", "verdict": "canonical", "current": True},
              {"row": "w1x10-C", "fingerprint": "w1", "verdict": "canonical", "current": True}]
    _, recs, planned = mod.grid_records("g", mod.row_fingerprints(ledger))
    assert planned == 3
    # an ablation table labels its row its own way; the ledger knows it by its set (w1x10-C)
    assert sorted((r["row"], r["final_acc"]) for r in recs) == [("DH-C", 30.0), ("DH-C-paper", 76.0),
                                                                ("w1 x10 (10)", 61.0)]


def test_summary_finds_mixture_cells_by_the_keys_their_grid_planned(tmp_path, monkeypatch):
    """A mixture cell trained on mixed bytes (its fingerprint names no set): it is its row's when its key is one the
    grid planned from the current sets (NAME.config.json), and no row's otherwise."""
    mod = _summarise(tmp_path)
    (tmp_path / "configs" / "m.yaml").write_text(yaml.safe_dump({
        "name": "m", "out": "m.jsonl", "test": CLEAN, "seeds": [0], "profile": "fast", "models": ["fastcnn"],
        "train_sets": {"DH-C": "runs/reference/sets/DH-C"}, "countermeasures": ["Vanilla"], "clean": CLEAN,
        "mixtures": [0.2, 0.4]}))
    monkeypatch.setattr(mod, "CONFIGS", tmp_path / "configs")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "HERE", tmp_path)
    (tmp_path / "m.config.json").write_text(json.dumps({"cell_keys": ["k1", "k2"]}))
    rec = lambda key, mix, acc: {"key": key, "row": "DH-C", "train": "runs/reference/sets/DH-C", "model": "fastcnn",  # noqa: E731
                                 "countermeasure": "Vanilla", "seed": 0, "profile": "fast", "mixture": mix,
                                 "final_acc": acc, "data": {"train": {"fingerprint": f"mix{key}"}}}
    with open(tmp_path / "m.jsonl", "w") as f:
        for r in (rec("k1", 0.2, 89.0), rec("k0", 0.4, 50.0), rec("k2", 0.4, 88.0)):  # k0: made from an older set
            f.write(json.dumps(r) + "\n")
    _, recs, planned = mod.grid_records("m", mod.row_fingerprints([]))
    assert planned == 2
    assert sorted((r["row"], r["mixture"], r["final_acc"]) for r in recs) == [("DH-C", 0.2, 89.0), ("DH-C", 0.4, 88.0)]


def test_time_left_counts_missing_cells_at_recorded_wall_times(tmp_path, monkeypatch):
    """The status line's estimate: each missing cell at the median wall time of recorded cells of its (model,
    countermeasure) on that CPU kind, else of its model; a model never trained there is named and scaled by training
    FLOPs from the recorded one (ResNet-18 does far more work per image than fastcnn)."""
    mod = _summarise(tmp_path)
    (tmp_path / "configs" / "g.yaml").write_text(yaml.safe_dump({
        "name": "g", "out": "g.jsonl", "test": CLEAN, "seeds": [0, 1], "profile": "fast",
        "models": ["fastcnn", "resnet18"], "train_sets": {"A": "a"}, "countermeasures": ["Vanilla", "Cutout"]}))
    monkeypatch.setattr(mod, "CONFIGS", tmp_path / "configs")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod.campaign, "HIDERS_DIR", tmp_path / "hiders")  # none trained
    cpu = {"cpu_model": "X", "cpu_bf16": True}
    with open(tmp_path / "g.jsonl", "w") as f:
        for key, cm, seed, wall in (("k1", "Vanilla", 0, 3600.0), ("k2", "Cutout", 0, 1800.0)):
            f.write(json.dumps({"key": key, "row": "A", "model": "fastcnn", "countermeasure": cm, "seed": seed,
                                "profile": "fast", "profile_settings": get_profile("victim", "fast"), "final_acc": 50.0, "wall_time_s": wall, "device": "cpu",
                                "versions": cpu, "data": {"train": {"fingerprint": "fa"}}}) + "\n")
    grids = {"g": mod.grid_records("g", {"A": {"fa"}})}
    line = mod.time_left_line(grids)
    # missing: fastcnn Vanilla seed 1 (1 h) + fastcnn Cutout seed 1 (0.5 h) = 1.5 core-hours; 4 resnet18 cells unknown
    assert "6 cells" in line and "1.5 core-hours on a CPU with native bf16 True" in line
    scaled = re.search(r"4 cells of resnet18, never trained there: ~([0-9.]+) core-hours scaled by training FLOPs", line)
    assert scaled and float(scaled.group(1)) > 10 * 4 * 2700 / 3600  # > 10x fastcnn's median (0.75 h) per cell
    assert f"{len(mod.campaign.HIDERS)} ablation hiders" in line


def test_each_set_made_is_followed_by_the_cells_of_the_rows_ready_so_far(campaign, tmp_path, monkeypatch):
    # a run that ends between two sets keeps the cells it trained (results are committed, sets in runs/ are not)
    import argparse
    from types import SimpleNamespace

    events: list[str] = []
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    monkeypatch.setattr(campaign, "SESSIONS", tmp_path / "results" / "campaign.jsonl")
    monkeypatch.setattr(campaign, "HIDERS", {"a": ("class", "x", []), "b": ("class", "x", [])})
    monkeypatch.setattr(campaign, "SETS", {"a": ["protect"], "b": ["protect"], "ISGAN": ["attack"]})
    monkeypatch.setattr(campaign, "train_hider", lambda name, device, left: True)
    monkeypatch.setattr(campaign, "make_set", lambda row, device, left: events.append(f"set {row}") or True)
    monkeypatch.setattr(campaign, "check_set", lambda row: {"verdict": "canonical"})
    monkeypatch.setattr(campaign, "runtime_config", lambda g, ready, device, columns: ((g, sorted(ready)), []))
    monkeypatch.setattr(campaign, "load_config",
                        lambda cfg: SimpleNamespace(train_sets=cfg[1], out=str(tmp_path / f"{cfg[0]}.jsonl")))

    def run_grid(cfg, **kw):
        events.append(f"grid {cfg[0]} {','.join(cfg[1])}")
        return SimpleNamespace(ran=0, skipped=0, total=0)

    monkeypatch.setattr(campaign, "run_grid", run_grid)
    run = argparse.Namespace(hours=1.0, margin_s=0, device="cpu", executor="local", workers=None, part="ablations",
                             rows=None)
    campaign.cmd_run(run)
    passes = [g for g, _ in campaign.ABLATION_PASSES]
    expect = []
    for made, ready in (("a", "a"), ("b", "a,b"), ("ISGAN", "ISGAN,a,b")):
        expect += [f"set {made}"] + [f"grid {g} {ready}" for g in passes]
    assert events == expect
    session = json.loads((tmp_path / "results" / "campaign.jsonl").read_text().splitlines()[-1])
    assert session["part"] == "ablations" and session["sets_ready"] == ["ISGAN", "a", "b"]
    # sets already on disk are checked together first, then the others one by one
    events.clear()
    campaign.set_dir("b").mkdir(parents=True)
    (campaign.set_dir("b") / "manifest.json").write_text("{}")
    campaign.cmd_run(run)
    assert events == ["set b", *[f"grid {g} b" for g in passes], "set a", *[f"grid {g} a,b" for g in passes],
                      "set ISGAN", *[f"grid {g} ISGAN,a,b" for g in passes]]


def _jpeg_blocks():
    spec = importlib.util.spec_from_file_location("jpeg_blocks_under_test", ROOT / "experiments" / "reference-fmnist" / "jpeg_blocks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_jpeg_blocks_reach_follows_the_dc_bin_not_the_step():
    """The DC steps Pillow writes, and the rise a black block needs to leave its bin: out of the budget's reach at
    qualities 2, 4, 8, within it at 6 and 10 (the JPEG table's pattern)."""
    mod = _jpeg_blocks()
    steps = {q: mod.dc_step(q) for q in (2, 4, 6, 8, 10, 50)}
    assert steps == {2: 255, 4: 200, 6: 133, 8: 100, 10: 80, 50: 16}
    reach = {q: mod.black_block_reach(s) for q, s in steps.items()}
    assert reach[8] == pytest.approx(9.25) and reach[6] == pytest.approx(3.3125) and reach[10] == pytest.approx(3.0)
    assert [q for q, r in reach.items() if r > mod.BUDGET_LEVELS] == [2, 4, 8]


def test_jpeg_blocks_measures_what_each_quality_leaves_of_a_background_signal():
    """A class-keyed rise of the black background: 6 levels survives quality 6 and 10, and is erased (black blocks
    decode as the clean ones, the probe falls to one class) at 8, as the reach predicts."""
    mod = _jpeg_blocks()
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


def test_summary_jpeg_paragraph_reads_every_number_from_the_analysis(tmp_path):
    mod = _summarise(tmp_path)
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

    root = Path(__file__).resolve().parents[1]
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


def test_a_pass_over_fewer_rows_keeps_the_planned_keys_of_the_others(campaign, tmp_path):
    """The mixtures table finds its cells by the keys the grid planned: a pass over some rows must not drop the
    others' keys from the sidecar (a --rows run once made the mixtures table read 0 of 45)."""
    side = tmp_path / "mix.config.json"
    side.write_text(json.dumps({"cell_keys": ["new1"], "name": "mixtures"}))
    campaign.keep_planned_keys(side, ["old1", "old2", "new1"])
    rec = json.loads(side.read_text())
    assert rec["cell_keys"] == ["new1", "old1", "old2"] and rec["name"] == "mixtures"
    campaign.keep_planned_keys(tmp_path / "absent.config.json", ["x"])  # nothing to merge into: nothing written
    assert not (tmp_path / "absent.config.json").exists()
