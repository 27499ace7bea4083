"""The campaign engine: regenerate each row's set from committed inputs, train the ablation hiders, then run grid
cells until the time given, and stop cleanly with results ready to commit.

A working period is a few hours and runs/ does not outlive it, while a campaign's tables need tens of CPU hours; so
a run continues from what is committed:

1. Sets. Each row's training set is regenerated under RUNS/sets/ROW from its command (the ledger decides whether
   it stands for the row: deephide.evaluation.campaign.ledger). A grid starts no cell that would end past the
   time given; a running cell always finishes.
2. Grids, in the order of the campaign's passes. Cells are keyed by the sha256 of their training bytes: identical
   training is done once across rows and grids, and cells of earlier results files (``previous``,
   ``also_reuse``) whose recorded training bytes match are taken over, not rerun.
3. Each run is logged in RESULTS/campaign.jsonl (its machine, the cells it added, the sets it found ready).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from ...data import load_dataset
from ...errors import DeephideError
from ...fsutil import append_jsonl, read_jsonl
from ...hiding.checkpoint import WEIGHTS_FILE
from ...hiding.hiderdir import SUMMARY, checkpoint_dir, homes_env, read_summary, ship_hider
from ...runtime import thread_count, versions
from ...training.trainer import data_fingerprint
from ..grid import load_config, read_results, run_grid, sidecar_path
from .declaration import Campaign, Pass
from .ledger import check_set, machine, now, recipe, row_ledger

RECIPE_FILE = "recipe.json"  # in a made set: the recipe it was made from


def run_child(c: Campaign, cmd: list[str], seconds_left: float) -> int | None:
    """Run a deephide command; at the time limit, or when this process is stopped, the command gets SIGTERM (it
    removes its temporary output, a hider saves its checkpoint). Its exit code, or None when the time ran out."""
    # one thread, as every canonical set was made: an iterative attack follows its float rounding, so the thread count
    # changes its bytes (EM-C made with 2 threads differed from the 1-thread canonical set in 65.7% of sampled pixels)
    env = {**homes_env(c.hider_homes), "OMP_NUM_THREADS": str(c.set_threads)}
    proc = subprocess.Popen(cmd, cwd=c.root, start_new_session=True, env=env)
    try:
        return proc.wait(timeout=max(1.0, seconds_left))
    except BaseException as e:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            return None
        raise


def make_set(c: Campaign, row: str, device: str, seconds_left: float) -> bool:
    """Regenerate a row's set unless it is there; False when there was not time enough to finish it."""
    out = c.set_dir(row)
    if c.sets[row] is None:
        return True
    rec = recipe(c, row)
    if (out / "manifest.json").exists():
        made = json.loads((out / RECIPE_FILE).read_text()).get("recipe") if (out / RECIPE_FILE).exists() else None
        if made is None:  # made before sets recorded their recipe: it is current when the ledger knows its bytes
            fp = data_fingerprint(load_dataset(str(out), "train", mmap=True))
            made = rec if any(r["fingerprint"] == fp for r in row_ledger(c, row)) else "unknown"
            (out / RECIPE_FILE).write_text(json.dumps({"recipe": made}))
        if made == rec:
            return True
        print(f"campaign: {row}: the set on disk was made from other inputs (recipe {made}, now {rec}); "
              "making it again", flush=True)
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*c.deephide, *c.sets[row], "--out", str(out), "--device", device, "--quiet"]
    print(f"campaign: making {row}: {' '.join(cmd[len(c.deephide):])}", flush=True)
    t0 = time.monotonic()
    rc = run_child(c, cmd, seconds_left)
    if rc is None:
        print(f"campaign: {row}: stopped at the time limit (made again next run)", flush=True)
        return False
    if rc != 0:
        raise DeephideError(f"campaign: making the set of {row} failed (exit {rc}): {' '.join(cmd)}")
    (out / RECIPE_FILE).write_text(json.dumps({"recipe": rec}))
    print(f"campaign: {row} made in {time.monotonic() - t0:.0f} s", flush=True)
    return True


def train_hider(c: Campaign, name: str, device: str, seconds_left: float) -> bool:
    """Train an ablation hider (resumable within a machine's runs/) and commit-ready copy it into the campaign's
    hiders_dir (weights, config, bank, summary, log; no optimizer); False when the time ran out first (it
    continues from its checkpoint on the next run on this machine)."""
    assert c.hiders_dir is not None
    done = c.hiders_dir / name
    if (checkpoint_dir(done) / WEIGHTS_FILE).exists():
        return True
    h = c.hiders[name]
    work = c.runs / "hiders" / name
    cmd = [*c.deephide, "train-hider", "--data", c.clean, "--profile", c.hider_profile, "--mode", h.mode,
           "--secrets", h.secrets, "--iterations", str(c.hider_steps), "--set", "snapshot_at=[]", "--device", device,
           "--quiet", "--time-limit", str(int(max(1.0, seconds_left))), "--out", str(work)]
    for kv in h.settings:
        cmd += ["--set", kv]
    print(f"campaign: training hider {name}: {' '.join(cmd[len(c.deephide):])}", flush=True)
    rc = run_child(c, cmd, seconds_left + 60)  # its own --time-limit stops it first, with a checkpoint
    if rc is None:  # stopped before its first checkpoint (e.g. while its L_LFC feature network trained)
        print(f"campaign: hider {name}: stopped at the time limit before a checkpoint (starts again next run)",
              flush=True)
        return False
    summary = read_summary(work)
    if rc != 0 or not summary:
        raise DeephideError(f"campaign: hider {name} failed (exit {rc}, no {SUMMARY}): {' '.join(cmd)}")
    if not summary.get("finished"):
        print(f"campaign: hider {name}: stopped at step {summary.get('iterations_done')} (continues next run)",
              flush=True)
        return False
    ship_hider(work, done)  # weights, config, bank, summary, log: no optimizer, no card
    return True


def row_of(c: Campaign, spec: str) -> str | None:
    """The campaign row whose set a config's train-set spec names: the configs name a set RUNS/sets/ROW (relative
    to the root), and tables label rows their own way (the weights table's "w1 x10 (10)" is row w1x10-C); a
    built-in dataset (no path) is the clean row; None for anything else."""
    path = Path(spec)
    if path.parent.name == "sets":
        return path.name
    return next((r for r, cmd in c.sets.items() if cmd is None), None) if spec == c.clean or "/" not in spec else None


def runtime_config(c: Campaign, name: str, ready: set[str], device: str,
                   columns: tuple[str, ...] | None = None) -> tuple[Path | None, int]:
    """A copy of CONFIGS/NAME.yaml naming only the rows whose sets are ready (and only ``columns``, when given),
    reusing every other results file of the campaign and the previous runs' unless the config names its own
    ``reuse`` (``reuse: []``: a grid that trains cells other grids have, e.g. at another thread count); (its path,
    rows left out). The path is
    None when no row is ready (a config without rows is invalid: a fresh machine's first pass over the mixtures grid,
    which has no Clean row, stopped the whole run)."""
    raw = yaml.safe_load((c.configs / f"{name}.yaml").read_text())
    rows = {label: s for label, s in raw["train_sets"].items() if row_of(c, s) in ready}
    if columns is not None:
        label = lambda m: next(iter(m)) if isinstance(m, dict) else m  # noqa: E731  ({label: spec} or a name)
        raw["countermeasures"] = [m for m in raw["countermeasures"] if label(m) in columns]
    missing = len(raw["train_sets"]) - len(rows)
    if not rows:
        return None, missing
    out = c.runs / "configs" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [*c.results.glob("*.jsonl"), *(c.previous.glob("*.jsonl") if c.previous else []),
             *(p for p in c.also_reuse if p.exists())]
    not_reused = {c.ledger.name, c.sessions.name, *c.not_reused}
    others = sorted(str(p.relative_to(c.root)) for p in files
                    if p.name not in not_reused and p.resolve() != (c.root / raw["out"]).resolve())
    raw.update(train_sets=rows, reuse=raw["reuse"] if "reuse" in raw else others or None, device=device)
    out.write_text(yaml.safe_dump({k: v for k, v in raw.items() if v is not None}, sort_keys=False))
    return out, missing


def keep_planned_keys(sidecar: Path, before: dict[str, Any] | None, partial: bool = False) -> None:
    """The grid's sidecar after a pass over some rows or columns keeps the cell keys planned before it too: the
    summary finds a mixture cell by its planned key, and a pass over fewer rows (``--rows``, or a session whose
    other sets were not ready) used to drop the others' keys (the mixtures table then read 0 of 45). ``before``:
    the sidecar as it was; after a ``partial`` pass its other fields stay as they were too (the runtime config of
    a partial pass names only some rows and columns)."""
    if not sidecar.exists() or not before:
        return
    rec = json.loads(sidecar.read_text())
    keys = list(dict.fromkeys([*(rec.get("cell_keys") or []), *(before.get("cell_keys") or [])]))
    new = {**(before if partial else rec), "cell_keys": keys}
    if new != rec:
        sidecar.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")


class _Run:
    """One run of a campaign: its clock, the sets it found ready, and the session record it logs."""

    def __init__(self, c: Campaign, hours: float, margin_s: float, device: str, executor: str,
                 workers: int | None) -> None:
        self.c, self.device, self.executor, self.workers = c, device, executor, workers
        self.t_end = time.monotonic() + hours * 3600 - margin_s
        self.ready: set[str] = set()
        self.refused: list[str] = []

    def left(self) -> float:
        return self.t_end - time.monotonic()

    def sets(self, rows: list[str]) -> bool:
        for row in rows:
            if self.left() <= 0 or not make_set(self.c, row, self.device, self.left()):
                return False
            verdict = check_set(self.c, row)
            if verdict["verdict"] == "refused":
                self.refused.append(row)
                print(f"campaign: {row}: REFUSED: regenerated set differs from the canonical one in "
                      f"{100 * verdict['pixel_diff_share']:.3f}% of sampled pixels (> {100 * self.c.tolerance:g}%)",
                      flush=True)
            else:
                self.ready.add(row)
        return True

    def grids(self, passes: tuple[Pass, ...]) -> None:
        for g, columns in passes:
            if self.left() <= 0:
                return
            cfg, missing = runtime_config(self.c, g, self.ready, self.device, columns)
            if missing:
                print(f"campaign: grid {g}: {missing} rows wait for their sets", flush=True)
            if cfg is None:
                continue
            loaded = load_config(cfg)
            sidecar = sidecar_path(self.c.root / loaded.out)
            before = json.loads(sidecar.read_text()) if sidecar.exists() else None
            cpus = max(1, int(loaded.resources["cpus"]))  # a cell's threads: a grid's resources.cpus (default 1)
            workers = None if self.workers is None else max(1, self.workers // cpus)
            try:
                with thread_count(cpus):  # the cells' thread count: pool and Ray workers, a local executor's cells
                    s = run_grid(cfg, executor=self.executor, progress=True, time_limit_s=max(0.0, self.left()),
                                 workers=workers)
            finally:  # a run stopped mid-grid too: its sidecar must not be left naming the ready rows only
                keep_planned_keys(sidecar, before, partial=bool(missing) or columns is not None)
            print(f"campaign: grid {g}: {s.ran} run, {s.skipped} already done, {s.total - s.skipped - s.ran} left",
                  flush=True)

    def sets_then_cells(self, rows: list[str], passes: tuple[Pass, ...]) -> None:
        """The rows' sets, each set made followed by the passes over every row ready so far: finished cells are
        committed, sets (runs/) are not, so a run that ends before its last set keeps what it trained (the ablation
        part made its 12 sets, ~6 min each, before its first cell). Sets already on disk are checked first."""
        first = [r for r in rows if self.c.sets[r] is None or (self.c.set_dir(r) / "manifest.json").exists()]
        for batch in ([first] if first else []) + [[r] for r in rows if r not in first]:
            if not self.sets(batch):
                return
            self.grids(passes)


def run(c: Campaign, hours: float, device: str = "cpu", executor: str = "ray", workers: int | None = None,
        part: str = "all", rows: list[str] | None = None, margin_s: float | None = None) -> dict[str, Any]:
    """Work on the campaign for ``hours`` of wall time (less ``margin_s``, kept for the summary and the commit):
    ``part`` main (the main rows' sets and grids, only ``rows`` when given), ablations (the ablation hiders, their
    sets and grids) or all. Two parts can run side by side on one machine: they write different results files.
    Returns the session record it appended to RESULTS/campaign.jsonl."""
    margin = c.margin_s if margin_s is None else margin_s
    session = {"started_at": now(), "hours": hours, "device": device, "executor": executor, "workers": workers,
               "part": part, "rows": None if rows is None else ",".join(rows), "machine": machine(),
               "versions": versions()}
    # the grids this run writes: two parts side by side append to different results files, and each session line
    # counts only its own (counting every grid gave the other part's cells to both)
    mine = sorted({g for p in ("main", "ablations") if part in ("all", p) for g, _ in c.passes(p)})
    count = lambda: {g: len(read_results(c.results / f"{g}.jsonl")) for g in mine}  # noqa: E731
    before = count()
    r = _Run(c, hours, margin, device, executor, workers)
    hiders_done: list[str] = []
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process: two cells side by side on 2 cores
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a scheduler's stop still logs the session
    # a background job of a non-interactive shell starts with SIGINT ignored (POSIX), and Python keeps it so:
    # `kill -INT` of a `nohup ... &` campaign did nothing (one session's run had to be killed unlogged)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if part in ("all", "main"):
            r.sets_then_cells([m for m in c.main_rows if rows is None or m in rows], c.main_passes)
        if part in ("all", "ablations"):  # the ablations once the main tables are done (or waiting only for time)
            for h in c.hiders:
                if r.left() <= 0 or not train_hider(c, h, device, r.left()):
                    break
                hiders_done.append(h)
            r.sets_then_cells(hiders_done + c.ablation_rows, c.ablation_passes)
    except (KeyboardInterrupt, SystemExit):
        session["stopped"] = "interrupted"
        raise
    finally:
        after = count()
        session.update(ended_at=now(), refused=r.refused, cells_added={g: after[g] - before[g] for g in mine},
                       sets_ready=sorted(r.ready), hiders_ready=hiders_done)
        append_jsonl(c.sessions, session)
    print(f"campaign: session logged in {c.sessions.relative_to(c.root)}; commit {c.results.relative_to(c.root)}",
          flush=True)
    return session


def status(c: Campaign, out: Callable[[str], None] = print) -> None:
    """Each row's set (on disk or not, and its ledger entries) and each grid's cells done of planned."""
    ledger = read_jsonl(c.ledger)
    for row in c.sets:
        rec = recipe(c, row)
        recs = [r for r in ledger if r["row"] == row]
        here = c.sets[row] is None or (c.set_dir(row) / "manifest.json").exists()
        out(f"set {row:18s} {'on disk' if here else 'not made':9s} ledger: "
            + (", ".join(f"{r['fingerprint']} ({r['verdict'] if r.get('recipe') == rec else 'superseded'})"
                         for r in recs) or "-"))
    for g in c.grids:
        cfg = load_config(c.configs / f"{g}.yaml")
        n = len(cfg.train_sets) * len(cfg.models) * len(cfg.countermeasures) * len(cfg.seeds) * len(cfg.mixtures or [0])
        out(f"grid {g:10s} {len(read_results(c.results / f'{g}.jsonl'))} of {n} cells")


def main(c: Campaign, argv: list[str] | None = None, description: str | None = None) -> None:
    """The command line of a campaign script: ``run --hours H [...]`` and ``status``."""
    p = argparse.ArgumentParser(description=description)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="make the missing sets, then run grid cells until the time is up")
    r.add_argument("--hours", type=float, required=True, help="wall time for this run (the summary is kept back)")
    r.add_argument("--margin-s", type=float, default=c.margin_s, metavar="S",
                   help=f"seconds of --hours kept back for the summary and the commit (default {c.margin_s:g})")
    r.add_argument("--device", default="cpu", help="torch device for sets and victims (cpu, cuda)")
    r.add_argument("--executor", choices=["ray", "pool", "local"], default="ray",
                   help="ray: one cell per core; pool: --workers cells at once in processes of this machine (several "
                        "sharing one GPU; no Ray needed); local: cells one after another")
    r.add_argument("--workers", type=int, metavar="N", help="pool: cells at once (default: one per core)")
    r.add_argument("--rows", metavar="R1,R2",
                   help="main part: only these rows' sets and cells (e.g. leave out rows whose sets another machine "
                        "kind cannot regenerate within tolerance)")
    r.add_argument("--part", choices=["all", "main", "ablations"], default="all",
                   help="main: the main rows' sets and grids; ablations: the ablation hiders, their sets and grids "
                        "(two parts can run side by side on one machine: they write different results files)")
    sub.add_parser("status", help="sets and cells done / left")
    a = p.parse_args(argv)
    try:
        if a.cmd == "run":
            run(c, a.hours, a.device, a.executor, a.workers, a.part, None if a.rows is None else a.rows.split(","),
                a.margin_s)
        else:
            status(c)
    except DeephideError as e:
        sys.exit(f"campaign: {e}")
