"""Helpers of the experiment-script tests: a script loaded as a fresh module (the scripts are not a package)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def script():
    """``script(path under the repository root, module name)``: that script's module, freshly executed."""
    def load(rel: str, name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses and pickling look their module up here
        spec.loader.exec_module(mod)
        return mod
    return load
