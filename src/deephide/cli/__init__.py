"""The ``deephide`` command line (the top of the package: it imports every layer, nothing imports it but
``deephide.launch``). ``main`` is the console script; subcommands register in ``dispatch.COMMANDS``:
``main`` (core commands and the parser), ``hider`` (train-hider, protect, verify, reveal, trace), ``attack``
(baseline attacks), ``harness`` (grid, report); ``options`` parses their KEY=VALUE options.
"""

from .dispatch import COMMANDS, Terminated, command
from .main import build_parser, main

__all__ = ["COMMANDS", "Terminated", "build_parser", "command", "main"]
