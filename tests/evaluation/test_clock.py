"""deephide.evaluation.grid.clock: which cell may start under a grid's time limit."""

from __future__ import annotations

import torch

from deephide.evaluation.grid.clock import Clock, device_kind
from deephide.runtime import bf16_supported

HERE = bool(bf16_supported(torch.device("cpu")))  # this CPU's kind: records from it inform the estimates
FMNIST = lambda cell: ((3, 32, 32), 10)  # noqa: E731  (Fashion-MNIST as the grids train on it)
FAST = {"iterations": 937, "batch_size": 128}


def record(model: str, wall: float, bf16: bool = HERE, device: str = "cpu", cm: str = "Vanilla", **settings) -> dict:
    return {"model": model, "countermeasure": cm, "wall_time_s": wall, "device": device,
            "versions": {"cpu_bf16": bf16}, "profile_settings": {**FAST, **settings}}


def cell(model: str, cm: str = "Vanilla", **settings) -> dict:
    return {"model": model, "countermeasure": cm, "device": "cpu", "profile_settings": {**FAST, **settings}}


def test_device_kind_separates_cuda_and_the_two_cpu_kinds():
    assert device_kind("cuda:0", None) == "cuda" and device_kind("cpu", True) == "cpu/bf16"
    assert device_kind(None, False) == "cpu/fp32" and device_kind("cpu", None) is None  # an older record: unknown


def test_recorded_median_of_the_model_on_this_cpu_kind_decides():
    clock = Clock(150.0, shape=FMNIST)
    clock.learn([record("fastcnn", w) for w in (90, 100, 400)] + [record("fastcnn", 1000, bf16=not HERE),
                                                                  record("fastcnn", 5, device="cuda")])
    assert clock.estimate(cell("fastcnn")) == 100  # the other CPU kind and the GPU do not count
    assert clock.fits(cell("fastcnn"))
    tight = Clock(60.0, shape=FMNIST)
    tight.learn([record("fastcnn", 100)])
    assert not tight.fits(cell("fastcnn"))


def test_a_model_never_run_here_is_estimated_by_training_flops_and_does_not_start_late():
    """The bug this module fixes: with a minute left, a ResNet-18 cell (never trained on this CPU) started."""
    clock = Clock(60.0, shape=FMNIST)
    clock.learn([record("fastcnn", 30.0) for _ in range(3)])
    fast, r18 = clock.estimate(cell("fastcnn")), clock.estimate(cell("resnet18"))
    assert fast == 30.0 and r18 > 20 * fast  # ResNet-18 does far more work per image
    assert clock.estimate(cell("resnet18", iterations=2 * 937)) == 2 * r18  # linear in the number of steps
    assert not clock.fits(cell("resnet18")) and clock.fits(cell("fastcnn"))


def test_a_countermeasure_with_its_own_records_is_estimated_by_them():
    """An AT cell (PGD in every step) costs several Vanilla cells of the same model."""
    clock = Clock(200.0, shape=FMNIST)
    clock.learn([record("fastcnn", 50.0), record("fastcnn", 60.0), record("fastcnn", 300.0, cm="AT-2/255")])
    assert clock.estimate(cell("fastcnn", "AT-2/255")) == 300.0 and not clock.fits(cell("fastcnn", "AT-2/255"))
    assert clock.estimate(cell("fastcnn", "Cutout")) == 60.0  # none of its own: the model's median
    clock.finished(cell("fastcnn", "Vanilla"), 10.0)
    assert clock.estimate(cell("fastcnn", "AT-2/255")) == 300.0 and clock.estimate(cell("fastcnn", "Cutout")) == 10.0


def test_this_runs_own_cells_override_the_records():
    clock = Clock(100.0, shape=FMNIST)
    clock.learn([record("fastcnn", 500.0)])
    assert not clock.fits(cell("fastcnn"))
    clock.finished(cell("fastcnn"), 20.0)
    clock.finished(cell("fastcnn"), 40.0)
    assert clock.estimate(cell("fastcnn")) == 30.0 and clock.fits(cell("fastcnn"))


def test_nothing_recorded_on_this_kind_starts_only_the_first_cell():
    clock = Clock(1000.0, shape=FMNIST)
    clock.learn([record("fastcnn", 10.0, device="cuda"), record("fastcnn", 10.0, bf16=None)])
    assert clock.estimate(cell("fastcnn")) is None
    assert not clock.fits(cell("fastcnn"))  # under an hour left: a cell of unknown cost does not start
    clock = Clock(4000.0, shape=FMNIST)
    clock.learn([record("fastcnn", 10.0, device="cuda")])
    assert clock.fits(cell("fastcnn")) and not clock.fits(cell("resnet20"))


def test_no_limit_always_fits_and_a_spent_limit_never_does():
    assert Clock(None).fits(cell("resnet18"))
    spent = Clock(0.0, shape=FMNIST)
    assert not spent.fits(cell("fastcnn")) and spent.started == 0


def test_the_grid_gives_the_clock_channels_first_shapes():
    """A campaign crashed in the FLOP count: the grid passed an ImageSet's (H, W, C) where (C, H, W) is meant."""
    from deephide.evaluation.grid.executors import _data_shape

    spec = "synthetic?n=8&size=32&classes=4"
    assert _data_shape({"test": spec}) == ((3, 32, 32), 4)
    clock = Clock(1e9, shape=_data_shape)
    clock.learn([record("fastcnn", 30.0)])
    assert clock.estimate({**cell("resnet18"), "test": spec}) > 30.0


def test_recorded_times_scale_with_the_cells_training_steps():
    """The bug this fixes: 937-step records estimated a 40,000-step cell at their own ~1 min, and a campaign started
    one with 27 minutes left."""
    clock = Clock(1800.0, shape=FMNIST)
    clock.learn([record("fastcnn", 50.0) for _ in range(3)])
    long = cell("fastcnn", iterations=40_000)
    assert abs(clock.estimate(long) - 50.0 * 40_000 / 937) < 1e-6 and not clock.fits(long)
    assert clock.estimate(cell("fastcnn", iterations=4685)) == 250.0 and clock.fits(cell("fastcnn", iterations=4685))
    clock.finished(cell("fastcnn", iterations=4685), 300.0)  # this run's own cells scale the same way
    assert clock.estimate(cell("fastcnn")) == 300.0 * 937 / 4685
    assert clock.estimate(cell("fastcnn", batch_size=256)) == 2 * 300.0 * 937 / 4685
