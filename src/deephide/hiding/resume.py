"""What a hider training keeps between working periods: which settings may change on a resume, the checkpoint's
training record (with the surrogate beside it), and the log trimmed back to the resumed step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import DeephideError
from ..fsutil import read_jsonl
from .checkpoint import save_hider
from .hiderdir import SURROGATE
from .inn import Hider
from .surrogate import SurrogateVictim


#: profile keys that may change when a training is continued: its length, and when it saves and logs
RESUMABLE_KEYS = ("iterations", "checkpoint_every", "log_every", "snapshot_at", "lr", "lr_step_every", "lr_gamma",
                  # where the hider may be used, not how it trains (the photo profile's, added after its first run)
                  "any_size")
#: profile keys added after hiders were shipped, with the value that reproduces what ran before them
ADDED_KEYS = {"w_use": 0.0, "use_target": 0.75, "w_sv": 0.0, "sv_model": "fastcnn", "sv_lr": 0.05, "sv_reset": 0,
              "sv_views": [], "sv_adv_levels": 0, "w_lin": 0.0, "lin_lmd": 0.9, "w_quiet": 0.0, "quiet_target": 0.45,
              "secret_zoom": 0.0, "grey_share": 0.0, "w_class": 0.0, "w_smooth": 0.0, "smooth_sigma": 2.0,
              "w_lin_bdr": 0.0}
#: the lr schedule: may change when a training is continued (e.g. a lower lr once 10^-3 turns unstable); every
#: change is recorded in the checkpoint and the summary (``schedule``), and the log states each step's lr
SCHEDULE_KEYS = ("lr", "lr_step_every", "lr_gamma")


def snapshot_steps(snap: Any) -> set[int]:
    """The profile's ``snapshot_at`` as steps: a number, a list of numbers, or a comma-separated string
    (`--set snapshot_at=500`, `--set snapshot_at=[500,2000]`, `--set snapshot_at=500,2000`)."""
    items = snap.split(",") if isinstance(snap, str) else [snap] if isinstance(snap, (int, float)) else list(snap)
    try:
        return {int(str(v).strip()) for v in items if str(v).strip()}
    except ValueError:
        raise DeephideError(f"hider profile: snapshot_at must be steps such as 500,2000; got {snap!r}") from None


def same_run(saved: dict | None, run_cfg: dict) -> bool:
    """Whether a checkpoint's run config matches this one, up to :data:`RESUMABLE_KEYS` (so a finished
    hider can be trained further: 4,000 steps now, continued to 16,000 in the next working period)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("profile"), dict):
        return False
    a, b = json.loads(json.dumps(saved)), json.loads(json.dumps(run_cfg))
    a.pop("init", None)  # where a warm start came from is a record, not a setting (given again or not)
    b.pop("init", None)
    for k, v in ADDED_KEYS.items():  # a checkpoint older than a setting ran with the setting's neutral value
        a["profile"].setdefault(k, v)
    for k in RESUMABLE_KEYS:
        a["profile"].pop(k, None)
        b["profile"].pop(k, None)
    return a == b


def save_state(ck: Path, hider: Hider, opt: torch.optim.Optimizer, run_cfg: dict, done: int, rollbacks: int,
          seconds: float, guard: tuple[float | None, int] = (None, 0), schedule: list | None = None,
          surrogate: SurrogateVictim | None = None) -> None:
    """The checkpoint (weights, optimizer, training state) and, with the w_sv variant, the surrogate beside it."""
    save_hider(ck, hider, profile=run_cfg["profile"].get("profile"), optimizer=opt, overwrite=True,
               training={"iteration": done, "rollbacks": rollbacks, "seconds": round(seconds, 1), "run": run_cfg,
                         "loss_ema": guard[0], "accepted": guard[1], "schedule": schedule or []})
    if surrogate is not None:
        surrogate.save(ck.parent / SURROGATE)


def trim_log(path: Path, upto: int) -> None:
    """Drop log lines past the resumed iteration (they will be written again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["iteration"] <= upto:
                keep.append(line)
        except (ValueError, KeyError):
            break
    path.write_text("".join(s + "\n" for s in keep))


def last_log(path: Path) -> dict | None:
    recs = read_jsonl(path)
    return recs[-1] if recs else None
