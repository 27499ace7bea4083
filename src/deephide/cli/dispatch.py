"""Command name -> handler: every ``deephide`` subcommand registers here with :func:`command` (a leaf module, so
that command modules and the entry point import it without a cycle)."""

from __future__ import annotations

import argparse
from typing import Callable

#: subcommand name -> ``fn(parsed args) -> exit status``
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable:
    """Register the decorated function as the handler of subcommand ``name``."""
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return deco


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, `kill`) turned into an exception, so that every open output is
    removed or finished by its context manager exactly as on Ctrl-C, instead of the process vanishing with a
    hidden temporary output left behind."""
