"""Command line: parses arguments and calls library functions; errors become one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from .errors import DeephideError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def deco(fn):
        COMMANDS[name] = fn
        return fn
    return deco


def _default_test_spec(train_spec: str, train_ds) -> str:
    """The test set that goes with ``train_spec``: same loader (test split) or recorded provenance."""
    from .data import DATASETS

    loader = train_spec.split("?", 1)[0].split(":", 1)[0]
    if loader in DATASETS and not Path(train_spec).exists():
        return train_spec
    spec = train_ds.provenance.get("test_spec")
    if spec:
        return spec
    raise DeephideError(f"{train_spec}: cannot tell which test set goes with this data; give --test")


@command("evaluate")
def cmd_evaluate(a: argparse.Namespace) -> int:
    from .data import load_dataset
    from .evaluation.trainer import result_record, train_victim
    from .fsutil import check_new_output, write_json
    from .profiles import get_profile

    out = check_new_output(a.out, a.force) if a.out else None
    train = load_dataset(a.train, "train")
    test = load_dataset(a.test or _default_test_spec(a.train, train), "test")
    prof = get_profile("victim", a.profile, iterations=a.iterations, batch_size=a.batch_size)
    cm = None
    if a.countermeasure and a.countermeasure != "Vanilla":
        from .countermeasures import build_countermeasure
        cm = build_countermeasure(a.countermeasure)
    res = result_record(train_victim(train, test, a.model, prof, seed=a.seed, countermeasure=cm,
                                     device=a.device, checkpoint=a.checkpoint, progress=not a.quiet))
    if out:
        write_json(out, res)
    print(f"{a.model} on {a.train} [{res['config']['countermeasure']}], seed {a.seed}: "
          f"clean test accuracy final {res['final_acc']:.2f}%  best {res['best_acc']:.2f}%  "
          f"last-3 mean {res['last3_acc']:.2f}%  ({res['wall_time_s']:.0f} s)")
    return 0


@command("list")
def cmd_list(a: argparse.Namespace) -> int:
    what = a.what
    if what == "datasets":
        from .data import DATASETS as reg
    elif what == "models":
        from .models import MODELS as reg
    elif what == "countermeasures":
        from .countermeasures import COUNTERMEASURES as reg
    elif what == "semantic-sources":
        from .semantic import SEMANTIC_SOURCES as reg
    elif what == "attacks":
        from .attacks import ATTACKS as reg
    elif what == "profiles":
        from .profiles import PROFILES
        for stage, table in sorted(PROFILES.items()):
            for name in sorted(table):
                print(f"{stage}/{name}")
        return 0
    else:  # argparse restricts choices; kept for safety
        raise DeephideError(f"unknown list '{what}'")
    for name in reg.names():
        print(f"{name}\t{reg.help(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deephide", description="Unlearnable image datasets by semantic deep hiding.")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    e = sub.add_parser("evaluate", help="train a victim model on a set and report clean test accuracy")
    e.add_argument("--train", required=True, help="training set: LOADER[:PATH] or a stored set / PNG folder / npz")
    e.add_argument("--test", help="test set (default: the test split of the --train loader)")
    e.add_argument("--model", default="resnet18")
    e.add_argument("--profile", default="cpu")
    e.add_argument("--countermeasure", default="Vanilla", help="see `deephide list countermeasures`")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--iterations", type=int, help="override the profile's iteration count")
    e.add_argument("--batch-size", type=int, help="override the profile's batch size")
    e.add_argument("--device", default="auto")
    e.add_argument("--checkpoint", help="directory for resumable checkpoints")
    e.add_argument("--out", help="write the full result record (JSON) here")
    e.add_argument("--force", action="store_true", help="replace an existing --out")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", choices=["datasets", "models", "profiles", "countermeasures", "semantic-sources", "attacks"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="deephide: %(levelname)s: %(message)s")
    try:
        return COMMANDS[args.cmd](args)
    except DeephideError as e:
        print(f"deephide: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deephide: interrupted (rerun the same command to resume where checkpoints allow)", file=sys.stderr)
        return 130
    except MemoryError:
        print("deephide: error: out of memory (try a smaller --batch-size or fewer images)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
