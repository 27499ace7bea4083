"""The main job end to end (`deephide demo`) on a small synthetic set with tiny settings."""

import json

from deephide.cli import main


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--quiet",
            "--set", 'dataset="synthetic?n=160&size=32&classes=4"', "--set", "hider=null",
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
    assert "unknown settings" in capsys.readouterr().err
