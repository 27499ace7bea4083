"""``deephide attack <name> --data <set> --out <dir>``: make a protected set with a baseline attack.

``add_attack_parser`` is called by ``cli.main.build_parser``; ``cmd_attack`` is registered as ``attack``;
``deephide list attacks`` lists the registry.
"""

from __future__ import annotations

import argparse
from typing import Any

from .dispatch import command
from .options import parse_kv


def add_attack_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``attack`` subcommand to ``sub`` (an argparse sub-parsers object); returns its parser."""
    p = sub.add_parser("attack", help="protect a set with a baseline attack (EM, REM, LSP, AR, OPS, ...; "
                                      "see `deephide list attacks`)")
    p.add_argument("name", help="attack name, e.g. EM, EM-C, REM, LSP, AR, OPS, random-noise-C, "
                                "semantic-added-C, ISGAN")
    p.add_argument("--data", required=True, help="training set: LOADER[:PATH] or a stored set / PNG folder / npz")
    p.add_argument("--out", required=True, help="directory for the protected set (stored ImageSet)")
    p.add_argument("--eps", default="8/255", help="L-inf budget: 8/255, 8 (levels) or 0.031 (default 8/255)")
    p.add_argument("--profile", default="cpu", choices=["paper", "cpu", "tiny"],
                   help="paper: published settings (GPU); cpu: shortened for a 2-core CPU (recorded); tiny: tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="torch device (auto: CUDA if present, else CPU)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile setting (e.g. pgd_steps=5, source=next-class); repeatable")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


@command("attack")
def cmd_attack(args: argparse.Namespace) -> int:
    """Run the attack and save the protected set atomically; refuses an existing --out without --force."""
    from ..attacks import ATTACKS, run_attack
    from ..data import load_dataset
    from ..data.registry import test_spec_for
    from ..data.stored import save_imageset
    from ..fsutil import check_new_output
    from ..ops.budget import parse_eps

    ATTACKS.get(args.name)  # an unknown name fails before any data is read
    levels = parse_eps(args.eps)
    options = parse_kv(args.option, "--option", typed=False)
    check_new_output(args.out, args.force)
    train = load_dataset(args.data, "train")
    prot = run_attack(args.name, train, eps_levels=levels, profile=args.profile, seed=args.seed,
                      device=args.device, progress=not args.quiet, **options)
    test_spec = test_spec_for(args.data, train)
    if test_spec:  # lets `deephide evaluate --train <out>` find the matching test set
        prot = prot.replace(test_spec=test_spec)
    save_imageset(prot, args.out, force=args.force)
    p = prot.provenance["protection"]
    cost = p["cost"]
    print(f"{args.name} ({p['mode']}-wise, {p['budget']}, profile {args.profile}) -> {args.out}: "
          f"{len(prot)} images, L-inf {p['linf_levels']} levels, mean |delta| {p['mean_abs_levels']:.2f}; "
          f"{cost['seconds']:.0f} s, {cost['forward_images']} forward / "
          f"{cost['backward_images']} backward image passes")
    return 0
