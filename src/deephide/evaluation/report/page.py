"""The report directory: every table in every format, the figures, and one static HTML page bundling them
(``make_report``)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Sequence

from ...errors import DeephideError
from ...fsutil import atomic_dir
from ..stats import STATS, check_stat
from .model import Table
from .paper import PAPER_CSV_ENV, default_paper_csv, load_paper_csv, paper_rows, parse_paper_refs
from .tables import ordered_records, unique, build_main_table, build_mixture_table
from .render import cells_csv, to_csv, to_html_table, to_latex, to_markdown
from .figures import jpeg_columns, curves_figure, samples_figure, sweep_figure


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
caption{text-align:left;padding:.4em 0;font-style:italic;min-width:40em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th:first-child{text-align:left}
thead th{background:#f0f0f0}tr.paper{color:#666;font-style:italic}img{max-width:100%;border:1px solid #eee}
.notes{font-size:13px;color:#555}code{background:#f4f4f4;padding:1px 3px}"""


def to_html(title: str, summary: list[str], tables: list[Table], files: dict[str, list[str]],
            figures: list[tuple[str, str]], notes: list[str]) -> str:
    """One self-contained page: tables, figures (relative links), downloads and notes."""
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             "<ul>" + "".join(f"<li>{e(s)}</li>" for s in summary) + "</ul>"]
    for t in tables:
        links = " · ".join(f"<a href=\"{e(f)}\">{e(f)}</a>" for f in files.get(t.name, []))
        parts += [f"<h2>Table: {e(t.name)}</h2>", to_html_table(t), f"<p>Files: {links}</p>"]
    if figures:
        parts.append("<h2>Figures</h2>")
        for rel, cap in figures:
            parts.append(f"<figure><img src=\"{e(rel)}\" alt=\"{e(cap)}\"><figcaption>{e(cap)}</figcaption></figure>")
    if notes:
        parts += ["<h2>Notes</h2>", "<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _read_sidecar(results: Path) -> dict[str, Any]:
    from ..grid import sidecar_path

    p = sidecar_path(results)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _paper_data(refs: list, explicit_csv: str | None, required: bool, notes: list[str]) -> list[tuple]:
    """Paper rows for ``refs``; a missing csv is an error when the user asked on the command line."""
    if not refs:
        return []
    path = Path(explicit_csv) if explicit_csv else default_paper_csv()
    if path is None or not path.is_file():
        msg = (f"paper rows requested but paper-tables.csv not found"
               f"{f' at {path}' if path else ''}; set ${PAPER_CSV_ENV} or pass --paper-csv")
        if required:
            raise DeephideError(msg)
        notes.append(msg)
        return []
    return paper_rows(refs, load_paper_csv(path), str(path))


def make_report(results_jsonl: str | os.PathLike, out_dir: str | os.PathLike, stat: str = "last3",
                figures: bool = True, paper: Sequence[str] | None = None, samples: Sequence[str] | None = None,
                paper_csv: str | os.PathLike | None = None, force: bool = False) -> dict[str, Path]:
    """Write tables (Markdown, CSV, LaTeX), figures and index.html for a results file into ``out_dir``.

    stat: headline statistic (``final``, ``last3`` or ``best``), stated in every caption.
    paper: ``"TABLE,SETTING[,VARIANT]"`` references whose rows are appended (besides the config's
        ``paper_table``, read from the grid's sidecar ``<results stem>.config.json``).
    samples: ``(clean_spec, protected_spec[, hider_dir])`` for a sample-image figure.
    force: replace an existing ``out_dir``. The directory is written whole or not at all.
    Returns {file name: path} of what was written.
    """
    from ..grid import read_results

    check_stat(stat)
    results = Path(results_jsonl)
    if not results.is_file():
        raise DeephideError(f"{results}: no such results file")
    records = read_results(results)
    if not records:
        raise DeephideError(f"{results}: no finished cells to report")
    if samples is not None and not 2 <= len(samples) <= 3:
        raise DeephideError("samples: give CLEAN_SPEC PROTECTED_SPEC [HIDER_DIR]")
    side = _read_sidecar(results)
    notes: list[str] = []
    cfg_refs = parse_paper_refs(side.get("paper_table"))
    cli_refs = parse_paper_refs(list(paper)) if paper else []
    csv_path = str(paper_csv) if paper_csv else side.get("paper_csv")
    papers = _paper_data(cfg_refs, csv_path, False, notes) + _paper_data(cli_refs, csv_path, True, notes)
    main = build_main_table(records, stat, [p for p in papers if not _is_mixture_paper(p)])
    mix = build_mixture_table(records, stat, [p for p in papers if _is_mixture_paper(p)])
    tables = [t for t in (main, mix) if t is not None]
    title = f"deephide report: {side.get('name') or unique(r.get('grid', '?') for r in records)[0]}"
    keys = side.get("cell_keys")
    done = sum(1 for r in records if keys is None or r["key"] in set(keys))
    summary = [f"results: {results.name} ({len(records)} finished cells"
               + (f"; {done} of {len(keys)} cells in the config" if keys else "") + ")",
               f"headline statistic: {STATS[stat]}",
               f"profile: {', '.join(str(p) for p in unique(r.get('profile') for r in records))}"]
    if side.get("notes"):
        summary.append(f"config notes: {side['notes']}")
    written: dict[str, Path] = {}
    with atomic_dir(out_dir, force=force) as tmp:
        files: dict[str, list[str]] = {}
        for t in tables:
            base = "table" if t.name == "main" else "mixtures"
            for ext, text in (("md", to_markdown(t)), ("csv", to_csv(t)), ("tex", to_latex(t))):
                (tmp / f"{base}.{ext}").write_text(text, encoding="utf-8")
                files.setdefault(t.name, []).append(f"{base}.{ext}")
        (tmp / "cells.csv").write_text(cells_csv(records, stat), encoding="utf-8")
        figs = _make_figures(tmp, records, main, mix, samples, notes) if figures else []
        (tmp / "index.html").write_text(to_html(title, summary, tables, files, figs, notes), encoding="utf-8")
        names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    for name in names:
        written[name] = Path(out_dir) / name
    return written


def _is_mixture_paper(p: tuple) -> bool:
    return any(c.endswith("%") for c in p[2])


def _make_figures(tmp: Path, records: list[dict[str, Any]], main: Table | None, mix: Table | None,
                  samples: Sequence[str] | None, notes: list[str]) -> list[tuple[str, str]]:
    """Draw the figures that apply; returns [(relative path, caption)], adds remarks to ``notes``."""
    figdir = tmp / "figures"
    figdir.mkdir()
    out: list[tuple[str, str]] = []
    cms = unique(r["countermeasure"] for r in ordered_records(records))
    column = "Vanilla" if "Vanilla" in cms else cms[0]
    if curves_figure(records, figdir / "curves.png", column):
        out.append(("figures/curves.png", f"Clean test accuracy during training, {column} column (mean over seeds)."))
    if main is not None:
        pts = [(float(q), c) for q, c in jpeg_columns(main)]
        if sweep_figure(main, figdir / "jpeg.png", pts,
                        "JPEG quality", "JPEG quality sweep (error bars: std over seeds)"):
            out.append(("figures/jpeg.png", "Accuracy after JPEG compression of the training data at each quality."))
    if mix is not None:
        pts = [(float(c[:-1]), c) for c in mix.columns]
        if sweep_figure(mix, figdir / "mixture.png", pts, "protected fraction of the training set (%)",
                        "Clean/protected mixtures"):
            out.append(("figures/mixture.png", "Accuracy vs the fraction of protected training images."))
    if samples:
        kinds = samples_figure(samples[0], samples[1], samples[2] if len(samples) > 2 else None,
                               figdir / "samples.png", notes)
        out.append(("figures/samples.png", f"Rows: {' / '.join(kinds)} images."))
    return out

