"""Reports from a grid's results file: the paper's table layout (Markdown, CSV, LaTeX), figures
(PNG) and one static HTML page bundling them, optionally next to the paper's own numbers.

Layout: rows are the train-set labels (with the model when a grid has several), columns the
countermeasures in the paper's order (``PAPER_COLUMNS``) followed by any others, then ``Mean``
(over the 13 paper columns when all are present, else over the present ones, said in a note).
Grids with ``mixtures`` get a second table whose columns are the protected fractions.
Paper rows come from ``paper-tables.csv`` (columns table,setting,variant,column,value): found at
``paper_csv`` (argument or config), else ``$DEEPHIDE_PAPER_TABLES``, else
``../shared/spec/paper-tables.csv`` relative to the repository.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import DeephideError
from ..fsutil import atomic_dir
from .stats import STATS, Agg, aggregate, caption_stat, check_stat

PAPER_CSV_ENV = "DEEPHIDE_PAPER_TABLES"
PAPER_FIELDS = ("table", "setting", "variant", "column", "value")
MEAN = "Mean"
DASH = "–"


# ---------------------------------------------------------------------------------------------
# table model


@dataclass
class Row:
    """One table row: ours (values are Agg) or the paper's (values are floats)."""

    label: str
    values: dict[str, Any]
    paper: str | None = None  # "K class-wise: method=ours" for a paper row
    group: tuple = ()  # (row, model, countermeasure or None) for our rows


@dataclass
class Table:
    """A rendered-format-independent table."""

    name: str
    caption: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    head: str = "Train set"


# ---------------------------------------------------------------------------------------------
# paper numbers


def default_paper_csv() -> Path | None:
    """``$DEEPHIDE_PAPER_TABLES``, else the copy shipped in this package, else ``../shared/spec/paper-tables.csv``."""
    env = os.environ.get(PAPER_CSV_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]  # src/deephide/evaluation/report.py -> repository root
    packaged = Path(__file__).with_name("paper-tables.csv")  # a copy of the spec's table ships with the package
    for cand in (packaged, repo.parent / "shared" / "spec" / "paper-tables.csv", repo / "shared" / "spec" / "paper-tables.csv"):
        if cand.is_file():
            return cand
    return None


def load_paper_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of paper-tables.csv with ``value`` as float."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DeephideError(f"{path}: cannot read the paper's tables ({e.strerror or e})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != PAPER_FIELDS:
        raise DeephideError(f"{path}: expected columns {','.join(PAPER_FIELDS)}, got {','.join(reader.fieldnames or [])}")
    rows = []
    for i, r in enumerate(reader, 2):
        try:
            rows.append({**r, "value": float(r["value"])})
        except (TypeError, ValueError):
            raise DeephideError(f"{path}: line {i}: value '{r.get('value')}' is not a number") from None
    return rows


def parse_paper_refs(spec: Any) -> list[tuple[str, str, str | None, str | None]]:
    """Config/CLI form -> [(table, setting, variant or None, our row label or None)].

    ``"K,class-wise"`` (every variant), a list of such strings, or a mapping
    ``{our row label: "T,SETTING,VARIANT"}`` (the paper row goes right below ours).
    """
    if spec is None:
        return []
    items = spec.items() if isinstance(spec, dict) else [(None, s) for s in ([spec] if isinstance(spec, str) else spec)]
    refs = []
    for ours, text in items:
        parts = [p.strip() for p in str(text).split(",", 2)]
        if len(parts) < 2 or not all(parts):
            raise DeephideError(f"paper reference '{text}': expected TABLE,SETTING[,VARIANT]")
        refs.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None, ours))
    return refs


def _paper_column(col: str) -> str:
    """The paper's column name in our naming (JPEG_quality=4 -> JPEG4, ue_fraction=20% -> 20%)."""
    m = re.fullmatch(r"JPEG_quality=(\d+)", col)
    if m:
        return f"JPEG{m.group(1)}"
    m = re.fullmatch(r"ue_fraction=([\d.]+)%", col)
    if m:
        return f"{float(m.group(1)):g}%"
    return col


def paper_rows(refs: list[tuple[str, str, str | None, str | None]], data: list[dict[str, Any]],
               source: str) -> list[tuple[str | None, str, dict[str, float]]]:
    """[(our row label or None, display name, {paper column in our naming: value})] for ``refs``."""
    out = []
    for table, setting, variant, ours in refs:
        sel = [r for r in data if r["table"] == table and r["setting"] == setting]
        if not sel:
            have = sorted({f"{r['table']},{r['setting']}" for r in data})
            raise DeephideError(f"{source}: no paper rows for table {table}, setting '{setting}'; have: {'; '.join(have)}")
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        if variant is not None:
            if variant not in variants:
                raise DeephideError(f"{source}: table {table} {setting} has no variant '{variant}'; "
                                    f"have: {'; '.join(variants)}")
            variants = [variant]
        for v in variants:
            vals = {_paper_column(r["column"]): r["value"] for r in sel if r["variant"] == v}
            out.append((ours, f"paper {table} {setting}: {v}", vals))
    return out


# ---------------------------------------------------------------------------------------------
# building tables


def _ordered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in config order (their ``order`` index), else file order."""
    return sorted(records, key=lambda r: tuple(r.get("order") or ()))


def _uniq(seq: Sequence) -> list:
    return list(dict.fromkeys(seq))


def _column_order(labels: list[str]) -> list[str]:
    """Paper columns first, in the paper's order, then the others in config order."""
    from ..countermeasures import PAPER_COLUMNS

    pos = {c: i for i, c in enumerate(PAPER_COLUMNS)}
    return sorted(labels, key=lambda c: (0, pos[c], 0) if c in pos else (1, 0, labels.index(c)))


def _row_mean(values: dict[str, Any], cols: list[str]) -> float | None:
    vals = [values.get(c) for c in cols]
    nums = [v.mean if isinstance(v, Agg) else v for v in vals]
    if any(v is None for v in nums):
        return None
    return sum(nums) / len(nums)


def _attach_paper(table: Table, papers: list[tuple[str | None, str, dict[str, float]]],
                  mean_cols: list[str] | None, paper_full_mean: bool) -> None:
    """Insert paper rows below the mapped row (or at the end), matching columns case-insensitively."""
    lookup = {c.lower(): c for c in table.columns}
    unplaced = []
    for ours, name, vals in papers:
        values = {lookup[c.lower()]: v for c, v in vals.items() if c.lower() in lookup and c != MEAN}
        if mean_cols is not None and MEAN in table.columns:
            values[MEAN] = vals.get(MEAN) if paper_full_mean else _row_mean(values, mean_cols)
        missing = [c for c in vals if c.lower() not in lookup and c != MEAN]
        if missing:
            table.notes.append(f"{name}: paper columns not in this grid: {', '.join(missing)}")
        row = Row(label=name if ours is None else f"↳ {name}", values=values, paper=name)
        at = next((i for i, r in enumerate(table.rows) if r.paper is None and r.label == ours), None) \
            if ours is not None else None
        if at is None:
            if ours is not None:
                table.notes.append(f"{name}: mapped to row '{ours}', which this table does not have")
            unplaced.append(row)
        else:
            while at + 1 < len(table.rows) and table.rows[at + 1].paper is not None:
                at += 1  # keep several paper rows of one of ours in the given order
            table.rows.insert(at + 1, row)
    table.rows.extend(unplaced)
    if papers and mean_cols is not None and MEAN in table.columns and not paper_full_mean:
        table.notes.append("the paper rows' Mean is recomputed over the same columns as ours")


def _n_note(aggs: list[Agg]) -> str:
    ns = sorted({a.n for a in aggs})
    return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1 else f"n = {ns[0]}..{ns[-1]} seeds per cell"


def build_main_table(records: list[dict[str, Any]], stat: str,
                     papers: list[tuple[str | None, str, dict[str, float]]] = ()) -> Table | None:
    """Rows: train sets (x models); columns: countermeasures + Mean. None without such records."""
    from ..countermeasures import PAPER_COLUMNS

    recs = _ordered([r for r in records if r.get("mixture") is None])
    if not recs:
        return None
    agg = aggregate(recs, stat)
    rows, models = _uniq(r["row"] for r in recs), _uniq(r["model"] for r in recs)
    columns = _column_order(_uniq(r["countermeasure"] for r in recs))
    table = Table("main", "", list(columns), [])
    for row in rows:
        for model in models:
            values = {c: agg[(row, model, c, None)] for c in columns if (row, model, c, None) in agg}
            if values:
                label = row if len(models) == 1 else f"{row} / {model}"
                table.rows.append(Row(label, values, group=(row, model, None)))
    mean_cols = [c for c in columns if c in PAPER_COLUMNS] or list(columns)
    full = set(mean_cols) == set(PAPER_COLUMNS)
    if len(mean_cols) >= 2:
        table.columns.append(MEAN)
        for r in table.rows:
            r.values[MEAN] = _row_mean(r.values, mean_cols)
        if not full:
            missing = [c for c in PAPER_COLUMNS if c not in mean_cols]
            table.notes.append(f"Mean is over the {len(mean_cols)} present columns ({', '.join(mean_cols)}), "
                               f"not the paper's 13" + (f"; missing: {', '.join(missing)}" if missing else ""))
        if any(r.values[MEAN] is None for r in table.rows):
            table.notes.append(f"{DASH} in Mean: a row lacks one of its columns")
    _attach_paper(table, list(papers), mean_cols if len(mean_cols) >= 2 else None, full)
    table.caption = (f"Clean test accuracy (%) of {', '.join(models)} trained on each set (rows) under each "
                     f"countermeasure (columns); lower is better for the protector. {caption_stat(stat).capitalize()}; "
                     f"{_n_note(list(agg.values()))}.")
    return table


def build_mixture_table(records: list[dict[str, Any]], stat: str,
                        papers: list[tuple[str | None, str, dict[str, float]]] = ()) -> Table | None:
    """Rows: protected sets (x models x countermeasures); columns: fraction of protected images."""
    recs = _ordered([r for r in records if r.get("mixture") is not None])
    if not recs:
        return None
    agg = aggregate(recs, stat)
    rows, models = _uniq(r["row"] for r in recs), _uniq(r["model"] for r in recs)
    cms = _column_order(_uniq(r["countermeasure"] for r in recs))
    fracs = sorted({float(r["mixture"]) for r in recs})
    columns = [f"{p * 100:g}%" for p in fracs]
    table = Table("mixtures", "", columns, [], head="Protected set")
    for row in rows:
        for model in models:
            for cm in cms:
                values = {col: agg[(row, model, cm, p)] for col, p in zip(columns, fracs) if (row, model, cm, p) in agg}
                if values:
                    parts = [row] + ([model] if len(models) > 1 else []) + ([cm] if len(cms) > 1 else [])
                    table.rows.append(Row(" / ".join(parts), values, group=(row, model, cm)))
    _attach_paper(table, list(papers), None, False)
    table.caption = (f"Clean test accuracy (%) when a fraction (columns) of the training images is protected and "
                     f"the rest clean; models {', '.join(models)}, countermeasure{'s' if len(cms) > 1 else ''} "
                     f"{', '.join(cms)}. {caption_stat(stat).capitalize()}; {_n_note(list(agg.values()))}.")
    return table


# ---------------------------------------------------------------------------------------------
# writers


def fmt_value(v: Any, n_max: int = 0) -> str:
    """``12.34 ± 0.56`` for ours (``(n=k)`` when fewer seeds than the rest), ``12.34`` for the paper, – for none."""
    if v is None:
        return DASH
    if isinstance(v, Agg):
        s = f"{v.mean:.2f}" + (f" ± {v.std:.2f}" if v.std is not None else "")
        return s + (f" (n={v.n})" if v.n < n_max else "")
    return f"{v:.2f}"


def _n_max(table: Table) -> int:
    return max((v.n for r in table.rows for v in r.values.values() if isinstance(v, Agg)), default=0)


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with its caption and notes."""
    n = _n_max(table)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731  (a pipe would end the cell)
    lines = [f"**{esc(table.caption)}**", "", "| " + " | ".join([table.head] + [esc(c) for c in table.columns]) + " |",
             "|" + "---|" + "---:|" * len(table.columns)]
    for r in table.rows:
        label = f"*{esc(r.label)}*" if r.paper else esc(r.label)
        lines.append("| " + " | ".join([label] + [fmt_value(r.values.get(c), n) for c in table.columns]) + " |")
    lines.append("")
    lines += [f"- {esc(note)}" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(table: Table) -> str:
    """The table as CSV: one numeric column (the mean) per table column; std and n are in cells.csv."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "source"] + table.columns)
    for r in table.rows:
        vals = []
        for c in table.columns:
            v = r.values.get(c)
            vals.append("" if v is None else f"{(v.mean if isinstance(v, Agg) else v):.2f}")
        w.writerow([r.label.removeprefix("↳ "), r.paper or "ours"] + vals)
    return buf.getvalue()


def cells_csv(records: list[dict[str, Any]], stat: str) -> str:
    """Long format: one line per (row, model, countermeasure, mixture) with mean, std, n and the values."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "model", "countermeasure", "mixture", "stat", "mean", "std", "n", "values"])
    for (row, model, cm, mix), a in aggregate(_ordered(records), stat).items():
        w.writerow([row, model, cm, "" if mix is None else f"{mix:g}", stat, f"{a.mean:.4f}",
                    "" if a.std is None else f"{a.std:.4f}", a.n, ";".join(f"{v:.2f}" for v in a.values)])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
        "–": "--", "↳": r"$\hookrightarrow$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and map ±, –, ↳ to their LaTeX forms)."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A ``table`` environment with a ``tabular`` (no packages beyond LaTeX itself)."""
    n = _n_max(table)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{tex_escape(table.caption)}}}",
             r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline",
             " & ".join([tex_escape(table.head)] + [tex_escape(c) for c in table.columns]) + r" \\", r"\hline"]
    for r in table.rows:
        cells = [tex_escape(fmt_value(r.values.get(c), n)) for c in table.columns]
        label = tex_escape(r.label)
        if r.paper:
            label, cells = rf"\textit{{{label}}}", [rf"\textit{{{c}}}" for c in cells]
        lines.append(" & ".join([label] + cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    lines += [f"% note: {note}" for note in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_html_table(table: Table) -> str:
    """An HTML <table> (escaped) with caption and notes."""
    n = _n_max(table)
    e = html.escape
    out = [f"<table>\n<caption>{e(table.caption)}</caption>",
           "<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in [table.head] + table.columns) + "</tr></thead><tbody>"]
    for r in table.rows:
        cls = ' class="paper"' if r.paper else ""
        out.append(f"<tr{cls}><th>{e(r.label)}</th>" +
                   "".join(f"<td>{e(fmt_value(r.values.get(c), n))}</td>" for c in table.columns) + "</tr>")
    out.append("</tbody></table>")
    if table.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{e(x)}</li>" for x in table.notes) + "</ul>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# figures (matplotlib's object API with the Agg canvas: no pyplot, no global backend switch)


def _figure(w: float = 6.4, h: float = 4.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DeephideError("figures need matplotlib (pip install matplotlib), or ask for tables only "
                            "(--no-figures)") from None

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", bbox_inches="tight")  # keeps a legend placed beside the axes


def curves_figure(records: list[dict[str, Any]], path: Path, column: str) -> bool:
    """Test accuracy vs iteration, one line per (row, model, mixture) of ``column``; band = min..max over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in _ordered(records):
        if r.get("countermeasure") == column and r.get("history"):
            groups.setdefault((r["row"], r["model"], r.get("mixture")), []).append(r)
    if not groups:
        return False
    models = _uniq(k[1] for k in groups)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for (row, model, mix), recs in groups.items():
        its = sorted(set.intersection(*({h["iteration"] for h in r["history"]} for r in recs)))
        if not its:
            continue
        per = [[{h["iteration"]: h["test_acc"] for h in r["history"]}[i] for i in its] for r in recs]
        mean = [sum(v) / len(v) for v in zip(*per)]
        label = row + (f" / {model}" if len(models) > 1 else "") + (f" p={mix:g}" if mix is not None else "")
        line, = ax.plot(its, mean, marker="o", ms=3, label=label)
        if len(per) > 1:
            ax.fill_between(its, [min(v) for v in zip(*per)], [max(v) for v in zip(*per)],
                            color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("clean test accuracy (%)")
    ax.set_title(f"Test accuracy during training ({column}); band: min..max over seeds")
    ax.grid(alpha=0.3)
    # outside the axes: with many rows a legend inside hides the curves it names
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _save(fig, path)
    return True


def _jpeg_columns(table: Table) -> list[tuple[int, str]]:
    cols = [(int(m.group(1)), c) for c in table.columns if (m := re.fullmatch(r"JPEG(\d+)", c))]
    return sorted(cols)


def sweep_figure(table: Table, path: Path, points: list[tuple[float, str]], xlabel: str, title: str) -> bool:
    """Accuracy vs a swept setting (JPEG quality, protected fraction): ours solid, paper dashed."""
    if len(points) < 2:
        return False
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for r in table.rows:
        xs = [(x, r.values.get(c)) for x, c in points if r.values.get(c) is not None]
        if not xs:
            continue
        x = [p for p, _ in xs]
        if r.paper:
            ax.plot(x, [v for _, v in xs], ls="--", marker="s", ms=4, label=r.label.removeprefix("↳ "))
        else:
            y = [v.mean for _, v in xs]
            err = [v.std or 0.0 for _, v in xs]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, label=r.label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clean test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _save(fig, path)
    return True


def _pick_samples(labels: Any, n: int) -> list[int]:
    """The first image of each class (up to ``n``), then the next images to fill ``n``."""
    import numpy as np

    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)][:n]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return (firsts + rest)[:n]


def samples_figure(clean_spec: str, protected_spec: str, hider_dir: str | None, path: Path,
                   notes: list[str], n: int = 8) -> list[str]:
    """Grid of clean / protected / perturbation x10 + 0.5 / revealed (when a hider is given).

    Returns the row names drawn; remarks (perturbation size, a skipped reveal) go to ``notes``.
    """
    import numpy as np

    from ..data import load_dataset

    clean, prot = load_dataset(clean_spec, "train"), load_dataset(protected_spec, "train")
    if len(clean) != len(prot) or clean.shape != prot.shape or not np.array_equal(clean.labels, prot.labels):
        raise DeephideError(f"{protected_spec}: does not match {clean_spec} (size, shape or labels differ); "
                            f"samples need the protected set and the clean set it was made from")
    idx = _pick_samples(clean.labels, n)
    c = clean.images[idx].astype(np.float32) / 255
    p = prot.images[idx].astype(np.float32) / 255
    rows = [("clean", c), ("protected", p), ("perturbation ×10 + 0.5", np.clip((p - c) * 10 + 0.5, 0, 1))]
    notes.append(f"samples: {clean_spec} vs {protected_spec}, max |perturbation| = "
             f"{int(np.abs(prot.images[idx].astype(int) - clean.images[idx].astype(int)).max())} levels")
    if hider_dir:
        try:
            from ..hiding.checkpoint import load_hider
            from ..protect import reveal
        except ImportError as e:
            notes.append(f"revealed column skipped: reveal is not available ({e})")
        else:
            hider = load_hider(hider_dir, image_size=prot.shape[0])
            rows.append(("revealed", reveal(prot.subset(idx), hider, progress=False).astype(np.float32) / 255))
    fig = _figure(1.3 * len(idx) + 1.2, 1.35 * len(rows) + 0.3)
    for ri, (name, imgs) in enumerate(rows):
        for ci in range(len(idx)):
            ax = fig.add_subplot(len(rows), len(idx), ri * len(idx) + ci + 1)
            im = imgs[ci]
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None,
                      vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if ci == 0:
                ax.set_ylabel(name, fontsize=7)
            if ri == 0:
                ax.set_title(clean.class_names[int(clean.labels[idx[ci]])][:12], fontsize=7)
    _save(fig, path)
    return [name for name, _ in rows]


# ---------------------------------------------------------------------------------------------
# the page


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}caption{text-align:left;padding:.4em 0;font-style:italic;min-width:40em}
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
    from .grid import sidecar_path

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
    from .grid import read_results

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
    title = f"deephide report: {side.get('name') or _uniq(r.get('grid', '?') for r in records)[0]}"
    keys = side.get("cell_keys")
    done = sum(1 for r in records if keys is None or r["key"] in set(keys))
    summary = [f"results: {results.name} ({len(records)} finished cells"
               + (f"; {done} of {len(keys)} cells in the config" if keys else "") + ")",
               f"headline statistic: {STATS[stat]}", f"profile: {', '.join(str(p) for p in _uniq(r.get('profile') for r in records))}"]
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
    cms = _uniq(r["countermeasure"] for r in _ordered(records))
    column = "Vanilla" if "Vanilla" in cms else cms[0]
    if curves_figure(records, figdir / "curves.png", column):
        out.append(("figures/curves.png", f"Clean test accuracy during training, {column} column (mean over seeds)."))
    if main is not None:
        pts = [(float(q), c) for q, c in _jpeg_columns(main)]
        if sweep_figure(main, figdir / "jpeg.png", pts, "JPEG quality", "JPEG quality sweep (error bars: std over seeds)"):
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

