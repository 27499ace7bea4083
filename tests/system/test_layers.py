"""The package's layers: every import in src/deephide (inside functions too) points down the layer order, and
the module graph has no cycle. A newcomer can read the package bottom-up:

    runtime, errors, fsutil, registry, profiles   (0: no deephide imports but each other)
    data, ops                                      (1: image sets; wavelets, budget, image metrics)
    models                                         (2: victim architectures)
    training                                       (3: the victim trainer, batched augmentation, torchrun helpers)
    semantic, countermeasures                      (4: secret banks; a data user's defences)
    hiding                                         (5: the INN hider, its losses and training)
    attacks                                        (6: the baseline attacks, ISGAN beside the INN)
    protect, trace, pipeline, owner                (7-9: protecting a set; source tracing; whole jobs; a data
                                                    owner's folder protected into its mirror)
    evaluation                                     (10: grids, reports, statistics)
    cli, launch, __main__                          (11-12: the command line; its torchrun and `python -m` entries)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "deephide"

#: the first dotted part under deephide -> its layer (a lower number is further down)
LAYERS = {
    "": 0, "errors": 0, "runtime": 0, "fsutil": 0, "registry": 0, "profiles": 0,
    "data": 1, "ops": 1,
    "models": 2,
    "training": 3,
    "semantic": 4, "countermeasures": 4,
    "hiding": 5,
    "attacks": 6,
    "protect": 7, "trace": 8, "pipeline": 9, "owner": 9,
    "evaluation": 10,
    "cli": 11, "launch": 12, "__main__": 12,
    "hiders": 0,  # shipped weights only
}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(["deephide", *parts])] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the deephide modules it imports (anywhere in the file), resolved to existing modules."""
    edges: dict[str, set[str]] = {}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        out: set[str] = set()
        tree = ast.parse(f.read_text(), str(f))
        typing_only = {id(n) for b in ast.walk(tree) if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.dump(b.test)
                       for n in ast.walk(b)}  # `if TYPE_CHECKING:` imports never run: no dependency at run time
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    tgt = ".".join(base + ([node.module] if node.module else []))
                else:
                    tgt = node.module or ""
                targets = [f"{tgt}.{a.name}" if f"{tgt}.{a.name}" in mods else tgt for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in mods:  # deephide.x.y where y is a name in module deephide.x
                    t = t.rpartition(".")[0]
                if t.startswith("deephide") and t != m:
                    out.add(t)
        edges[m] = out
    return edges


def _layer(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYERS, f"{module}: not in any layer; add its package to LAYERS in tests/system/test_layers.py"
    return LAYERS[top], top


def test_every_import_points_down_the_layers():
    mods = _modules()
    upward = []
    for m, targets in _imports(mods).items():
        lm, pm = _layer(m)
        for t in targets:
            lt, pt = _layer(t)
            if lt > lm:  # within a layer, imports are allowed as long as they make no cycle (the other test)
                upward.append(f"{m} -> {t} (layer {lm} imports layer {lt})")
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = _imports(_modules())
    # the root package's __init__ only defines __version__; importing it from below is not a cycle
    edges = {m: {t for t in ts if t != "deephide"} for m, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_imports_inside_functions(tmp_path, monkeypatch):
    """A lazy (in-function) upward import is still an import: the checker must see it."""
    pkg = tmp_path / "deephide"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("def f():\n    from ..cli import main\n")
    (pkg / "cli.py").write_text("from .data import f\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    with pytest.raises(AssertionError, match=r"deephide.data -> deephide.cli"):
        test_every_import_points_down_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()


def test_tests_mirror_the_package():
    """tests/PKG/ for a package of src/deephide, tests/test_MODULE.py for a top-level module (test_foundation.py:
    the layer-0 helpers together); cross-cutting suites in system/, benchmarks/, experiments/ only."""
    tests = Path(__file__).resolve().parents[1]
    cross = {"system", "benchmarks", "experiments"}
    for d in (p for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        assert d.name in cross or (SRC / d.name / "__init__.py").exists(), f"tests/{d.name}: no src/deephide/{d.name}"
        for sub in d.rglob("*"):
            if sub.is_dir() and not sub.name.startswith((".", "_")) and d.name not in cross:
                rel = sub.relative_to(tests)
                assert (SRC / rel).is_dir(), f"tests/{rel}: no src/deephide/{rel}"
    for f in tests.glob("test_*.py"):
        module = f.stem[len("test_"):]
        assert module == "foundation" or (SRC / f"{module}.py").exists(), f"tests/{f.name}: no src/deephide/{module}.py"


def test_no_experiment_or_benchmark_script_loads_another_by_path():
    """Scripts share code through the package, not through each other (importlib by path, runpy, sys.path beside
    a script other than benchmarks/ for its benchlib)."""
    root = SRC.parents[1]
    for f in (root / "experiments").rglob("*.py"):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("spec_from_file_location", "run_path"):
                raise AssertionError(f"{f.relative_to(root)}:{node.lineno}: loads a script by path")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                local = [n for n in names if (f.parent / f"{n.split('.')[0]}.py").exists()]
                assert not local, f"{f.relative_to(root)}:{node.lineno}: imports the script {local[0]}.py beside it"
