"""Statistics over seeds and report outputs (Markdown, CSV, LaTeX, HTML, figures, paper rows)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from deephide.countermeasures import PAPER_COLUMNS
from deephide.data import load_dataset, save_imageset
from deephide.errors import DeephideError
from deephide.evaluation.grid import ResultsWriter, sidecar_path
from deephide.evaluation.report import make_report, parse_paper_refs
from deephide.evaluation.stats import aggregate, mean_std, stat_value

PAPER_CSV = """table,setting,variant,column,value
K,class-wise,method=Clean,Vanilla,94.66
K,class-wise,method=Clean,Cutmix,95.00
K,class-wise,method=Clean,JPEG10,85.22
K,class-wise,method=Clean,Mean,88.00
K,class-wise,method=ours,Vanilla,10.00
K,class-wise,method=ours,Cutmix,11.00
K,class-wise,method=ours,JPEG10,72.97
K,class-wise,method=ours,Mean,20.00
I,class-wise,model=R18,JPEG_quality=2,64.53
I,class-wise,model=R18,JPEG_quality=10,72.97
G,class-wise,model=R18,ue_fraction=20%,93.00
G,class-wise,model=R18,ue_fraction=100%,10.00
"""


def rec(row, cm, seed, accs, model="resnet20", mixture=None, select="final", order=None):
    hist = [{"iteration": 10 * (i + 1), "test_acc": a} for i, a in enumerate(accs)]
    return {"key": f"{row}-{model}-{cm}-{seed}-{mixture}", "grid": "g", "row": row, "model": model,
            "countermeasure": cm, "seed": seed, "mixture": mixture, "profile": "tiny", "select": select,
            "history": hist, "final_acc": accs[-1], "best_acc": max(accs),
            "last3_acc": float(np.mean(accs[-3:])), "order": order or [0, 0, 0, seed, 0]}


# ------------------------------------------------------------------------------- stats


def test_aggregate_mean_and_sample_std():
    recs = [rec("DH-C", "Vanilla", s, [50, 40, v]) for s, v in enumerate([10.0, 20.0, 30.0])]
    recs.append(rec("Clean", "Vanilla", 0, [80, 90, 85]))
    a = aggregate(recs, "final")
    x = a[("DH-C", "resnet20", "Vanilla", None)]
    assert (x.mean, x.std, x.n) == (20.0, 10.0, 3)  # ddof=1: sqrt((100+0+100)/2)
    one = a[("Clean", "resnet20", "Vanilla", None)]
    assert one.mean == 85 and one.std is None and one.n == 1
    assert aggregate(recs, "best")[("Clean", "resnet20", "Vanilla", None)].mean == 90
    assert aggregate(recs, "last3")[("DH-C", "resnet20", "Vanilla", None)].mean == pytest.approx(np.mean([
        np.mean([50, 40, v]) for v in (10, 20, 30)]))
    assert list(a) == [("DH-C", "resnet20", "Vanilla", None), ("Clean", "resnet20", "Vanilla", None)]


def test_stat_value_fallbacks_and_early_stop():
    r = rec("A", "Vanilla", 0, [30, 60, 50, 40])
    del r["last3_acc"]
    assert stat_value(r, "last3") == pytest.approx(50.0)  # recomputed from the history
    es = rec("A", "EarlyStop", 0, [30, 60, 50], select="best")
    assert stat_value(es, "final") == 60  # EarlyStop reports its best evaluation by definition
    with pytest.raises(DeephideError, match="unknown statistic 'median'"):
        aggregate([r], "median")
    m, s = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and s == pytest.approx(math.sqrt(5 / 3))


# ------------------------------------------------------------------------------- report


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "table":
            self.tables += 1


def write_results(path: Path, records, config=None):
    with ResultsWriter(path) as w:
        for r in records:
            w.append(r)
    if config is not None:
        sidecar_path(path).write_text(json.dumps(config))


@pytest.fixture
def paper_csv(tmp_path):
    p = tmp_path / "paper-tables.csv"
    p.write_text(PAPER_CSV)
    return p


def main_records():
    cms = ["Vanilla", "CutMix", "JPEG10", "JPEG2", "UEraser"]
    out = []
    for ri, row in enumerate(["Clean", "DH-C"]):
        for ci, cm in enumerate(cms):
            for s in range(3):
                base = 90 if row == "Clean" else 20
                out.append(rec(row, cm, s, [base - 10, base - 5 + ci, base + s], order=[ri, 0, ci, s, 0]))
    return out


def test_report_files_parse(tmp_path, paper_csv):
    res = tmp_path / "res.jsonl"
    write_results(res, main_records()[::-1],  # file order must not matter: config order wins
                  {"name": "demo", "paper_table": {"DH-C": "K,class-wise,method=ours"}, "cell_keys": ["x"]})
    files = make_report(res, tmp_path / "rep", stat="final", paper=["I,class-wise"], paper_csv=paper_csv)
    rep = tmp_path / "rep"
    assert {"table.md", "table.csv", "table.tex", "cells.csv", "index.html", "figures/curves.png",
            "figures/jpeg.png"} <= set(files)

    rows = list(csv.reader(io.StringIO((rep / "table.csv").read_text())))
    # columns: paper order first, then others; Mean over the 3 present paper columns
    assert rows[0] == ["row", "source", "Vanilla", "CutMix", "JPEG10", "JPEG2", "UEraser", "Mean"]
    labels = [(r[0], r[1]) for r in rows[1:]]
    assert labels == [("Clean", "ours"), ("DH-C", "ours"),
                      ("paper K class-wise: method=ours", "paper K class-wise: method=ours"),
                      ("paper I class-wise: model=R18", "paper I class-wise: model=R18")]
    clean = rows[1]
    assert float(clean[2]) == 91.0  # final accuracies 90, 91, 92
    assert float(clean[7]) == pytest.approx(np.mean([91, 91, 91]))  # Vanilla/CutMix/JPEG10 finals are 90+s
    paper_ours = rows[3]
    assert paper_ours[2:5] == ["10.00", "11.00", "72.97"]  # Cutmix matched to CutMix
    assert float(paper_ours[7]) == pytest.approx((10 + 11 + 72.97) / 3, abs=0.005)  # over the same columns
    assert rows[4][2:7] == ["", "", "72.97", "64.53", ""]  # JPEG_quality=10 -> JPEG10

    md = (rep / "table.md").read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + 4 and "91.00 ± 1.00" in md
    assert "final accuracy" in md and "n = 3 seeds" in md and "not the paper's 13" in md
    tex = (rep / "table.tex").read_text()
    assert r"\begin{tabular}{lrrrrrr}" in tex and r"\end{tabular}" in tex and r"$\pm$" in tex
    assert tex.count(r"\\") == 1 + 4

    cells = list(csv.DictReader(io.StringIO((rep / "cells.csv").read_text())))
    assert len(cells) == 10 and cells[0]["n"] == "3" and float(cells[0]["std"]) == pytest.approx(1.0)

    page = _Page()
    page.feed((rep / "index.html").read_text())
    assert page.tables == 1 and page.imgs
    for ref in page.imgs + page.links:
        assert not ref.startswith(("http", "/")) and (rep / ref).is_file()
        if ref.endswith(".png"):
            assert (rep / ref).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0 of 1 cells in the config" in (rep / "index.html").read_text()  # cell_keys ["x"] matched none
    with pytest.raises(DeephideError, match="already exists"):
        make_report(res, rep, paper_csv=paper_csv)
    make_report(res, rep, figures=False, force=True, paper_csv=paper_csv)
    assert not (rep / "figures").exists() or not any((rep / "figures").iterdir())


def test_full_paper_columns_mean_uses_paper_mean(tmp_path, paper_csv):
    recs = [rec("DH-C", cm, 0, [5, 5, 10.0 + i], order=[0, 0, i, 0, 0]) for i, cm in enumerate(PAPER_COLUMNS)]
    res = tmp_path / "r.jsonl"
    write_results(res, recs)
    make_report(res, tmp_path / "rep", stat="final", figures=False, paper=["K,class-wise,method=ours"],
                paper_csv=paper_csv)
    rows = list(csv.reader(io.StringIO((tmp_path / "rep" / "table.csv").read_text())))
    assert rows[0][2:] == PAPER_COLUMNS + ["Mean"]
    assert float(rows[1][-1]) == pytest.approx(np.mean([10.0 + i for i in range(13)]))
    assert rows[2][-1] == "20.00"  # the paper's own Mean over its 13 columns
    assert "not the paper's 13" not in (tmp_path / "rep" / "table.md").read_text()


def test_mixture_report_and_figure(tmp_path, paper_csv):
    recs = [rec(row, "Vanilla", s, [50, 60, 90 - 50 * p - (20 if row == "DH-S" else 0)], mixture=p,
                order=[ri, 0, 0, s, pi])
            for ri, row in enumerate(["DH-C", "DH-S"]) for pi, p in enumerate([0.2, 0.6, 1.0]) for s in (0, 1)]
    res = tmp_path / "m.jsonl"
    write_results(res, recs, {"name": "mix", "paper_table": {"DH-C": "G,class-wise,model=R18"}})
    files = make_report(res, tmp_path / "rep", paper_csv=paper_csv)
    assert "mixtures.csv" in files and "table.csv" not in files and "figures/mixture.png" in files
    rows = list(csv.reader(io.StringIO((tmp_path / "rep" / "mixtures.csv").read_text())))
    assert rows[0] == ["row", "source", "20%", "60%", "100%"]
    assert [r[0] for r in rows[1:]] == ["DH-C", "paper G class-wise: model=R18", "DH-S"]
    assert rows[2][2:] == ["93.00", "", "10.00"]


def test_samples_figure(tmp_path):
    clean = load_dataset("synthetic?n=16&size=16&classes=4", "train")
    rng = np.random.default_rng(0)
    noise = rng.integers(-8, 9, size=clean.images.shape)
    prot = clean.replace(images=np.clip(clean.images.astype(int) + noise, 0, 255).astype(np.uint8))
    save_imageset(prot, tmp_path / "prot")
    res = tmp_path / "r.jsonl"
    write_results(res, [rec("DH-C", "Vanilla", 0, [1, 2, 3])])
    files = make_report(res, tmp_path / "rep", samples=["synthetic?n=16&size=16&classes=4", str(tmp_path / "prot")])
    assert "figures/samples.png" in files
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "max |perturbation| = 8 levels" in html
    with pytest.raises(DeephideError, match="does not match"):
        make_report(res, tmp_path / "rep2", samples=["synthetic?n=16&size=16&classes=4&seed=3", str(tmp_path / "prot")])


def test_samples_figure_with_revealed_row(tmp_path):
    hiding = pytest.importorskip("deephide.hiding", reason="hider code not available")
    pytest.importorskip("deephide.hiding.checkpoint")
    hider = hiding.Hider(hiding.HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=16))
    hiding.save_hider(tmp_path / "hider", hider)
    spec = "synthetic?n=8&size=16&classes=4"
    res = tmp_path / "r.jsonl"
    write_results(res, [rec("DH-C", "Vanilla", 0, [1, 2, 3])])
    make_report(res, tmp_path / "rep", samples=[spec, spec, str(tmp_path / "hider")])
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "/ revealed images" in html and (tmp_path / "rep" / "figures" / "samples.png").is_file()


def test_report_errors(tmp_path, paper_csv):
    with pytest.raises(DeephideError, match="no such results file"):
        make_report(tmp_path / "none.jsonl", tmp_path / "rep")
    res = tmp_path / "r.jsonl"
    write_results(res, [rec("DH-C", "Vanilla", 0, [1, 2, 3])])
    with pytest.raises(DeephideError, match="not found"):
        make_report(res, tmp_path / "rep", paper=["K,class-wise"], paper_csv=tmp_path / "missing.csv")
    with pytest.raises(DeephideError, match="no paper rows for table Z"):
        make_report(res, tmp_path / "rep", paper=["Z,class-wise"], paper_csv=paper_csv)
    with pytest.raises(DeephideError, match="expected TABLE,SETTING"):
        parse_paper_refs("K")
    assert not (tmp_path / "rep").exists()  # nothing half-written
    empty = tmp_path / "e.jsonl"
    empty.write_text('{"key": "a", "row": "tru')
    with pytest.raises(DeephideError, match="no finished cells"):
        make_report(empty, tmp_path / "rep")


# ------------------------------------------------------------------------------- shipped configs & CLI

#: the experiments' grid configs that lay out one of the paper's tables
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "experiments").rglob("*.yaml")
                 if "paper_table" in p.read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_parse_and_map_paper_rows(path):
    from deephide.evaluation.grid import expand, load_config
    from deephide.evaluation.report import (
        build_main_table,
        build_mixture_table,
        default_paper_csv,
        load_paper_csv,
        paper_rows,
    )

    cfg = load_config(path)
    cells = expand(dataclasses.replace(cfg, identity="label"))  # by label: the sets need not exist here
    assert cells and cfg.paper_table
    csv_path = default_paper_csv()
    if csv_path is None or not csv_path.is_file():
        pytest.skip("paper-tables.csv not found (set DEEPHIDE_PAPER_TABLES)")
    papers = paper_rows(parse_paper_refs(cfg.paper_table), load_paper_csv(csv_path), str(csv_path))
    recs = [{**c, "final_acc": 50.0, "last3_acc": 50.0, "best_acc": 50.0, "history": []} for c in cells]
    table = (build_mixture_table if cfg.mixtures else build_main_table)(recs, "last3", papers)
    # the experiments' grids run a subset of the paper's columns (said in the table's notes), but every paper row
    # they name maps onto a row of the grid and gets its own table row (a grid of several models labels its rows
    # "ROW (model)", which paper_table's row names do not match: said in the notes, a known limit of the report)
    if len(cfg.models) == 1:
        assert not [n for n in table.notes if "does not have" in n], table.notes
    assert sum(1 for r in table.rows if r.paper) == len(papers)


def test_cli_handlers(tmp_path, capsys, monkeypatch):
    import argparse

    from deephide.cli import COMMANDS
    from deephide.cli.harness import add_grid_parser, add_report_parser

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    add_grid_parser(sub)
    add_report_parser(sub)
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"out: {tmp_path / 'r.jsonl'}\ntest: synthetic\ntrain_sets: {{A: synthetic}}\n"
                   "models: [resnet20]\ncountermeasures: [Vanilla, Gray]\nseeds: [0, 1]\nprofile: tiny\n")
    a = p.parse_args(["grid", str(cfg), "--dry-run"])
    assert COMMANDS[a.cmd](a) == 0
    out = capsys.readouterr()
    assert out.out.count("\ttodo\t") == 4 and "0 of 4 cells done" in out.err
    write_results(tmp_path / "r.jsonl", [rec("A", "Vanilla", 0, [1, 2, 3])])
    a = p.parse_args(["report", str(tmp_path / "r.jsonl"), "--no-figures"])
    assert COMMANDS[a.cmd](a) == 0 and (tmp_path / "r-report" / "index.html").is_file()
    a = p.parse_args(["report", str(tmp_path / "r.jsonl"), "--samples", "a"])
    with pytest.raises(DeephideError, match="--samples"):
        COMMANDS[a.cmd](a)


def test_panels_figure_draws_one_panel_per_row_and_skips_empty_ones(tmp_path):
    from deephide.evaluation.report.figures import panels_figure

    rec = lambda its, accs: {"history": [{"iteration": i, "test_acc": a} for i, a in zip(its, accs)]}  # noqa: E731
    panels = {"A": {"937 steps": [rec([1, 2], [10, 20]), rec([1, 2], [12, 22])], "4,685 steps": [rec([1, 5], [5, 9])]},
              "B": {"937 steps": [{"history": []}]}}
    assert panels_figure(panels, tmp_path / "f.png", "t")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not panels_figure({"B": {"x": [{"history": []}]}}, tmp_path / "g.png", "t") and not (tmp_path / "g.png").exists()


def test_execution_kinds_and_the_spread_of_the_same_cell():
    from deephide.evaluation.campaign.evidence import execution_kind, kinds_by_row, same_cell_spread

    cpu = lambda t: {"device": "cpu", "versions": {"cpu_model": "X", "cpu_bf16": True, "cpu_threads": t}}  # noqa: E731
    recs = [{"key": "k1", "row": "A", "final_acc": 30.0, **cpu(1)}, {"key": "k1", "row": "A", "final_acc": 31.5, **cpu(2)},
            {"key": "k2", "row": "A", "final_acc": 50.0, **cpu(1)}, {"key": "k2", "row": "A", "final_acc": 50.0, **cpu(1)},
            {"key": "k3", "row": "B", "final_acc": 70.0, "device": "cuda:0", "versions": {"gpu": "G"}}]
    assert execution_kind(recs[1]) == "CPU X (bf16 True), 2 threads" and execution_kind(recs[4]) == "GPU G"
    assert kinds_by_row(recs)["A"] == {"CPU X (bf16 True), 1 thread": 3, "CPU X (bf16 True), 2 threads": 1}
    spread = same_cell_spread(recs)
    assert [e["key"] for e in spread] == ["k1"] and sorted(spread[0]["values"].values()) == [30.0, 31.5]
