"""A campaign's declaration: its rows (the command that makes each row's set), the ablation hiders it trains, the
grid passes in the order they run, and where it reads and writes; read from a YAML file.

Paths in the file are relative to ``root`` (itself relative to the file). Example (the reference campaign's is
experiments/reference-fmnist/campaign.yaml):

>>> import tempfile, textwrap
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "c.yaml").write_text(textwrap.dedent('''
...     root: .
...     clean: fashion-mnist
...     rows:
...       Clean: null
...       DH-C: [protect, --data, fashion-mnist, --hider, fmnist-class, --mode, class]
...     passes:
...       main: [[main, [Vanilla]], [main]]
... '''))
>>> c = load_campaign(d / "c.yaml")
>>> c.main_rows, c.grids, c.passes("main")
(['Clean', 'DH-C'], ('main',), (('main', ('Vanilla',)), ('main', None)))
>>> c.set_dir("DH-C").relative_to(d).as_posix()
'runs/campaign/sets/DH-C'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...errors import DeephideError

#: a pass over one grid: (config name, only these columns or None = all)
Pass = tuple[str, "tuple[str, ...] | None"]


@dataclass(frozen=True)
class AblationHider:
    """A hider the campaign trains before its ablation rows: the recipe's ``mode`` and ``secrets`` with the
    ``settings`` (KEY=VALUE, as ``train-hider --set``) that differ; ``protect``: extra arguments of its set's
    protect command."""

    mode: str
    secrets: str
    settings: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()


@dataclass
class Campaign:
    """Everything the engine (deephide.evaluation.campaign.engine) needs to know about one campaign.

    ``sets``: row -> the deephide command (after ``deephide``) that makes its set, None for the clean built-in set;
    the main rows first, then each ablation hider's row, then ``ablation_rows``' rows.
    """

    root: Path
    results: Path  # what the campaign writes (committed): results files, the set ledger, the session log
    configs: Path  # the grids' configs, CONFIG.yaml
    runs: Path  # regenerated sets, trained hiders and the grids' runtime configs (never committed)
    clean: str
    main_rows: list[str]
    sets: dict[str, list[str] | None]
    main_passes: tuple[Pass, ...]
    ablation_passes: tuple[Pass, ...] = ()
    hiders: dict[str, AblationHider] = field(default_factory=dict)
    hiders_dir: Path | None = None  # finished ablation hiders (weights, config, bank, log; committed)
    hider_steps: int = 500
    hider_profile: str = "long"
    ablation_rows: list[str] = field(default_factory=list)  # rows the ablation grids need besides the hiders'
    hider_homes: tuple[Path, ...] = ()  # hiders found by name beside the package's ($DEEPHIDE_HIDERS)
    previous: Path | None = None  # results files of earlier runs, reused by training bytes
    also_reuse: tuple[Path, ...] = ()  # other committed results files whose cells may be reused
    not_reused: tuple[str, ...] = ()  # JSONL files in RESULTS no grid reuses: not results, or cells trained otherwise
    sample_n: int = 1 << 17  # pixels sampled per set for the ledger's cross-machine comparison
    tolerance: float = 0.001  # a regenerated set may differ from the canonical one in this share of sampled pixels
    set_threads: int = 1  # threads of the processes that make sets: part of what a set's bytes depend on
    margin_s: float = 120.0  # seconds kept back at the end of a run for the summary and the commit
    deephide: list[str] = field(default_factory=lambda: [sys.executable, "-m", "deephide"])

    @property
    def ledger(self) -> Path:
        return self.results / "sets.jsonl"

    @property
    def sessions(self) -> Path:
        return self.results / "campaign.jsonl"

    @property
    def grids(self) -> tuple[str, ...]:
        """Every grid the campaign runs, once each, in the order of its passes."""
        return tuple(dict.fromkeys(g for g, _ in self.main_passes + self.ablation_passes))

    def passes(self, part: str) -> tuple[Pass, ...]:
        return {"main": self.main_passes, "ablations": self.ablation_passes}[part]

    def set_dir(self, row: str) -> Path:
        return self.runs / "sets" / row


def _strings(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DeephideError(f"{where}: expected a list of strings (quote numbers), got {v!r}")
    return list(v)


def _passes(v: Any, where: str) -> tuple[Pass, ...]:
    out: list[Pass] = []
    for p in v or []:
        if not isinstance(p, list) or not 1 <= len(p) <= 2 or not isinstance(p[0], str):
            raise DeephideError(f"{where}: each pass is [GRID] or [GRID, [COLUMN, ...]], got {p!r}")
        out.append((p[0], tuple(_strings(p[1], where)) if len(p) == 2 else None))
    return tuple(out)


def load_campaign(path: str | Path) -> Campaign:
    """The campaign declared in the YAML file ``path`` (keys: root, clean, rows, passes {main, ablations}, and
    optionally results, configs, runs, ablation_hiders {steps, profile, dir, hiders}, ablation_rows, hider_homes,
    previous, also_reuse, not_reused, sample_n, tolerance, set_threads, margin_s)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise DeephideError(f"{path}: cannot read the campaign ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), dict) or "clean" not in raw:
        raise DeephideError(f"{path}: a campaign needs 'clean' and a mapping 'rows'")
    root = (path.parent / raw.get("root", ".")).resolve()
    at = lambda p: root / p  # noqa: E731
    clean = str(raw["clean"])
    rows = {r: None if cmd is None else _strings(cmd, f"{path}: rows.{r}") for r, cmd in raw["rows"].items()}
    abl = raw.get("ablation_hiders") or {}
    hiders_dir = at(abl["dir"]) if "dir" in abl else None
    hiders = {h: AblationHider(str(s["mode"]), str(s["secrets"]), tuple(_strings(s.get("set", []), f"{path}: {h}")),
                               tuple(_strings(s.get("protect", []), f"{path}: {h}")))
              for h, s in (abl.get("hiders") or {}).items()}
    if hiders and hiders_dir is None:
        raise DeephideError(f"{path}: ablation_hiders needs 'dir' (where finished hiders are kept)")
    extra = {r: None if cmd is None else _strings(cmd, f"{path}: ablation_rows.{r}")
             for r, cmd in (raw.get("ablation_rows") or {}).items()}
    sets: dict[str, list[str] | None] = {
        **rows,
        **{h: ["protect", "--data", clean, "--hider", str(hiders_dir / h), "--mode", s.mode, *s.protect]
           for h, s in hiders.items()},
        **extra}
    passes = raw.get("passes") or {}
    kw = {k: type_(raw[k]) for k, type_ in (("sample_n", int), ("tolerance", float), ("set_threads", int),
                                              ("margin_s", float)) if k in raw}
    return Campaign(
        root=root, results=at(raw.get("results", "results/campaign")), configs=at(raw.get("configs", "configs")),
        runs=at(raw.get("runs", "runs/campaign")), clean=clean, main_rows=list(rows), sets=sets,
        main_passes=_passes(passes.get("main"), f"{path}: passes.main"),
        ablation_passes=_passes(passes.get("ablations"), f"{path}: passes.ablations"),
        hiders=hiders, hiders_dir=hiders_dir, hider_steps=int(abl.get("steps", 500)),
        hider_profile=str(abl.get("profile", "long")), ablation_rows=list(extra),
        hider_homes=tuple(at(p) for p in raw.get("hider_homes") or []),
        previous=at(raw["previous"]) if "previous" in raw else None,
        also_reuse=tuple(at(p) for p in raw.get("also_reuse") or []),
        not_reused=tuple(_strings(raw.get("not_reused", []), f"{path}: not_reused")), **kw)
