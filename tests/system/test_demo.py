"""The main job end to end (`deephide demo`) on a small synthetic set with tiny settings."""

import json

import pytest

from deephide.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--quiet",
            "--set", 'dataset="synthetic?n=160&size=32&classes=4"', "--set", "hider=train",
            "--set", 'semantic_source="next-class"',
            "--set", 'hider_profile="tiny"', "--set", "lfc_iterations=2",
            "--set", 'hider_overrides={"lfc_model": "fastcnn"}',
            "--set", 'victim_profile="tiny"']
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "trained on clean data" in text and "trained on protected data" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["verify"]["ok"] and s["verify"]["linf_levels"] <= 8
    assert s["clean"]["finished"] and s["protected"]["finished"]
    assert s["hider"]["run"]["lfc"] and s["hider"]["run"]["profile"]["lfc_model"] == "fastcnn"
    assert main(args) == 0  # a second run resumes from what is there (hider finished, set rewritten)
    assert main(args[:3] + ["--set", "nonsense=1"]) == 2
    assert "unknown demo setting 'nonsense'" in capsys.readouterr().err  # the shared profile mechanism's wording


def test_demo_protects_with_a_shipped_hider(tmp_path, capsys, monkeypatch):
    """The demo's default path: no hider training, the named shipped hider (here a tiny one) protects."""
    from deephide.hiding import hiderdir

    data = "synthetic?n=160&size=32&classes=4"
    shipped = tmp_path / "shipped"
    assert main(["train-hider", "--data", data, "--secrets", "next-class", "--profile", "tiny", "--set", "lfc=false",
                 "--out", str(shipped / "toy-class"), "--quiet"]) == 0
    monkeypatch.setattr(hiderdir, "SHIPPED_DIR", shipped)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--set", f'dataset="{data}"', "--set", 'hider="toy-{mode}"',
                 "--set", 'victim_profile="tiny"']) == 0
    text = capsys.readouterr().out
    assert "hider toy-class" in text and "trained on protected data" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["config"]["hider"] == "toy-class" and not (out / "hider").exists()
    assert s["protected"]["finished"] and s["verify"]["ok"]
    # a sample-wise demo needs a sample-wise hider: a clear error, not a silent mismatch
    assert main(["demo", "--out", str(tmp_path / "d2"), "--quiet", "--mode", "sample", "--set", f'dataset="{data}"',
                 "--set", 'hider="toy-class"', "--set", 'victim_profile="tiny"']) == 2
    assert "trained class-wise" in capsys.readouterr().err
