"""``torchrun ... -m deephide.launch COMMAND ARGS``: a ``deephide`` command on every rank of a torchrun job.

    torchrun --nproc_per_node 2 -m deephide.launch evaluate --train ... (as `deephide evaluate`)
    torchrun --nproc_per_node 2 -m deephide.launch train-hider --data ... (as `deephide train-hider`)

The top of the package: it joins the process group, runs the command line of ``deephide.cli`` on every rank
and leaves the group. What the ranks do together (batch shards, gradient averaging, who writes) is the
library in ``deephide.training.distributed``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from typing import Iterator

from .errors import DeephideError
from .training.distributed import World, barrier, init_from_env, shutdown

#: The subcommands that run distributed (the others gain nothing from several processes).
COMMANDS = ("evaluate", "train-hider")



@contextlib.contextmanager
def _silent(on: bool) -> Iterator[None]:
    """Swallow stdout on ranks other than 0 (each rank would print the same summary line)."""
    if not on:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def prepare_args(args: argparse.Namespace, world: World) -> None:
    """Make a parsed ``deephide`` command line safe to run on every rank.

    Ranks other than 0 show no progress and write no ``--out`` record (``evaluate``); for
    ``train-hider --force`` rank 0 alone wipes the old hider directory before anyone starts.
    """
    if not world.is_main:
        args.quiet = True
        if args.cmd == "evaluate":
            args.out = None
    if args.cmd == "train-hider" and args.force:
        if world.is_main:
            from .fsutil import remove_output_dir
            from .hiding.hiderdir import HIDER_DIR_ENTRIES

            remove_output_dir(args.out, HIDER_DIR_ENTRIES, "hider")
        barrier(world)
        args.force = False  # done once, above; a second wipe would race rank 0's new files


def main(argv: list[str] | None = None) -> int:
    """``torchrun ... -m deephide.launch COMMAND ARGS``: the ``deephide`` command on every rank."""
    from . import cli

    parser = cli.build_parser()
    parser.prog = "torchrun ... -m deephide.launch"
    args = parser.parse_args(argv)
    if args.cmd not in COMMANDS:
        parser.error(f"{args.cmd} does not run distributed; choose one of: {', '.join(COMMANDS)}")
    world = World()
    try:
        world = init_from_env(args.device)
        try:
            prepare_args(args, world)
            with _silent(not world.is_main):
                rc = cli.COMMANDS[args.cmd](args)
            barrier(world)  # no rank tears the group down while another still talks to it
            return rc
        finally:
            shutdown()
    except DeephideError as e:
        where = f" (rank {world.rank})" if world.active else ""
        print(f"deephide: error{where}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
