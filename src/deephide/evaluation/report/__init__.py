"""Reports from a grid's results file: the paper's table layout (Markdown, CSV, LaTeX), figures
(PNG) and one static HTML page bundling them, optionally next to the paper's own numbers.

Layout: rows are the train-set labels (with the model when a grid has several), columns the
countermeasures in the paper's order (``PAPER_COLUMNS``) followed by any others, then ``Mean``
(over the 13 paper columns when all are present, else over the present ones, said in a note).
Grids with ``mixtures`` get a second table whose columns are the protected fractions.
Paper rows come from ``paper-tables.csv`` (columns table,setting,variant,column,value): found at
``paper_csv`` (argument or config), else ``$DEEPHIDE_PAPER_TABLES``, else
``../shared/spec/paper-tables.csv`` relative to the repository.

Modules: ``model`` (rows, tables), ``paper`` (the paper's numbers), ``tables`` (building them), ``render``
(Markdown, CSV, LaTeX, HTML tables), ``figures`` (PNG), ``page`` (the report directory: ``make_report``).
"""

from .figures import curves_figure, jpeg_columns, samples_figure, sweep_figure
from .model import DASH, MEAN, Row, Table
from .page import make_report, to_html
from .paper import PAPER_CSV_ENV, PAPER_FIELDS, default_paper_csv, load_paper_csv, paper_rows, parse_paper_refs
from .render import cells_csv, fmt_value, tex_escape, to_csv, to_html_table, to_latex, to_markdown
from .tables import build_main_table, build_mixture_table, ordered_records, unique

__all__ = [
    "DASH", "MEAN", "PAPER_CSV_ENV", "PAPER_FIELDS", "Row", "Table", "build_main_table", "build_mixture_table",
    "cells_csv", "curves_figure", "default_paper_csv", "fmt_value", "jpeg_columns", "load_paper_csv", "make_report",
    "ordered_records", "paper_rows", "parse_paper_refs", "samples_figure", "sweep_figure", "tex_escape", "to_csv",
    "to_html", "to_html_table", "to_latex", "to_markdown", "unique",
]
