"""Running a grid: the ``local`` executor (cells one after another in this process), ``pool`` (``workers`` cells at
once in worker processes of this machine: several cells sharing one GPU, or the cores of a machine without Ray) and
``ray`` (one Ray task per cell); the driver is the only writer. ``run_grid`` and ``grid_status``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DeephideError, error_line
from ...fsutil import write_json
from .config import GridConfig, load_config
from .cells import _worker_cell, _resolve_cell_specs, cached_dataset, content_key, expand, run_cell
from .clock import Clock
from .results import ResultsWriter, read_results, sidecar_path


EXECUTORS = ("local", "pool", "ray")


@dataclass
class GridSummary:
    """What a ``run_grid`` call did."""

    out: Path
    total: int
    skipped: int = 0
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, one-line error)
    stopped: str | None = None  # "time_limit" when cells were left for a later call


def _data_shape(cell: dict[str, Any]) -> tuple[tuple[int, int, int], int]:
    """((C, H, W), number of classes) of a cell's test data (for the clock's FLOP scaling)."""
    ds = cached_dataset((cell.get("resolved") or {}).get("test") or cell["test"], "test")
    h, w, c = ds.shape  # an ImageSet's images are (N, H, W, C)
    return (c, h, w), ds.num_classes


def _describe(cell: dict[str, Any]) -> str:
    mix = f" p={cell['mixture']:g}" if cell["mixture"] is not None else ""
    return f"{cell['row']} {cell['model']} {cell['countermeasure']} seed {cell['seed']}{mix}"


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _run_local(cells: list[dict[str, Any]], writer: ResultsWriter, summary: GridSummary, progress: bool,
               clock: Clock) -> None:
    for i, cell in enumerate(cells, 1):
        if not clock.fits(cell):  # a cheaper cell later on may still fit
            summary.stopped = "time_limit"
            continue
        t0 = time.perf_counter()
        try:
            line = run_cell(cell, progress=progress)
        except DeephideError as e:
            summary.failed.append((cell["key"], str(e)))
            _say(progress, f"[{i}/{len(cells)}] {_describe(cell)}: FAILED: {e}")
            continue
        writer.append(line)
        summary.ran += 1
        clock.finished(cell, time.perf_counter() - t0)
        _say(progress, f"[{i}/{len(cells)}] {_describe(cell)}: {line['acc']:.2f}% ({time.perf_counter() - t0:.0f} s)")


def _run_pool(cells: list[dict[str, Any]], writer: ResultsWriter, summary: GridSummary, progress: bool,
              clock: Clock, workers: int) -> None:
    import multiprocessing as mp
    import queue

    finished: queue.SimpleQueue = queue.SimpleQueue()
    pool = mp.get_context("spawn").Pool(workers)  # spawn: CUDA cannot be used again in a forked child
    try:
        todo, in_flight, done_n = list(cells), 0, 0
        while todo or in_flight:
            # no more in flight than workers (more would only queue): a time limit then stops new cells from
            # starting without cutting any that run
            while todo and in_flight < workers:
                cell = todo.pop(0)
                if not clock.fits(cell):  # left for a later run; a cheaper cell later on may still fit
                    summary.stopped = "time_limit"
                    continue
                pool.apply_async(_worker_cell, (cell,), callback=lambda line, c=cell: finished.put((c, line, None)),
                                 error_callback=lambda e, c=cell: finished.put((c, None, e)))
                in_flight += 1
            if not in_flight:
                break
            cell, line, err = _next_finished(finished)
            in_flight, done_n = in_flight - 1, done_n + 1
            if err is not None:  # one cell's error is recorded; the others go on
                summary.failed.append((cell["key"], error_line(err, 300, with_type=True)))
                _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: FAILED: "
                               f"{error_line(err, 300, with_type=True)}")
                continue
            writer.append(line)
            summary.ran += 1
            clock.finished(cell, float(line.get("wall_time_s") or 0.0))
            _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: "
                           f"{line['acc']:.2f}% ({line['wall_time_s']:.0f} s)")
        pool.close()
        pool.join()
    finally:
        pool.terminate()  # an interrupt: no worker goes on training cells nobody will record


def _next_finished(finished: Any) -> Any:
    """The next finished cell from the pool's callbacks. Waits in short slices: a signal handler (SIGTERM -> exit,
    SIGINT) runs only between them, and one blocking get() held a stopped campaign until its cell ended (minutes)."""
    import queue

    while True:
        try:
            return finished.get(timeout=0.5)
        except queue.Empty:
            continue


def _host_port(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a plain ``host:port`` address; None for ``auto``, ``local``, ``ray://`` or none."""
    if not address or "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable head (ray.init would retry for many minutes)."""
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        raise DeephideError(f"ray: no cluster answers at {address} ({e.strerror or e})") from None


def _loopback_ray(address: str | None) -> None:
    """Keep a driver of a loopback-only head on loopback.

    On Linux Ray replaces 127.0.0.1 by the machine's network address when it dials the head;
    a head started with ``--node-ip-address=127.0.0.1`` listens on loopback only, so the driver
    would retry for minutes. Ray's own switch for loopback-only nodes turns that off.
    """
    hp = _host_port(address)
    if hp is None or hp[0] not in ("127.0.0.1", "localhost", "::1"):
        return
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray._private.ray_constants as rc  # read at import time: set the constant too

        rc.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # another Ray layout: the variable alone must do
        pass


def _match_head_auth(address: str | None) -> None:
    """Send the cluster token when one is configured, as ``ray start --head`` does.

    Since Ray 2.59 a head started where a token exists (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``) requires it, but a driver given an explicit address never turns token mode on
    by itself and is refused (InvalidAuthToken). An explicit ``RAY_AUTH_MODE`` is always respected.
    """
    if address in (None, "auto", "local") or os.environ.get("RAY_AUTH_MODE"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication: nothing to match
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _run_ray(cells: list[dict[str, Any]], writer: ResultsWriter, summary: GridSummary, cfg: GridConfig,
             address: str | None, progress: bool, clock: Clock) -> None:
    try:
        import ray
    except ImportError:
        raise DeephideError("executor 'ray' needs the ray package (pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        _check_reachable(address)
        _loopback_ray(address)
        _match_head_auth(address)
        kw: dict[str, Any] = {"address": address, "logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:  # a fresh local cluster: no dashboard to serve
            kw["include_dashboard"] = False
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise DeephideError(f"ray: cannot connect to cluster at {address or '(new local cluster)'}: "
                                f"{error_line(e, 300, with_type=True)}") from None
    try:
        res = cfg.resources
        opts: dict[str, Any] = {"num_cpus": res["cpus"], "max_retries": 1}
        if res["gpus"] > 0:
            opts["num_gpus"] = res["gpus"]
        task = ray.remote(**opts)(_worker_cell)
        # as many tasks in flight as the cluster runs at once (more only queue): a time limit then stops new
        # cells from starting without cancelling any that run
        width = max(1, int(ray.cluster_resources().get("CPU", 1) // res["cpus"]))
        if res["gpus"] > 0:
            width = min(width, max(1, int(ray.cluster_resources().get("GPU", 0) // res["gpus"])))
        queue, refs, pending, done_n = list(cells), {}, [], 0
        try:
            while queue or pending:
                while queue and len(pending) < width:
                    cell = queue.pop(0)
                    if not clock.fits(cell):  # left for a later run; a cheaper cell later on may still fit
                        summary.stopped = "time_limit"
                        continue
                    ref = task.remote(cell)
                    refs[ref] = cell
                    pending.append(ref)
                if not pending:
                    break
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    cell, done_n = refs[ref], done_n + 1
                    try:
                        line = ray.get(ref)
                    except Exception as e:  # a task's error arrives wrapped; record it, keep the others going
                        summary.failed.append((cell["key"], error_line(e, 300, with_type=True)))
                        _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: FAILED: "
                                       f"{error_line(e, 300, with_type=True)}")
                        continue
                    writer.append(line)
                    summary.ran += 1
                    clock.finished(cell, float(line.get("wall_time_s") or 0.0))
                    _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: {line['acc']:.2f}% "
                                   f"({line['wall_time_s']:.0f} s)")
        except BaseException:
            for ref in pending:  # do not leave the cluster busy with cells nobody will record
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


def _reuse(cfg: GridConfig, todo: list[dict[str, Any]], writer: ResultsWriter) -> list[dict[str, Any]]:
    """Copy into ``cfg.out`` the finished cells of the ``reuse`` results files that have a todo cell's key (the same
    training under this grid's labels; ``reused_from`` says where); return the cells still to train. With
    ``identity: content`` a record keyed by label (an older grid) counts too when the training-set fingerprint it
    recorded gives the same content key (``content_key``)."""
    if not cfg.reuse or not todo:
        return todo
    found: dict[str, dict[str, Any]] = {}
    for path in cfg.reuse:
        if Path(path).resolve() != Path(cfg.out).resolve() and Path(path).exists():
            for r in read_results(path):
                for k in (r["key"], content_key(r) if cfg.identity == "content" else None):
                    if k is not None:
                        found.setdefault(k, {**r, "reused_from": str(path)})
    left = []
    for c in todo:
        r = found.get(c["key"])
        if r is None:
            left.append(c)
        else:  # this grid's labels, key and place; the measurement as it was
            writer.append({**r, **{k: c[k] for k in ("key", "row", "countermeasure", "grid", "order")}})
    return left


def run_grid(config_path: str | os.PathLike, executor: str = "local", address: str | None = None,
             progress: bool = True, time_limit_s: float | None = None, workers: int | None = None) -> GridSummary:
    """Run every cell of the config at ``config_path`` not yet in its results file.

    executor: ``local`` (sequential, this process), ``pool`` (``workers`` worker processes, default one per core
    the config's ``resources.cpus`` allows; on one GPU they share it) or ``ray`` (``ray.init(address=address)``; one
    task per cell with the config's ``resources``; address None starts a local cluster). Set paths are
    made absolute before tasks are sent, so workers need the same filesystem (one machine or a
    shared disk). A loopback head (``ray start --head --node-ip-address=127.0.0.1``, started with
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is reached on loopback. Results are appended to ``out`` as cells finish; a
    failed cell is reported and left out (rerun to retry), and the call then raises DeephideError.
    ``time_limit_s``: start no cell that would, at its estimated wall time (:mod:`.clock`: this run's cells of its
    model, else those recorded in ``out`` and ``reuse`` on this device kind, else FLOP-scaled from another model),
    end past the limit; cells that run are never cut (``summary.stopped`` says "time_limit" when some were left).
    """
    if executor not in EXECUTORS:
        raise DeephideError(f"unknown executor '{executor}'; choose one of: {', '.join(EXECUTORS)}")
    clock = Clock(time_limit_s, shape=_data_shape)
    cfg = load_config(config_path)
    cells = expand(cfg)
    summary = GridSummary(out=cfg.out, total=len(cells))
    with ResultsWriter(cfg.out) as writer:
        write_json(sidecar_path(cfg.out), {**cfg.to_json(), "cell_keys": [c["key"] for c in cells]})
        done = {r["key"] for r in read_results(cfg.out)}
        todo = [c for c in cells if c["key"] not in done]
        todo = _reuse(cfg, todo, writer)
        summary.skipped = len(cells) - len(todo)
        if time_limit_s is not None:  # the estimates of what each cell will take (evaluation/grid/clock.py)
            clock.learn(r for path in [cfg.out, *(cfg.reuse or [])] for r in read_results(path))
        _say(progress, f"grid {cfg.name}: {len(cells)} cells, {summary.skipped} already in {cfg.out}, "
                       f"{len(todo)} to run ({executor})")
        if todo:
            _resolve_cell_specs(cfg, todo)
            if executor == "local":
                _run_local(todo, writer, summary, progress, clock)
            elif executor == "pool":
                n = workers or max(1, (os.cpu_count() or 1) // max(1, int(cfg.resources["cpus"])))
                _run_pool(todo, writer, summary, progress, clock, min(n, len(todo)))
            else:
                _run_ray(todo, writer, summary, cfg, address, progress, clock)
    if summary.failed:
        key, msg = summary.failed[0]
        raise DeephideError(f"{cfg.out}: {len(summary.failed)} of {len(todo)} cells failed (rerun to retry); "
                            f"first ({key}): {msg}")
    return summary


def grid_status(config_path: str | os.PathLike) -> list[tuple[dict[str, Any], bool]]:
    """Every cell of the config with whether its result is already in the results file."""
    cfg = load_config(config_path)
    done = {r["key"] for r in read_results(cfg.out)}
    return [(c, c["key"] in done) for c in expand(cfg)]
