"""Building the report's tables from results records: the main table (rows = train sets, columns = countermeasures in
the paper's order, then Mean) and the mixture table (columns = protected fractions), with paper rows attached."""

from __future__ import annotations

from typing import Any, Sequence

from ..stats import Agg, aggregate, caption_stat
from .model import DASH, MEAN, Row, Table


def ordered_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in config order (their ``order`` index), else file order."""
    return sorted(records, key=lambda r: tuple(r.get("order") or ()))


def unique(seq: Sequence) -> list:
    return list(dict.fromkeys(seq))


def _column_order(labels: list[str]) -> list[str]:
    """Paper columns first, in the paper's order, then the others in config order."""
    from ...countermeasures import PAPER_COLUMNS

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
    from ...countermeasures import PAPER_COLUMNS

    recs = ordered_records([r for r in records if r.get("mixture") is None])
    if not recs:
        return None
    agg = aggregate(recs, stat)
    rows, models = unique(r["row"] for r in recs), unique(r["model"] for r in recs)
    columns = _column_order(unique(r["countermeasure"] for r in recs))
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
    recs = ordered_records([r for r in records if r.get("mixture") is not None])
    if not recs:
        return None
    agg = aggregate(recs, stat)
    rows, models = unique(r["row"] for r in recs), unique(r["model"] for r in recs)
    cms = _column_order(unique(r["countermeasure"] for r in recs))
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


