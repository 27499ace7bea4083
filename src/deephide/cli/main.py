"""The ``deephide`` command line: the parser, the core commands (evaluate, demo, semantic, list) and ``main``, which
turns every error into one line, never a traceback. The hider's commands (train-hider, protect, verify, reveal,
trace) are in cli/hider.py, the baseline attacks in cli/attack.py, grid and report in cli/harness.py."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import DeephideError, error_line
from .attack import add_attack_parser
from .hider import add_hider_parsers, add_trace_parser
from .options import parse_kv
from .dispatch import COMMANDS, Terminated, command
from .harness import add_grid_parser, add_report_parser


@command("evaluate")
def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..data.registry import test_spec_for
    from ..data import load_dataset
    from ..training.trainer import result_record, train_victim
    from ..fsutil import check_new_output, write_json
    from ..profiles import get_profile

    out = check_new_output(a.out, a.force) if a.out else None
    train = load_dataset(a.train, "train")
    test_spec = a.test or test_spec_for(a.train, train)
    if not test_spec:
        raise DeephideError(f"{a.train}: cannot tell which test set goes with this data; give --test")
    test = load_dataset(test_spec, "test")
    prof = get_profile("victim", a.profile, iterations=a.iterations, batch_size=a.batch_size)
    cm = None
    if a.countermeasure and a.countermeasure != "Vanilla":
        from ..countermeasures import build_countermeasure
        cm = build_countermeasure(a.countermeasure)
    res = result_record(train_victim(train, test, a.model, prof, seed=a.seed, countermeasure=cm,
                                     device=a.device, checkpoint=a.checkpoint, progress=not a.quiet))
    if out:
        write_json(out, res)
    print(f"{a.model} on {a.train} [{res['config']['countermeasure']}], seed {a.seed}: "
          f"clean test accuracy final {res['final_acc']:.2f}%  best {res['best_acc']:.2f}%  "
          f"last-3 mean {res['last3_acc']:.2f}%  ({res['wall_time_s']:.0f} s)")
    return 0


@command("demo")
def cmd_demo(a: argparse.Namespace) -> int:
    from ..pipeline import run_demo

    s = run_demo(Path(a.out), force=a.force, progress=not a.quiet, mode=a.mode, **parse_kv(a.set, "--set"))
    c, p = s["clean"], s["protected"]
    g = s["hider"].get("reveal_gate") or {}
    print()
    print(f"Deep Hiding demo on {s['config']['dataset']} ({s['config']['mode']}-wise, eps 8/255), "
          f"{s['minutes']:.1f} min")
    if g:
        print(f"  hider {s['config']['hider'] or 'trained here'}: "
              f"reveal PSNR {g['reveal_psnr']:.2f} dB from stored images "
              f"(trivial answer {g['trivial_psnr']:.2f} dB: {'hides' if g['hides'] else 'does NOT hide'})")
    print(f"  protected set: PSNR {s['verify']['psnr']:.2f} dB, SSIM {s['verify']['ssim']:.4f}, "
          f"L-inf {s['verify']['linf_levels']} levels")
    print(f"  victim {s['config']['victim_model']} ({s.get('victims_run', 'one after the other')}), "
          "clean test accuracy (final epoch):")
    print(f"    trained on clean data      {c['final_acc']:6.2f}%   ({c['wall_time_s']:.0f} s)")
    print(f"    trained on protected data  {p['final_acc']:6.2f}%   ({p['wall_time_s']:.0f} s)")
    print(f"  outputs: {a.out}/ (protected set, hider, summary.json)")
    return 0


@command("semantic")
def cmd_semantic(a: argparse.Namespace) -> int:
    from ..semantic.api import make_secrets, parse_source_options

    s = make_secrets(a.dataset, a.out, source=a.source, mode=a.mode, size=a.size, seed=a.seed,
                     options=parse_source_options(a.option or []), force=a.force,
                     sheets=a.sheets or str(Path(a.out) / "sheets"))
    st = s["stats_pixels"]
    print(f"{s['secrets']} secrets for {s['classes']} classes ({a.source}, {a.mode}-wise, {s['size']}px) "
          f"-> {s['out']}; "
          f"intra {st['intra']:.3f}, inter {st['inter']:.3f} (pixel features); "
          f"contact sheets in {a.sheets or Path(a.out) / 'sheets'}")
    return 0


@command("list")
def cmd_list(a: argparse.Namespace) -> int:
    what = a.what
    if what == "datasets":
        from ..data import DATASETS as reg
    elif what == "models":
        from ..models import MODELS as reg
    elif what == "countermeasures":
        from ..countermeasures import COUNTERMEASURES as reg
    elif what == "semantic-sources":
        from ..semantic import SEMANTIC_SOURCES as reg
    elif what == "attacks":
        from ..attacks import ATTACKS as reg
    elif what == "hiders":
        from ..hiding.hiderdir import SHIPPED_DIR, known_hiders, read_card
        for name, d in known_hiders().items():
            g = read_card(d).get("reveal_gate", {})
            note = (f"{g.get('mode', '?')}-wise, reveal {g['reveal_psnr']:.1f} dB "
                    f"vs trivial {g['trivial_psnr']:.1f} dB") if g else ""
            where = "" if d.parent == SHIPPED_DIR else f"\t({d.parent}, $DEEPHIDE_HIDERS)"
            print(f"{name}\t{note}{where}")
        return 0
    elif what == "profiles":
        from ..hiding.profiles import HIDER_PROFILES
        from ..profiles import PROFILES
        for stage, table in sorted({**PROFILES, "hider": HIDER_PROFILES}.items()):
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

    add_hider_parsers(sub)

    dm = sub.add_parser("demo", help="the main job on Fashion-MNIST: hider, protection, clean vs protected victims")
    dm.add_argument("--out", default="runs/demo")
    dm.add_argument("--mode", choices=["class", "sample"], default=None)
    dm.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a demo setting (JSON value), e.g. victim_model=\"resnet18\"")
    dm.add_argument("--force", action="store_true", help="start over instead of resuming")
    dm.add_argument("--quiet", action="store_true")

    add_trace_parser(sub)

    se = sub.add_parser("semantic", help="build a bank of semantic images (secrets) for a dataset")
    se.add_argument("--dataset", required=True, help="the training set the bank is for (its class names are used)")
    se.add_argument("--source", default="sig", help="see `deephide list semantic-sources`")
    se.add_argument("--mode", choices=["class", "sample"], default="sample")
    se.add_argument("--size", type=int, help="secret side (default: the dataset's image side)")
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--option", action="append", metavar="KEY=VALUE", help="source option, e.g. per_class=16")
    se.add_argument("--sheets", help="contact sheets directory (default: OUT/sheets)")
    se.add_argument("--out", required=True)
    se.add_argument("--force", action="store_true")

    add_grid_parser(sub)
    add_report_parser(sub)
    add_attack_parser(sub)

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", choices=["datasets", "models", "profiles", "countermeasures",
                                     "semantic-sources", "attacks", "hiders"])
    return p


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="deephide: %(levelname)s: %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.cmd](args)
    except DeephideError as e:
        print(f"deephide: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"deephide: {what} (rerun the same command to resume where checkpoints allow)", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    except MemoryError:
        print("deephide: error: out of memory (try a smaller --batch-size or fewer images)", file=sys.stderr)
        return 2
    except Exception as e:  # last resort: a bug must still be one line for the user (-v shows the traceback)
        if args.verbose:
            raise
        print(f"deephide: internal error: {error_line(e, with_type=True)} "
              f"(rerun with -v for the traceback and please report it)", file=sys.stderr)
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
