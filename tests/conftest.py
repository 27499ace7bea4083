"""Shared test setup: no test writes outside its temporary directories; one torch thread; the small training set and
secret bank the hider, protect and CLI tests share (module-scoped: each test module gets its own)."""

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


@pytest.fixture(scope="module")
def train():
    """64 synthetic 32x32 training images of 4 classes."""
    from deephide.data import load_dataset

    return load_dataset("synthetic?n=64&size=32&classes=4", "train")


@pytest.fixture(scope="module")
def bank(train):
    """A next-class secret bank for ``train``, 3 secrets per class, sample-wise."""
    from deephide.semantic import make_bank

    return make_bank("next-class", train, "sample", 32, seed=0, per_class=3)
