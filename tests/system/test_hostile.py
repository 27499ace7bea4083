"""Hostile inputs through the real CLI: every bad file is one stderr line naming it, never a traceback.

Each case drives ``deephide.cli.main`` in-process (a couple through the installed ``deephide``
script in a subprocess, to prove nothing else reaches the user) and checks: exit code != 0 (or a
documented skip/convert with a warning and a count in the provenance), exactly one
``deephide: error:`` line naming the file and the problem, no traceback, no partial output, no
temporary left behind and nothing overwritten without --force.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

from deephide import fsutil
from deephide.cli import main
from deephide.data import (
    ImageSet,
    export_avatar_npz,
    export_png_folder,
    import_avatar_npz,
    import_png_folder,
    load_dataset,
    load_imageset,
    save_imageset,
)
from deephide.errors import DeephideError
from deephide.hiding import Hider, HiderConfig
from deephide.hiding.checkpoint import save_hider
from deephide.protect import protect
from deephide.semantic import SecretBank

DEEPHIDE = Path(sys.executable).with_name("deephide")
SIZE = 16
SYN = f"synthetic?n=12&size={SIZE}&classes=2"


# ---------------------------------------------------------------- helpers


def random_hider(size: int = SIZE, seed: int = 0, blocks: int = 1, growth: int = 8) -> Hider:
    """A hider whose every weight is random (a fresh one is the identity: its last convs are zero)."""
    torch.manual_seed(seed)
    h = Hider(HiderConfig(blocks=blocks, growth=growth, clamp=2.0, image_size=size))
    with torch.no_grad():
        for p in h.parameters():
            p.normal_(0.0, 0.05)
    return h


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: one thread is fastest, and spares the cores other work shares."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def hider_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hider") / "h"
    save_hider(d, random_hider())
    return d


def cli(capsys, *args: str) -> tuple[int, list[str]]:
    """Run the CLI in-process; returns (exit code, stderr lines)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


def one_error(rc: int, err: list[str], *needles: str) -> str:
    """Exactly one `deephide: error:` line (exit code 2) holding every needle (case-insensitive)."""
    assert rc == 2, (rc, err)
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("deephide: error: "), line
    for n in needles:
        assert n.lower() in line.lower(), (n, line)
    return line


def protect_args(data: str, out: Path, hider: Path, *extra: str) -> list[str]:
    return ["protect", "--data", data, "--hider", str(hider), "--secrets", "next-class", "--out", str(out),
            "--quiet", *extra]


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (sha256, mtime_ns) of every file under ``root`` (directories by name)."""
    out: dict[str, tuple[str, int]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file():
            out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        else:
            out[rel] = ("dir", 0)
    return out


def no_litter(parent: Path) -> None:
    """No temporaries (``.<name>.*.tmp``) or half-swapped ``.old`` directories under ``parent``."""
    bad = [p.name for p in parent.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not bad, bad


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def class_folder(root: Path, per_class: int = 3) -> Path:
    """``root/<a|b>/okN.png``: small RGB images of two classes."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / c / f"ok{i}.png")
    return root


def bomb_png(side: int) -> bytes:
    """A tiny PNG declaring side x side 1-bit pixels (decompression bomb)."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture
def small_set() -> ImageSet:
    return load_dataset(SYN, "train")


# ---------------------------------------------------------------- folder: loader (skip / convert)


def test_folder_skips_truncated_zero_byte_and_non_image_files(tmp_path, hider_dir, capsys, caplog):
    root = class_folder(tmp_path / "photos")
    good = png_bytes(np.zeros((20, 20, 3), np.uint8))
    (root / "a" / "truncated.png").write_bytes(good[:40])
    (root / "a" / "zero.jpg").write_bytes(b"")
    (root / "b" / "text.png").write_text("this is not an image")
    (root / "b" / "bomb.png").write_bytes(bomb_png(20000))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="deephide"):
        rc, err = cli(capsys, *protect_args(f"folder:{root}?size={SIZE}", out, hider_dir))
    assert rc == 0 and err == []
    prov = json.loads((out / "manifest.json").read_text())["provenance"]
    assert json.loads((out / "manifest.json").read_text())["count"] == 6
    assert prov["skipped"]["count"] == 4
    assert set(prov["skipped"]["files"]) == {"a/truncated.png", "a/zero.jpg", "b/text.png", "b/bomb.png"}
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for name in ("truncated.png", "zero.jpg", "text.png", "bomb.png"):
        assert sum(name in ln for ln in lines) == 1, (name, lines)  # one line names each file
    assert any("exceeds limit" in ln and "bomb.png" in ln for ln in lines)
    assert any("skipped 4 unreadable image(s) of 10" in ln for ln in lines)
    no_litter(tmp_path)


def test_folder_one_bad_file_is_one_warning_line_in_a_real_process(tmp_path, hider_dir):
    root = class_folder(tmp_path / "ph otos é")
    (root / "b" / "broken.png").write_bytes(png_bytes(np.zeros((20, 20, 3), np.uint8))[:50])
    out = tmp_path / "out"
    p = subprocess.run([str(DEEPHIDE), *protect_args(f"folder:{root}?size={SIZE}", out, hider_dir)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 0, p.stderr
    assert len(err) == 1 and "broken.png" in err[0] and "skipped unreadable image" in err[0], err
    assert "Traceback" not in p.stderr
    assert json.loads((out / "manifest.json").read_text())["provenance"]["skipped"]["count"] == 1


def test_folder_with_only_unreadable_files_is_an_error(tmp_path, hider_dir, capsys):
    root = tmp_path / "bad"
    (root / "k").mkdir(parents=True)
    (root / "k" / "z.png").write_bytes(b"")
    (root / "k" / "t.jpg").write_text("nope")
    rc, err = cli(capsys, *protect_args(f"folder:{root}?size={SIZE}", tmp_path / "out", hider_dir))
    one_error(rc, err, str(root), "none of the 2 image files could be read")
    assert not (tmp_path / "out").exists()


def test_folder_converts_cmyk_16bit_palette_rgba_gray_and_counts_them(tmp_path, hider_dir, capsys, caplog):
    root = class_folder(tmp_path / "modes", per_class=1)
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(root / "a" / "cmyk.jpg")
    Image.fromarray(np.full((20, 20), 257 * 100, np.uint16)).save(root / "a" / "deep.png")  # I;16
    Image.new("P", (20, 20), 3).save(root / "b" / "pal.png")
    Image.new("RGBA", (20, 20), (10, 20, 30, 0)).save(root / "b" / "rgba.png")
    Image.new("L", (20, 20), 77).save(root / "b" / "gray.png")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="deephide"):
        rc, err = cli(capsys, *protect_args(f"folder:{root}?size={SIZE}", out, hider_dir))
    assert rc == 0 and err == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["count"] == 7 and m["shape"] == [SIZE, SIZE, 3]
    assert m["provenance"]["converted"] == {"CMYK": 1, "I;16": 1, "P": 1, "RGBA": 1, "L": 1}
    assert m["provenance"]["skipped"]["count"] == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "converted 3 of 7" in lines[0], lines  # lossy ones only: CMYK, I;16, RGBA
    clean = load_dataset(f"folder:{root}?size={SIZE}")
    by = dict(zip(clean.provenance["files"], clean.images))
    assert (by["a/deep.png"] == 100).all() and (by["b/gray.png"] == 77).all()
    assert (by["b/rgba.png"] == 255).all()  # fully transparent: composited on white
    assert by["a/cmyk.jpg"][..., 0].mean() > 200 and by["a/cmyk.jpg"][..., 1].mean() < 60


# ---------------------------------------------------------------- PNG folder (APBench / ISS): exact, so refused


@pytest.mark.parametrize("case", ["truncated", "zero-byte", "not-an-image", "bomb"])
def test_png_folder_bad_image_is_refused(tmp_path, small_set, capsys, case):
    root = export_png_folder(small_set, tmp_path / "png")
    bad = root / "data" / "3.png"
    good = bad.read_bytes()
    content = {"truncated": good[:45], "zero-byte": b"", "not-an-image": b"GIF? no, text",
               "bomb": bomb_png(20000)}[case]
    bad.write_bytes(content)
    rc, err = cli(capsys, "verify", "--clean", SYN, "--protected", root)
    one_error(rc, err, str(bad), "exceeds limit" if case == "bomb" else "unreadable image")


def test_png_folder_converts_other_modes_with_one_warning(tmp_path, small_set, capsys, caplog):
    root = export_png_folder(small_set, tmp_path / "png")
    Image.fromarray(np.full((SIZE, SIZE), 40000, np.uint16)).save(root / "data" / "2.png")
    Image.fromarray(np.dstack([small_set.images[5], np.zeros((SIZE, SIZE), np.uint8)]), "RGBA").save(root / "data" / "5.png")
    with caplog.at_level(logging.WARNING, logger="deephide"):
        ds = import_png_folder(root)
    assert ds.provenance["converted"] == {"I;16": 1, "RGBA": 1}
    assert np.array_equal(ds.images[5], small_set.images[5])  # alpha dropped, colours exact
    assert (ds.images[2] == round(40000 * 255 / 65535)).all()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "converted 2 of 12" in lines[0] and str(root) in lines[0]


@pytest.mark.parametrize("name,content,needle", [
    ("labels.txt", "0\n1\n", "has shape (2,); expected (12,)"),
    ("labels.txt", "0\n" * 11 + "1\n0\n", "has shape (13,)"),
    ("labels.txt", "0\n1\ncat\n" + "0\n" * 9, "line 3 is not an integer label"),
    ("labels.txt", "0.5\n" * 12, "line 1 is not an integer label"),
    ("labels.txt", "99999999999999999999999\n" * 12, "line 1 is not an integer label"),
    ("labels.txt", "7\n" * 12, "out of range [0, 2)"),
    ("labels.txt", "-1\n" * 12, "out of range"),
    ("labels.txt", b"\xff\xfe\x00garbage", "not readable"),
    ("labels.json", '[1, "a", null]', "object array"),
    ("labels.json", "{not json", "not readable"),
])
def test_png_folder_bad_label_files(tmp_path, small_set, capsys, name, content, needle):
    root = export_png_folder(small_set, tmp_path / "png")
    (root / "labels.txt").unlink()
    (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, err = cli(capsys, "verify", "--clean", SYN, "--protected", root)
    one_error(rc, err, str(root / name), needle)


def test_png_folder_object_labels_npy_is_refused(tmp_path, small_set, capsys):
    root = export_png_folder(small_set, tmp_path / "png")
    (root / "labels.txt").unlink()
    np.save(root / "labels.npy", np.array([0, None] * 6, dtype=object), allow_pickle=True)
    rc, err = cli(capsys, "verify", "--clean", SYN, "--protected", root)
    one_error(rc, err, str(root / "labels.npy"), "object arrays")


# ---------------------------------------------------------------- npz: AVATAR layout and stored ImageSet


def forged_npz(path: Path, shape=(10**6, 1000, 1000, 3)) -> Path:
    """An npz whose ``data`` header declares ``shape`` (terabytes) over 100 bytes of data."""
    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    buf.write(b"\0" * 100)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data.npy", buf.getvalue())
        b2 = io.BytesIO()
        np.save(b2, np.zeros(4, np.int64))
        z.writestr("targets.npy", b2.getvalue())
    return path


@pytest.mark.parametrize("case,needle", [
    ("nan-images", "'data' contains NaN or inf"),
    ("inf-labels", "'targets' contains NaN or inf"),
    ("float-labels", "'targets' must be integers"),
    ("object-images", "object array"),
    ("object-classes", "object array"),
    ("channels-2", "expected (N, H, W, C) with C in (1, 3)"),
    ("label-length", "'targets' has shape (3,); expected (12,)"),
    ("empty", "holds no images"),
    ("forged-header", "truncated or forged header"),
    ("not-a-zip", "not a readable .npz"),
    ("zero-byte", "not a readable .npz"),
    ("pickle", "is a pickle"),
])
def test_avatar_npz_hostile(tmp_path, small_set, capsys, case, needle):
    f = tmp_path / f"{case}.npz"
    imgs, y = small_set.images, small_set.labels
    arrays = {
        "nan-images": dict(data=np.full(imgs.shape, np.nan, np.float32), targets=y),
        "inf-labels": dict(data=imgs, targets=np.full(12, np.inf)),
        "float-labels": dict(data=imgs, targets=y.astype(np.float32)),
        "object-images": dict(data=np.array([None] * 12, dtype=object), targets=y),
        "object-classes": dict(data=imgs, targets=y, classes=np.array(["a", 1], dtype=object)),
        "channels-2": dict(data=imgs[..., :2], targets=y),
        "label-length": dict(data=imgs, targets=y[:3]),
        "empty": dict(data=imgs[:0], targets=y[:0]),
    }
    if case in arrays:
        np.savez(f, **arrays[case])
    elif case == "forged-header":
        forged_npz(f)
    elif case == "not-a-zip":
        f.write_bytes(b"PK\x03\x04 not really a zip")
    elif case == "zero-byte":
        f.write_bytes(b"")
    else:
        f.write_bytes(pickle.dumps({"data": 1}))
    rc, err = cli(capsys, "verify", "--clean", SYN, "--protected", f)
    one_error(rc, err, str(f), needle)


def test_npz_forged_header_is_refused_before_allocating(tmp_path):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DeephideError, match="forged header"):
        import_avatar_npz(forged_npz(tmp_path / "f.npz", shape=(4000, 1000, 1000, 3)))  # 12 GB declared
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing big touched


def forged_npy(path: Path, shape=(10**6, 1000, 1000, 3)) -> Path:
    """An .npy whose header declares ``shape`` (terabytes) over 100 bytes of data."""
    from numpy.lib import format as npy_format

    with open(path, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 100)
    return path


@pytest.mark.parametrize("case,needle", [
    ("object-images", "object array"),
    ("nan-images", "'images' contains NaN or inf"),
    ("modified", "sha256 does not match"),
    ("forged-header", "truncated or forged header"),
    ("pickled-labels", "object array"),
    ("bad-manifest", "not valid JSON"),
    ("traversal", "'data_files.images' must be a plain file name"),
    ("v1-forged-header", "truncated or forged header"),
    ("v1-traversal", "'data_file' must be a plain file name"),
])
def test_stored_imageset_hostile(tmp_path, small_set, capsys, case, needle):
    s = save_imageset(small_set, tmp_path / "stored")
    imgs = small_set.images
    named = s / "images.npy"
    if case == "object-images":
        np.save(named, np.array([None] * 12, dtype=object), allow_pickle=True)
    elif case == "nan-images":
        np.save(named, np.full(imgs.shape, np.nan, np.float32))
    elif case == "modified":
        im2 = imgs.copy()
        im2[0, 0, 0, 0] ^= 1
        np.save(named, im2)
    elif case == "forged-header":
        forged_npy(named)
    elif case == "pickled-labels":
        named = s / "labels.npy"
        np.save(named, np.array([_RunsCode(tmp_path / "ran")] * 12, dtype=object), allow_pickle=True)
    elif case == "bad-manifest":
        named = s / "manifest.json"
        named.write_text("{bad")
    elif case == "traversal":
        named = s / "manifest.json"
        m = json.loads(named.read_text())
        m["data_files"]["images"] = "../../etc/passwd"
        named.write_text(json.dumps(m))
    else:  # a format-1 set (one data.npz), as older deephide versions wrote
        m = json.loads((s / "manifest.json").read_text())
        m.update(version=1, data_file="data.npz")
        del m["data_files"]
        named = s / "data.npz"
        forged_npz(named)
        if case == "v1-traversal":
            named = s / "manifest.json"
            m["data_file"] = "../../etc/passwd"
        (s / "manifest.json").write_text(json.dumps(m))
    rc, err = cli(capsys, "verify", "--clean", SYN, "--protected", s)
    one_error(rc, err, str(named), needle)
    assert not (tmp_path / "ran").exists()


# ---------------------------------------------------------------- pickles that try to execute code


class _RunsCode:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


def cifar_dir(root: Path, batch1: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    good = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1]}, protocol=2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(good)
    (root / "data_batch_1").write_bytes(batch1)
    return root


@pytest.mark.parametrize("case", ["os.system", "builtins.eval", "nested", "truncated"])
def test_cifar_malicious_pickle_runs_nothing(tmp_path, hider_dir, capsys, case):
    flag = tmp_path / "PWNED"
    payload = {
        "os.system": pickle.dumps(_RunsCode(flag)),
        "builtins.eval": f"cbuiltins\neval\n(S'open({str(flag)!r}, \"w\")'\ntR.".encode(),
        "nested": pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [_RunsCode(flag)]}, protocol=2),
        "truncated": pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1]}, protocol=2)[:60],
    }[case]
    root = cifar_dir(tmp_path / "cifar", payload)
    rc, err = cli(capsys, *protect_args(f"cifar10:{root}", tmp_path / "out", hider_dir))
    needle = "not a readable pickle" if case == "truncated" else "refused to unpickle"
    one_error(rc, err, str(root / "data_batch_1"), needle)
    assert not flag.exists()
    assert not (tmp_path / "out").exists()


def test_cifar_malicious_pickle_in_a_real_process(tmp_path, hider_dir):
    flag = tmp_path / "PWNED"
    root = cifar_dir(tmp_path / "cifar dir é", pickle.dumps(_RunsCode(flag)))
    p = subprocess.run([str(DEEPHIDE), "verify", "--clean", f"cifar10:{root}", "--protected", f"cifar10:{root}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and str(root / "data_batch_1") in err[0] and "refused to unpickle" in err[0], err
    assert not flag.exists()


# ---------------------------------------------------------------- hider checkpoints (protect --hider)

W = "weights.safetensors"


def _wrong_shape(d: Path) -> None:
    t = load_file(d / W)
    t[sorted(t)[0]] = torch.zeros(3, 3)
    save_file(t, d / W)


def _other_arch(d: Path) -> None:
    save_file(random_hider(blocks=2, growth=16).state_dict(), d / W)


def _resnet(d: Path) -> None:
    from deephide.models import build_model

    save_file({k: v.contiguous() for k, v in build_model("resnet20", num_classes=2).state_dict().items()}, d / W)


def _corrupt_header(d: Path) -> None:
    b = bytearray((d / W).read_bytes())
    b[8:20] = b"{{{{garbage!"
    (d / W).write_bytes(bytes(b))


def _huge_header(d: Path) -> None:
    b = bytearray((d / W).read_bytes())
    b[:8] = (2**62).to_bytes(8, "little")
    (d / W).write_bytes(bytes(b))


def _nan(d: Path) -> None:
    t = load_file(d / W)
    k = sorted(t)[0]
    t[k] = torch.full_like(t[k], float("nan"))
    save_file(t, d / W)


@pytest.mark.parametrize("mutate,needle", [
    (_wrong_shape, "has shape (3, 3)"),
    (_other_arch, "does not match the architecture"),
    (_resnet, "does not match the architecture"),
    (_corrupt_header, "unreadable safetensors"),
    (_huge_header, "unreadable safetensors"),
    (lambda d: (d / W).write_bytes((d / W).read_bytes()[:200]), "unreadable safetensors"),
    (lambda d: (d / W).write_bytes(b""), "unreadable safetensors"),
    (lambda d: torch.save({"x": 1}, d / W), "unreadable safetensors"),  # a pickle in disguise
    (_nan, "NaN/inf"),
], ids=["wrong-shape", "other-arch", "resnet-weights", "corrupt-header", "huge-header", "truncated", "zero-byte",
        "torch-pickle", "nan"])
def test_protect_with_bad_hider_checkpoint(tmp_path, hider_dir, capsys, mutate, needle):
    d = tmp_path / "hider"
    shutil.copytree(hider_dir, d)
    mutate(d)
    out = tmp_path / "out"
    rc, err = cli(capsys, *protect_args(SYN, out, d))
    one_error(rc, err, str(d / W), needle)
    assert not out.exists()
    no_litter(tmp_path)


@pytest.mark.parametrize("key,value", [("blocks", "many"), ("blocks", -1), ("clamp", "x")])
def test_protect_with_bad_hider_config_names_the_file(tmp_path, hider_dir, capsys, key, value):
    d = tmp_path / "hider"
    shutil.copytree(hider_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hider"][key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    rc, err = cli(capsys, *protect_args(SYN, tmp_path / "out", d))
    one_error(rc, err, key)
    assert str(d / "config.json") in err[0]


def test_protect_with_absurd_hider_config_is_one_line(tmp_path, hider_dir, capsys):
    d = tmp_path / "hider"
    shutil.copytree(hider_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hider"]["growth"] = 10**9
    (d / "config.json").write_text(json.dumps(cfg))
    rc, err = cli(capsys, *protect_args(SYN, tmp_path / "out", d))
    one_error(rc, err, str(d / "config.json"), "growth")


# ---------------------------------------------------------------- grid configs (evaluation/grid.py)


def _grid():
    try:
        from deephide.evaluation import grid
    except ImportError:
        return None
    return grid if hasattr(grid, "run_grid") else None


@pytest.mark.skipif(_grid() is None, reason="evaluation/grid.py with run_grid not present")
@pytest.mark.parametrize("patch,needle", [
    ({"epochs": 3}, "'epochs'"),
    ({"seeds": "zero"}, "'seeds'"),
    ({"seeds": [0, "one"]}, "'seeds'"),
    ({"models": 5}, "'models'"),
    ({"train_sets": ["a", "b"]}, "'train_sets'"),
    ({"overrides": {"no_such_setting": 1}}, "no_such_setting"),
    ({"mixtures": [2.0]}, "'mixtures'"),
])
def test_grid_config_unknown_keys_and_wrong_types(tmp_path, capsys, patch, needle):
    import yaml

    cfg = {"out": str(tmp_path / "res.jsonl"), "test": SYN, "train_sets": {"Clean": SYN}, "models": ["resnet20"],
           "countermeasures": ["Vanilla"], "seeds": [0], "profile": "tiny", "clean": SYN}
    cfg.update(patch)
    path = tmp_path / "grid config é.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc, err = cli(capsys, "grid", path, "--quiet")
    one_error(rc, err, str(path), needle)
    assert not (tmp_path / "res.jsonl").exists()


@pytest.mark.skipif(_grid() is None, reason="evaluation/grid.py with run_grid not present")
def test_grid_config_yaml_cannot_build_objects(tmp_path, capsys):
    flag = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(f"out: !!python/object/apply:os.system ['touch {flag}']\n")
    rc, err = cli(capsys, "grid", path, "--quiet")
    one_error(rc, err, str(path), "not valid YAML")
    assert not flag.exists()


# ---------------------------------------------------------------- outputs: paths, existing, read-only, full disk


def test_paths_with_spaces_and_non_ascii(tmp_path, hider_dir, capsys):
    root = tmp_path / "my phötos 日本"
    for c in ("cat é", "dog"):
        (root / c).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "cat é" / f"ïmg {i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "dog" / f"{i}.jpg")
    with open(os.fsencode(str(root / "dog")) + b"/\xff\xfe.png", "wb") as f:  # not valid UTF-8
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(f, "PNG")
    out, exp = tmp_path / "out ü", tmp_path / "exp 日"
    rc, err = cli(capsys, *protect_args(f"folder:{root}?size={SIZE}", out, hider_dir, "--export-folder", str(exp)))
    assert rc == 0 and err == []
    files = json.loads((out / "manifest.json").read_text())["provenance"]["files"]
    assert "cat é/ïmg 0.png" in files and len(files) == 7
    assert (exp / "cat é" / "ïmg 2.png").is_file() and (exp / "dog" / "0.png").is_file()
    again = load_dataset(f"folder:{exp}?size={SIZE}")
    assert np.array_equal(again.images, load_imageset(out).images)  # exported back exactly, same order


def test_existing_outputs_are_refused_and_untouched(tmp_path, hider_dir, capsys, small_set):
    out = save_imageset(small_set, tmp_path / "out")
    (out / "user-notes.txt").write_text("mine")
    ev = tmp_path / "eval.json"
    ev.write_text('{"mine": true}')
    before, before_ev = snapshot(out), ev.read_bytes()
    for args in (protect_args(SYN, out, hider_dir),
                 protect_args(SYN, tmp_path / "new", hider_dir, "--export-png", str(out)),
                 ["reveal", "--data", SYN, "--hider", hider_dir, "--out", out, "--quiet"],
                 ["evaluate", "--train", SYN, "--profile", "tiny", "--model", "resnet20", "--out", ev, "--quiet"]):
        rc, err = cli(capsys, *args)
        target = str(ev) if "evaluate" in args else str(out)
        one_error(rc, err, target, "already exists", "--force")
    assert snapshot(out) == before and ev.read_bytes() == before_ev
    assert not (tmp_path / "new").exists()
    rc, err = cli(capsys, *protect_args(SYN, out, hider_dir, "--force"))
    assert rc == 0 and not (out / "user-notes.txt").exists() and load_imageset(out).images.shape == (12, SIZE, SIZE, 3)
    no_litter(tmp_path)


def test_train_hider_force_does_not_delete_a_foreign_directory(tmp_path, capsys):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "precious.jpg").write_bytes(b"irreplaceable")
    rc, err = cli(capsys, "train-hider", "--data", SYN, "--secrets", "next-class", "--profile", "tiny", "--set",
                  "lfc=false", "--iterations", "1", "--out", user, "--force", "--quiet")
    assert (user / "precious.jpg").exists()
    one_error(rc, err, str(user))


def test_read_only_output_location(tmp_path, hider_dir, capsys):
    if os.geteuid() == 0:  # root writes through chmod: a path under a regular file is unwritable for anyone
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        out = blocker / "sub" / "out"
        needle = f"{blocker} is a file"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "out"
        needle = "permission denied"
    try:
        rc, err = cli(capsys, *protect_args(SYN, out, hider_dir))
        one_error(rc, err, str(out), "cannot write here", needle)
        rc, err = cli(capsys, "evaluate", "--train", SYN, "--profile", "tiny", "--model", "resnet20",
                      "--iterations", "1", "--out", out.with_suffix(".json"), "--quiet")
        one_error(rc, err, str(out.with_suffix(".json")), "cannot write here")
    finally:
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o700)
    assert not out.exists()


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["rename", "write"])
def test_full_disk_leaves_nothing(tmp_path, hider_dir, capsys, where):
    out = tmp_path / "out"
    # "write": the output file's blocks are allocated up front, where a full disk shows
    target = "deephide.fsutil.os.replace" if where == "rename" else "deephide.data.stored.os.posix_fallocate"
    with mock.patch(target, _enospc):
        rc, err = cli(capsys, *protect_args(SYN, out, hider_dir))
    one_error(rc, err, str(out), "No space left on device")
    assert ".tmp" not in err[0]  # names the user's path, not a temporary
    assert os.listdir(tmp_path) == []


def test_full_disk_on_the_png_export_of_a_fresh_output(tmp_path, hider_dir, capsys):
    out, png = tmp_path / "out", tmp_path / "png"
    real_save = Image.Image.save
    calls = []

    def save(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) > 3:
            _enospc()
        return real_save(self, fp, *a, **k)

    with mock.patch.object(Image.Image, "save", save):
        rc, err = cli(capsys, *protect_args(SYN, out, hider_dir, "--export-png", str(png)))
    one_error(rc, err, str(png), "No space left on device")
    assert not png.exists()
    no_litter(tmp_path)
    assert not out.exists()  # all outputs or none


def test_full_disk_in_evaluate_out(tmp_path, capsys):
    ev = tmp_path / "ev.json"
    with mock.patch("deephide.fsutil.os.replace", _enospc):
        rc, err = cli(capsys, "evaluate", "--train", SYN, "--profile", "tiny", "--model", "resnet20",
                      "--iterations", "1", "--batch-size", "8", "--out", ev, "--quiet")
    one_error(rc, err, str(ev), "No space left")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- fsutil


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path, small_set):
    dead = 4_000_000  # above the kernel's pid_max: never alive
    host = fsutil._host()
    stale_dir = tmp_path / f".out.{host}-{dead}.abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "data.npz").write_bytes(b"half")
    stale_file = tmp_path / f".ev.json.{host}-{dead}.x_y_z.tmp"
    stale_file.write_text("{")
    live = tmp_path / f".out.{host}-{os.getppid()}.live0.tmp"  # a running process: left alone
    live.mkdir()
    other_host = tmp_path / f".out.elsewhere-{dead}.abc.tmp"  # another machine on a shared disk
    other_host.mkdir()
    save_imageset(small_set, tmp_path / "out")
    fsutil.write_json(tmp_path / "ev.json", {"a": 1})
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists() and other_host.exists()


def test_outputs_or_nothing_and_remove_output_dir(tmp_path):
    a, b, kept = tmp_path / "a", tmp_path / "b", tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(DeephideError):
        with fsutil.outputs_or_nothing([a, b, kept, None]):
            a.mkdir()
            fsutil.write_json(a / "x.json", {})
            raise DeephideError("b: failed")
    assert not a.exists() and kept.exists()
    h = tmp_path / "hider"
    (h / "checkpoint").mkdir(parents=True)
    (h / "log.jsonl").write_text("")
    assert fsutil.remove_output_dir(h, {"checkpoint", "bank", "log.jsonl", "summary.json"}, "hider")
    assert not h.exists()
    (kept / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DeephideError, match="photo.jpg"):
        fsutil.remove_output_dir(kept, {"checkpoint"}, "hider")
    assert (kept / "photo.jpg").exists()


# ---------------------------------------------------------------- property tests (hypothesis)

_sets = st.builds(
    lambda n, h, w, c, k, seed: _random_set(n, h, w, c, k, seed),
    n=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9), c=st.sampled_from([1, 3]),
    k=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
)


def _random_set(n, h, w, c, k, seed) -> ImageSet:
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
    if seed % 3 == 0:
        imgs[0] = 0 if seed % 2 else 255  # box edges
    names = tuple(["cat", "dög é", "日本", "a b"][:k])
    return ImageSet(imgs, rng.integers(0, k, size=n), names, {"seed": seed})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=_sets)
def test_storage_round_trips_are_bitwise(tmp_path_factory, ds):
    d = tmp_path_factory.mktemp("rt")
    s = load_imageset(save_imageset(ds, d / "stored"))
    p = import_png_folder(export_png_folder(ds, d / "png"))
    a = import_avatar_npz(export_avatar_npz(ds, d / "a.npz"))
    for back in (s, p, a):
        assert back.images.dtype == np.uint8 and np.array_equal(back.images, ds.images)
        assert np.array_equal(back.labels, ds.labels) and back.class_names == ds.class_names
    no_litter(d)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 80), levels=st.integers(1, 12),
       mode=st.sampled_from(["class", "sample"]))
def test_protect_is_identical_across_batch_sizes(seed, n, levels, mode):
    rng = np.random.default_rng(seed)
    ds = ImageSet(rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, size=n), ("a", "b", "c"))
    bank = SecretBank(rng.integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8), np.array([0, 0, 1, 1, 2, 2]), 3)
    h = random_hider(size=8, seed=seed)
    outs = [protect(ds, h, bank, mode, levels=levels, seed=seed, batch_size=b, progress=False).images
            for b in (7, 64, n)]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    d = np.abs(outs[0].astype(int) - ds.images.astype(int))
    assert d.max() <= levels and (d > 0).any()  # a real (non-identity) hider, within budget
