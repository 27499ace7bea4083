"""Writing a table: Markdown, CSV (and the per-cell CSV), LaTeX, and an HTML table."""

from __future__ import annotations

import csv
import html
import io
from typing import Any

from ..stats import Agg, aggregate
from .model import DASH, Table
from .tables import ordered_records


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
    for (row, model, cm, mix), a in aggregate(ordered_records(records), stat).items():
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


