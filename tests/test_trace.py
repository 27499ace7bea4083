"""Source tracing: correlation score, calibration, the logo source and the trace command."""

import numpy as np
import pytest
from PIL import Image

from deephide.cli import main
from deephide.data import load_dataset
from deephide.errors import DeephideError
from deephide.ops.metrics import correlation
from deephide.semantic import make_bank
from deephide.trace import calibrate


def test_correlation_by_hand():
    logo = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    imgs = np.stack([logo, 255 - logo, np.full_like(logo, 7)])
    c = correlation(imgs, logo)
    assert c[0] == pytest.approx(1.0) and c[1] == pytest.approx(-1.0) and c[2] == 0.0


def test_calibrate_quantile():
    scores = np.linspace(0, 1, 101)
    assert calibrate(scores, 0.1) == pytest.approx(0.9)
    with pytest.raises(DeephideError, match="--fpr"):
        calibrate(scores, 1.5)


def test_logo_source(tmp_path):
    Image.new("RGBA", (50, 40), (255, 0, 0, 128)).save(tmp_path / "logo.png")
    train = load_dataset("synthetic?n=16&size=32&classes=4", "train")
    bank = make_bank("logo", train, "class", 32, path=str(tmp_path / "logo.png"))
    assert bank.images.shape == (4, 32, 32, 3) and (bank.images == bank.images[0]).all()
    with pytest.raises(DeephideError, match="not a readable image"):
        (tmp_path / "bad.png").write_bytes(b"nope")
        make_bank("logo", train, "class", 32, path=str(tmp_path / "bad.png"))


def test_trace_command(tmp_path, capsys):
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "logo.png")
    data = "synthetic?n=64&size=32&classes=4"
    hd = tmp_path / "hider"
    assert main(["train-hider", "--data", data, "--secrets", "logo", "--secret-option", f"path={tmp_path / 'logo.png'}",
                 "--profile", "tiny", "--set", "lfc=false", "--out", str(hd), "--quiet"]) == 0
    assert main(["protect", "--data", data, "--hider", str(hd), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["trace", str(tmp_path / "p"), "--hider", str(hd), "--logo", str(tmp_path / "logo.png"),
                 "--calibrate", data, "--summary-only"]) == 0
    assert "of 64 images carry the logo" in capsys.readouterr().out
    assert main(["trace", str(tmp_path / "p"), "--hider", str(hd), "--logo", str(tmp_path / "missing.png"),
                 "--threshold", "0.5"]) == 2
    assert "missing.png" in capsys.readouterr().err
