"""The reference campaign on Fashion-MNIST (issue 18): every table of results/reference-fmnist/README.md, accumulated
run by run on any machine from committed inputs.

A working period is 3 h and runs/ does not outlive it, while the tables need tens of CPU hours; so the campaign
continues from what is committed, until the time it is given, then stops cleanly with its results ready to commit:

1. Sets. Each row's training set is regenerated under runs/reference/sets/ from committed inputs only: the shipped
   hiders (``protect --hider fmnist-class``), the attacks' settings and seed (``attack NAME --profile cpu --seed 0``).
   The set ledger (results/reference-fmnist/sets.jsonl, with a sample of each set's pixels in sets/ROW.npz) names
   the first set made for a row from its current inputs (its *recipe*: the command and, for a protected row, the
   hider's weights and bank) its canonical one. Shipping a new hider under a row's name starts a new recipe: the
   row's set is made again, and the cells of the old one are superseded (kept in the results files, left out of the
   tables). A set regenerated on another CPU may differ by float rounding:
   within 0.1% of sampled pixels it stands for the canonical set (``identity.json`` in the set, so its cells keep
   their keys; the ledger lists its own hash and the share); beyond that the row is refused and its cells stop.
2. Grids (experiments/reference-fmnist/configs/, in the order of GRIDS). Cells are keyed by the sha256 of their
   training bytes (``identity: content``): identical training is done once across rows and grids, and cells of the
   previous label-keyed runs whose recorded training bytes match are taken over, not rerun. A grid starts no cell
   that would end past the time given; a running cell always finishes.
3. ``summarise`` writes README.md from the results files through deephide.evaluation.report (final and peak,
   mean ± std over seeds 0-2, the paper's rows beside ours). Every session is logged in campaign.jsonl.

Commands (repository root, after `make setup`):
  make reference HOURS=2.5                                                     # = run --hours 2.5, then summarise
  .venv/bin/python experiments/reference-fmnist/campaign.py run --hours 2.5 [--device cuda] [--executor local]
  .venv/bin/python experiments/reference-fmnist/campaign.py status             # sets and cells done / left
  .venv/bin/python experiments/reference-fmnist/campaign.py summarise          # README.md from the results files
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deephide.data import load_dataset
from deephide.errors import DeephideError
from deephide.hiding.hiderdir import homes_env, identity_files, resolve_hider
from deephide.evaluation.grid import IDENTITY_FILE, load_config, read_results, run_grid, sidecar_path
from deephide.runtime import versions
from deephide.training.trainer import data_fingerprint

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "results" / "reference-fmnist"  # what the campaign writes (committed)
CONFIGS = ROOT / "experiments" / "reference-fmnist" / "configs"
RUNS = ROOT / "runs" / "reference"  # regenerated sets and the grids' runtime configs (never committed)
LEDGER = HERE / "sets.jsonl"
SESSIONS = HERE / "campaign.jsonl"
PREVIOUS = HERE / "previous"  # results files of the label-keyed runs before the campaign (reused by fingerprint)
#: other committed results whose cells have the same training bytes and settings (the shipped hiders' victims)
ALSO_REUSE = (ROOT / "results" / "hider-fmnist" / "victims.jsonl",)
DEEPHIDE = [sys.executable, "-m", "deephide"]  # this interpreter's deephide (a GPU image has no console script)
CLEAN = "fashion-mnist"  # the clean training set every protected set is made from
#: hiders found by name beside the package's: the paper-objective ones (fmnist-{class,sample}-paper), kept out of the
#: package with their training state (issue 36); passed to every deephide command as $DEEPHIDE_HIDERS
HIDER_HOMES = (ROOT / "results" / "hider-fmnist" / "hiders",)

#: ablation hiders: name -> (mode, secrets, settings). Each is the paper-objective hiders' recipe (fmnist-class-paper:
#: `long` hider profile, Fashion-MNIST, seed 0) trained from scratch for HIDER_STEPS steps with one change; base-C is the recipe
#: unchanged at the same length, the reference the ablation rows are read against. Finished ones are committed
#: (weights, config, bank, log; no optimizer) under results/reference-fmnist/hiders/NAME.
HIDER_STEPS = 500
HIDER_PROFILE = "long"
HIDERS: dict[str, tuple[str, str, list[str]]] = {
    "base-C": ("class", "sig", []),
    "w1x10-C": ("class", "sig", ["w_reveal=10"]),
    "w1x0.1-C": ("class", "sig", ["w_reveal=0.1"]),
    "w2x10-C": ("class", "sig", ["w_freq=0.1"]),
    "w2x0.1-C": ("class", "sig", ["w_freq=0.001"]),
    "w3x10-C": ("class", "sig", ["w_lfc=0.1"]),
    "w3x0.1-C": ("class", "sig", ["w_lfc=0.001"]),
    "hideonly-C": ("class", "sig", ["w_reveal=0", "w_freq=0", "lfc=false"]),
    "nextclass-C": ("class", "next-class", []),
    "randprompt-C": ("class", "random-prompt", []),
    # the non-compliant analysis row: the paper's soft budget (L_hide alone keeps eps) and no clip on write
    "softbudget-C": ("class", "sig", ["budget=soft"]),
}
HIDERS_DIR = HERE / "hiders"


def _protect(hider: str | Path, mode: str, *extra: str) -> list[str]:
    return ["protect", "--data", CLEAN, "--hider", str(hider), "--mode", mode, *extra]


#: row -> the deephide command (after ``deephide``) that makes its set at OUT; None: a built-in dataset. The
#: main-table rows first (MAIN_ROWS), then the ablations' (their hiders are trained by the campaign first)
SETS: dict[str, list[str] | None] = {
    "Clean": None,
    "DH-C": _protect("fmnist-class", "class"),
    "DH-S": _protect("fmnist-sample", "sample"),
    # Deep Hiding with the paper's objective alone (the shipped DH hiders add a surrogate-victim term): does it earn
    # its place? These are the sets DH-C / DH-S had before their hiders changed, so their cells carry over
    "DH-C-paper": _protect("fmnist-class-paper", "class"),
    "DH-S-paper": _protect("fmnist-sample-paper", "sample"),
    # robust Deep Hiding (issue 33): chosen on the validation hold-out (results/robust-fmnist), reported here
    "DH-C-robust": _protect("fmnist-class-robust", "class"),
    "DH-S-robust": _protect("fmnist-sample-robust", "sample"),
    **{a: ["attack", a, "--data", CLEAN, "--profile", "cpu", "--seed", "0"]
       for a in ("random-noise-C", "semantic-added-C", "semantic-added-S", "OPS", "LSP", "AR", "EM-C", "EM", "REM")},
    **{h: _protect(HIDERS_DIR / h, mode, *(["--eps", "255"] if "budget=soft" in sets else []))
       for h, (mode, _, sets) in HIDERS.items()},
    "ISGAN": ["attack", "ISGAN", "--data", CLEAN, "--profile", "cpu", "--seed", "0"],
}
MAIN_ROWS = [r for r in SETS if r not in HIDERS and r != "ISGAN"]
#: the grid passes in the order they run, each (config, only these columns or None = all): the main table's Vanilla
#: column and every row on ResNet-20 first (the headline numbers), then the other columns and tables, then the
#: ablations'. A pass over some columns trains the same cells (same keys) the full pass would, so none is repeated.
#: ResNet-18 last: one of its cells costs ~50 fastcnn cells on a CPU, so the cheap tables complete first and its
#: cells take whatever time is left (the clock starts one only if it fits).
MAIN_PASSES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("main", ("Vanilla",)), ("archs-r20", None), ("main", None), ("jpeg", None), ("mixtures", None), ("archs-r18", None))
ABLATION_PASSES: tuple[tuple[str, tuple[str, ...] | None], ...] = (("weights", None), ("sources", None), ("analysis", None))
GRIDS = tuple(dict.fromkeys(g for g, _ in MAIN_PASSES + ABLATION_PASSES))
#: pixels sampled per set for the ledger's cross-machine comparison (uint8 values at seeded positions)
SAMPLE_N = 1 << 17
#: a regenerated set may differ from the canonical one in at most this share of sampled pixels
TOLERANCE = 0.001
#: threads of the processes that make sets (attacks, protect): part of what a set's bytes depend on
SET_THREADS = 1
#: seconds kept back at the end of a run for the summary and the commit
MARGIN_S = 120


def set_dir(row: str) -> Path:
    return RUNS / "sets" / row


RECIPE_FILE = "recipe.json"  # in a made set: the recipe it was made from


def recipe(row: str) -> str:
    """What a row's set is made from, hashed (16 hex): its command (paths relative to the repository) and, for a
    protected row, the bytes of the hider's weights, architecture and secret bank. Two sets of one recipe may differ
    only by float rounding (the ledger's tolerance); a new recipe is a new set."""
    cmd = SETS[row]
    h = hashlib.sha256(json.dumps([a.replace(f"{ROOT}/", "") for a in cmd or []]).encode())
    hider = Path(cmd[cmd.index("--hider") + 1]) if cmd and cmd[0] == "protect" else None
    if hider is not None and (hider.exists() or not hider.is_absolute()):  # an ablation hider not yet trained: none
        d = resolve_hider(hider, HIDER_HOMES)
        for f in identity_files(d):
            h.update(f.relative_to(d).as_posix().encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def row_ledger(row: str) -> list[dict[str, Any]]:
    """The ledger's entries for a row's current recipe, canonical first."""
    rec = recipe(row)
    return [r for r in read_jsonl(LEDGER) if r["row"] == row and r.get("recipe") == rec]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def machine() -> str:
    v = versions()
    gpu = f", {v['gpu']}" if v.get("gpu") else ""
    return f"{v.get('cpu_model', 'unknown CPU')}, native bf16 {v.get('cpu_bf16')}, {os.cpu_count()} cores{gpu}"


def sample_positions(n_values: int) -> np.ndarray:
    """The ledger's sampled positions into a set's flattened uint8 images (seeded: the same on every machine)."""
    return np.random.default_rng(0x5E75).integers(0, n_values, SAMPLE_N)


# ------------------------------------------------------------------------------------------------ sets


def run_child(cmd: list[str], seconds_left: float) -> int | None:
    """Run a deephide command; at the time limit, or when this process is stopped, the command gets SIGTERM (it
    removes its temporary output, a hider saves its checkpoint). Its exit code, or None when the time ran out."""
    # one thread, as every canonical set was made: an iterative attack follows its float rounding, so the thread count
    # changes its bytes (EM-C made with 2 threads differed from the 1-thread canonical set in 65.7% of sampled pixels)
    env = {**homes_env(HIDER_HOMES), "OMP_NUM_THREADS": str(SET_THREADS)}
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, env=env)
    try:
        return proc.wait(timeout=max(1.0, seconds_left))
    except BaseException as e:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            return None
        raise


def make_set(row: str, device: str, seconds_left: float) -> bool:
    """Regenerate a row's set unless it is there; False when there was not time enough to finish it."""
    out = set_dir(row)
    if SETS[row] is None:
        return True
    rec = recipe(row)
    if (out / "manifest.json").exists():
        made = json.loads((out / RECIPE_FILE).read_text()).get("recipe") if (out / RECIPE_FILE).exists() else None
        if made is None:  # made before sets recorded their recipe: it is current when the ledger knows its bytes
            fp = data_fingerprint(load_dataset(str(out), "train", mmap=True))
            made = rec if any(r["fingerprint"] == fp for r in row_ledger(row)) else "unknown"
            (out / RECIPE_FILE).write_text(json.dumps({"recipe": made}))
        if made == rec:
            return True
        print(f"campaign: {row}: the set on disk was made from other inputs (recipe {made}, now {rec}); "
              "making it again", flush=True)
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*DEEPHIDE, *SETS[row], "--out", str(out), "--device", device, "--quiet"]
    print(f"campaign: making {row}: {' '.join(cmd[3:])}", flush=True)
    t0 = time.monotonic()
    rc = run_child(cmd, seconds_left)
    if rc is None:
        print(f"campaign: {row}: stopped at the time limit (made again next run)", flush=True)
        return False
    if rc != 0:
        raise DeephideError(f"campaign: making the set of {row} failed (exit {rc}): {' '.join(cmd)}")
    (out / RECIPE_FILE).write_text(json.dumps({"recipe": rec}))
    print(f"campaign: {row} made in {time.monotonic() - t0:.0f} s", flush=True)
    return True


def train_hider(name: str, device: str, seconds_left: float) -> bool:
    """Train an ablation hider (resumable within a machine's runs/) and commit-ready copy it into HIDERS_DIR;
    False when the time ran out first (it continues from its checkpoint on the next run on this machine)."""
    done = HIDERS_DIR / name
    if (done / "checkpoint" / "weights.safetensors").exists():
        return True
    mode, secrets, sets = HIDERS[name]
    work = RUNS / "hiders" / name
    cmd = [*DEEPHIDE, "train-hider", "--data", CLEAN, "--profile", HIDER_PROFILE, "--mode", mode,
           "--secrets", secrets, "--iterations", str(HIDER_STEPS), "--set", "snapshot_at=[]", "--device", device,
           "--quiet", "--time-limit", str(int(max(1.0, seconds_left))), "--out", str(work)]
    for kv in sets:
        cmd += ["--set", kv]
    print(f"campaign: training hider {name}: {' '.join(cmd[3:])}", flush=True)
    rc = run_child(cmd, seconds_left + 60)  # its own --time-limit stops it first, with a checkpoint
    if rc is None:  # stopped before its first checkpoint (e.g. while its L_LFC feature network trained)
        print(f"campaign: hider {name}: stopped at the time limit before a checkpoint (starts again next run)", flush=True)
        return False
    if rc != 0 or not (work / "summary.json").exists():
        raise DeephideError(f"campaign: hider {name} failed (exit {rc}, no summary.json): {' '.join(cmd)}")
    summary = json.loads((work / "summary.json").read_text())
    if not summary.get("finished"):
        print(f"campaign: hider {name}: stopped at step {summary.get('iterations_done')} (continues next run)", flush=True)
        return False
    tmp = done.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "checkpoint").mkdir(parents=True)
    for f in ("config.json", "weights.safetensors"):
        shutil.copy2(work / "checkpoint" / f, tmp / "checkpoint" / f)
    shutil.copytree(work / "bank", tmp / "bank")
    for f in ("summary.json", "log.jsonl"):
        shutil.copy2(work / f, tmp / f)
    tmp.rename(done)
    return True


def check_set(row: str) -> dict[str, Any]:
    """The ledger's verdict on a row's set as it is on disk: canonical, same bytes, within tolerance or refused.

    The first set recorded for a row's recipe is its canonical set (its pixel sample goes to sets/ROW.npz, or
    sets/ROW-RECIPE.npz for a later recipe). A later set with other bytes is compared on the sampled pixels; within
    TOLERANCE it gets an identity.json naming the canonical fingerprint, so grid cells keep their keys. Every
    distinct set is listed in the ledger once per recipe.
    """
    spec = CLEAN if SETS[row] is None else str(set_dir(row))
    ds = load_dataset(spec, "train", mmap=True)
    fp = data_fingerprint(ds)
    ledger = row_ledger(row)
    canon = ledger[0] if ledger else None
    flat = np.asarray(ds.images).reshape(-1)
    if canon is None:
        rcp = recipe(row)
        sample = Path("sets") / f"{row}.npz"
        if (HERE / sample).exists():  # the row had an earlier recipe
            sample = sample.with_name(f"{row}-{rcp}.npz")
        (HERE / "sets").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(HERE / sample, values=flat[sample_positions(flat.size)])
        rec = {"row": row, "fingerprint": fp, "canonical": fp, "pixel_diff_share": 0.0, "verdict": "canonical",
               "recipe": rcp, "sample": sample.as_posix(),
               "shape": list(ds.images.shape), "machine": machine(), "made_with": SETS[row],
               "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **describe(ds)}
        append_jsonl(LEDGER, rec)
        return rec
    if fp == canon["fingerprint"]:
        return canon
    known = next((r for r in ledger if r["fingerprint"] == fp), None)
    if known is None:
        if list(ds.images.shape) != canon["shape"]:
            share = 1.0
        else:
            ref = np.load(HERE / canon["sample"])["values"]
            share = float(np.mean(flat[sample_positions(flat.size)] != ref))
        known = {"row": row, "fingerprint": fp, "canonical": canon["fingerprint"], "pixel_diff_share": share,
                 "verdict": "equivalent" if share <= TOLERANCE else "refused", "recipe": canon["recipe"],
                 "shape": list(ds.images.shape),
                 "machine": machine(), "made_with": SETS[row],
                 "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        append_jsonl(LEDGER, known)
    if known["verdict"] == "equivalent" and SETS[row] is not None:
        (set_dir(row) / IDENTITY_FILE).write_text(json.dumps(
            {"canonical": canon["fingerprint"], "fingerprint": fp, "pixel_diff_share": known["pixel_diff_share"]}))
    return known


def describe(ds: Any, n: int = 20_000, n_cm: int = 2_000) -> dict[str, Any]:
    """What the summary says about a set (first ``n`` images against the clean set): the budget it uses, its
    perturbation's band energies and class share, and the share of values each data-stage countermeasure of the
    main grid changes on its first ``n_cm`` images (0 = an identity on this data: marked in the tables)."""
    from deephide.countermeasures import build_countermeasure
    from deephide.evaluation.perturbation import perturbation_stats

    out: dict[str, Any] = {}
    clean = load_dataset(CLEAN, "train", mmap=True)
    if ds.source != clean.source:
        from deephide.ops.metrics import mse_psnr
        from deephide.protect import ssim

        a, b = np.asarray(ds.images[:n]), np.asarray(clean.images[:n])
        d = a.astype(np.int16) - b.astype(np.int16)
        # the visual cost beside every accuracy (issue 33): PSNR and SSIM against the clean images (ledger entries
        # made before it lack them: their rows say so in the tables)
        out["budget"] = {"linf_levels": int(np.abs(d).max()), "mean_abs_levels": float(np.abs(d).mean()),
                         "psnr": mse_psnr(float(np.mean(d.astype(np.float64) ** 2)), 255.0), "ssim": ssim(b, a)}
        out["perturbation"] = perturbation_stats(clean, ds, n=n)
    imgs = np.ascontiguousarray(ds.images[:n_cm])
    changed = {}
    for cm in load_config(CONFIGS / "main.yaml").countermeasures:
        c = build_countermeasure(cm.name, **cm.params)
        if c.stage == "data" and cm.name != "Vanilla":
            changed[cm.label] = float(np.mean(c.apply_data(imgs, seed=0) != imgs))
    out["changed_by"] = changed
    return out


# ------------------------------------------------------------------------------------------------ grids


def row_of(spec: str) -> str | None:
    """The campaign row whose set a config's train-set spec names: the configs name set_dir(ROW) as
    runs/reference/sets/ROW, and tables label rows their own way (the weights table's "w1 x10 (10)" is row
    w1x10-C); a built-in dataset (no path) is the Clean row; None for anything else."""
    path = Path(spec)
    if path.parent.name == "sets":
        return path.name
    return "Clean" if spec == CLEAN or "/" not in spec else None


def runtime_config(name: str, ready: set[str], device: str,
                   columns: tuple[str, ...] | None = None) -> tuple[Path | None, int]:
    """A copy of configs/NAME.yaml naming only the rows whose sets are ready (and only ``columns``, when given),
    reusing every other results file of the campaign and the previous runs'; (its path, rows left out). The path is
    None when no row is ready (a config without rows is invalid: a fresh machine's first pass over the mixtures grid,
    which has no Clean row, stopped the whole run)."""
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    rows = {label: s for label, s in raw["train_sets"].items() if row_of(s) in ready}
    if columns is not None:
        label = lambda c: next(iter(c)) if isinstance(c, dict) else c  # noqa: E731  ({label: spec} or a name)
        raw["countermeasures"] = [c for c in raw["countermeasures"] if label(c) in columns]
    missing = len(raw["train_sets"]) - len(rows)
    if not rows:
        return None, missing
    out = RUNS / "configs" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    files = list(HERE.glob("*.jsonl")) + list(PREVIOUS.glob("*.jsonl")) + [p for p in ALSO_REUSE if p.exists()]
    others = sorted(str(p.relative_to(ROOT)) for p in files
                    if p.name not in ("sets.jsonl", "campaign.jsonl", "selection-record.jsonl")
                    and p.resolve() != (ROOT / raw["out"]).resolve())
    raw.update(train_sets=rows, reuse=others or None, device=device)
    out.write_text(yaml.safe_dump({k: v for k, v in raw.items() if v is not None}, sort_keys=False))
    return out, missing


def keep_planned_keys(sidecar: Path, before: list[str]) -> None:
    """The grid's sidecar after a pass over some rows or columns keeps the cell keys planned before it too: the
    summary finds a mixture cell by its planned key, and a pass over fewer rows (``--rows``, or a session whose
    other sets were not ready) used to drop the others' keys (the mixtures table then read 0 of 45)."""
    if not sidecar.exists() or not before:
        return
    rec = json.loads(sidecar.read_text())
    keys = list(dict.fromkeys([*(rec.get("cell_keys") or []), *before]))
    if keys != rec.get("cell_keys"):
        rec["cell_keys"] = keys
        sidecar.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")


def cmd_run(a: argparse.Namespace) -> None:
    t_end = time.monotonic() + a.hours * 3600 - a.margin_s
    left = lambda: t_end - time.monotonic()  # noqa: E731
    session = {"started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "hours": a.hours,
               "device": a.device, "executor": a.executor, "workers": a.workers, "part": a.part, "rows": a.rows,
               "machine": machine(), "versions": versions()}
    # the grids this run writes: two parts side by side on one machine append to different results files, and each
    # session line counts only its own (counting every grid gave the other part's cells to both)
    mine = sorted({g for part, passes in (("main", MAIN_PASSES), ("ablations", ABLATION_PASSES))
                   if a.part in ("all", part) for g, _ in passes})
    before = {g: len(read_results(HERE / f"{g}.jsonl")) for g in mine}
    ready: set[str] = set()
    refused: list[str] = []
    hiders_done: list[str] = []
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process: two cells side by side on 2 cores

    def sets(rows: list[str]) -> bool:
        for row in rows:
            if left() <= 0 or not make_set(row, a.device, left()):
                return False
            verdict = check_set(row)
            if verdict["verdict"] == "refused":
                refused.append(row)
                print(f"campaign: {row}: REFUSED: regenerated set differs from the canonical one in "
                      f"{100 * verdict['pixel_diff_share']:.3f}% of sampled pixels (> {100 * TOLERANCE:g}%)", flush=True)
            else:
                ready.add(row)
        return True

    def grids(passes: tuple[tuple[str, tuple[str, ...] | None], ...]) -> None:
        for g, columns in passes:
            if left() <= 0:
                return
            cfg, missing = runtime_config(g, ready, a.device, columns)
            if missing:
                print(f"campaign: grid {g}: {missing} rows wait for their sets", flush=True)
            if cfg is None:
                continue
            sidecar = sidecar_path(ROOT / load_config(cfg).out)
            before = json.loads(sidecar.read_text()).get("cell_keys") or [] if sidecar.exists() else []
            s = run_grid(cfg, executor=a.executor, progress=True, time_limit_s=max(0.0, left()), workers=a.workers)
            keep_planned_keys(sidecar, before)
            print(f"campaign: grid {g}: {s.ran} run, {s.skipped} already done, {s.total - s.skipped - s.ran} left",
                  flush=True)

    def sets_then_cells(rows: list[str], passes: tuple[tuple[str, tuple[str, ...] | None], ...]) -> None:
        """The rows' sets, each set made followed by the passes over every row ready so far: finished cells are
        committed, sets (runs/) are not, so a run that ends before its last set keeps what it trained (the ablation
        part made its 12 sets, ~6 min each, before its first cell). Sets already on disk are checked first."""
        first = [r for r in rows if SETS[r] is None or (set_dir(r) / "manifest.json").exists()]
        for batch in ([first] if first else []) + [[r] for r in rows if r not in first]:
            if not sets(batch):
                return
            grids(passes)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a scheduler's stop still logs the session
    # a background job of a non-interactive shell starts with SIGINT ignored (POSIX), and Python keeps it so:
    # `kill -INT` of a `nohup ... &` campaign did nothing (one session's run had to be killed unlogged)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        only = None if a.rows is None else set(a.rows.split(","))
        main_rows = [r for r in MAIN_ROWS if only is None or r in only]
        if a.part in ("all", "main"):
            sets_then_cells(main_rows, MAIN_PASSES)
        if a.part in ("all", "ablations"):  # the ablations once the main tables are done (or waiting only for time)
            for h in HIDERS:
                if left() <= 0 or not train_hider(h, a.device, left()):
                    break
                hiders_done.append(h)
            sets_then_cells(hiders_done + ["ISGAN"], ABLATION_PASSES)
    except (KeyboardInterrupt, SystemExit):
        session["stopped"] = "interrupted"
        raise
    finally:
        after = {g: len(read_results(HERE / f"{g}.jsonl")) for g in mine}
        session.update(ended_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), refused=refused,
                       cells_added={g: after[g] - before[g] for g in mine}, sets_ready=sorted(ready),
                       hiders_ready=hiders_done)
        append_jsonl(SESSIONS, session)
    print(f"campaign: session logged in {SESSIONS.relative_to(ROOT)}; commit results/reference-fmnist", flush=True)


def cmd_status(a: argparse.Namespace) -> None:
    ledger = read_jsonl(LEDGER)
    for row in SETS:
        rec = recipe(row)
        recs = [r for r in ledger if r["row"] == row]
        here = SETS[row] is None or (set_dir(row) / "manifest.json").exists()
        print(f"set {row:18s} {'on disk' if here else 'not made':9s} ledger: "
              + (", ".join(f"{r['fingerprint']} ({r['verdict'] if r.get('recipe') == rec else 'superseded'})"
                           for r in recs) or "-"))
    for g in GRIDS:
        cfg = load_config(CONFIGS / f"{g}.yaml")
        n = len(cfg.train_sets) * len(cfg.models) * len(cfg.countermeasures) * len(cfg.seeds) * len(cfg.mixtures or [0])
        print(f"grid {g:10s} {len(read_results(HERE / f'{g}.jsonl'))} of {n} cells")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="make the missing sets, then run grid cells until the time is up")
    r.add_argument("--hours", type=float, required=True, help="wall time for this run (the summary is kept back)")
    r.add_argument("--margin-s", type=float, default=MARGIN_S, metavar="S",
                   help=f"seconds of --hours kept back for the summary and the commit (default {MARGIN_S})")
    r.add_argument("--device", default="cpu", help="torch device for sets and victims (cpu, cuda)")
    r.add_argument("--executor", choices=["ray", "pool", "local"], default="ray",
                   help="ray: one cell per core; pool: --workers cells at once in processes of this machine (several "
                        "sharing one GPU; no Ray needed); local: cells one after another")
    r.add_argument("--workers", type=int, metavar="N", help="pool: cells at once (default: one per core)")
    r.add_argument("--rows", metavar="R1,R2", help="main part: only these rows' sets and cells (e.g. leave out rows "
                                                    "whose sets another machine kind cannot regenerate within tolerance)")
    r.add_argument("--part", choices=["all", "main", "ablations"], default="all",
                   help="main: the main rows' sets and grids; ablations: the ablation hiders, their sets and grids "
                        "(two parts can run side by side on one machine: they write different results files)")
    r.set_defaults(fn=cmd_run)
    st = sub.add_parser("status", help="sets and cells done / left")
    st.set_defaults(fn=cmd_status)
    sm = sub.add_parser("summarise", help="README.md from the results files")
    sm.set_defaults(fn=lambda a: runpy.run_path(str(Path(__file__).with_name("summarise.py")), run_name="__main__"))
    a = p.parse_args()
    try:
        a.fn(a)
    except DeephideError as e:
        sys.exit(f"campaign: {e}")


if __name__ == "__main__":
    main()
