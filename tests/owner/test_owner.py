"""deephide.owner: a data owner's folder protected into its mirror (issue 35): sizes and modes kept, the budget on
every output at its own size, bad files stop the run, the output is atomic and resumes, the report page renders in
a real browser."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deephide.cli import main
from deephide.errors import DeephideError
from deephide.owner import image as owner_image
from deephide.owner import protect_folder

HIDER = "fmnist-class"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def mixed_folder(root: Path) -> Path:
    """Two classes, sizes 32x32 to 300x200, grey / RGB / RGBA / palette / 16-bit, PNG and JPEG (one with an EXIF
    orientation), a nested folder and a file that is not an image."""
    r = _rng()
    (root / "cats").mkdir(parents=True)
    (root / "dogs" / "nested").mkdir(parents=True)
    Image.fromarray(r.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "cats" / "small.png")
    Image.fromarray(r.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(root / "cats" / "photo.jpg", quality=92)
    turned = Image.fromarray(r.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 270 to show it upright
    turned.save(root / "cats" / "turned.jpg", quality=92, exif=exif)
    Image.fromarray(r.integers(0, 256, (77, 51), dtype=np.uint8), "L").save(root / "dogs" / "grey.png")
    Image.fromarray(r.integers(0, 256, (45, 33, 4), dtype=np.uint8), "RGBA").save(root / "dogs" / "nested" / "a.png")
    Image.fromarray(r.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("P").save(root / "dogs" / "pal.gif")
    Image.fromarray(r.integers(0, 65536, (30, 50)).astype(np.uint16)).save(root / "dogs" / "deep.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _values(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.int64)


@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("owner")
    src = mixed_folder(tmp / "photos")
    s = protect_folder(src, tmp / "out", HIDER, progress=False)
    return src, tmp / "out", s


def test_a_mixed_folder_keeps_sizes_modes_and_names_within_the_budget(protected):
    src, out, s = protected
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == {"cats/small.png", "cats/photo.png", "cats/turned.png", "dogs/grey.png", "dogs/nested/a.png",
                       "dogs/pal.png", "dogs/deep.png", "report.html", "report.csv", "summary.json"}
    expect = {"cats/small.png": ("RGB", (32, 32)), "cats/photo.png": ("RGB", (300, 200)),
              "cats/turned.png": ("RGB", (40, 60)),  # the EXIF orientation applied: 60x40 stored, 40x60 shown
              "dogs/grey.png": ("L", (51, 77)), "dogs/nested/a.png": ("RGBA", (33, 45)),
              "dogs/pal.png": ("RGB", (40, 40)), "dogs/deep.png": ("I;16", (50, 30))}
    for rel, (mode, size) in expect.items():
        with Image.open(out / rel) as im:
            assert (im.mode, im.size) == (mode, size), rel
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO((out / "report.csv").read_text()))}
    assert set(rows) == {"cats/small.png", "cats/photo.jpg", "cats/turned.jpg", "dogs/grey.png", "dogs/nested/a.png",
                         "dogs/pal.gif", "dogs/deep.png"}
    for r in rows.values():
        assert 0 < float(r["max_change_levels"]) <= 8 and float(r["psnr_db"]) > 30
    assert s["others"] == ["notes.txt"] and s["bad"] == [] and s["protected"] == 7


def test_the_budget_holds_on_every_stored_value_and_alpha_and_grey_are_kept(protected):
    src, out, _ = protected
    with Image.open(src / "dogs" / "grey.png") as a, Image.open(out / "dogs" / "grey.png") as b:
        assert np.abs(_values(a) - _values(b)).max() <= 8
    with Image.open(src / "dogs" / "nested" / "a.png") as a, Image.open(out / "dogs" / "nested" / "a.png") as b:
        va, vb = _values(a), _values(b)
        assert np.array_equal(va[..., 3], vb[..., 3])  # alpha untouched
        assert 0 < np.abs(va[..., :3] - vb[..., :3]).max() <= 8
    with Image.open(src / "dogs" / "deep.png") as a, Image.open(out / "dogs" / "deep.png") as b:
        assert 0 < np.abs(_values(a) - _values(b)).max() <= 8 * 257  # 16-bit: the budget in 16-bit steps
    with Image.open(src / "cats" / "small.png") as a, Image.open(out / "cats" / "small.png") as b:
        assert 0 < np.abs(_values(a) - _values(b)).max() <= 8


def test_strength_presets_set_the_budget(tmp_path):
    src = tmp_path / "in"
    (src / "k").mkdir(parents=True)
    Image.fromarray(_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / "k" / "a.png")
    changes = {}
    for strength in ("low", "high"):
        s = protect_folder(src, tmp_path / strength, HIDER, strength=strength, progress=False)
        changes[strength] = s["max_change"]
        assert s["levels"] == {"low": 4, "high": 16}[strength]
    assert 0 < changes["low"] <= 4 and 8 < changes["high"] <= 16


def test_bad_files_stop_the_run_before_anything_is_written(tmp_path, capsys):
    src = mixed_folder(tmp_path / "photos")
    (src / "cats" / "empty.jpg").write_bytes(b"")
    good = io.BytesIO()
    Image.fromarray(_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "PNG")
    (src / "dogs" / "cut.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])  # truncated
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(src / "dogs" / "float.tif")  # 32-bit float: unsupported
    Image.new("1", (8300, 8300)).save(src / "dogs" / "bomb.png")  # 69 M pixels: over the decompression-bomb bound
    rc = main(["protect", "--data", f"folder:{src}", "--hider", HIDER, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("deephide: error: ") and "4 file(s) cannot be protected" in lines[0]
    assert any("cats/empty.jpg" in ln for ln in lines) and any("dogs/cut.png" in ln for ln in lines)
    assert any("dogs/float.tif" in ln and "unsupported image mode F" in ln for ln in lines)
    assert any("dogs/bomb.png" in ln and "decompression bomb" in ln for ln in lines)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    # --skip-bad: the others are protected, the bad ones left out and listed
    s = protect_folder(src, tmp_path / "out", HIDER, skip_bad=True, progress=False)
    assert {b[0] for b in s["bad"]} == {"cats/empty.jpg", "dogs/cut.png", "dogs/float.tif", "dogs/bomb.png"}
    assert not (tmp_path / "out" / "cats" / "empty.png").exists() and s["protected"] == 7
    assert "cats/empty.jpg" in (tmp_path / "out" / "report.html").read_text()


def test_an_interrupted_run_leaves_no_output_and_a_rerun_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    src = mixed_folder(tmp_path / "photos")
    once = protect_folder(src, tmp_path / "once", HIDER, progress=False)
    real, calls = owner_image.protect_image, {"n": 0}

    def dies_after_three(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    import deephide.owner as owner
    monkeypatch.setattr(owner, "protect_image", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        protect_folder(src, tmp_path / "twice", HIDER, progress=False)
    assert not (tmp_path / "twice").exists() and (tmp_path / ".twice.partial").is_dir()
    monkeypatch.setattr(owner, "protect_image", real)
    s = protect_folder(src, tmp_path / "twice", HIDER, progress=False)
    assert s["run_now"] == once["protected"] - 3 and not (tmp_path / ".twice.partial").exists()
    for p in (tmp_path / "once").rglob("*.png"):
        assert p.read_bytes() == (tmp_path / "twice" / p.relative_to(tmp_path / "once")).read_bytes(), p
    with pytest.raises(DeephideError, match="already exists"):
        protect_folder(src, tmp_path / "twice", HIDER, progress=False)


def test_jpeg_inputs_kept_as_jpeg_say_how_much_of_the_perturbation_survives(tmp_path):
    src = mixed_folder(tmp_path / "photos")
    s = protect_folder(src, tmp_path / "out", HIDER, fmt="jpeg", progress=False)
    assert (tmp_path / "out" / "cats" / "photo.jpg").exists() and not (tmp_path / "out" / "cats" / "photo.png").exists()
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "report.csv").read_text()))}
    kept = float(rows["cats/photo.jpg"]["jpeg_kept"])
    assert 0.2 < kept <= 1.2 and rows["cats/small.png"]["jpeg_kept"] == ""
    assert any("JPEG image(s) written as JPEG" in n for n in s["notes"])


def test_the_cli_protects_a_folder_and_prints_where_the_report_is(tmp_path, capsys):
    src = mixed_folder(tmp_path / "photos")
    rc = main(["protect", "--data", f"folder:{src}", "--hider", HIDER, "--out", str(tmp_path / "out"),
               "--strength", "low", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "protected 7 images" in out and "strength low" in out and "report.html" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["levels"] == 4 and summary["max_change"] <= 4


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system installs it)")
def test_the_report_page_renders_in_headless_chromium(protected, tmp_path):
    _, out, _ = protected
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--enable-logging=stderr",
           "--v=0", "--dump-dom", (out / "report.html").as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = res.stdout.split('data-images-loaded="', 1)[1].split('"', 1)[0]
    n, total = map(int, loaded.split("/"))
    assert n == total == 3 * 6  # before / after / difference of 3 images per class (cats 3, dogs 3)
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    assert "<table>" in res.stdout and "cats/photo.jpg" in res.stdout
