"""Multi-process training under ``torchrun``: the collective helpers (DistributedDataParallel, gloo on CPU,
NCCL on GPU) that the victim trainer and hider training call. The entry point is ``deephide.launch``:

    torchrun --nproc_per_node 2 -m deephide.launch evaluate --train ... (as `deephide evaluate`)
    torchrun --nproc_per_node 2 -m deephide.launch train-hider --data ... (as `deephide train-hider`)

Semantics (the contract the trainers keep):
- Every process computes the same global batch indices from the seed (and, for the victim trainer,
  the whole global batch's augmentation, so the random draws are those of a single process) and keeps
  its own contiguous shard of ``batch_size / world_size`` samples. The global batch size and sample
  order therefore equal the single-process run; DDP averages gradients over the processes, which for
  per-sample-mean losses is the single-process gradient up to floating-point summation order.
- BatchNorm statistics are per process (plain DDP, ``broadcast_buffers``: the running statistics are
  rank 0's). SyncBatchNorm is not used: torch supports it on GPUs only, and CPU and GPU runs should
  mean the same thing. A BatchNorm net therefore differs from a single-process run by the noise of
  normalising over ``batch_size / world_size`` samples instead of ``batch_size``; a net without
  BatchNorm (the INN hider, the ViT) matches up to float rounding.
- Only rank 0 writes checkpoints, logs, result files and progress bars; every rank returns the result.
- Evaluation is sharded over the ranks and the correct counts are summed (all_reduce).

A plain process (no torchrun variables, or ``WORLD_SIZE=1``) never touches torch.distributed: every
helper below is then a no-op and single-process results stay bit-identical. Importing this module
has no side effects; only :func:`init_from_env` (called by ``deephide.launch``) joins a process group.
"""

from __future__ import annotations

import gc
import inspect
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from ..errors import DeephideError
from ..runtime import pick_device

@dataclass(frozen=True)
class World:
    """Where this process stands: ``world_size`` processes, this one is ``rank`` (0 = the writer)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when several processes train together (gradients are all-reduced)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and shows progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DeephideError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def env_world() -> World:
    """The world torchrun describes in WORLD_SIZE / RANK / LOCAL_RANK (a single process when unset)."""
    w = World(_env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0))
    if w.world_size < 1 or not 0 <= w.rank < w.world_size or w.local_rank < 0:
        raise DeephideError(f"inconsistent torchrun environment: WORLD_SIZE={w.world_size} RANK={w.rank} "
                            f"LOCAL_RANK={w.local_rank}")
    return w


def current() -> World:
    """The process group this process has joined, or a single-process world when none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_world_size(), dist.get_rank(), _env_int("LOCAL_RANK", 0))


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise (CPU)."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: str = "auto") -> World:
    """Join the process group torchrun set up (WORLD_SIZE > 1); a no-op in a plain process.

    On CUDA each process takes the GPU of its LOCAL_RANK as its current device, so every
    ``pick_device("auto")`` / ``"cuda"`` afterwards means that GPU.
    """
    w = env_world()
    if not w.active or (dist.is_available() and dist.is_initialized()):
        return current()
    if not dist.is_available():
        raise DeephideError("this torch build has no torch.distributed; run without torchrun")
    dev = pick_device(device)
    extra = {}
    if dev.type == "cuda":
        if w.local_rank >= torch.cuda.device_count():
            raise DeephideError(f"LOCAL_RANK {w.local_rank} but only {torch.cuda.device_count()} GPU(s); "
                                "use --nproc_per_node <= the GPU count")
        dev = torch.device("cuda", dev.index if dev.index is not None else w.local_rank)
        torch.cuda.set_device(dev)
        if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch >= 2.3
            extra["device_id"] = dev  # NCCL then knows each rank's GPU (barriers need it)
    dist.init_process_group(backend_for(dev), rank=w.rank, world_size=w.world_size, **extra)
    return current()


def shutdown() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        # DDP wrappers sit in reference cycles and keep the group's C++ worker threads alive: free them
        # now, or the threads are torn down during interpreter exit (a rare "terminate called" abort)
        gc.collect()
        dist.destroy_process_group()


def shard(n: int, world: World, what: str = "batch size") -> slice:
    """This rank's contiguous share of a global batch of ``n`` rows (equal shares, so DDP's mean is exact)."""
    if n % world.world_size:
        raise DeephideError(f"{what} {n} is not divisible by the {world.world_size} processes; "
                            "choose a batch size that is a multiple of --nproc_per_node")
    per = n // world.world_size
    return slice(world.rank * per, (world.rank + 1) * per)


def split(n: int, world: World) -> slice:
    """This rank's share of ``n`` items for evaluation: near-equal contiguous parts (any ``n``)."""
    return slice(world.rank * n // world.world_size, (world.rank + 1) * n // world.world_size)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """``model`` under DistributedDataParallel when several processes train, else ``model`` itself.

    Parameters are shared with ``model``: an optimiser built on ``model.parameters()`` steps the
    DDP-synchronised weights. Call the returned module for training forwards only.
    """
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    dev = next(model.parameters()).device
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    return DDP(model, device_ids=ids)


def _comm_device() -> torch.device:
    """Where collective tensors must live: the current GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: Sequence[float], world: World) -> list[float]:
    """Elementwise sum of ``values`` over all ranks (float64; the values themselves when single)."""
    if not world.active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(flag: bool, world: World) -> bool:
    """True when ``flag`` is true on any rank (so every rank takes the same branch)."""
    if not world.active:
        return bool(flag)
    return all_reduce_sum([1.0 if flag else 0.0], world)[0] > 0


def sync_buffers(model: torch.nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics) before evaluating or returning."""
    if not world.active:
        return
    for b in model.buffers():
        if b.device.type == "cpu" and dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
            tmp = b.to(_comm_device())
            dist.broadcast(tmp, src=0)
            b.copy_(tmp)
        else:
            dist.broadcast(b, src=0)


def barrier(world: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if world.active:
        dist.barrier()
