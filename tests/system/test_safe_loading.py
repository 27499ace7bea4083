"""Nothing untrusted is deserialised unsafely: a static scan of src/ (AST, not text) for loaders that can run code.

Flagged, with file:line:
- ``pickle.load(s)`` / ``Unpickler`` (also cPickle, _pickle, dill, joblib, marshal, shelve) outside the
  restricted unpickler module ``deephide/data/unpickle.py``;
- ``torch.load(`` without ``weights_only=True``;
- ``np.load(`` / ``numpy.load(`` without ``allow_pickle=False``;
- builtin ``eval(`` / ``exec(`` (``model.eval()`` is a method, not flagged);
- ``yaml.load(`` without a safe loader, ``yaml.unsafe_load`` / ``yaml.full_load`` (use ``yaml.safe_load``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
RESTRICTED_UNPICKLER = Path("deephide/data/unpickle.py")

_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
_PICKLE_FUNCS = {"load", "loads", "Unpickler", "open"}
_SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _kw_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> real dotted name for imports (``import numpy as np``, ``from pickle import loads``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def unsafe_calls(source: str, rel: Path) -> list[tuple[int, str]]:
    """(line, problem) for every unsafe deserialisation or code execution in ``source``."""
    tree = ast.parse(source, filename=str(rel))
    alias = _aliases(tree)
    found: list[tuple[int, str]] = []
    in_unpickler = rel.as_posix().endswith(RESTRICTED_UNPICKLER.as_posix())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and not in_unpickler:
            for b in node.bases:
                name = _dotted(b) or ""
                head, _, rest = name.partition(".")
                real = f"{alias.get(head, head)}.{rest}" if rest else alias.get(head, head)
                if real.split(".")[0] in _PICKLE_MODULES and real.endswith("Unpickler"):
                    found.append((node.lineno, f"subclasses {real} outside {RESTRICTED_UNPICKLER}"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        real = f"{alias.get(head, head)}.{rest}" if rest else alias.get(head, head)
        mod, _, fn = real.rpartition(".")
        if real in ("eval", "exec", "builtins.eval", "builtins.exec"):
            found.append((node.lineno, f"{real}( runs arbitrary code"))
        elif mod.split(".")[0] in _PICKLE_MODULES and fn in _PICKLE_FUNCS and not in_unpickler:
            found.append((node.lineno, f"{real}( outside the restricted unpickler ({RESTRICTED_UNPICKLER})"))
        elif real == "torch.load" and not _kw_is(node, "weights_only", True):
            found.append((node.lineno, "torch.load( without weights_only=True"))
        elif real in ("numpy.load", "numpy.lib.npyio.load") and not _kw_is(node, "allow_pickle", False):
            found.append((node.lineno, "np.load( without allow_pickle=False"))
        elif real in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            found.append((node.lineno, f"{real}( can build arbitrary objects; use yaml.safe_load"))
        elif real in ("yaml.load", "yaml.load_all"):
            loader = next((k.value for k in node.keywords if k.arg == "Loader"),
                          node.args[1] if len(node.args) > 1 else None)
            lname = (_dotted(loader) or "").rpartition(".")[2] if loader is not None else ""
            if lname not in _SAFE_YAML_LOADERS:
                found.append((node.lineno, f"{real}( without SafeLoader; use yaml.safe_load"))
    return found


def test_scanner_catches_what_it_should():
    bad = """
import pickle, torch, yaml
import numpy as np
from pickle import loads as L
import builtins
pickle.load(f)
L(b)
torch.load(p)
torch.load(p, weights_only=False)
np.load(p)
np.load(p, allow_pickle=flag)
eval("1")
builtins.exec("x")
yaml.load(s)
yaml.load(s, Loader=yaml.Loader)
yaml.full_load(s)
class U(pickle.Unpickler): pass
"""
    ok = """
import numpy as np, torch, yaml
model.eval()
torch.load(p, weights_only=True)
np.load(p, allow_pickle=False)
yaml.safe_load(s)
yaml.load(s, Loader=yaml.SafeLoader)
"""
    lines = sorted(ln for ln, _ in unsafe_calls(bad, Path("deephide/x.py")))
    assert lines == list(range(6, 18)), lines
    assert unsafe_calls(ok, Path("deephide/x.py")) == []
    assert unsafe_calls("import pickle\npickle.loads(b)\n", RESTRICTED_UNPICKLER) == []


def test_src_has_no_unsafe_loading():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, "src/ not found"
    problems = []
    for f in files:
        rel = f.relative_to(SRC)
        problems += [f"{f.relative_to(SRC.parent)}:{ln}: {what}" for ln, what in unsafe_calls(f.read_text(), rel)]
    if problems:
        pytest.fail("unsafe loading in src/:\n" + "\n".join(problems))


def test_restricted_unpickler_refuses_globals_and_keeps_arrays():
    import os
    import pickle

    import numpy as np

    from deephide.data.unpickle import restricted_loads
    from deephide.errors import DeephideError

    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for proto in (2, 4, 5):
        back = restricted_loads(pickle.dumps({b"data": a, b"labels": [1, 2], b"name": b"x"}, protocol=proto))
        assert np.array_equal(back[b"data"], a) and back[b"labels"] == [1, 2]

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    for obj in (Evil(), {b"k": [Evil()]}, np.array([Evil()], dtype=object)):
        with pytest.raises(DeephideError, match="refused to unpickle"):
            restricted_loads(pickle.dumps(obj), "evil.pkl")
