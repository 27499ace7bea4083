"""``deephide grid`` and ``deephide report``: the evaluation harness's commands.

Importing this module is cheap: the grid and report machinery (torch, ray, matplotlib) loads
inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import DeephideError
from .dispatch import command


def add_grid_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``grid`` to the CLI's subparsers."""
    g = sub.add_parser("grid", help="run an experiment grid from a YAML config (resumes finished cells)",
                       description="Train every (train set, model, countermeasure, seed[, mixture]) cell of "
                                   "CONFIG not yet in its results file; results are appended as JSON lines.")
    g.add_argument("config", help="grid config YAML (e.g. experiments/reference-fmnist/configs/main.yaml)")
    g.add_argument("--executor", choices=["local", "pool", "ray"], default="local",
                   help="local: cells one after another here; pool: --workers cells at once in processes of this "
                        "machine (e.g. several sharing one GPU); ray: one Ray task per cell")
    g.add_argument("--workers", type=int, metavar="N", help="pool: cells at once (default: one per core the config's "
                                                               "resources.cpus allows)")
    g.add_argument("--address", help="Ray cluster address (e.g. 127.0.0.1:6379 or auto); default: a new local cluster")
    g.add_argument("--dry-run", action="store_true", help="list the cells and whether each is done; train nothing")
    g.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="start no cell that would end past this many seconds (at its estimated time: this run's "
                        "and the recorded cells of its model on this device kind, else scaled by training FLOPs); "
                        "running cells finish, the rest wait for the next call")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    return g


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the CLI's subparsers."""
    r = sub.add_parser("report", help="tables (Markdown, CSV, LaTeX), figures and an HTML page from grid results")
    r.add_argument("results", help="results JSONL written by `deephide grid`")
    r.add_argument("--out", help="output directory (default: RESULTS without .jsonl, plus -report)")
    r.add_argument("--stat", choices=["final", "last3", "best"], default="last3",
                   help="headline statistic per cell (default: mean of the last 3 evaluations)")
    r.add_argument("--no-figures", action="store_true", help="tables only")
    r.add_argument("--paper", action="append", metavar="TABLE,SETTING[,VARIANT]",
                   help="add the paper's rows, e.g. K,class-wise (repeatable)")
    r.add_argument("--paper-csv", help="the paper's numbers (default: $DEEPHIDE_PAPER_TABLES or "
                                       "../shared/spec/paper-tables.csv beside the repository)")
    r.add_argument("--samples", nargs="+", metavar="SPEC",
                   help="CLEAN_SPEC PROTECTED_SPEC [HIDER_DIR]: add a figure of sample images")
    r.add_argument("--force", action="store_true", help="replace an existing output directory")
    return r


@command("grid")
def cmd_grid(args: argparse.Namespace) -> int:
    """``deephide grid``: run (or with --dry-run, list) the grid's cells."""
    from ..evaluation.grid import grid_status, run_grid

    if args.dry_run:
        cells = grid_status(args.config)
        for cell, done in cells:
            mix = f"\tp={cell['mixture']:g}" if cell["mixture"] is not None else ""
            print(f"{cell['key']}\t{'done' if done else 'todo'}\t{cell['row']}\t{cell['model']}\t"
                  f"{cell['countermeasure']}\tseed={cell['seed']}{mix}")
        print(f"{sum(d for _, d in cells)} of {len(cells)} cells done", file=sys.stderr)
        return 0
    s = run_grid(args.config, executor=args.executor, address=args.address, progress=not args.quiet,
                 time_limit_s=args.time_limit, workers=args.workers)
    left = s.total - s.skipped - s.ran
    print(f"grid {'stopped at its time limit' if s.stopped else 'done'}: {s.ran} cells run, {s.skipped} already there, "
          f"{left} left, {s.total} in all -> {s.out}")
    return 0


def _default_report_dir(results: str) -> str:
    return (results[:-6] if results.endswith(".jsonl") else results) + "-report"


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    """``deephide report``: write the report directory and print where index.html is."""
    from ..evaluation.report import make_report

    if args.samples is not None and not 2 <= len(args.samples) <= 3:
        raise DeephideError("--samples: give CLEAN_SPEC PROTECTED_SPEC [HIDER_DIR]")
    out = args.out or _default_report_dir(args.results)
    files = make_report(args.results, out, stat=args.stat, figures=not args.no_figures, paper=args.paper,
                        samples=args.samples, paper_csv=args.paper_csv, force=args.force)
    print(f"report: {files['index.html']} ({len(files)} files)")
    return 0
