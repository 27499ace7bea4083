"""A data owner's folder protected into a mirror of itself: ``deephide protect --data folder:DIR --out OUT``.

OUT has DIR's relative paths and names, each image at its own size and in its own mode (scan.py, image.py), PNG
(lossless) by default, and OUT/report.html + OUT/report.csv to look at before publishing (report.py). Nothing
unprotected slips out: every file is read and checked before the first output byte; a bad file stops the run with the
list of them (or, with ``skip_bad``, is left out and listed); OUT appears complete or not at all (the work goes to
``.OUT.partial`` beside it and is renamed at the end), and a rerun after an interruption resumes there.

Strength presets: low / mid / high = 4 / 8 / 16 uint8 levels per value (mid, 8/255, is the one every table uses).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DeephideError
from ..fsutil import read_jsonl
from ..hiding.hiderdir import identity_files
from .image import protect_image
from .report import PER_CLASS, thumbs, write_csv, write_html
from .scan import ImageEntry, open_image, scan_folder

STRENGTHS = {"low": 4, "mid": 8, "high": 16}
#: JPEG output (``fmt="jpeg"``, JPEG inputs only): quality and 4:4:4 chroma, to keep as much of the perturbation
#: as JPEG can
JPEG_QUALITY = 95
STATE, DONE = "state.json", "done.jsonl"


def output_name(e: ImageEntry, fmt: str, taken: set[str]) -> str:
    """The relative path an image is written to: its own for PNG (and for JPEG kept as JPEG), else the same name
    ending in .png (``name_ext.png`` where that would collide with another output)."""
    p = PurePosixPath(e.rel)
    if e.format == "PNG" or (fmt == "jpeg" and e.format == "JPEG"):
        return e.rel
    out = p.with_suffix(".png").as_posix()
    if out in taken:
        out = p.with_name(f"{p.stem}_{p.suffix.lstrip('.').lower()}.png").as_posix()
    return out


def _fingerprint(path: Path) -> str:
    """The hider's identity (hiderdir.identity_files): a resumed run must have been made by the same hider."""
    h = hashlib.sha256()
    for f in identity_files(path):
        h.update(f.relative_to(path).as_posix().encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _write_image(im: Image.Image, dst: Path, fmt: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if fmt == "JPEG":
        im.save(tmp, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        im.save(tmp, "PNG", compress_level=6)
    os.replace(tmp, dst)


def _jpeg_kept(original: Image.Image, protected: Image.Image, written: Path) -> tuple[float, float]:
    """(share of the perturbation JPEG keeps: its projection on the stored image's change, the largest change from
    the original after re-encoding, levels)."""
    a = np.asarray(original, dtype=np.float64)
    d = np.asarray(protected, dtype=np.float64) - a
    with Image.open(written) as im:
        j = np.asarray(im.convert(protected.mode), dtype=np.float64) - a
    energy = float((d * d).sum())
    return (float((j * d).sum()) / energy if energy else 1.0), float(np.abs(j).max(initial=0))


def protect_folder(src: str | os.PathLike, out: str | os.PathLike, hider: str | os.PathLike, *,
                   strength: str = "mid", levels: int | None = None, mode: str = "class", fmt: str = "png",
                   labels_csv: str | os.PathLike | None = None, skip_bad: bool = False, seed: int = 0,
                   force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Protect every image under ``src`` into the mirror ``out``; returns the summary written to OUT/summary.json.

    hider: a hider directory or name (its secret bank is the one saved with it). strength: low | mid | high, or
    ``levels`` (uint8 levels, 1..255) directly. mode: class (one secret per class) or sample. fmt: png, or jpeg to
    keep JPEG inputs as JPEG (quality 95). labels_csv: path,label rows instead of the first folder level.
    """
    from ..hiding.hiderdir import hider_bank_dir, open_hider, resolve_hider
    from ..semantic import load_bank

    if fmt not in ("png", "jpeg"):
        raise DeephideError(f"--format: {fmt!r} is not png or jpeg")
    if levels is None:
        if strength not in STRENGTHS:
            raise DeephideError(f"--strength: {strength!r} is not one of {', '.join(STRENGTHS)}")
        levels = STRENGTHS[strength]
    else:
        strength = next((k for k, v in STRENGTHS.items() if v == levels), f"{levels} levels")
    src, out = Path(src), Path(out)
    if out.exists() and not force:
        raise DeephideError(f"{out}: output already exists (use --force to replace it)")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DeephideError(f"{out}: the output must not be the input folder or inside it")
    scan = scan_folder(src, labels_csv)
    if scan.bad and not skip_bad:
        raise DeephideError(f"{src}: {len(scan.bad)} file(s) cannot be protected; nothing was written "
                            f"(--skip-bad leaves them out and lists them in the report):\n{scan.bad_lines()}")
    if not scan.images:
        raise DeephideError(f"{src}: no image can be protected:\n{scan.bad_lines()}")
    hdir = resolve_hider(hider)
    net, info = open_hider(hdir)
    net.eval()
    bank_dir = hider_bank_dir(hdir)
    if bank_dir is None:
        raise DeephideError(f"{hider}: no secret bank saved with this hider")
    bank = load_bank(bank_dir)
    k = [scan.classes.index(e.label) % bank.num_classes for e in scan.images]
    assign = bank.assign(np.asarray(k, dtype=np.int64), mode, seed)

    work = out.with_name(f".{out.name}.partial")
    config = {"source": str(src.resolve()), "hider": str(hider), "hider_fingerprint": _fingerprint(hdir),
              "levels": levels, "mode": mode, "format": fmt, "seed": seed,
              "labels": str(labels_csv) if labels_csv else None, "files": [e.rel for e in scan.images]}
    done = _resume(work, config)
    names = _output_names(scan.images, fmt)

    t0 = time.perf_counter()
    todo = [i for i, e in enumerate(scan.images) if e.rel not in done]
    with open(work / DONE, "a") as log:
        for i in tqdm(todo, desc="protect", unit="img", disable=not progress, dynamic_ncols=True,
                      initial=len(scan.images) - len(todo), total=len(scan.images)):
            e = scan.images[i]
            im, _, _ = open_image(src / e.rel)
            prot, st = protect_image(im, e.out_mode, net, bank.images[assign[i]], levels=levels)
            wfmt = "JPEG" if names[e.rel].lower().endswith((".jpg", ".jpeg")) else "PNG"
            _write_image(prot, work / names[e.rel], wfmt)
            row = {"path": e.rel, "output": names[e.rel], "class": e.label, "width": e.size[0], "height": e.size[1],
                   "mode": e.mode, "output_mode": prot.mode, "format": e.format, "psnr_db": st["psnr"],
                   "ssim": st["ssim"], "max_change_levels": st["max_change"], "mean_change_levels": st["mean_change"],
                   "jpeg_kept": None, "rotated": e.rotated}
            if wfmt == "JPEG":
                row["jpeg_kept"], row["jpeg_max_change"] = _jpeg_kept(im.convert(prot.mode), prot, work / names[e.rel])
            log.write(json.dumps(row) + "\n")
            log.flush()
            done[e.rel] = row
    seconds = time.perf_counter() - t0
    rows = [done[e.rel] for e in scan.images]
    summary = _summary(src, out, hider, info, scan, rows, levels, strength, mode, fmt, seconds, len(todo))
    if len(scan.classes) > bank.num_classes:
        summary["notes"].append(f"{len(scan.classes)} classes but the hider's bank holds {bank.num_classes} secrets: "
                                f"class k (in sorted order) hides secret k mod {bank.num_classes}, so some classes "
                                "share one.")
    _write_report(src, work, scan.images, done, rows, summary)
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    return summary


def _resume(work: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The work folder of this run (``.OUT.partial``), made or resumed: the rows of the images already written there
    by an interrupted run of the same config (another config's work is dropped)."""
    if (work / STATE).exists() and json.loads((work / STATE).read_text()).get("config") != config:
        shutil.rmtree(work)  # an interrupted run of something else: start over
    work.mkdir(parents=True, exist_ok=True)
    (work / STATE).write_text(json.dumps({"config": config}, indent=1))
    done: dict[str, dict[str, Any]] = {}
    for r in read_jsonl(work / DONE, skip_bad=True):  # skip_bad: a line cut by the interruption
        if (work / r["output"]).exists():
            done[r["path"]] = r
    return done


def _output_names(images: list[ImageEntry], fmt: str) -> dict[str, str]:
    taken: set[str] = set()
    names = {}
    for e in images:
        names[e.rel] = output_name(e, fmt, taken)
        taken.add(names[e.rel])
    return names


def _write_report(src: Path, work: Path, images: list[ImageEntry], done: dict[str, dict[str, Any]],
                  rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """report.csv, report.html (PER_CLASS examples per class, before / after / difference) and summary.json in the
    work folder; the resume records removed."""
    examples: dict[str, list[dict[str, Any]]] = {}
    for e in images:
        if len(examples.setdefault(e.label, [])) < PER_CLASS:
            before, _, _ = open_image(src / e.rel)
            with Image.open(work / done[e.rel]["output"]) as after:
                after.load()
                examples[e.label].append({**done[e.rel], "thumbs": thumbs(before.convert(after.mode), after)})
    write_csv(work / "report.csv", rows)
    write_html(work / "report.html", summary, rows, examples)
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    for f in (STATE, DONE):
        (work / f).unlink()


def _mean(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return float(np.mean(v)) if v else None


def _summary(src: Path, out: Path, hider: Any, info: dict, scan: Any, rows: list[dict[str, Any]], levels: int,
             strength: str, mode: str, fmt: str, seconds: float, n_run: int) -> dict[str, Any]:
    notes = ["All metadata (EXIF, ICC profiles, text chunks) is dropped; EXIF orientation is applied first"
             + (f" ({sum(r['rotated'] for r in rows)} image(s) turned)." if any(r["rotated"] for r in rows) else ".")]
    conv = [r for r in rows if r["mode"] != r["output_mode"]]
    if conv:
        kinds = sorted({f"{r['mode']} -> {r['output_mode']}" for r in conv})
        notes.append(f"{len(conv)} image(s) written in another mode ({', '.join(kinds)}): a palette, CMYK or 1-bit "
                     "image cannot carry the perturbation.")
    renamed = [r for r in rows if r["output"] != r["path"]]
    if renamed:
        notes.append(f"{len(renamed)} image(s) that were not PNG written as lossless PNG (their names end in .png).")
    jrows = [r for r in rows if r.get("jpeg_kept") is not None]
    if jrows:
        jk = [r["jpeg_kept"] for r in jrows]
        notes.append(f"{len(jk)} JPEG image(s) written as JPEG (quality {JPEG_QUALITY}, 4:4:4): it keeps "
                     f"{100 * float(np.mean(jk)):.1f}% of the perturbation on average (lowest {100 * min(jk):.1f}%), "
                     f"and re-encoding moves values up to {max(r['jpeg_max_change'] for r in jrows):.0f} levels "
                     "from the original (the budget holds exactly only for PNG).")
    n_cls = len(scan.classes)
    notes.append(f"{n_cls} class(es), each hiding its own secret: " + ", ".join(scan.classes[:20])
                 + (" ..." if n_cls > 20 else "") + ".")
    trained = (info.get("training") or {}).get("run", {}).get("train") or "its training set"
    notes.append(f"The hider was trained on {trained} at {info['config'].get('image_size')}x"
                 f"{info['config'].get('image_size')}; here it runs on each image at its own size. How much a "
                 "victim learns from these images is not measured by this command.")
    ps = [r["psnr_db"] for r in rows]
    return {"source": str(src), "out": str(out), "hider": str(hider), "mode": mode, "levels": levels,
            "strength": strength, "format": fmt, "protected": len(rows), "run_now": n_run,
            "seconds": round(seconds, 2), "images_per_s": n_run / max(seconds, 1e-9),
            "psnr_mean": _mean(ps), "psnr_min": min(ps) if ps else None, "ssim_mean": _mean([r["ssim"] for r in rows]),
            "max_change": max(r["max_change_levels"] for r in rows),
            "mean_change": _mean([r["mean_change_levels"] for r in rows]),
            "classes": scan.classes, "bad": scan.bad, "others": scan.others, "notes": notes,
            "labels": "the first folder level" if scan.labels_csv is None else str(scan.labels_csv)}
