"""The campaign engine (deephide.evaluation.campaign): the declaration, the set ledger's verdicts, the runtime grid
configs, the order of a run, the records the tables read; on small synthetic sets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from deephide.data import load_dataset, save_imageset
from deephide.errors import DeephideError
from deephide.evaluation import campaign as CP
from deephide.evaluation import grid as G
from deephide.evaluation.campaign import AblationHider
from deephide.evaluation.campaign import engine as E
from deephide.fsutil import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "experiments" / "reference-fmnist" / "campaign.yaml"
CLEAN = "synthetic?n=200&size=32&classes=4"


@pytest.fixture
def campaign(tmp_path):
    """The reference campaign's declaration writing under ``tmp_path``, on a synthetic clean set, one attack row."""
    here = tmp_path / "results"
    return dataclasses.replace(CP.load_campaign(REFERENCE), results=here, runs=tmp_path / "runs",
                               previous=here / "previous", clean=CLEAN, sample_n=1 << 14,
                               sets={"Clean": None, "P": ["attack", "random-noise-C"]})


def write_set(c, images: np.ndarray, row: str = "P") -> None:
    clean = load_dataset(CLEAN, "train")
    save_imageset(clean.replace(images=images), c.set_dir(row), force=True)
    from deephide.evaluation.grid import cells as C
    C._IDENTITY_CACHE.clear()


def test_reference_declaration_names_every_row_grid_and_hider():
    c = CP.load_campaign(REFERENCE)
    assert c.main_rows[:3] == ["Clean", "DH-C", "DH-S"] and {"DH-C-robust", "REM"} <= set(c.main_rows)
    assert list(c.sets)[len(c.main_rows):] == [*c.hiders, "ISGAN"] and c.ablation_rows == ["ISGAN"]
    assert c.sets["softbudget-C"][-2:] == ["--eps", "255"] and c.hiders["hideonly-C"].settings[-1] == "lfc=false"
    assert c.sets["base-C"][4] == str(c.hiders_dir / "base-C")
    assert c.grids == ("main", "archs-r20", "jpeg", "mixtures", "threads", "length-5x", "archs-r18", "length-5x-r20",
                       "length-paper", "weights", "sources", "analysis")
    assert all((c.configs / f"{g}.yaml").exists() for g in c.grids)
    assert c.main_passes[0] == ("main", ("Vanilla",)) and c.sample_n == 1 << 17 and c.set_threads == 1
    assert c.root == ROOT and c.not_reused == ("selection-record.jsonl", "threads.jsonl")


def test_a_bad_declaration_is_one_clear_error(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("clean: x\nrows:\n  A: [attack, EM, --seed, 0]\n")
    with pytest.raises(DeephideError, match=r"c.yaml: rows.A: expected a list of strings"):
        CP.load_campaign(bad)
    bad.write_text("clean: x\nrows: {}\npasses: {main: [[main, Vanilla]]}\n")
    with pytest.raises(DeephideError, match="passes.main: expected a list of strings"):
        CP.load_campaign(bad)
    with pytest.raises(DeephideError, match="absent.yaml: cannot read the campaign"):
        CP.load_campaign(tmp_path / "absent.yaml")


def test_ledger_canonical_equivalent_and_refused(campaign):
    clean = load_dataset(CLEAN, "train").images
    assert CP.check_set(campaign, "Clean")["verdict"] == "canonical"
    base = np.clip(clean.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    write_set(campaign, base)
    first = CP.check_set(campaign, "P")
    assert first["verdict"] == "canonical" and first["budget"]["linf_levels"] == 3
    assert set(first["changed_by"]) >= {"JPEG10", "Gray", "MedianF"} and "Vanilla" not in first["changed_by"]
    assert CP.check_set(campaign, "P") == first  # the same bytes again: nothing new in the ledger
    # float rounding on another CPU: a few values one level off -> stands for the canonical set
    near = base.copy()
    near.reshape(-1)[:5] ^= 1
    write_set(campaign, near)
    v = CP.check_set(campaign, "P")
    assert v["verdict"] == "equivalent" and v["fingerprint"] != first["fingerprint"] and v["pixel_diff_share"] <= 1e-3
    ident = json.loads((campaign.set_dir("P") / G.IDENTITY_FILE).read_text())
    assert ident["canonical"] == first["fingerprint"]
    assert G.set_identity(str(campaign.set_dir("P"))) == f"sha256:{first['fingerprint']}"
    # another set altogether -> refused, and no identity file claims otherwise
    write_set(campaign, clean)
    v = CP.check_set(campaign, "P")
    assert v["verdict"] == "refused" and v["pixel_diff_share"] > 0.5
    assert not (campaign.set_dir("P") / G.IDENTITY_FILE).exists()
    assert [r["verdict"] for r in read_jsonl(campaign.ledger) if r["row"] == "P"] == ["canonical", "equivalent",
                                                                                       "refused"]


def test_runtime_config_names_ready_rows_and_reuses_other_results(campaign, tmp_path):
    (tmp_path / "results").mkdir(exist_ok=True)
    for f in ("archs-r20.jsonl", "sets.jsonl", "campaign.jsonl", "selection-record.jsonl"):
        (tmp_path / "results" / f).write_text("")
    (tmp_path / "victims.jsonl").write_text("")
    c = dataclasses.replace(campaign, root=tmp_path, also_reuse=(tmp_path / "victims.jsonl", tmp_path / "gone.jsonl"))
    cfg_path, missing = E.runtime_config(c, "main", {"Clean", "DH-C"}, "cuda")
    raw = yaml.safe_load(cfg_path.read_text())
    assert set(raw["train_sets"]) == {"Clean", "DH-C"} and missing == 16  # the main table's 18 rows, 2 ready
    assert raw["device"] == "cuda" and raw["identity"] == "content"
    # the ledger, the session log and the selection record are not results files
    assert raw["reuse"] == ["results/archs-r20.jsonl", "victims.jsonl"]
    # no ready row: no config (the mixtures grid has no Clean row; an empty config stopped a fresh machine's run)
    assert E.runtime_config(c, "mixtures", {"Clean"}, "cpu") == (None, 4)


def test_ablation_tables_label_rows_their_own_way_and_still_find_their_sets(campaign, tmp_path):
    """The weights table calls row w1x10-C "w1 x10 (10)": a ready set is found by its path, not its label."""
    c = dataclasses.replace(campaign, root=tmp_path, also_reuse=())
    assert E.row_of(c, "runs/reference/sets/w1x10-C") == "w1x10-C"
    assert E.row_of(c, c.clean) == "Clean" == E.row_of(c, "fashion-mnist")
    assert E.row_of(c, "some/folder") is None
    raw = yaml.safe_load(E.runtime_config(c, "weights", {"base-C", "w1x10-C"}, "cpu")[0].read_text())
    assert raw["train_sets"] == {"recipe, 500 steps": "runs/reference/sets/base-C",
                                 "w1 x10 (10)": "runs/reference/sets/w1x10-C"}
    sources = yaml.safe_load(E.runtime_config(c, "sources", {"ISGAN"}, "cpu")[0].read_text())
    assert list(sources["train_sets"]) == ["ISGAN"]


@pytest.mark.slow
def test_hider_stage_trains_copies_without_optimizer_and_its_set_is_made(campaign, tmp_path, monkeypatch):
    data = "synthetic?n=120&size=32&classes=10"
    hiders = tmp_path / "results" / "hiders"
    c = dataclasses.replace(
        campaign, clean=data, hider_profile="tiny", hider_steps=2, hiders_dir=hiders,
        hiders={"base-C": AblationHider("class", "next-class"), "hs-C": AblationHider("class", "next-class", ("w_reveal=0",))},
        sets={h: ["protect", "--data", data, "--hider", str(hiders / h), "--mode", "class"] for h in ("base-C", "hs-C")})
    monkeypatch.setattr(CP.ledger, "describe", lambda c, ds: {})
    assert E.train_hider(c, "hs-C", "cpu", 600)
    done = hiders / "hs-C"
    assert sorted(p.name for p in (done / "checkpoint").iterdir()) == ["config.json", "weights.safetensors"]
    assert (done / "bank").is_dir() and json.loads((done / "summary.json").read_text())["finished"]
    assert E.train_hider(c, "hs-C", "cpu", 600)  # done: not trained again
    assert E.make_set(c, "hs-C", "cpu", 600)
    assert CP.check_set(c, "hs-C")["verdict"] == "canonical"
    prot = load_dataset(str(c.set_dir("hs-C")), "train")
    assert len(prot) == 120 and np.abs(prot.images.astype(int) - load_dataset(data, "train").images).max() <= 8


def test_runtime_config_column_pass_trains_the_same_cells(campaign, tmp_path):
    c = dataclasses.replace(campaign, root=tmp_path, also_reuse=())
    cfg_path, _ = E.runtime_config(c, "main", {"Clean"}, "cpu", ("Vanilla", "AT-2/255"))
    part = G.load_config(cfg_path)
    assert [m.label for m in part.countermeasures] == ["Vanilla", "AT-2/255"]
    full = G.load_config(E.runtime_config(c, "main", {"Clean"}, "cpu")[0])
    keys = {(m["countermeasure"], m["seed"]): m["key"] for m in G.expand(full)}
    assert all(keys[(m["countermeasure"], m["seed"])] == m["key"] for m in G.expand(part))


def test_new_recipe_starts_a_new_canonical_set_and_supersedes_the_old(campaign, tmp_path):
    clean = load_dataset(CLEAN, "train").images
    hider = tmp_path / "hider"
    for f, data in (("checkpoint/weights.safetensors", b"w1"), ("checkpoint/config.json", b"{}"),
                    ("bank/secrets.npz", b"b")):
        (hider / f).parent.mkdir(parents=True, exist_ok=True)
        (hider / f).write_bytes(data)
    c = dataclasses.replace(campaign, sets={"P": ["protect", "--data", CLEAN, "--hider", str(hider), "--mode", "class"]})
    old_recipe = CP.recipe(c, "P")
    write_set(c, np.clip(clean.astype(np.int16) + 3, 0, 255).astype(np.uint8))
    first = CP.check_set(c, "P")
    assert first["verdict"] == "canonical" and first["recipe"] == old_recipe and first["sample"] == "sets/P.npz"
    # the same command with other hider weights (a new shipped hider) is a new recipe ...
    (hider / "checkpoint" / "weights.safetensors").write_bytes(b"w2")
    assert CP.recipe(c, "P") != old_recipe and CP.row_ledger(c, "P") == []
    # ... whose set, with wholly other bytes, is canonical for it, not refused against the old one
    write_set(c, np.clip(clean.astype(np.int16) - 3, 0, 255).astype(np.uint8))
    second = CP.check_set(c, "P")
    assert second["verdict"] == "canonical" and second["fingerprint"] != first["fingerprint"]
    assert second["sample"] == f"sets/P-{CP.recipe(c, 'P')}.npz" and (c.results / second["sample"]).exists()
    assert [r["recipe"] for r in read_jsonl(c.ledger)] == [old_recipe, CP.recipe(c, "P")]
    ledger = CP.current_ledger(c)
    assert [r["current"] for r in ledger] == [False, True]
    assert CP.row_fingerprints(ledger) == {"P": {second["fingerprint"]}}
    # the recipe ignores where the repository is: paths inside it are taken relative to it
    moved = CP.recipe(dataclasses.replace(c, root=tmp_path), "P")
    rel = dataclasses.replace(c, root=tmp_path, sets={"P": ["protect", "--data", CLEAN, "--hider", "hider", "--mode",
                                                           "class"]})
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert CP.recipe(rel, "P") == moved
    finally:
        os.chdir(cwd)


def test_each_set_made_is_followed_by_the_cells_of_the_rows_ready_so_far(campaign, tmp_path, monkeypatch):
    # a run that ends between two sets keeps the cells it trained (results are committed, sets in runs/ are not)
    events: list[str] = []
    c = dataclasses.replace(campaign, root=tmp_path, hiders={"a": AblationHider("class", "x"),
                                                             "b": AblationHider("class", "x")},
                            sets={"a": ["protect"], "b": ["protect"], "ISGAN": ["attack"]}, ablation_rows=["ISGAN"])
    monkeypatch.setattr(E, "train_hider", lambda c, name, device, left: True)
    monkeypatch.setattr(E, "make_set", lambda c, row, device, left: events.append(f"set {row}") or True)
    monkeypatch.setattr(E, "check_set", lambda c, row: {"verdict": "canonical"})
    monkeypatch.setattr(E, "runtime_config", lambda c, g, ready, device, columns: ((g, sorted(ready)), 0))
    monkeypatch.setattr(E, "load_config", lambda cfg: SimpleNamespace(train_sets=cfg[1], resources={"cpus": 1},
                                                                      out=str(tmp_path / f"{cfg[0]}.jsonl")))

    def run_grid(cfg, **kw):
        events.append(f"grid {cfg[0]} {','.join(cfg[1])}")
        return SimpleNamespace(ran=0, skipped=0, total=0)

    monkeypatch.setattr(E, "run_grid", run_grid)
    CP.run(c, 1.0, executor="local", part="ablations", margin_s=0)
    passes = [g for g, _ in c.ablation_passes]
    expect = []
    for made, ready in (("a", "a"), ("b", "a,b"), ("ISGAN", "ISGAN,a,b")):
        expect += [f"set {made}"] + [f"grid {g} {ready}" for g in passes]
    assert events == expect
    session = read_jsonl(c.sessions)[-1]
    assert session["part"] == "ablations" and session["sets_ready"] == ["ISGAN", "a", "b"]
    assert set(session["cells_added"]) == set(passes) and session["machine"]
    # sets already on disk are checked together first, then the others one by one
    events.clear()
    c.set_dir("b").mkdir(parents=True)
    (c.set_dir("b") / "manifest.json").write_text("{}")
    CP.run(c, 1.0, executor="local", part="ablations", margin_s=0)
    assert events == ["set b", *[f"grid {g} b" for g in passes], "set a", *[f"grid {g} a,b" for g in passes],
                      "set ISGAN", *[f"grid {g} ISGAN,a,b" for g in passes]]


def test_a_pass_over_fewer_rows_keeps_the_planned_keys_of_the_others(tmp_path):
    """The mixtures table finds its cells by the keys the grid planned: a pass over some rows must not drop the
    others' keys from the sidecar (a --rows run once made the mixtures table read 0 of 45)."""
    side = tmp_path / "mix.config.json"
    side.write_text(json.dumps({"cell_keys": ["new1"], "name": "mixtures"}))
    E.keep_planned_keys(side, {"cell_keys": ["old1", "old2", "new1"]})
    rec = json.loads(side.read_text())
    assert rec["cell_keys"] == ["new1", "old1", "old2"] and rec["name"] == "mixtures"
    E.keep_planned_keys(tmp_path / "absent.config.json", {"cell_keys": ["x"]})  # nothing to merge into: nothing written
    assert not (tmp_path / "absent.config.json").exists()


def _records_campaign(tmp_path, **config) -> CP.Campaign:
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / f"{config['name']}.yaml").write_text(yaml.safe_dump(
        {"out": f"{config['name']}.jsonl", "test": CLEAN, "seeds": [0], "profile": "fast", "models": ["fastcnn"],
         "countermeasures": ["Vanilla"], **config}))
    return CP.Campaign(root=tmp_path, results=tmp_path, configs=tmp_path / "configs", runs=tmp_path / "runs",
                       clean=CLEAN, main_rows=[], sets={}, main_passes=())


def test_records_find_cells_by_their_training_bytes(tmp_path):
    """A row's cells are the ones trained on its current accepted sets, whatever label they were trained under:
    DH-C-paper takes over the cells DH-C trained before its hider changed; superseded and refused sets count for
    no row."""
    c = _records_campaign(tmp_path, name="g", train_sets={"DH-C": "a", "DH-C-paper": "b",
                                                          "w1 x10 (10)": "runs/reference/sets/w1x10-C"})
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
    _, recs, planned = CP.grid_records(c, "g", CP.row_fingerprints(ledger))
    assert planned == 3
    # an ablation table labels its row its own way; the ledger knows it by its set (w1x10-C)
    assert sorted((r["row"], r["final_acc"]) for r in recs) == [("DH-C", 30.0), ("DH-C-paper", 76.0),
                                                                ("w1 x10 (10)", 61.0)]


def test_records_find_mixture_cells_by_the_keys_their_grid_planned(tmp_path):
    """A mixture cell trained on mixed bytes (its fingerprint names no set): it is its row's when its key is one the
    grid planned from the current sets (NAME.config.json), and no row's otherwise."""
    c = _records_campaign(tmp_path, name="m", train_sets={"DH-C": "runs/reference/sets/DH-C"}, clean=CLEAN,
                          mixtures=[0.2, 0.4])
    (tmp_path / "m.config.json").write_text(json.dumps({"cell_keys": ["k1", "k2"]}))
    rec = lambda key, mix, acc: {"key": key, "row": "DH-C", "train": "runs/reference/sets/DH-C", "model": "fastcnn",  # noqa: E731
                                 "countermeasure": "Vanilla", "seed": 0, "profile": "fast", "mixture": mix,
                                 "final_acc": acc, "data": {"train": {"fingerprint": f"mix{key}"}}}
    with open(tmp_path / "m.jsonl", "w") as f:
        for r in (rec("k1", 0.2, 89.0), rec("k0", 0.4, 50.0), rec("k2", 0.4, 88.0)):  # k0: made from an older set
            f.write(json.dumps(r) + "\n")
    _, recs, planned = CP.grid_records(c, "m", CP.row_fingerprints([]))
    assert planned == 2
    assert sorted((r["row"], r["mixture"], r["final_acc"]) for r in recs) == [("DH-C", 0.2, 89.0), ("DH-C", 0.4, 88.0)]
    # the row's set superseded and its cells run again: the sidecar keeps the old keys planned too (k1, k2 beside
    # k5, k6), and the latest cell of each mixture is the current set's
    (tmp_path / "m.config.json").write_text(json.dumps({"cell_keys": ["k5", "k6", "k1", "k2"]}))
    with open(tmp_path / "m.jsonl", "a") as f:
        for r in (rec("k5", 0.2, 87.0), rec("k6", 0.4, 86.0)):
            f.write(json.dumps({**r, "finished_at": "2026-12-08T03:35:00+00:00"}) + "\n")
    _, recs, _ = CP.grid_records(c, "m", CP.row_fingerprints([]))
    assert sorted((r["mixture"], r["final_acc"]) for r in recs) == [(0.2, 87.0), (0.4, 86.0)]


def test_a_grid_with_its_own_reuse_and_cpus_runs_its_cells_at_that_thread_count(campaign, tmp_path, monkeypatch):
    """The threads grid trains the main grid's cells again with 2 threads: it names `reuse: []` (the same keys are in
    main.jsonl) and `resources.cpus: 2`, which the engine turns into the cells' thread count and fewer workers."""
    import os

    import torch

    c = dataclasses.replace(campaign, root=tmp_path, also_reuse=())
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "main.jsonl").write_text("")
    raw = yaml.safe_load(E.runtime_config(c, "threads", {"Clean"}, "cpu")[0].read_text())
    assert raw["reuse"] == [] and raw["resources"]["cpus"] == 2 and list(raw["train_sets"]) == ["Clean"]
    seen = {}

    def run_grid(cfg, **kw):
        seen.update(env=os.environ.get("OMP_NUM_THREADS"), torch=torch.get_num_threads(), workers=kw["workers"])
        return SimpleNamespace(ran=0, skipped=0, total=0)

    monkeypatch.setattr(E, "run_grid", run_grid)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    r = E._Run(c, 1.0, 0, "cpu", "pool", 2)
    r.ready = {"Clean"}
    r.grids((("threads", None),))
    assert seen == {"env": "2", "torch": 2, "workers": 1}
    assert os.environ["OMP_NUM_THREADS"] == "1" and torch.get_num_threads() == before


def test_a_canonical_set_described_before_the_visual_cost_is_measured_when_made_again(campaign):
    clean = load_dataset(CLEAN, "train").images
    write_set(campaign, np.clip(clean.astype(np.int16) + 3, 0, 255).astype(np.uint8))
    first = CP.check_set(campaign, "P")
    assert CP.visual_cost(CP.current_ledger(campaign))["P"]["linf_levels"] == 3
    # an old ledger: the canonical entry without PSNR/SSIM
    old = {k: v for k, v in first.items() if k != "budget"}
    campaign.ledger.write_text(json.dumps(old) + "\n")
    assert CP.visual_cost(CP.current_ledger(campaign)) == {}
    assert CP.check_set(campaign, "P") == old  # the same bytes: still the canonical entry ...
    assert CP.check_set(campaign, "P") == old
    entries = read_jsonl(campaign.ledger)
    assert [r["verdict"] for r in entries] == ["canonical", "measured"]  # ... and measured once
    cost = CP.visual_cost(CP.current_ledger(campaign))["P"]
    assert cost["linf_levels"] == 3 and cost["psnr"] > 30 and 0 < cost["ssim"] <= 1
    assert CP.row_fingerprints(CP.current_ledger(campaign)) == {"P": {first["fingerprint"]}}


def test_a_partial_pass_keeps_the_sidecar_as_the_full_grid_wrote_it(tmp_path):
    side = tmp_path / "main.config.json"
    side.write_text(json.dumps({"cell_keys": ["vanilla-only"], "train_sets": {"A": "a"}}))  # a pass over 1 row
    E.keep_planned_keys(side, {"cell_keys": ["k1", "k2"], "train_sets": {"A": "a", "B": "b"}}, partial=True)
    assert json.loads(side.read_text()) == {"cell_keys": ["vanilla-only", "k1", "k2"],
                                            "train_sets": {"A": "a", "B": "b"}}
    side.write_text(json.dumps({"cell_keys": ["k3"], "train_sets": {"A": "a", "B": "b", "C": "c"}}))  # a full pass
    E.keep_planned_keys(side, {"cell_keys": ["k1"], "train_sets": {"A": "a"}}, partial=False)
    assert json.loads(side.read_text()) == {"cell_keys": ["k3", "k1"], "train_sets": {"A": "a", "B": "b", "C": "c"}}
