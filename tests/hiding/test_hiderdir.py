"""The hider directory (deephide.hiding.hiderdir): the one place its layout is defined, shipping, keeping the
training state, the card."""

from __future__ import annotations

from pathlib import Path

import pytest

from deephide.hiding import hiderdir as H


def fake_hider(d: Path, snapshots=(100, 200)) -> Path:
    """A hider directory with every entry train-hider writes (contents are placeholders: nothing here loads them)."""
    for f in ("checkpoint/weights.safetensors", "checkpoint/config.json", "checkpoint/optimizer.pt", "bank/secrets.npz",
              "log.jsonl", "summary.json", "surrogate.safetensors",
              *(f"snapshots/{s}/{f}" for s in snapshots for f in ("weights.safetensors", "config.json"))):
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).write_text(f)
    return d


def files(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_ship_keeps_weights_bank_log_and_summary_only(tmp_path):
    src = fake_hider(tmp_path / "run")
    H.ship_hider(src, tmp_path / "shipped")  # no card: a campaign's ablation hider
    assert files(tmp_path / "shipped") == ["bank/secrets.npz", "checkpoint/config.json",
                                           "checkpoint/weights.safetensors", "log.jsonl", "summary.json"]
    assert H.read_card(tmp_path / "shipped") == {}
    H.ship_hider(src, tmp_path / "shipped", {"name": "x"}, "# x\n", checkpoint=H.snapshot_dir(src, 200))
    assert (tmp_path / "shipped" / "checkpoint" / "weights.safetensors").read_text() == \
        "snapshots/200/weights.safetensors"
    assert H.read_card(tmp_path / "shipped") == {"name": "x"}
    assert (tmp_path / "shipped" / H.CARD_MD).read_text() == "# x\n"
    assert not list(tmp_path.glob(".*.tmp"))
    assert [f.name for f in H.identity_files(tmp_path / "shipped")] == ["secrets.npz", "config.json",
                                                                        "weights.safetensors"]


def test_keep_state_copies_what_training_continues_from_and_the_named_snapshots(tmp_path):
    src = fake_hider(tmp_path / "run")
    H.keep_state(src, tmp_path / "kept", snapshots=[200])
    assert files(tmp_path / "kept") == sorted(["bank/secrets.npz", "checkpoint/config.json", "checkpoint/optimizer.pt",
                                               "checkpoint/weights.safetensors", "log.jsonl", "snapshots/200/config.json",
                                               "snapshots/200/weights.safetensors",
                                               "summary.json", "surrogate.safetensors"])
    assert H.bank_dir(tmp_path / "kept") == tmp_path / "kept" / "bank"
    assert H.hider_bank_dir(H.snapshot_dir(tmp_path / "kept", 200)) == tmp_path / "kept" / "bank"


@pytest.mark.parametrize("text, n", [("", 0), ('{"iteration": 1}\n{"iteration": 2}\n', 2), ('{"iteration": 1}\n{"it', 1)])
def test_read_log_skips_a_line_cut_by_a_kill(tmp_path, text, n):
    (tmp_path / H.LOG).write_text(text)
    assert len(H.read_log(tmp_path)) == n


def test_a_snapshot_ships_with_the_log_to_its_step_and_a_summary_of_that_step(tmp_path):
    """Shipping step 200 of a run that went on to 300: the run's summary (its step 300 and its reveal gate) must not
    describe the shipped weights (the demo printed a gate of the run's end for a shipped snapshot)."""
    import json

    src = fake_hider(tmp_path / "run")
    (src / "log.jsonl").write_text("".join(json.dumps({"iteration": i, "seconds": i / 10}) + "\n"
                                           for i in (100, 200, 300)))
    (src / "summary.json").write_text(json.dumps({"iterations_done": 300, "reveal_gate": {"reveal_psnr": 30.0}}))
    (H.snapshot_dir(src, 200) / "config.json").write_text(json.dumps({"training": {"iteration": 200}}))
    dst = H.ship_hider(src, tmp_path / "shipped", checkpoint=H.snapshot_dir(src, 200),
                       reveal_gate={"reveal_psnr": 25.0})
    assert [r["iteration"] for r in H.read_log(dst)] == [100, 200]
    s = json.loads((dst / "summary.json").read_text())
    assert (s["iterations_done"], s["run_iterations_done"], s["seconds"]) == (200, 300, 20.0)
    assert s["reveal_gate"] == {"reveal_psnr": 25.0} and s["last_log"]["iteration"] == 200
    dst = H.ship_hider(src, tmp_path / "shipped2", checkpoint=H.snapshot_dir(src, 200))  # no gate of its own: none
    assert "reveal_gate" not in json.loads((dst / "summary.json").read_text())
    (src / "checkpoint" / "config.json").write_text(json.dumps({"training": {"iteration": 300}}))
    dst = H.ship_hider(src, tmp_path / "shipped3")  # the run's last state: log and summary as they are
    assert (dst / "summary.json").read_text() == (src / "summary.json").read_text()
    assert len(H.read_log(dst)) == 3
