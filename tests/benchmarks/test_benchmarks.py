"""The benchmark scripts: `run.py --quick` writes a parseable RESULTS.md + results.json; gpu_check runs."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deephide.runtime import bf16_supported

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _main(mod, argv: list[str]) -> int:
    """``mod.main(argv)`` in this process, the torch thread count it sets put back afterwards."""
    n = torch.get_num_threads()
    try:
        return mod.main(argv)
    finally:
        torch.set_num_threads(n)


def _tables(md: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of cells (header and separator included)."""
    tables, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    run = _load("run")
    sets = tmp_path / "attacks"  # a stored attack set's manifest: its recorded cost is read, not regenerated
    (sets / "EM").mkdir(parents=True)
    (sets / "EM" / "manifest.json").write_text(json.dumps({"provenance": {"protection": {
        "method": "EM", "mode": "sample", "device": "cpu", "cost": {"seconds": 394.2},
        "versions": {"cpu_threads": 2}}}}))
    assert _main(run, ["--quick", "--out", str(tmp_path / "out"), "--attack-sets", str(sets), "--accuracy",
                       "--accuracy-data", "synthetic?n=128", "--accuracy-epochs", "1", "--accuracy-seeds", "2"]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    for section in ("## Machine", "## Victim training", "## Protection", "### Peak RSS", "## Hider training",
                    "## Countermeasure preprocessing", "## Generation cost per attack", "## Targets"):
        assert section in md
    assert "Command: `python benchmarks/run.py --quick" in md
    tables = _tables(md)
    assert len(tables) >= 7
    for t in tables:  # every row has the header's number of cells; the second row is the separator
        assert all(len(row) == len(t[0]) for row in t) and set("".join(t[1])) <= {"-"}
    for model in ("resnet18", "resnet20"):
        v = res["victim"][model]
        assert v["ours_images_per_s"] > 0 and v["reference_images_per_s"] > 0
        assert v["ratio"] == pytest.approx(v["ours_images_per_s"] / v["reference_images_per_s"])
    for model in ("resnet18", "resnet20"):  # both loops, every seed, equal iterations
        acc = res["accuracy"][model]
        assert acc["iterations"] == 1 and len(acc["ours_acc"]) == len(acc["reference_acc"]) == 2
        assert all(0 <= a <= 100 for a in acc["ours_acc"] + acc["reference_acc"])
    assert "mean +- std over seeds 0-1" in md
    assert res["protect"]["fp32"]["linf_levels"] <= 8
    assert res["floor"]["flops_per_image"]["resnet18 inference"] > res["floor"]["flops_per_image"]["resnet20 inference"]
    assert res["rss"]["64"]["peak_rss_mb"] >= res["rss"]["64"]["baseline_rss_mb"] > 0
    assert res["attack_costs"] == [{"set": "EM", "method": "EM", "mode": "sample", "seconds": 394.2,
                                    "device": "cpu", "threads": 2}]
    assert "| EM | EM | sample | 394.2 |" in md


def test_reference_dataset_is_torchvision_crop_flip():
    import numpy as np

    ref = _load("peer_loop")
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    ds = ref.PeerImageDataset(img, np.array([0]), train=True, pad=1)
    padded = np.pad(img[0], ((1, 1), (1, 1), (0, 0))).astype(np.float32) / 255
    windows = [padded[t:t + 4, s:s + 4] for t in range(3) for s in range(3)]
    windows += [w[:, ::-1] for w in windows]
    for _ in range(20):
        x, y = ds[0]
        assert x.shape == (3, 4, 4) and y == 0
        assert any(np.array_equal(x.permute(1, 2, 0).numpy(), w) for w in windows)


@pytest.mark.slow
def test_gpu_check_without_cuda_and_as_a_cpu_dry_run(tmp_path):
    gpu = [sys.executable, str(BENCH / "gpu_check.py")]
    if not torch.cuda.is_available():
        res = subprocess.run(gpu, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "no CUDA device" in res.stdout
    res = subprocess.run(gpu + ["--dry-run-cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert all(r["ok"] for r in out.values() if isinstance(r, dict) and "ok" in r)
    assert out["victim resnet20 fp16+GradScaler"]["amp"] == "float16"


def test_reference_cost_counts_the_run_and_weights_at_cells():
    rc = _load("reference_cost")
    # DH-C, DH-S, DH-C-robust, DH-S-robust, DH-C-photo (shipped hiders), DH-C-paper, DH-S-paper (paper objective),
    # the ablations
    assert rc.protect_count() == 7 + len(rc.campaign().hiders)
    cells = rc.grid_cells()
    assert len(cells["main"]) == 18 * 17 * 3  # 18 rows (DH-C-photo the newest) and {c["model"] for c in cells["archs-r18"]} == {"resnet18"}
    prof = {"iterations": 937, "eval_every": 235}
    base = {"model": "m", "profile_settings": prof, "countermeasure_params": {}}
    step = {"m": (0.1, 0.001)}  # 0.1 s per step, 1 ms per evaluated image
    vanilla = rc.cell_seconds({**base, "countermeasure_name": "Vanilla"}, step)
    assert vanilla == pytest.approx(937 * 0.1 + 4 * 10_000 * 0.001)  # 937 // 235 = 3 evaluations + the last
    at = rc.cell_seconds({**base, "countermeasure_name": "AT", "countermeasure_params": {"steps": 2}}, step)
    assert at - vanilla == pytest.approx(2 * 937 * 0.1)  # two PGD passes per step


def test_reference_cost_measures_a_victim_step():
    rc = _load("reference_cost")
    prof = {"batch_size": 8, "eval_batch_size": 8, "bf16": False, "channels_last": False}
    train_s, eval_s = rc.victim_step_s("fastcnn", prof, threads=1, steps=2)
    assert 0 < eval_s < train_s


@pytest.mark.slow
def test_hide_speed_against_a_baseline_revision(tmp_path):
    # the committed HEAD as the baseline: both sides run (fresh interpreters), the table has a row per precision
    hide = _load("hide_speed")
    assert _main(hide, ["--baseline", "HEAD", "--quick", "--threads", "1", "--out", str(tmp_path / "h.md")]) == 0
    res = json.loads((tmp_path / "h.json").read_text())
    assert [r["precision"] for r in res["rows"]][0] == "fp32"
    for r in res["rows"]:
        assert r["baseline_images_per_s"] > 0 and r["this_images_per_s"] > 0 and 0 < r["this_share_of_peak"] < 1
        assert isinstance(r["same_output"], bool)
    md = (tmp_path / "h.md").read_text()
    assert "Command: `python benchmarks/hide_speed.py --baseline HEAD --quick" in md
    assert all(len(row) == len(t[0]) for t in _tables(md) for row in t)


@pytest.mark.slow
def test_hider_step_against_a_baseline_revision(tmp_path):
    step = _load("hider_step")
    assert step.main(["--baseline", "HEAD", "--quick", "--profiles", "long", "--precisions", "fp32",
                      "--out", str(tmp_path / "s.md")]) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    (row,) = res["rows"]
    assert row["profile"] == "long" and row["blocks"] == 1 and row["baseline_s_per_step"] > 0
    assert row["seed_noise"] is None and row["window"] == 1 and len(row["curves"]["baseline"]) == 2
    md = (tmp_path / "s.md").read_text()
    assert "| long | fp32 | 1 | 40 |" in md and "Command: `python benchmarks/hider_step.py --baseline HEAD --quick" in md


@pytest.mark.slow
def test_robust_step_measures_each_row_against_long(tmp_path):
    rs = _load("robust_step")
    assert rs.main(["--quick", "--out", str(tmp_path / "r.md")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert [r["row"] for r in res["rows"]] == list(rs.ROWS)
    assert res["rows"][0]["vs_long"] == 1.0 and all(r["s_per_step"] > 0 for r in res["rows"])
    (table,) = _tables((tmp_path / "r.md").read_text())
    assert [row[0] for row in table[2:]] == list(rs.ROWS) and table[-1][3] in ("yes", "no")


@pytest.mark.slow
def test_profile_hider_step_lists_the_top_operators(tmp_path):
    prof = _load("profile_hider_step")
    assert _main(prof, ["--profiles", "tiny", "--steps", "1", "--top", "3", "--out", str(tmp_path / "p.md")]) == 0
    md = (tmp_path / "p.md").read_text()
    assert "## Profile `tiny`" in md
    (table,) = _tables(md)
    assert len(table) == 2 + 3 and table[0][0] == "operator"
    assert all(0 < float(row[2].rstrip("%")) <= 100 for row in table[2:])


@pytest.mark.slow
def test_victim_cell_against_a_baseline_revision(tmp_path):
    cell = _load("victim_cell")
    assert cell.main(["--baseline", "HEAD", "--quick", "--out", str(tmp_path / "c.md")]) == 0
    res = json.loads((tmp_path / "c.json").read_text())
    assert res["histories_identical"] is True and res["cell_ratio"] > 0  # HEAD against this tree: the same arithmetic
    (b,), (t,) = res["runs"]["baseline"], res["runs"]["this tree"]
    assert b["iterations"] == 40 and len(b["history"]) == 2 and 0 <= t["final"] <= t["peak"] <= 100
    md = (tmp_path / "c.md").read_text()
    assert "Command: `python benchmarks/victim_cell.py --baseline HEAD --quick" in md
    assert all(len(row) == len(t[0]) for t in _tables(md) for row in t)


def test_profile_victim_step_sums_operator_families(tmp_path):
    prof = _load("profile_victim_step")
    assert prof.family("aten::convolution_backward") == "convolution backward"
    assert prof.family("aten::mkldnn_convolution") == "convolution forward" and prof.family("aten::foo") == "other"
    assert prof.family("aten::relu_") == prof.family("aten::threshold_backward") == "ReLU"
    assert prof.family("aten::add_") != prof.family("aten::_foreach_add_") == "optimizer"
    assert _main(prof, ["--warm", "1", "--steps", "2", "--top", "4", "--out", str(tmp_path / "p.md")]) == 0
    fams, ops = _tables((tmp_path / "p.md").read_text())
    assert fams[0][0] == "family" and len(ops) == 2 + 4
    assert abs(sum(float(r[1].rstrip("%")) for r in fams[2:]) - 100) < 0.5  # the families cover every operator


def test_profile_hide_sums_operator_families_per_precision(tmp_path):
    prof = _load("profile_hide")
    assert prof.family("aten::mkldnn_convolution") == "convolution" and prof.family("aten::cat") == prof.FAMILIES[2][1]
    assert prof.family("aten::leaky_relu_") == "LeakyReLU" and prof.family("aten::foo") == "other"
    assert _main(prof, ["--quick", "--batches", "1", "--top", "3", "--out", str(tmp_path / "h.md")]) == 0
    res = json.loads((tmp_path / "h.json").read_text())
    precs = res["precisions"]
    assert set(precs) == ({"fp32", "bf16"} if bf16_supported(torch.device("cpu")) else {"fp32"})
    for r in precs.values():
        assert abs(sum(f["share"] for f in r["families"].values()) - 1) < 1e-6  # the families cover every operator
        assert r["conv_gflops"] > r["batch_gflops"] > 0 and len(r["ops"]) == 3
    text = (tmp_path / "h.md").read_text()
    assert "## fp32: by operator family" in text and "| fp32 |" in text


@pytest.mark.slow
def test_victim_levers_measures_each_candidate(tmp_path):
    lev = _load("victim_levers")
    assert _main(lev, ["--quick", "--batches", "64", "128", "--out", str(tmp_path / "l.md")]) == 0
    md = (tmp_path / "l.md").read_text()
    batch, layout, grouped = _tables(md)
    assert [r[0] for r in batch[2:]] == ["64", "128"] and batch[3][2] == "1.00x"
    assert layout[2][3] == "1.00x" and len(grouped) == 2 + len(lev.CONVS) + 1
    assert "## Evaluation" in md and "% of the training and evaluation time" in md
    share = re.search(r"\*\*([\d.]+)% of the ([\d,]+) GFLOP/s", md)
    assert share and 0 < float(share[1]) < 100 and float(share[2].replace(",", "")) > 0  # the step against the peak


def _quick_run(script: str, out_md: Path) -> dict:
    """``benchmarks/SCRIPT --quick --out OUT_MD`` in a fresh interpreter; its JSON result (beside OUT_MD)."""
    res = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out_md)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return json.loads(out_md.with_suffix(".json").read_text())


@pytest.mark.slow
def test_the_wheel_ships_weights_only_and_an_installed_wheel_protects(tmp_path):
    """benchmarks/wheel.py --quick: the wheel built from this tree, installed --no-deps outside it, finds its hiders."""
    out = _quick_run("wheel.py", tmp_path / "w.md")
    assert out["ok"] and out["hiders_mb"] <= 20 and not out["training_state_in_wheel"]
    assert {"fmnist-class", "fmnist-sample", "fmnist-class-robust"} <= set(out["listed"])
    assert out["imported_from"].startswith("$TMP/site/deephide")


@pytest.mark.slow
def test_protect_photo_measures_seconds_megapixels_and_share_of_peak(tmp_path):
    out = _quick_run("protect_photo.py", tmp_path / "p.md")
    assert out["photo"] == "256x192" and out["seconds"] > 0 and 0 < out["share_of_fp32_peak"] < 2
    assert out["gflop_per_photo"] > 0 and "share of peak" in (tmp_path / "p.md").read_text()
    # one row per hider, in one run: the photo INN costs a fraction of the Fashion-MNIST one's FLOPs
    photo, fmnist = out["hiders"]
    assert (photo["hider"], fmnist["hider"]) == ("photo-class", "fmnist-class")
    assert photo["gflop_per_photo"] < 0.25 * fmnist["gflop_per_photo"]


@pytest.mark.slow
def test_demo_time_compares_victims_side_by_side_with_one_after_the_other(tmp_path):
    out = _quick_run("demo_time.py", tmp_path / "d.md")
    v = out["victims"]
    assert len(v["one_after_the_other_s"]) == 2 and all(t > 0 for t in v["one_after_the_other_s"])
    assert v["side_by_side_s"] > 0 and v["speedup"] == pytest.approx(sum(v["one_after_the_other_s"])
                                                                     / v["side_by_side_s"])
    assert out["demo"] is None and "side by side" in (tmp_path / "d.md").read_text()  # --quick runs no demo
