"""Shared test setup: no test writes outside its temporary directories; one torch thread."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Trained helper models (the LFC ResNet-18) go to a throwaway cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DEEPHIDE_CACHE", str(tmp_path_factory.mktemp("deephide-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models run faster on one thread, and CI machines are often shared (2 cores here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
