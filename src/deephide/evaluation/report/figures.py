"""Report figures (PNG): accuracy curves, JPEG-quality and mixture sweeps, sample images. matplotlib's object API
with the Agg canvas: no pyplot, no global backend switch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import DeephideError
from .model import Table
from .tables import ordered_records, unique


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
    for r in ordered_records(records):
        if r.get("countermeasure") == column and r.get("history"):
            groups.setdefault((r["row"], r["model"], r.get("mixture")), []).append(r)
    if not groups:
        return False
    models = unique(k[1] for k in groups)
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


def jpeg_columns(table: Table) -> list[tuple[int, str]]:
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

    from ...data import load_dataset

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
            from ...hiding.checkpoint import load_hider
            from ...protect import reveal
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




def panels_figure(panels: dict[str, dict[str, list[dict[str, Any]]]], path: Path, title: str, cols: int = 4) -> bool:
    """Test accuracy vs iteration, one panel per key of ``panels`` (e.g. a table row), one line per series in it
    (e.g. a training length: its records' mean over seeds, band min..max; log-scaled steps); False when nothing has
    a history."""
    kept: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for p, series in panels.items():
        for s, recs in series.items():
            if [r for r in recs if r.get("history")]:
                kept.setdefault(p, {})[s] = [r for r in recs if r.get("history")]
    panels = kept
    if not panels:
        return False
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig = _figure(3.2 * cols, 2.6 * rows + 0.4)
    for i, (name, series) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, recs in series.items():
            its = sorted(set.intersection(*({h["iteration"] for h in r["history"]} for r in recs)))
            per = [[{h["iteration"]: h["test_acc"] for h in r["history"]}[i] for i in its] for r in recs]
            if not its:
                continue
            line, = ax.plot(its, [sum(v) / len(v) for v in zip(*per)], marker="o", ms=2, lw=1,
                            label=f"{label} (n={len(recs)})")
            if len(per) > 1:
                ax.fill_between(its, [min(v) for v in zip(*per)], [max(v) for v in zip(*per)],
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("training step", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return True
