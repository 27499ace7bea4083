"""Data layer: spec parsing, every loader, the restricted unpickler, storage round trips, bad inputs."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deephide.data import (
    DATASETS,
    ImageSet,
    export_avatar_npz,
    export_class_folders,
    export_png_folder,
    import_avatar_npz,
    import_png_folder,
    load_dataset,
    load_imageset,
    loaders,
    parse_spec,
    save_imageset,
)
from deephide.data.unpickle import load_pickle, restricted_loads
from deephide.errors import DeephideError

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def raises_naming(where: object, fn, *args, **kwargs) -> str:
    """Assert ``fn`` raises a one-line DeephideError that names ``where``; return the message."""
    with pytest.raises(DeephideError) as ei:
        fn(*args, **kwargs)
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(where) in msg, msg
    return msg


def small_set(n: int = 12, h: int = 8, w: int = 6, c: int = 3, k: int = 3, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    labels = rng.integers(0, k, n)
    return ImageSet(imgs, labels, tuple(f"c{i}" for i in range(k)), {"note": "test"}, "mem")


def same(a: ImageSet, b: ImageSet) -> None:
    assert a.images.dtype == b.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, b.labels)
    assert a.class_names == b.class_names


# ---------------------------------------------------------------- spec notation


def test_parse_spec_forms() -> None:
    assert parse_spec("fashion-mnist") == ("fashion-mnist", None, {})
    assert parse_spec("fashion-mnist?size=28&channels=1") == ("fashion-mnist", None, {"size": 28, "channels": 1})
    assert parse_spec("cifar10:/data/cifar-10-batches-py") == ("cifar10", "/data/cifar-10-batches-py", {})
    assert parse_spec("folder:/imgs?size=64&classes=100") == ("folder", "/imgs", {"size": 64, "classes": 100})
    _, _, opts = parse_spec("synthetic?a=1.5&b=true&c=no&d=abc&e=-3&flag")
    assert opts == {"a": 1.5, "b": True, "c": False, "d": "abc", "e": -3, "flag": True}


def test_paths_with_colons_and_unknown_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = small_set()
    save_imageset(ds, tmp_path / "run:1")
    monkeypatch.chdir(tmp_path)
    assert parse_spec("run:1") == ("file", "run:1", {})
    same(load_dataset("run:1"), ds)
    same(load_dataset(str(tmp_path / "run:1")), ds)
    msg = raises_naming("cifar11", load_dataset, "cifar11:/x")
    assert "cifar10" in msg and "synthetic" in msg  # lists the choices
    raises_naming("C:\\data\\set", load_dataset, "C:\\data\\set")
    raises_naming("nosuch", load_dataset, "nosuch")
    raises_naming("bogus", load_dataset, "synthetic?bogus=1")
    raises_naming("valid", load_dataset, "synthetic", "valid")
    raises_naming("size", load_dataset, "synthetic?size=big")
    raises_naming("synthetic", load_dataset, "synthetic:/some/path")


def test_registry_lists_loaders_with_help() -> None:
    for name in ("fashion-mnist", "cifar10", "cifar100", "folder", "synthetic", "file"):
        assert name in DATASETS and DATASETS.help(name)


# ---------------------------------------------------------------- Fashion-MNIST


@pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real() -> None:
    test = load_dataset("fashion-mnist", "test")
    assert test.images.shape == (10000, 32, 32, 3) and test.images.dtype == np.uint8
    assert test.class_names[0] == "T-shirt/top" and test.class_names[9] == "Ankle boot"
    assert set(np.unique(test.labels)) == set(range(10))
    assert test.images[:, :2].max() == 0 and test.images[:, 30:].max() == 0  # zero padding
    assert np.array_equal(test.images[..., 0], test.images[..., 2])
    native = load_dataset("fashion-mnist?size=28&channels=1", "test")
    assert native.images.shape == (10000, 28, 28, 1)
    assert np.array_equal(native.images[..., 0], test.images[:, 2:30, 2:30, 0])
    assert native.provenance["options"] == {"size": 28, "channels": 1} and native.provenance["split"] == "test"
    train = load_dataset("fashion-mnist?channels=1", "train")
    assert train.images.shape == (60000, 32, 32, 1) and train.labels.max() == 9


def write_idx(root: Path, prefix: str, imgs: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ib = struct.pack(">IIII", 0x803, *imgs.shape) + imgs.tobytes()
    lb = struct.pack(">II", 0x801, labels.shape[0]) + labels.astype(np.uint8).tobytes()
    suffix = ".gz" if gz else ""
    (root / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(gzip.compress(ib) if gz else ib)
    (root / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(gzip.compress(lb) if gz else lb)


def test_fashion_mnist_from_directory_and_corrupt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), np.arange(7) % 10
    write_idx(tmp_path / "fm", "train", imgs, labels)
    write_idx(tmp_path / "fm", "t10k", imgs[:3], labels[:3], gz=False)
    ds = load_dataset(f"fashion-mnist:{tmp_path / 'fm'}")
    assert ds.images.shape == (7, 32, 32, 3) and np.array_equal(ds.images[:, 2:30, 2:30, 1], imgs)
    assert np.array_equal(ds.labels, labels)
    assert len(load_dataset(f"fashion-mnist:{tmp_path / 'fm'}?size=28&channels=1", "test")) == 3
    bad = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated gzip stream
    raises_naming(bad, load_dataset, f"fashion-mnist:{tmp_path / 'fm'}")
    bad.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 7, 28, 28) + imgs.tobytes()[:-5]))
    raises_naming(bad, load_dataset, f"fashion-mnist:{tmp_path / 'fm'}")
    bad.write_bytes(gzip.compress(struct.pack(">IIII", 0x801, 7, 28, 28) + imgs.tobytes()))
    assert "magic" in raises_naming(bad, load_dataset, f"fashion-mnist:{tmp_path / 'fm'}")
    lab = tmp_path / "fm" / "t10k-labels-idx1-ubyte"
    lab.write_bytes(struct.pack(">II", 0x801, 3) + bytes([1, 2, 12]))
    raises_naming(lab, load_dataset, f"fashion-mnist:{tmp_path / 'fm'}", "test")
    monkeypatch.setattr(loaders, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    assert "apt-get install dataset-fashion-mnist" in raises_naming(tmp_path / "absent", load_dataset, "fashion-mnist")


# ---------------------------------------------------------------- CIFAR (restricted unpickling)


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes str/bytes as Python-2 strings, like the real CIFAR batches (read back as bytes)."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        n = len(data)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (which wrote CIFAR) named the module numpy.core
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def fake_cifar10(root: Path, n: int = 4) -> dict[str, np.ndarray]:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (d / "batches.meta").write_bytes(py2_pickle({"label_names": names, "num_cases_per_batch": n}))
    rng = np.random.default_rng(1)
    out = {}
    for i, f in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        out[f] = data
        batch = {"batch_label": f"batch {i}", "labels": [int(x) for x in rng.integers(0, 10, n)],
                 "data": data, "filenames": [f"img_{i}_{j}.png" for j in range(n)]}
        (d / f).write_bytes(py2_pickle(batch))
    return out


def test_cifar10_real_format(tmp_path: Path) -> None:
    raw = fake_cifar10(tmp_path)
    ds = load_dataset(f"cifar10:{tmp_path}")  # the parent of cifar-10-batches-py
    assert ds.images.shape == (20, 32, 32, 3) and ds.class_names[1] == "automobile"
    d0 = raw["data_batch_1"][0]
    assert ds.images[0, 5, 7, 0] == d0[5 * 32 + 7] and ds.images[0, 5, 7, 2] == d0[2048 + 5 * 32 + 7]
    test = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}", "test")
    assert len(test) == 4 and test.provenance["loader"] == "cifar10"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:200])
    raises_naming(batch, load_dataset, f"cifar10:{tmp_path}")
    batch.write_bytes(py2_pickle({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    raises_naming(batch, load_dataset, f"cifar10:{tmp_path}")
    batch.write_bytes(py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}))
    raises_naming(batch, load_dataset, f"cifar10:{tmp_path}")
    batch.unlink()
    raises_naming(batch, load_dataset, f"cifar10:{tmp_path}")
    raises_naming("cifar10", load_dataset, "cifar10")
    raises_naming(tmp_path / "nope", load_dataset, f"cifar10:{tmp_path / 'nope'}")


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    meta = {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    (d / "meta").write_bytes(pickle.dumps(meta, protocol=4))
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": list(range(90, 90 + n)), b"coarse_labels": [19 - i for i in range(n)]}
        (d / split).write_bytes(pickle.dumps(batch, protocol=4))
    fine = load_dataset(f"cifar100:{d}")
    assert fine.num_classes == 100 and list(fine.labels) == list(range(90, 96))
    coarse = load_dataset(f"cifar100:{tmp_path}?label=coarse", "test")
    assert coarse.num_classes == 20 and coarse.class_names[19] == "c19" and list(coarse.labels) == [19, 18, 17]
    raises_naming("label", load_dataset, f"cifar100:{d}?label=medium")


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("1+1",))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({"data": Evil(marker)}, protocol=2))
    msg = raises_naming(bad, load_pickle, bad)
    assert "refused to unpickle" in msg and "system" in msg
    assert not marker.exists()
    msg = raises_naming("<x>", restricted_loads, pickle.dumps(EvalEvil()), "<x>")
    assert "builtins.eval" in msg
    raises_naming("<y>", restricted_loads, pickle.dumps(Path("/etc")), "<y>")
    # the same attack inside a CIFAR directory is refused by the loader
    fake_cifar10(tmp_path / "c")
    bad = tmp_path / "c" / "cifar-10-batches-py" / "batches.meta"
    bad.write_bytes(pickle.dumps(Evil(marker)))
    raises_naming(bad, load_dataset, f"cifar10:{tmp_path / 'c'}")
    assert not marker.exists()


def test_restricted_unpickler_admits_arrays_every_protocol() -> None:
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for proto in (2, 4, 5):
        out = restricted_loads(pickle.dumps({"a": a, "s": np.float32(1.5), "t": (1, "x", b"y")}, protocol=proto))
        assert np.array_equal(out["a"], a) and out["a"].dtype == np.int16 and out["s"] == 1.5


# ---------------------------------------------------------------- image folders


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int) -> bytes:
    """A tiny PNG whose header claims side x side pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")


def make_folder(root: Path) -> dict[str, np.ndarray]:
    """Classes a, b, c with images of many modes and some broken files; returns expected RGB pixels."""
    rng = np.random.default_rng(3)
    for c in "abc":
        (root / c).mkdir(parents=True)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(gray, "L").save(root / "a" / "gray.png")
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 0
    pal.save(root / "a" / "pal.png", transparency=0)
    rgba = np.concatenate([rgb, np.full((32, 32, 1), 255, np.uint8)], axis=2)
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba, "RGBA").save(root / "b" / "rgba.png")
    Image.fromarray(np.full((32, 32), 257 * 100, np.uint16)).save(root / "b" / "deep.png")  # I;16
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(root / "b" / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "c" / "big.png")
    (root / "c" / "notes.txt").write_text("not an image, ignored by extension")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    (root / "c" / "truncated.png").write_bytes(buf.getvalue()[:300])
    (root / "c" / "empty.png").write_bytes(b"")
    (root / "c" / "text.jpg").write_text("hello, not a jpeg")
    (root / "c" / "bomb.png").write_bytes(bomb_png(20000))
    (root / "c" / "bomb-warn.png").write_bytes(bomb_png(9000))
    return {"rgb": rgb, "gray": gray}


def test_folder_loader_modes_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    px = make_folder(tmp_path / "imgs")
    with caplog.at_level(logging.WARNING, logger="deephide"):
        ds = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert ds.class_names == ("a", "b", "c") and ds.images.shape == (7, 32, 32, 3)
    files = ds.provenance["files"]
    assert files == ["a/gray.png", "a/pal.png", "a/rgb.png", "b/cmyk.jpg", "b/deep.png", "b/rgba.png", "c/big.png"]
    assert list(ds.labels) == [0, 0, 0, 1, 1, 1, 2]
    by = dict(zip(files, ds.images))
    assert np.array_equal(by["a/rgb.png"], px["rgb"])  # already 32x32: exact pixels
    assert np.array_equal(by["a/gray.png"], np.repeat(px["gray"][..., None], 3, axis=2))
    assert (by["b/deep.png"] == 100).all()  # 16-bit scaled to 8 bits
    assert (by["b/rgba.png"][:4, :4] == 255).all() and np.array_equal(by["b/rgba.png"][8:], px["rgb"][8:])
    assert by["b/cmyk.jpg"][..., 0].mean() > 200 and by["b/cmyk.jpg"][..., 1].mean() < 50  # red
    skipped = ds.provenance["skipped"]
    assert skipped["count"] == 5
    assert set(skipped["files"]) == {"c/truncated.png", "c/empty.png", "c/text.jpg", "c/bomb.png", "c/bomb-warn.png"}
    assert "skipped" in caplog.text and "truncated.png" in caplog.text
    two = load_dataset(f"folder:{tmp_path / 'imgs'}?classes=2&size=16")
    assert two.class_names == ("a", "b") and two.images.shape == (6, 16, 16, 3)
    raises_naming("classes", load_dataset, f"folder:{tmp_path / 'imgs'}?classes=4")


def test_folder_split_layout_and_errors(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for c in ("x", "y"):
            (tmp_path / "s" / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "s" / split / c / "i.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "s" / "val" / "y" / "j.png")
    assert len(load_dataset(f"folder:{tmp_path / 's'}?size=8")) == 2
    assert len(load_dataset(f"folder:{tmp_path / 's'}?size=8", "test")) == 3
    (tmp_path / "empty").mkdir()
    raises_naming(tmp_path / "empty", load_dataset, f"folder:{tmp_path / 'empty'}")
    (tmp_path / "bad" / "k").mkdir(parents=True)
    (tmp_path / "bad" / "k" / "z.png").write_bytes(b"")
    raises_naming(tmp_path / "bad", load_dataset, f"folder:{tmp_path / 'bad'}")
    (tmp_path / "noimg" / "k").mkdir(parents=True)
    raises_naming(tmp_path / "noimg", load_dataset, f"folder:{tmp_path / 'noimg'}")
    raises_naming(tmp_path / "absent", load_dataset, f"folder:{tmp_path / 'absent'}")


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_learnable() -> None:
    a, b = load_dataset("synthetic?n=300&seed=4"), load_dataset("synthetic?n=300&seed=4")
    same(a, b)
    test = load_dataset("synthetic?seed=4", "test")
    assert len(test) == 100 and not np.array_equal(test.images[:50], a.images[:50])
    assert not np.array_equal(load_dataset("synthetic?seed=5").images, load_dataset("synthetic").images)
    assert np.bincount(a.labels).tolist() == [30] * 10
    # nearest class mean on the per-channel mean colour + a gradient-orientation feature beats chance
    def feats(ds: ImageSet) -> np.ndarray:
        x = ds.images.astype(np.float32)
        gy, gx = np.gradient(x.mean(axis=3), axis=(1, 2))
        orient = [(gx * gx).mean((1, 2)), (gy * gy).mean((1, 2)), (gx * gy).mean((1, 2))]
        return np.concatenate([x.mean((1, 2)), np.stack(orient, 1) / 50], axis=1)
    ftr, fte = feats(a), feats(test)
    centres = np.stack([ftr[a.labels == k].mean(0) for k in range(10)])
    pred = np.argmin(((fte[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (pred == test.labels).mean() > 0.5
    g = load_dataset("synthetic?n=10&classes=3&size=16&channels=1")
    assert g.images.shape == (10, 16, 16, 1) and g.num_classes == 3


# ---------------------------------------------------------------- storage round trips


@pytest.mark.parametrize("channels", [1, 3])
def test_stored_imageset_round_trip(tmp_path: Path, channels: int) -> None:
    ds = small_set(c=channels)
    save_imageset(ds, tmp_path / "set")
    back = load_imageset(tmp_path / "set")
    same(back, ds)
    assert back.provenance == {"note": "test"}
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["images.npy", "labels.npy", "manifest.json"]
    via = load_dataset(str(tmp_path / "set" / "images.npy"))
    same(via, ds)
    assert via.provenance["loaded_from"] == str(tmp_path / "set" / "images.npy")
    same(load_dataset(f"file:{tmp_path / 'set'}"), ds)
    mapped = load_dataset(f"file:{tmp_path / 'set'}?mmap=true")
    same(mapped, ds)
    assert isinstance(mapped.images, np.memmap) and not mapped.images.flags.writeable
    same(load_dataset(str(tmp_path / "set"), mmap=True), ds)
    raises_naming(tmp_path / "set", save_imageset, ds, tmp_path / "set")  # no silent overwrite
    save_imageset(small_set(seed=9), tmp_path / "set", force=True)
    assert not np.array_equal(load_imageset(tmp_path / "set").images, ds.images)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


@pytest.mark.parametrize("channels", [1, 3])
def test_png_folder_round_trip(tmp_path: Path, channels: int) -> None:
    ds = small_set(n=11, c=channels)
    export_png_folder(ds, tmp_path / "png")
    assert (tmp_path / "png" / "data" / "10.png").is_file()
    assert (tmp_path / "png" / "labels.txt").read_text().split() == [str(v) for v in ds.labels]
    same(import_png_folder(tmp_path / "png"), ds)
    same(load_dataset(str(tmp_path / "png")), ds)


def test_avatar_npz_round_trip(tmp_path: Path) -> None:
    ds = small_set()
    export_avatar_npz(ds, tmp_path / "p.npz")
    same(import_avatar_npz(tmp_path / "p.npz"), ds)
    same(load_dataset(str(tmp_path / "p.npz")), ds)
    np.savez(tmp_path / "a.npz", data=ds.images, targets=ds.labels.astype(np.uint8))
    back = load_dataset(str(tmp_path / "a.npz"))
    assert np.array_equal(back.images, ds.images) and back.class_names == ("class_0", "class_1", "class_2")


def test_export_class_folders_writes_back_names(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for c, names in (("cat", ["x.png", "y.jpg"]), ("dog", ["z.png"])):
        (root / c).mkdir(parents=True)
        for i, n in enumerate(names):
            Image.fromarray(np.full((32, 32, 3), 40 * i + 10, np.uint8)).save(root / c / n)
    ds = load_dataset(f"folder:{root}")
    protected = ds.replace(images=255 - ds.images, note="invert")
    export_class_folders(protected, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == \
        ["cat/x.png", "cat/y.png", "dog/z.png"]
    back = load_dataset(f"folder:{tmp_path / 'out'}")
    same(back, protected)
    export_class_folders(small_set(n=4), tmp_path / "idx")
    assert len(list((tmp_path / "idx").rglob("*.png"))) == 4


# ---------------------------------------------------------------- bad stored inputs


def stored(tmp_path: Path) -> tuple[ImageSet, Path]:
    ds = small_set()
    return ds, save_imageset(ds, tmp_path / "set")


def stored_v1(ds: ImageSet, d: Path) -> Path:
    """A set in format 1 (one data.npz), as deephide wrote before format 2."""
    from deephide.data.mmap import array_sha256

    d.mkdir(parents=True)
    labels = ds.labels.astype("<i8")
    np.savez(d / "data.npz", images=ds.images, labels=labels)
    (d / "manifest.json").write_text(json.dumps({
        "format": "deephide-imageset", "version": 1, "data_file": "data.npz", "count": len(ds),
        "shape": list(ds.shape), "class_names": list(ds.class_names), "provenance": {"note": "v1"},
        "sha256": {"images": array_sha256(ds.images), "labels": array_sha256(labels)}}))
    return d


def test_format_1_sets_still_load(tmp_path: Path) -> None:
    ds = small_set()
    d = stored_v1(ds, tmp_path / "old")
    for spec in (d, d / "data.npz", d / "manifest.json"):
        back = load_imageset(spec)
        same(back, ds)
        assert back.provenance == {"note": "v1"}
    same(load_imageset(d, mmap=True), ds)  # format 1 cannot be mapped: read whole
    same(load_dataset(str(d / "data.npz")), ds)


def test_mapped_set_releases_pages_and_hashes_like_memory(tmp_path: Path) -> None:
    from deephide.data.mmap import array_sha256, release_rows

    ds = small_set(n=300, h=32, w=32)
    _, d = ds, save_imageset(ds, tmp_path / "set")
    mapped = load_imageset(d, mmap=True)
    assert array_sha256(mapped.images) == array_sha256(ds.images)
    release_rows(mapped.images, 0, 300)  # the data comes back from the file when touched again
    assert np.array_equal(mapped.images[17], ds.images[17])
    release_rows(ds.images, 0, 300)  # in-memory arrays: nothing to release, nothing changes
    assert np.array_equal(mapped.images, ds.images)


def test_writer_streams_into_the_output_and_is_all_or_nothing(tmp_path: Path) -> None:
    from deephide.data.stored import imageset_writer

    ds = small_set(n=20)
    with imageset_writer(tmp_path / "w", len(ds), ds.shape) as w:
        for i in range(0, 20, 7):
            w.images[i:i + 7] = ds.images[i:i + 7]
        w.finish(ds.replace(images=w.images))
    same(load_imageset(tmp_path / "w"), ds)
    with pytest.raises(DeephideError, match="not finished"):
        with imageset_writer(tmp_path / "u", len(ds), ds.shape) as w:
            w.images[:] = ds.images
    with pytest.raises(RuntimeError):
        with imageset_writer(tmp_path / "w", len(ds), ds.shape, force=True) as w:
            raise RuntimeError("killed halfway")
    same(load_imageset(tmp_path / "w"), ds)  # the old set is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
    empty = ImageSet(np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0, np.int64), ("a",))
    save_imageset(empty, tmp_path / "e")
    assert np.load(tmp_path / "e" / "images.npy").shape == (0, 4, 4, 3)


def test_stored_manifest_errors(tmp_path: Path) -> None:
    _, d = stored(tmp_path)
    m = d / "manifest.json"
    good = json.loads(m.read_text())
    cases = [
        ("{not json", None),
        (None, {**good, "format": "other"}),
        (None, {**good, "version": 99}),
        (None, {k: v for k, v in good.items() if k != "sha256"}),
        (None, {**good, "count": "12"}),
        (None, {**good, "class_names": []}),
        (None, {**good, "data_files": {"images": "../x.npy", "labels": "labels.npy"}}),
        (None, {**good, "data_files": {"images": "images.npy"}}),
        (None, {**good, "version": 1, "data_file": "../x.npz"}),
        (None, [1, 2]),
    ]
    for text, obj in cases:
        m.write_text(text if text is not None else json.dumps(obj))
        raises_naming(m, load_imageset, d)
    m.unlink()
    raises_naming(m, load_imageset, d)


def test_stored_data_errors(tmp_path: Path) -> None:
    ds, d = stored(tmp_path)
    npy, lab, m = d / "images.npy", d / "labels.npy", d / "manifest.json"
    np.save(npy, 255 - ds.images)  # same shape, other pixels
    assert "sha256" in raises_naming(npy, load_imageset, d)
    np.save(npy, ds.images[:, :4])
    raises_naming(npy, load_imageset, d)
    np.save(npy, ds.images.astype(np.float32))
    raises_naming(npy, load_imageset, d)
    bad = ds.images.astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    np.save(npy, bad)
    assert "NaN" in raises_naming(npy, load_imageset, d)
    np.save(npy, np.array([object()] * 3, dtype=object), allow_pickle=True)
    assert "object" in raises_naming(npy, load_imageset, d)
    np.save(npy, np.asfortranarray(ds.images))
    assert "Fortran" in raises_naming(npy, load_imageset, d)
    np.save(npy, ds.images)
    npy.write_bytes(npy.read_bytes()[:-10])  # truncated
    assert "truncated or forged" in raises_naming(npy, load_imageset, d, mmap=True)
    raw = bytearray(npy.read_bytes())
    raw[raw.index(b"(12,"):raw.index(b"(12,") + 4] = b"(99,"  # forged header: more rows than held
    npy.write_bytes(bytes(raw))
    assert "truncated or forged" in raises_naming(npy, load_imageset, d)
    npy.write_bytes(b"\x93NUMPY garbage")
    raises_naming(npy, load_imageset, d)
    npy.unlink()
    raises_naming(npy, load_imageset, d)
    save_imageset(ds, d, force=True)
    np.save(lab, ds.labels[:5])
    raises_naming(lab, load_imageset, d)
    lab.unlink()
    raises_naming(lab, load_imageset, d)
    save_imageset(ds, d, force=True)
    man = json.loads(m.read_text())
    man["class_names"] = ["only"]  # labels now out of range
    m.write_text(json.dumps(man))
    assert "out of range" in raises_naming(lab, load_imageset, d)


def test_stored_v1_data_errors(tmp_path: Path) -> None:
    ds = small_set()
    d = stored_v1(ds, tmp_path / "set")
    npz = d / "data.npz"
    np.savez(npz, images=255 - ds.images, labels=ds.labels)  # same shape, other pixels
    assert "sha256" in raises_naming(npz, load_imageset, d)
    np.savez(npz, images=np.array([object()] * 3, dtype=object), labels=ds.labels)
    assert "object" in raises_naming(npz, load_imageset, d)
    np.savez(npz, images=ds.images)
    raises_naming(npz, load_imageset, d)
    npz.write_bytes(b"PK\x03\x04 garbage")
    raises_naming(npz, load_imageset, d)
    npz.unlink()
    raises_naming(npz, load_imageset, d)


def test_png_folder_errors(tmp_path: Path) -> None:
    ds = small_set(n=5)
    root = tmp_path / "png"
    export_png_folder(ds, root)
    labels = root / "labels.txt"
    labels.write_text("0\n1\n2\n")
    raises_naming(labels, import_png_folder, root)
    labels.write_text("0\n1\nx\n1\n0\n")
    raises_naming(labels, import_png_folder, root)
    labels.write_text("0\n1\n7\n1\n0\n")
    raises_naming(labels, import_png_folder, root)
    labels.write_text("0\n1\n2\n1\n0\n")
    (root / "data" / "3.png").unlink()
    raises_naming(root / "data", import_png_folder, root)
    Image.new("RGB", (3, 3)).save(root / "data" / "3.png")
    raises_naming(root / "data" / "3.png", import_png_folder, root)
    (root / "data" / "3.png").write_bytes(b"junk")
    raises_naming(root / "data" / "3.png", import_png_folder, root)
    labels.unlink()
    raises_naming(root, import_png_folder, root)


def test_avatar_npz_errors(tmp_path: Path) -> None:
    ds = small_set()
    p = tmp_path / "a.npz"
    np.savez(p, data=ds.images)
    raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images.transpose(0, 3, 1, 2), targets=ds.labels)
    raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images, targets=ds.labels[:-1])
    raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images, targets=ds.labels - 5)
    raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images, targets=ds.labels.astype(np.float64))
    raises_naming(p, import_avatar_npz, p)
    nan = ds.images.astype(np.float32)
    nan[1, 2, 3, 0] = np.inf
    np.savez(p, data=nan, targets=ds.labels)
    assert "NaN or inf" in raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images, targets=np.array([1, "a"], dtype=object))
    assert "object" in raises_naming(p, import_avatar_npz, p)
    np.savez(p, data=ds.images, targets=ds.labels, classes=np.array(["one"]))
    raises_naming(p, import_avatar_npz, p)
    p.write_bytes(pickle.dumps({"data": 1}))
    raises_naming(p, load_dataset, str(p))
    np.save(tmp_path / "x.npy", ds.images)
    raises_naming(tmp_path / "x.npy", load_dataset, str(tmp_path / "x.npy"))
    raises_naming(tmp_path, load_dataset, str(tmp_path))  # a plain directory is no stored format
