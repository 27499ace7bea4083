"""A hider directory (``train-hider --out``, or a shipped hider): its layout, and opening it (the hider, its bank
and its record)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DeephideError
from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_hider, read_checkpoint
from .inn import Hider


# the layout of a hider directory, the one place it is defined
CHECKPOINT = "checkpoint"      # weights + optimizer + training state (hiding.checkpoint)
BANK = "bank"                  # the secret bank it hides (semantic.store)
LOG = "log.jsonl"              # one line per logged training step
SUMMARY = "summary.json"       # the training summary and the reveal gate
SNAPSHOTS = "snapshots"        # snapshots/N: weights at step N (learning-curve points)
CARD = "card.json"             # a shipped hider's card (card.md beside it)
CARD_MD = "card.md"            # the card for people
SURROGATE = "surrogate.safetensors"  # the surrogate victim's state (hiding.surrogate; the w_sv variant only)
#: what a train-hider output directory may hold (`--force` wipes only such a directory)
HIDER_DIR_ENTRIES = {CHECKPOINT, BANK, LOG, SUMMARY, SNAPSHOTS, SURROGATE}
#: what training continues from (``train-hider --init``/resume): kept beside an experiment, never shipped
STATE_ENTRIES = (CHECKPOINT, BANK, LOG, SUMMARY, SURROGATE)
#: the checkpoint files a shipped hider keeps: what it writes depends on these alone (no optimizer state)
SHIPPED_CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE)

#: Hiders shipped with the package (``protect --hider NAME``): weights, bank, card and summary each (no optimizer
#: state or snapshots: those stay with the experiment that trained them, named by the card's ``state``).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "hiders"
#: more hider homes, searched before the package's: directories of hider directories, separated by os.pathsep
#: (e.g. an experiment's hiders kept out of the package: results/hider-fmnist/hiders)
HIDERS_ENV = "DEEPHIDE_HIDERS"


def _hiders_in(home: Path) -> dict[str, Path]:
    if not home.is_dir():
        return {}
    return {d.name: d for d in sorted(home.iterdir()) if (d / CHECKPOINT).is_dir()}


def shipped_hiders() -> dict[str, Path]:
    """Name -> directory of every hider shipped with the package."""
    return _hiders_in(SHIPPED_DIR)


def hider_homes(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Where hiders are found by name, first match wins: ``extra``, then $DEEPHIDE_HIDERS, then the package."""
    env = [p for p in os.environ.get(HIDERS_ENV, "").split(os.pathsep) if p]
    return [Path(p) for p in (*extra, *env)] + [SHIPPED_DIR]


def known_hiders(extra: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Name -> directory of every hider found by name (``deephide list hiders``; see hider_homes)."""
    found: dict[str, Path] = {}
    for home in reversed(hider_homes(extra)):  # earlier homes override later ones
        found.update(_hiders_in(home))
    return dict(sorted(found.items()))


def homes_env(homes: Iterable[str | Path], env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with ``homes`` put first on $DEEPHIDE_HIDERS, for the deephide
    commands a script runs (they find those hiders by name)."""
    env = dict(os.environ if env is None else env)
    paths = [*map(str, homes), env.get(HIDERS_ENV, "")]
    env[HIDERS_ENV] = os.pathsep.join(p for p in paths if p)
    return env


def identity_files(path: str | Path) -> list[Path]:
    """The files that decide what the hider at ``path`` writes, sorted: its checkpoint's weights and architecture
    and its secret bank (not the optimizer state, log or snapshots)."""
    path = Path(path)
    ck = checkpoint_dir(path)
    files = [*(ck / f for f in SHIPPED_CHECKPOINT_FILES), *(path / BANK).rglob("*")]
    return sorted(f for f in files if f.is_file())


def resolve_hider(path: str | Path, homes: Iterable[str | Path] = ()) -> Path:
    """``path`` itself when it exists, else the hider of that name in ``homes``, $DEEPHIDE_HIDERS or the package
    (a one-line error if none)."""
    p = Path(path)
    if p.exists():
        return p
    known = known_hiders(homes)
    if str(path) in known:
        return known[str(path)]
    names = ", ".join(known) or "none"
    raise DeephideError(f"{path}: no such hider directory, and not the name of a known hider ({names})")


def read_summary(path: str | Path) -> dict[str, Any]:
    """The training summary of the hider directory ``path`` ({} when it has none yet)."""
    f = Path(path) / SUMMARY
    return json.loads(f.read_text()) if f.exists() else {}


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of the hider directory ``path`` (card.json; {} when it has none: not a shipped hider)."""
    f = Path(path) / CARD
    return json.loads(f.read_text()) if f.exists() else {}


def bank_dir(path: str | Path) -> Path:
    """The secret bank of the hider directory ``path``."""
    return Path(path) / BANK


def snapshot_dir(path: str | Path, step: int | str) -> Path:
    """The snapshot (weights and architecture) of the hider directory ``path`` at training step ``step``."""
    return Path(path) / SNAPSHOTS / str(step)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The training log of the hider directory ``path``, one dict per logged step ([] when it has none)."""
    from ..fsutil import read_jsonl

    return read_jsonl(Path(path) / LOG, skip_bad=True)  # a line cut by a killed training is not a step


def gate_card_lines(g: dict[str, Any], band_energy: dict[str, float]) -> list[str]:
    """A hider card's reveal-gate, budget and band-energy lines (card.md, Markdown), from a reveal_gate record
    (deephide.protect.reveal_gate) and the stored perturbation's Haar band energy shares."""
    return [
        f"- Reveal gate (2,000 held-out covers, stored uint8): PSNR {g['reveal_psnr']:.2f} dB, "
        f"SSIM {g['reveal_ssim']:.3f}; trivial answer {g['trivial_psnr']:.2f} dB; margin {g['margin_db']:+.2f} dB: "
        f"**{'hides' if g['hides'] else 'does not hide yet (needs +8 dB)'}**.",
        f"- Budget: clip on write changed {100 * g['clip_share']:.3f}% of stored values; mean |delta| "
        f"{g['mean_abs_levels']:.2f} levels; {100 * g['at_bound_share']:.1f}% of values at +-8.",
        "- Haar band energy of the stored perturbation: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in band_energy.items()) + ".",
    ]


def write_card(path: str | Path, card: dict[str, Any], card_md: str) -> None:
    """A hider's card: ``card`` as card.json and ``card_md`` as card.md in the hider directory ``path``."""
    from ..fsutil import atomic_file, write_json

    write_json(Path(path) / CARD, card)
    with atomic_file(Path(path) / CARD_MD, "w") as f:
        f.write(card_md)


def ship_hider(src: Path, dst: Path, card: dict[str, Any] | None = None, card_md: str | None = None,
               checkpoint: Path | None = None, reveal_gate: dict[str, Any] | None = None) -> Path:
    """Copy the hider directory ``src`` into ``dst`` as a shipped hider: the weights and config of its checkpoint (or
    of ``checkpoint``, e.g. one of its snapshots; never the optimizer state), its bank, log and summary, with ``card``
    (card.json) and ``card_md`` (card.md) when given. Written beside ``dst`` and renamed into place: complete or
    untouched.

    A snapshot from before the run's last step ships with the log up to its step and a summary of that step
    (``iterations_done``, the log's seconds there, ``run_iterations_done``: how far the run went); the run's reveal gate
    is of its last step, so the summary carries ``reveal_gate`` (the snapshot's own, measured by the caller) or none.
    """
    import shutil

    ck = checkpoint or checkpoint_dir(src)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / CHECKPOINT).mkdir(parents=True)
    for f in SHIPPED_CHECKPOINT_FILES:
        shutil.copy2(ck / f, tmp / CHECKPOINT / f)
    shutil.copytree(src / BANK, tmp / BANK)
    step = _iteration_of(ck)
    try:
        summary = json.loads((src / SUMMARY).read_text())
    except (OSError, ValueError):
        summary = None
    done = summary.get("iterations_done") if isinstance(summary, dict) else None
    snapshot = step is not None and done is not None and int(done) != step
    if snapshot:  # the log up to it, and a summary that says what it is, not what the run's end was
        log = [r for r in read_log(src) if int(r.get("iteration", 0)) <= step]
        (tmp / LOG).write_text("".join(json.dumps(r) + "\n" for r in log))
        summary.update(iterations_done=step, run_iterations_done=done, seconds=log[-1].get("seconds") if log else None,
                       last_log=log[-1] if log else None)
        summary.pop("reveal_gate", None)
    elif (src / LOG).exists():
        shutil.copy2(src / LOG, tmp / LOG)
    if isinstance(summary, dict) and (snapshot or reveal_gate is not None):
        if reveal_gate is not None:
            summary["reveal_gate"] = reveal_gate
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    elif (src / SUMMARY).exists():
        shutil.copy2(src / SUMMARY, tmp / SUMMARY)
    if card is not None:
        write_card(tmp, card, card_md or "")
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def _iteration_of(ck: Path) -> int | None:
    """The training step a checkpoint directory holds (its config.json), None where it does not say."""
    try:
        it = json.loads((ck / CONFIG_FILE).read_text()).get("training", {}).get("iteration")
    except (OSError, ValueError, AttributeError):
        return None
    return int(it) if isinstance(it, int) else None


def keep_state(src: Path, dst: Path, snapshots: Iterable[int | str] = (),
               entries: Iterable[str] = STATE_ENTRIES) -> None:
    """Copy the training state of the hider directory ``src`` (STATE_ENTRIES: checkpoint with its optimizer, bank,
    log, summary, surrogate; those it has) and the ``snapshots`` named into ``dst``, over what is there: what an
    experiment commits so that training continues on another machine."""
    import shutil

    names = [*entries, *(f"{SNAPSHOTS}/{s}" for s in snapshots)]
    for entry in names:
        if (src / entry).is_dir():
            shutil.copytree(src / entry, dst / entry, dirs_exist_ok=True)
        elif (src / entry).exists():
            (dst / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / entry, dst / entry)


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint of a hider directory (``path/checkpoint``), or ``path`` itself (a bare checkpoint or snapshot)."""
    return path / CHECKPOINT if (path / CHECKPOINT).is_dir() else path


def open_hider(path: str | Path, image_size: int | None = None, device: str = "cpu") -> tuple[Hider, dict[str, Any]]:
    """The hider in ``path`` (a train-hider output, a bare checkpoint dir or a shipped hider's name) and a
    JSON description."""

    path = resolve_hider(path)
    ck = checkpoint_dir(path)
    if not ck.is_dir():
        raise DeephideError(f"{path}: not a hider directory (train one with `deephide train-hider`)")
    hider = load_hider(ck, image_size=image_size, device=device)
    info: dict[str, Any] = {"path": str(path), "config": hider.config.to_dict(),
                            "training": read_checkpoint(ck).get("training", {})}
    summ = path / SUMMARY
    if summ.exists():
        try:
            info["summary"] = {k: v for k, v in json.loads(summ.read_text()).items()
                               if k in ("iterations_done", "finished", "seconds", "last_log")}
        except ValueError:
            pass
    return hider, info


def hider_bank_dir(path: str | Path) -> Path | None:
    """The secret bank saved next to a hider, if any: ``path/bank``, or for its checkpoint (``DIR/checkpoint``) or a
    snapshot (``DIR/snapshots/N``) the bank of the hider directory ``DIR`` they belong to."""

    try:
        p = resolve_hider(path)
    except DeephideError:
        return None
    owner = p.parent if p.name == CHECKPOINT else p.parent.parent if p.parent.name == SNAPSHOTS else p
    return next((d for d in (p / BANK, owner / BANK) if d.is_dir()), None)
