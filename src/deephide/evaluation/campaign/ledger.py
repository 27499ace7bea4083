"""The set ledger of a campaign (RESULTS/sets.jsonl): which regenerated set stands for a row.

A row's *recipe* is what its set is made from (its command and, for a protected row, the hider's weights,
architecture and bank). The first set recorded for a recipe is its canonical set (a sample of its pixels goes to
RESULTS/sets/ROW.npz); a set regenerated on another machine may differ by float rounding: within the campaign's
tolerance of sampled pixels it stands for the canonical set (``identity.json`` in the set, so its cells keep their
keys), beyond it the row is refused. Every distinct set is listed once per recipe.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...data import load_dataset
from ...fsutil import append_jsonl, read_jsonl
from ...hiding.hiderdir import identity_files, resolve_hider
from ...runtime import versions
from ...training.trainer import data_fingerprint
from ..grid import IDENTITY_FILE, load_config
from .declaration import Campaign


def machine() -> str:
    """This machine in one line: CPU model, native bf16, cores, and the GPU where there is one."""
    v = versions()
    gpu = f", {v['gpu']}" if v.get("gpu") else ""
    return f"{v.get('cpu_model', 'unknown CPU')}, native bf16 {v.get('cpu_bf16')}, {os.cpu_count()} cores{gpu}"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sample_positions(c: Campaign, n_values: int) -> np.ndarray:
    """The ledger's sampled positions into a set's flattened uint8 images (seeded: the same on every machine)."""
    return np.random.default_rng(0x5E75).integers(0, n_values, c.sample_n)


def recipe(c: Campaign, row: str) -> str:
    """What a row's set is made from, hashed (16 hex): its command (paths relative to the repository) and, for a
    protected row, the bytes of the hider's weights, architecture and secret bank. Two sets of one recipe may differ
    only by float rounding (the ledger's tolerance); a new recipe is a new set."""
    cmd = c.sets[row]
    h = hashlib.sha256(json.dumps([a.replace(f"{c.root}/", "") for a in cmd or []]).encode())
    hider = Path(cmd[cmd.index("--hider") + 1]) if cmd and cmd[0] == "protect" else None
    if hider is not None and (hider.exists() or not hider.is_absolute()):  # an ablation hider not yet trained: none
        d = resolve_hider(hider, c.hider_homes)
        for f in identity_files(d):
            h.update(f.relative_to(d).as_posix().encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def row_ledger(c: Campaign, row: str) -> list[dict[str, Any]]:
    """The ledger's entries for a row's current recipe, canonical first."""
    rec = recipe(c, row)
    return [r for r in read_jsonl(c.ledger) if r["row"] == row and r.get("recipe") == rec]


def current_ledger(c: Campaign) -> list[dict[str, Any]]:
    """The set ledger, each entry marked ``current`` where it was made by its row's current recipe (a set of an
    earlier recipe, e.g. of the hider shipped before, is superseded)."""
    ledger = read_jsonl(c.ledger)
    recipes = {row: recipe(c, row) for row in {r["row"] for r in ledger}}
    for r in ledger:
        r["current"] = r.get("recipe") == recipes[r["row"]]
    return ledger


def check_set(c: Campaign, row: str) -> dict[str, Any]:
    """The ledger's verdict on a row's set as it is on disk: canonical, same bytes, within tolerance or refused.

    The first set recorded for a row's recipe is its canonical set (its pixel sample goes to sets/ROW.npz, or
    sets/ROW-RECIPE.npz for a later recipe). A later set with other bytes is compared on the sampled pixels; within
    the tolerance it gets an identity.json naming the canonical fingerprint, so grid cells keep their keys. The
    canonical bytes again, where the canonical entry predates the budget's PSNR/SSIM, add a ``measured`` entry
    with them (visual_cost reads it).
    """
    ds = load_dataset(c.clean if c.sets[row] is None else str(c.set_dir(row)), "train", mmap=True)
    fp = data_fingerprint(ds)
    ledger = row_ledger(c, row)
    canon = ledger[0] if ledger else None
    flat = np.asarray(ds.images).reshape(-1)
    if canon is None:
        rcp = recipe(c, row)
        sample = Path("sets") / f"{row}.npz"
        if (c.results / sample).exists():  # the row had an earlier recipe
            sample = sample.with_name(f"{row}-{rcp}.npz")
        (c.results / "sets").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(c.results / sample, values=flat[sample_positions(c, flat.size)])
        rec = {"row": row, "fingerprint": fp, "canonical": fp, "pixel_diff_share": 0.0, "verdict": "canonical",
               "recipe": rcp, "sample": sample.as_posix(), "shape": list(ds.images.shape), "machine": machine(),
               "made_with": c.sets[row], "recorded_at": now(), **describe(c, ds)}
        append_jsonl(c.ledger, rec)
        return rec
    if fp == canon["fingerprint"]:
        if "budget" not in canon and c.sets[row] is not None \
                and not any(r["verdict"] == "measured" and r["fingerprint"] == fp for r in ledger):
            # a canonical set described before the visual cost was recorded (issue 33): its bytes are here again,
            # so measure it now, in an entry of its own (the canonical entry is never rewritten)
            append_jsonl(c.ledger, {"row": row, "fingerprint": fp, "canonical": fp, "pixel_diff_share": 0.0,
                                    "verdict": "measured", "recipe": canon["recipe"], "shape": list(ds.images.shape),
                                    "machine": machine(), "made_with": c.sets[row], "recorded_at": now(),
                                    **describe(c, ds)})
        return canon
    known = next((r for r in ledger if r["fingerprint"] == fp), None)
    if known is None:
        if list(ds.images.shape) != canon["shape"]:
            share = 1.0
        else:
            ref = np.load(c.results / canon["sample"], allow_pickle=False)["values"]
            share = float(np.mean(flat[sample_positions(c, flat.size)] != ref))
        known = {"row": row, "fingerprint": fp, "canonical": canon["fingerprint"], "pixel_diff_share": share,
                 "verdict": "equivalent" if share <= c.tolerance else "refused", "recipe": canon["recipe"],
                 "shape": list(ds.images.shape), "machine": machine(), "made_with": c.sets[row], "recorded_at": now()}
        append_jsonl(c.ledger, known)
    if known["verdict"] == "equivalent" and c.sets[row] is not None:
        (c.set_dir(row) / IDENTITY_FILE).write_text(json.dumps(
            {"canonical": canon["fingerprint"], "fingerprint": fp, "pixel_diff_share": known["pixel_diff_share"]}))
    return known


def describe(c: Campaign, ds: Any, n: int = 20_000, n_cm: int = 2_000) -> dict[str, Any]:
    """What the summary says about a set (first ``n`` images against the clean set): the budget it uses, its
    perturbation's band energies and class share, and the share of values each data-stage countermeasure of the
    main grid changes on its first ``n_cm`` images (0 = an identity on this data: marked in the tables)."""
    from ...countermeasures import build_countermeasure
    from ...ops.metrics import mse_psnr
    from ...protect import ssim
    from ..perturbation import perturbation_stats

    out: dict[str, Any] = {}
    clean = load_dataset(c.clean, "train", mmap=True)
    if ds.source != clean.source:
        a, b = np.asarray(ds.images[:n]), np.asarray(clean.images[:n])
        d = a.astype(np.int16) - b.astype(np.int16)
        # the visual cost beside every accuracy (issue 33): PSNR and SSIM against the clean images (ledger entries
        # made before it lack them: their rows say so in the tables)
        out["budget"] = {"linf_levels": int(np.abs(d).max()), "mean_abs_levels": float(np.abs(d).mean()),
                         "psnr": mse_psnr(float(np.mean(d.astype(np.float64) ** 2)), 255.0), "ssim": ssim(b, a)}
        out["perturbation"] = perturbation_stats(clean, ds, n=n)
    imgs = np.ascontiguousarray(ds.images[:n_cm])
    changed = {}
    for cm in load_config(c.configs / "main.yaml").countermeasures:
        m = build_countermeasure(cm.name, **cm.params)
        if m.stage == "data" and cm.name != "Vanilla":
            changed[cm.label] = float(np.mean(m.apply_data(imgs, seed=0) != imgs))
    out["changed_by"] = changed
    return out


def visual_cost(ledger: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """row -> the budget its current canonical set uses (L-inf and mean |delta| in levels, PSNR in dB and SSIM
    against the clean set): from the canonical entry, else from a ``measured`` entry of the same bytes
    (``ledger`` as current_ledger gives it; rows not yet measured are left out)."""
    out: dict[str, dict[str, Any]] = {}
    canon = {r["row"]: r["fingerprint"] for r in ledger if r.get("current", True) and r["verdict"] == "canonical"}
    for r in ledger:
        if r.get("budget") and canon.get(r["row"]) == r["fingerprint"] and r["verdict"] in ("canonical", "measured"):
            out.setdefault(r["row"], r["budget"])
    return out
