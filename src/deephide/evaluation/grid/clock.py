"""Which grid cell may still start under a time limit (``run_grid(time_limit_s=...)``).

A cell starts only if its estimated wall time ends within the limit; a cell that runs is never cut. The estimate
of a cell, the first of these that applies:

1. the mean wall time of this run's finished cells of its model and countermeasure, else the median recorded for
   them on this device kind (``cuda``, or a CPU with / without native bf16: they differ ~7x) in the records given
   (the grid's results file, its ``reuse`` files): an AT cell costs several Vanilla cells of the same model; each
   time scaled by the cell's training steps (iterations x batch size) over its own, so 937-step records estimate a
   40,000-step cell at 43x (without it, a campaign started one with 27 minutes left);
2. the same for its model, any countermeasure;
3. the median of the model with the most records there, scaled by training work: forward FLOPs of one image
   (``torch.utils.flop_counter``) x iterations x batch size. Conservative for a model larger than the reference,
   which uses a CPU's vector units better than a small one does;
4. none, when nothing was recorded on this device kind: then only a run's first cell starts, and only with at least
   :data:`UNKNOWN_CELL_S` (an hour) left (there is nothing to judge by, and a limit was asked for).

Why rule 3 exists: with only 2. and "the first always starts", a campaign's later grid started a ResNet-18 cell (an
hour or more on a 2-core CPU, never trained there before) with one minute of its time left.

Example::

    >>> clock = Clock(None)
    >>> clock.fits({"model": "fastcnn", "device": "cpu"})
    True
"""

from __future__ import annotations

import time
from collections import defaultdict
from statistics import median
from typing import Any, Callable, Iterable


def device_kind(device: str | None, cpu_bf16: bool | None) -> str | None:
    """``cuda`` for any CUDA device, else ``cpu/bf16`` or ``cpu/fp32`` (whether the CPU has native bf16); None for a
    CPU record that did not say (older records: their kind is unknown, so they inform no estimate)."""
    if str(device or "cpu").startswith("cuda"):
        return "cuda"
    return None if cpu_bf16 is None else "cpu/bf16" if cpu_bf16 else "cpu/fp32"


def _here_kind(device: str | None) -> str | None:
    if str(device or "cpu").startswith("cuda"):
        return "cuda"
    import torch

    from ...runtime import bf16_supported

    return device_kind("cpu", bf16_supported(torch.device("cpu")))


def _work(model: str, settings: dict[str, Any], shape: tuple[int, int, int], num_classes: int,
          memo: dict[str, float]) -> float:
    """Training work of a cell in forward FLOPs: one image's forward FLOPs x iterations x batch size."""
    if model not in memo:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from ...models import build_model

        net = build_model(model, num_classes, shape[0], shape[1]).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net(torch.zeros(1, *shape))
        memo[model] = float(max(1, fc.get_total_flops()))
    return memo[model] * float(settings.get("iterations") or 1) * float(settings.get("batch_size") or 1)


def _steps_ratio(cell: dict[str, Any], record: dict[str, Any]) -> float:
    """A cell's training steps (iterations x batch size) over a record's, from their profile settings; 1 where either
    does not say (the same model: its work per image cancels)."""
    def steps(s: dict[str, Any]) -> float | None:
        return float(s["iterations"]) * float(s["batch_size"]) if s.get("iterations") and s.get("batch_size") else None
    a, b = steps(cell), steps(record)
    return a / b if a and b else 1.0


def _keys(cell_or_record: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """What a wall time is filed under: (model, countermeasure label) when there is one, and (model,)."""
    model, cm = cell_or_record["model"], cell_or_record.get("countermeasure")
    return ((model, str(cm)), (model,)) if cm is not None else ((model,),)


#: the time a cell of unknown cost (rule 4) needs left before it may start: an hour (a ResNet-18 cell on 2 cores)
UNKNOWN_CELL_S = 3600.0


class Clock:
    """The time limit of one run: ``fits(cell)`` before starting a cell, ``finished(cell, wall_s)`` after.

    ``limit_s``: seconds from construction (None: no limit). ``shape``: a callable giving ``((C, H, W),
    num_classes)`` of a cell's data, needed only for rule 3 (FLOP scaling). ``learn(records)`` adds finished
    cells' results lines (any grid) whose ``wall_time_s`` inform the estimates.
    """

    def __init__(self, limit_s: float | None, shape: Callable[[dict[str, Any]], tuple[tuple[int, int, int], int]]
                 | None = None) -> None:
        self.limit_s, self.t0, self.started = limit_s, time.monotonic(), 0
        # keyed (model, countermeasure) and (model,); _seen also by device kind first
        self._mine: dict[tuple[str, ...], list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self._seen: dict[tuple[str, ...], list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self._shape, self._flops, self._kinds = shape, {}, {}

    def learn(self, records: Iterable[dict[str, Any]]) -> None:
        """Take the recorded wall times of finished cells (results lines) as estimates of their models."""
        for r in records:
            if r.get("wall_time_s") and r.get("model"):
                kind = device_kind(r.get("device"), (r.get("versions") or {}).get("cpu_bf16"))
                if kind is not None:
                    for key in _keys(r):
                        self._seen[(kind, *key)].append((float(r["wall_time_s"]), r.get("profile_settings") or {}))

    def recorded(self, kind: str, model: str | None = None) -> int:
        """How many learnt records of device ``kind`` there are (of ``model``, or of any model)."""
        return sum(len(v) for k, v in self._seen.items() if len(k) == 2 and k[0] == kind and model in (None, k[1]))

    def left_s(self) -> float:
        return float("inf") if self.limit_s is None else self.limit_s - (time.monotonic() - self.t0)

    def estimate(self, cell: dict[str, Any], kind: str | None = None) -> float | None:
        """Estimated wall seconds of ``cell`` (rules 1-3 of the module docstring), None if unknown; on this machine,
        or from the records of another device ``kind`` (:func:`device_kind`) when given (rule 1 then does not
        apply)."""
        model, here = cell["model"], kind is None
        if here:
            dev = cell.get("device")
            kind = self._kinds.setdefault(str(dev), _here_kind(dev))
        mine = cell.get("profile_settings") or {}
        for key in _keys(cell):  # (model, countermeasure), then (model,)
            if here and self._mine[key]:
                return sum(w * _steps_ratio(mine, s) for w, s in self._mine[key]) / len(self._mine[key])
            if self._seen.get((kind, *key)):
                return median(w * _steps_ratio(mine, s) for w, s in self._seen[(kind, *key)])
        refs = [(k[1], [(w, s) for w, s in v if s.get("iterations") and s.get("batch_size")])  # whose work is known
                for k, v in self._seen.items() if k[0] == kind and len(k) == 2]
        refs = [(m, v) for m, v in refs if v]
        if not refs or self._shape is None:
            return None
        ref_model, ref = max(refs, key=lambda mv: len(mv[1]))
        shape, n_cls = self._shape(cell)
        per_work = median(w / _work(ref_model, s, shape, n_cls, self._flops) for w, s in ref)
        return per_work * _work(model, cell.get("profile_settings") or {}, shape, n_cls, self._flops)

    def fits(self, cell: dict[str, Any]) -> bool:
        """Whether ``cell`` may start now: no limit, or its estimate ends within the limit (rule 4 for none)."""
        if self.limit_s is None:
            return True
        left = self.left_s()
        if left <= 0:
            return False
        est = self.estimate(cell)
        ok = (self.started == 0 and left >= UNKNOWN_CELL_S) if est is None else est <= left
        self.started += ok
        return ok

    def finished(self, cell: dict[str, Any], wall_s: float) -> None:
        """Record a finished cell's own wall time (its run, alongside whatever else ran)."""
        if wall_s > 0:
            for key in _keys(cell):
                self._mine[key].append((float(wall_s), cell.get("profile_settings") or {}))
