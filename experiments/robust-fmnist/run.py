"""Robust Deep Hiding on Fashion-MNIST (issue 33): hider variants trained and chosen on the validation hold-out.

Every choice here is made on the selection view `fashion-mnist?holdout=1`: hiders train on the 55,000 training
images outside the committed hold-out (src/deephide/data/splits/fashion-mnist-holdout.json, made by holdout.py),
protect those 55,000, and victims with seeds >= 100 train on the protected 55,000 and are scored on the clean
5,000-image hold-out. The test split and victim seeds 0-2 are not read by this script.

Commands (repository root, after `make setup`):
  .venv/bin/python experiments/robust-fmnist/run.py train NAME [--seconds S]     # resumable, runs/robust/NAME
  .venv/bin/python experiments/robust-fmnist/run.py select NAME[:STEP] ... [--seeds 100 101 102] [--columns ...]
  .venv/bin/python experiments/robust-fmnist/run.py table                          # results/robust-fmnist/README.md
A variant's committed state (weights, bank, log; results/robust-fmnist/hiders/NAME) is copied back into runs/ by
`train` on a new machine, so training continues across working periods.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from deephide.data import load_dataset
from deephide.data.imageset import ImageSet
from deephide.evaluation.grid import read_results
from deephide.evaluation.stats import aggregate
from deephide.fsutil import atomic_file, read_jsonl
from deephide.data.stored import save_imageset
from deephide.hiding.checkpoint import load_hider, read_checkpoint
from deephide.hiding import hiderdir
from deephide.hiding.hiderdir import (CHECKPOINT, checkpoint_dir, hider_bank_dir, resolve_hider, ship_hider,
                                      snapshot_dir)
from deephide.protect import protect, reveal_gate, verify
from deephide.runtime import versions
from deephide.semantic import load_bank

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "results" / "robust-fmnist"  # what this script writes
RUNS = ROOT / "runs" / "robust"
DATA = "fashion-mnist?holdout=1"  # the selection view: train = 55,000, test = the 5,000 hold-out
SELECTION_SEEDS = [100, 101, 102]
#: the columns every variant is judged on: the headline and the cheap countermeasures that undid the shipped DH-C
COLUMNS = ["Vanilla", "JPEG10", "BDR", "GaussN", "AT-2/255"]

#: robust-sample-at4's schedule: 3,000 steps at lr 3e-4 (x0.3 at 1,500; the first working period), then continued
#: at a constant 1e-4 to 4,500 because the reveal gate was not met (7.26 dB over the trivial answer, 8 needed); the
#: change is recorded in its checkpoint's schedule
SAMPLE_SCHEDULE = ["--set", "lr=0.0001", "--set", "lr_step_every=100000", "--iterations", "4500"]
def continued(start: str, *settings: str, steps: int = 1000) -> list[str]:
    """train-hider arguments of a point continued as robust-class-lin was (the adversarial surrogate at
    4/255, lr 3e-4, L_lin 0.5) for ``steps`` steps with a snapshot every 500, warm-started from ``start`` (a
    committed snapshot, results/robust-fmnist/hiders/NAME/snapshots/STEP), with ``settings`` (KEY=VALUE) on top."""
    extra = [arg for kv in settings for arg in ("--set", kv)]
    snapshots = ",".join(str(s) for s in range(500, steps + 1, 500))
    return ["--set", "sv_adv_levels=4", "--init", f"results/robust-fmnist/hiders/{start}", "--set", "lr=0.0003",
            "--set", "w_lin=0.5", *extra, "--iterations", str(steps), "--set", f"snapshot_at={snapshots}"]


#: name -> (mode, train-hider arguments beyond the profile, what differs); hider seed 0
VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "robust-class": ("class", [], "profile robust: L_hide + L_reveal + L_use (7/8 of the budget) + L_sv through the "
                     "countermeasure views, no L_freq / L_LFC"),
    "robust-class-at4": ("class", ["--set", "sv_adv_levels=4"], "robust-class with the surrogate trained "
                         "adversarially at 4/255 and L_sv at its PGD point (REM's min-min-max)"),
    # sample-wise: warm-started from the class-wise point chosen on the hold-out (a start that already hides and is
    # already a class shortcut; the sample-wise secrets are drawn within each class), the same objective, a lower lr
    # for the warm start; 3,000 steps fit one working period. Designed a priori, but after DH-C-robust's test-split
    # numbers (seeds 0-2) were on record
    "robust-sample-at4": ("sample", ["--set", "sv_adv_levels=4", "--init",
                                     "results/robust-fmnist/hiders/robust-class-at4/checkpoint", *SAMPLE_SCHEDULE,
                                     "--set", "snapshot_at=1000,2000,3000,4500"],
                          "robust-class-at4's chosen point (@4247) continued sample-wise (its own sample-wise SIG "
                          "bank, secrets drawn per image within its class) with the same objective, lr 3e-4 (x0.3 at "
                          "1,500) for 3,000 steps, then 1e-4 to 4,500 (its reveal margin was 7.26 dB at 3,000: short "
                          "of the gate)"),
    # the chosen point lost ground under JPEG10 (68.81 vs DH-C 52.63 on the hold-out) and BDR: the surrogate sees
    # JPEG and BDR three times as often (gray dropped: an identity on a grey set stored as RGB; one `none` less)
    "robust-class-jb": ("class", ["--set", "sv_adv_levels=4", "--init",
                                  "results/robust-fmnist/hiders/robust-class-at4/checkpoint", "--set", "lr=0.0003",
                                  "--iterations", "2000", "--set", "snapshot_at=1000,2000", "--set",
                                  'sv_views=["none","jpeg-any","jpeg-any","jpeg-any","bdr","bdr","bdr","noise","mean",'
                                  '"median","gauss","cutout","mixup","cutmix"]'],
                        "robust-class-at4's chosen point (@4247) continued with the surrogate seeing JPEG (q 10-90) "
                        "and BDR 3 times as often (3/14 each; no gray, one undistorted view in 14), lr 3e-4"),
    # PIL's objective (Liu et al., ICLR 2026) given to the hider: a linear classifier fitted on the clean covers must
    # read the class off the stored perturbation alone and nothing off the stored image (L_lin);
    # tried alongside the PIL attack's own hold-out row (the PIL row of this table; same working period)
    "robust-class-lin": ("class", ["--set", "sv_adv_levels=4", "--init",
                                   "results/robust-fmnist/hiders/robust-class-at4/checkpoint", "--set", "lr=0.0003",
                                   "--set", "w_lin=0.5", "--iterations", "1500", "--set",
                                   "snapshot_at=500,1000,1500"],
                         "robust-class-at4's chosen point (@4247) continued with L_lin (PIL's objective through a "
                         "linear classifier of the clean covers, weight 0.5, lmd 0.9), lr 3e-4"),
    # the shipped point's hold-out columns (BDR 87.21, AT-2/255 89.63 against robust-class-at4's 69.96 and 45.51)
    # said two things: (1) BDR's straight-through gradient asks every pixel to move, yet BDR keeps a move only where
    # it crosses one of its thresholds (7.7% of the pixels lie within 8 levels of one): bdr-soft gives the gradient
    # of a smooth staircase there, 3 views in 13; (2) L_lin took 75-82% of the weighted loss (its log) and the
    # adversarial surrogate's term the rest, and the AT column was lost with it: w_sv 0.1 -> 0.3 (L_sv about
    # L_lin's weight). Designed from hold-out records only; 1,000 steps (the shipped point's own length)
    "robust-class-bdr": ("class", continued("robust-class-lin/snapshots/1000", "w_sv=0.3",
                                            'sv_views=["none","none","jpeg-any","bdr-soft","bdr-soft","bdr-soft",'
                                            '"noise","mean","median","gauss","cutout","mixup","cutmix"]'),
                         "robust-class-lin's chosen point (@1000) continued with the surrogate's BDR view given "
                         "the gradient where BDR keeps a move (bdr-soft, 3 views in 13; no gray) and the adversarial "
                         "surrogate's term weighted 3x (w_sv 0.3), lr 3e-4"),
    # the spectra of the sets' class-mean perturbations (hold-out sets): robust-class-at4's (AT-2/255 45.51) had 87% of
    # their energy at <= 1/8 cycle per pixel, robust-class-lin's (89.63) 53%: L_smooth asks for at4's smoothness
    # back with L_lin kept. One change from robust-class-lin's objective; its chosen point continued 1,000 steps
    "robust-class-lf": ("class", continued("robust-class-lin/snapshots/1000", "w_smooth=1.0"),
                        "robust-class-lin's chosen point (@1000) continued with L_smooth (weight 1: the perturbation's "
                        "detail below a Gaussian blur of 2 px penalised), lr 3e-4"),
    # robust-class-lf held JPEG10 (20.75) and GaussN (17.39) and gained on AT-2/255 (78.82 against 89.63), but BDR
    # stayed at 86.62, and the BDR view of the surrogate (robust-class-bdr: 87.22) changed nothing of what BDR keeps
    # (3.84% of the values, as robust-class-lin): L_lin_bdr asks those kept moves to name the class to the linear
    # model themselves. One change from robust-class-lf's objective; its last point continued 1,000 steps
    "robust-class-lfb": ("class", continued("robust-class-lf/snapshots/1000", "w_smooth=1.0", "w_lin_bdr=0.5"),
                         "robust-class-lf's last point (@1000) continued with L_lin_bdr (weight 0.5: PIL's objective "
                         "on what 2-bit BDR leaves of stored image and cover), lr 3e-4"),
    # robust-class-lf's smoother class patterns (smooth share 0.513 -> 0.870) came with AT-2/255 78.82 against 89.63
    # and JPEG10 20.75 against 32.65: is more of the same worth more? w_smooth 1 -> 3, one change
    # (continued to 2,000 steps in the working period of 2026-12-07 (6): Vanilla fell from @500 to @1000, 12.90 ->
    # 11.88, and none of lf10, lf3u, lf3l, each one change from @1000, went lower: does the same recipe go on?
    # @2000 scored 11.72 (peak 30.68 against @1000's 45.87), so in 2026-12-08 (7) it went on to 3,000: @3000 17.11,
    # and the rule's choice is @2000 (lr x0.3 every 1,500 steps whatever the length: @2000 is the same state in a
    # 2,000- or a 3,000-step run)
    "robust-class-lf3": ("class", continued("robust-class-lf/snapshots/1000", "w_smooth=3.0", steps=3000),
                         "robust-class-lf's last point (@1000) continued with L_smooth weighted 3 (instead of 1), "
                         "lr 3e-4 (1,000 steps, then continued to 2,000 and to 3,000)"),
    # robust-class-lf3 (smooth share 0.954) took AT-2/255 to 62.39 from robust-class-lf's 78.82 (0.870) and
    # robust-class-lin's 89.63 (0.513), with Vanilla 11.88 and JPEG10 23.31 held: AT falls as the class patterns
    # get smoother. Is the trend worth more? w_smooth 3 -> 10, one change, its last point continued 1,000 steps
    "robust-class-lf10": ("class", continued("robust-class-lf3/snapshots/1000", "w_smooth=10.0"),
                          "robust-class-lf3's last point (@1000) continued with L_smooth weighted 10 (instead of 3), "
                          "lr 3e-4"),
    # DH-S-robust's only gated point (robust-sample-at4:4500) is at 33.31 on the hold-out (target 20); the class-wise
    # line gained 27.03 -> 11.88 from L_lin (0.5) and L_smooth (3): the same two terms given to the sample-wise point,
    # with L_reveal weighted 2 because the class-wise line lost 4.4 dB of reveal to L_lin and the sample-wise point
    # passes the gate by 0.1 dB. Designed from hold-out records only; 1,000 steps
    "robust-sample-lf3": ("sample", continued("robust-sample-at4/snapshots/4500", "w_smooth=3.0", "w_reveal=2.0"),
                          "robust-sample-at4's chosen point (@4500) continued sample-wise with L_lin (0.5) and "
                          "L_smooth (3), L_reveal weighted 2, lr 3e-4"),
    # robust-sample-lf3:1000 did not hide (reveal 19.72 dB against the trivial 16.24: 3.5 dB over, 8 needed) though
    # L_reveal was doubled: the same point continued with L_reveal weighted 5, one change, 1,000 steps
    # (its @1000 still did not hide: 21.52 dB, 5.3 over; the reveal had gained 1.8 dB in 1,000 steps, so the same run
    # was continued to 2,500 steps, as robust-sample-at4 was, with snapshots every 500; stopped at 1,500 in the
    # working period of 2026-12-07 (6): `run.py gate robust-sample-lf3r:1500` gave +3.49 dB, less than @1000's +5.29,
    # and its @1000 Vanilla (25.45) was already above robust-sample-lf3's (20.00); `train` would continue it)
    "robust-sample-lf3r": ("sample", continued("robust-sample-lf3/snapshots/1000", "w_smooth=3.0", "w_reveal=5.0",
                                               steps=2500),
                           "robust-sample-lf3's last point (@1000) continued with L_reveal weighted 5 (instead of 2), "
                           "lr 3e-4, 2,500 steps (1,000 planned; continued because @1000 did not hide)"),
    # the sample-wise points trade Vanilla for reveal: robust-sample-lf3:1000 20.00 but 3.49 dB over the trivial
    # answer, robust-sample-lf3r:1000 (L_reveal x5) 25.45 and 5.29 over; a sample-wise reveal needs each image's own
    # detail, which L_smooth penalises: robust-sample-lf3 without L_smooth, one change, 1,000 steps (2026-12-08 (7)):
    # @1000 Vanilla 15.48 but 3.92 dB over the trivial answer, no better than with L_smooth: L_lin is what costs the
    # sample-wise reveal
    "robust-sample-lin": ("sample", continued("robust-sample-at4/snapshots/4500", "w_reveal=2.0"),
                          "robust-sample-at4's chosen point (@4500) continued sample-wise with L_lin (0.5) and "
                          "L_reveal weighted 2, no L_smooth, lr 3e-4"),
    # L_lin took Vanilla from 27.03 (robust-class-at4) to 13.56 (robust-class-lin), and every L_smooth point since
    # kept it at 0.5; Vanilla final <= 10 is the target (lf3: 11.88, lf10: 13.18): L_lin weighted 1, one change
    "robust-class-lf3l": ("class", continued("robust-class-lf3/snapshots/1000", "w_smooth=3.0", "w_lin=1.0"),
                          "robust-class-lf3's last point (@1000) continued with L_lin weighted 1 (instead of 0.5), "
                          "lr 3e-4"),
    # every L_smooth point used less of the budget than the one before it (mean |delta| 6.01 -> 5.44 -> 5.00 -> 4.72
    # levels: lin, lf, lf3, lf10), and robust-class-at4, the point with the best BDR and AT-2/255 of the line (69.96,
    # 45.51), used 6.44: L_use weighted 1 (instead of 0.1) pulls lf3's patterns back to 7 of 8 levels; one change
    "robust-class-lf3u": ("class", continued("robust-class-lf3/snapshots/1000", "w_smooth=3.0", "w_use=1.0"),
                          "robust-class-lf3's last point (@1000) continued with L_use weighted 1 (instead of 0.1: "
                          "each image's mean |delta| pulled up to 7 of 8 levels), lr 3e-4"),
}


def command(name: str) -> list[str]:
    mode, extra, _ = VARIANTS[name]
    return ["deephide", "train-hider", "--data", DATA, "--secrets", "sig", "--mode", mode, "--profile", "robust",
            "--seed", "0", "--quiet", *extra, "--out", str(RUNS / name)]


def cmd_train(a: argparse.Namespace) -> None:
    committed = HERE / "hiders" / a.name
    if not (RUNS / a.name).exists() and (committed / CHECKPOINT).is_dir():  # a new machine: continue from git
        shutil.copytree(committed, RUNS / a.name)
    cmd = command(a.name)
    cmd[0] = str(Path(sys.executable).with_name("deephide"))
    if a.seconds:
        cmd += ["--time-limit", str(a.seconds)]
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


#: how a point is chosen (stated on the card and in the README)
RULE = ("among the candidate points that pass the reveal gate on the hold-out's covers, the one with the lowest mean "
        "Vanilla final accuracy on the hold-out over seeds 100-102 (stage 1); the chosen point is then measured under "
        f"the other columns ({', '.join(COLUMNS[1:])}), which describe it and chose nothing")

#: the rows every variant is compared with, made from the same 55,000 images: label -> how the set is made
BASELINES: dict[str, list[str]] = {
    "Clean": [],
    "DH-C": ["hider", "fmnist-class", "class"],  # the shipped class-wise hider (trained on all 60,000 covers)
    "semantic-added-C": ["attack", "semantic-added-C"],
    # the newest cheap baseline (issue 34), and the strongest class-wise one of the reference tables: is the linear
    # shortcut plus obfuscation (PIL) a mechanism worth giving the hider?
    "PIL": ["attack", "PIL"],
    "EM-C": ["attack", "EM-C"],
}
#: the countermeasure columns as the reference campaign runs them (experiments/reference-fmnist/configs/main.yaml)
AT = {"AT-2/255": "AT?eps=0.00784313725490196&steps=2&alpha=0.004901960784313725",
      "AT-4/255": "AT?eps=0.01568627450980392&steps=2&alpha=0.00980392156862745"}


def point(spec: str) -> tuple[str, int | None, Path]:
    """NAME[:STEP] of a variant -> (name, step, checkpoint dir); a shipped hider's name -> (name, None, its dir)."""
    name, _, step = spec.partition(":")
    if name not in VARIANTS:
        return name, None, checkpoint_dir(resolve_hider(name))
    d = RUNS / name if (RUNS / name).is_dir() else HERE / "hiders" / name
    ck = snapshot_dir(d, step) if step else checkpoint_dir(d)
    if step and not ck.is_dir() and (d / CHECKPOINT).is_dir() and \
            str(read_checkpoint(checkpoint_dir(d))["training"]["iteration"]) == step:
        ck = checkpoint_dir(d)  # the last checkpoint, named by its step
    if not ck.is_dir():
        sys.exit(f"run.py: {ck}: no such hider state (train it first: run.py train {name})")
    return name, int(read_checkpoint(ck)["training"]["iteration"]), ck


def label_of(spec: str) -> str:
    """A row's label: a baseline's name, or NAME:STEP of a variant (its last checkpoint named by its step)."""
    if spec.partition(":")[0] not in VARIANTS:
        return spec
    name, step, _ = point(spec)
    return f"{name}:{step}"


def gate_of(covers: ImageSet, hider, bank, mode: str) -> dict:
    """The reveal gate every point is judged by: the first 2,000 of ``covers`` (the hold-out's), stored uint8, 8/255."""
    return reveal_gate(covers, hider, bank, mode, levels=8, seed=0, limit=2000)


def make_set(label: str) -> str:
    """The training set of row ``label`` (a variant point NAME:STEP or a baseline) made from the 55,000 images,
    stored under runs/robust/sets (or the spec itself for Clean); for a hider, its reveal gate on the hold-out's
    covers and the set's budget use, PSNR and SSIM are appended to results/robust-fmnist/sets.jsonl once."""
    if label == "Clean":
        return DATA
    path = RUNS / "sets" / label.replace(":", "@")
    log = HERE / "sets.jsonl"
    if (path / "manifest.json").exists():
        return str(path.relative_to(ROOT))
    train = load_dataset(DATA, "train")
    rec: dict = {"row": label, "data": DATA, "versions": versions()}
    how = BASELINES.get(label) or ["hider", label, VARIANTS[label.split(":")[0]][0]]
    if how[0] == "attack":
        cmd = [str(Path(sys.executable).with_name("deephide")), "attack", how[1], "--data", DATA, "--out", str(path),
               "--quiet", "--force"]
        subprocess.run(cmd, cwd=ROOT, check=True)
        prot = load_dataset(str(path), "train")
        rec["command"] = " ".join(["deephide", *cmd[1:]])
    else:
        name, step, ck = point(how[1])
        hider, bank = load_hider(ck, image_size=32), load_bank(hider_bank_dir(ck))
        covers = load_dataset(DATA, "test")  # the hold-out's covers: never a cover in the hider's training
        rec.update(point=how[1], step=step, gate=gate_of(covers, hider, bank, how[2]))
        prot = protect(train, hider, bank, how[2], levels=8, seed=0, progress=True).replace(test_spec=DATA)
        save_imageset(prot, path, force=True)
    v = verify(train, prot, levels=8)
    rec["visual"] = {k: v[k] for k in ("psnr", "ssim", "mean_abs_levels", "frac_at_bound", "linf_levels")}
    before = [r for r in read_jsonl(log) if r["row"] == label] if log.exists() else []
    same = [r for r in before if r["visual"] == rec["visual"] and r.get("gate") == rec.get("gate")]
    if same:  # a set regenerated on a new machine (runs/ is not kept): the record stands, once
        print(f"{label}: regenerated, the same gate and visual figures as its record", flush=True)
    else:
        if before:
            print(f"{label}: WARNING: regenerated set differs from its record; both kept in {log.name}", flush=True)
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
    g = rec.get("gate")
    print(f"{label}: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, mean |delta| {v['mean_abs_levels']:.2f} levels"
          + (f"; reveal {g['reveal_psnr']:.2f} dB vs trivial {g['trivial_psnr']:.2f} (hides: {g['hides']})" if g else ""),
          flush=True)
    return str(path.relative_to(ROOT))


def cmd_gate(a: argparse.Namespace) -> None:
    """The reveal gate of each point as make_set records it (gate_of), without
    protecting the 55,000: which snapshots of a run still short of the gate are worth a set and victims. Printed,
    not logged (sets.jsonl holds the gate of every point that got a set)."""
    covers = load_dataset(DATA, "test")
    for spec in a.points:
        name, step, ck = point(spec)
        hider, bank = load_hider(ck, image_size=32), load_bank(hider_bank_dir(ck))
        g = gate_of(covers, hider, bank, VARIANTS[name][0])
        print(f"{name}:{step}: reveal {g['reveal_psnr']:.2f} dB vs trivial {g['trivial_psnr']:.2f} "
              f"({g['margin_db']:+.2f} dB; hides: {g['hides']})", flush=True)


def cmd_select(a: argparse.Namespace) -> None:
    """Victims (fastcnn, victim profile `fast`, seeds >= 100) on each row's set, scored on the hold-out."""
    if min(a.seeds) < 100:
        sys.exit("run.py select: selection victims use seeds >= 100 (seeds 0-2 are the reported rows')")
    sets = {label: make_set(label) for label in map(label_of, a.rows)}
    cms = [{c: AT[c]} if c in AT else c for c in a.columns]
    cfg = {"name": "robust-selection", "out": "results/robust-fmnist/selection.jsonl", "test": DATA,
           "seeds": a.seeds, "profile": "fast", "resources": {"cpus": 1, "gpus": 0}, "identity": "content",
           "models": a.models, "train_sets": sets, "countermeasures": cms,
           "notes": "issue 33 selection: 55,000 training images without the hold-out, victims scored on the hold-out"}
    RUNS.mkdir(parents=True, exist_ok=True)
    cfg_path = RUNS / f"selection-{os.getpid()}.yaml"  # one per run: several selects may wait on the grid lock
    cfg_path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    cmd = [str(Path(sys.executable).with_name("deephide")), "grid", str(cfg_path), "--quiet"]
    if a.workers:
        cmd += ["--executor", "pool", "--workers", str(a.workers)]
    rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    if rc:
        sys.exit(f"run.py select: the victims' grid stopped (exit {rc}; its message is above); rerun to continue")


def structure(clean: ImageSet, prot: ImageSet, chunk: int = 5000) -> dict[str, float]:
    """What kind of shortcut a protected set carries, from the set alone (no victim): over all images i with class y,
    perturbation delta_i = protected - clean (levels) and d_i = BDR-2(protected) - BDR-2(clean) (what the BDR column's
    victim sees of it):
    class_share = 1 - sum ||delta_i - mean_y delta||^2 / sum ||delta_i||^2 (1: one pattern per class, as EM-C; a
    victim that adversarially trains at 2/255 removes at most 2 of its levels), bdr_kept = share of values where d_i
    is not 0, bdr_class_share = the class share of d (its energy in the class mean: low where which pixels cross
    depends on the image), bdr_sign_agreement = sum over classes and pixels of |ups - downs| / (ups + downs) of d (1:
    every kept move at a pixel goes the class's one way, however few images cross there), class_low_share = the share
    of the class patterns' energy (class means minus their mean: what tells the classes apart) at spatial frequencies
    <= 1/8 cycle per pixel in both directions (2-D FFT; a smooth pattern is near 1, a checkerboard-like one near 0)."""
    import numpy as np

    from deephide.countermeasures.bdr import bdr_lut

    lut = bdr_lut(2).astype(np.int16)
    k = clean.num_classes
    shape = clean.images.shape[1:]
    sums = {n: np.zeros((k, *shape)) for n in ("delta", "d")}
    sq = {n: 0.0 for n in ("delta", "d")}
    count, kept = np.zeros(k), 0
    ups, downs = np.zeros((k, *shape)), np.zeros((k, *shape))
    for i in range(0, len(clean), chunk):
        c, p = np.asarray(clean.images[i:i + chunk], np.int16), np.asarray(prot.images[i:i + chunk], np.int16)
        y = np.asarray(clean.labels[i:i + chunk])
        for name, v in (("delta", p - c), ("d", lut[p] - lut[c])):
            np.add.at(sums[name], y, v.astype(np.float64))
            sq[name] += float(np.square(v, dtype=np.float64).sum())
        count += np.bincount(y, minlength=k)
        kept += int((lut[p] != lut[c]).sum())
        for j in np.unique(y):
            ups[j] += (lut[p[y == j]] > lut[c[y == j]]).sum(0)
            downs[j] += (lut[p[y == j]] < lut[c[y == j]]).sum(0)
    between = {n: float(sum(np.square(sums[n][j]).sum() / count[j] for j in range(k) if count[j])) for n in sums}
    means = sums["delta"][count > 0] / count[count > 0].reshape(-1, *[1] * len(shape))
    power = np.abs(np.fft.fft2(means - means.mean(0), axes=(1, 2))) ** 2  # (K, H, W, C)
    fy, fx = (np.abs(np.fft.fftfreq(n))[:, None] for n in shape[:2])
    low = np.maximum(fy, fx.T) <= 1 / 8
    return {"class_share": between["delta"] / sq["delta"] if sq["delta"] else 0.0,
            "class_low_share": float(power[:, low].sum() / power.sum()) if power.sum() else 0.0,
            "bdr_kept": kept / (len(clean) * int(np.prod(shape))),
            "bdr_class_share": between["d"] / sq["d"] if sq["d"] else 0.0,
            "bdr_sign_agreement": float(np.abs(ups - downs).sum() / kept) if kept else 0.0}


def cmd_structure(a: argparse.Namespace) -> None:
    """structure() of each row's set into results/robust-fmnist/structure.jsonl; a row already there is kept unless
    its record lacks a figure structure() now gives (then it is measured again and its record replaced)."""
    log = HERE / "structure.jsonl"
    records = {r["row"]: r for r in read_jsonl(log)} if log.exists() else {}
    clean = load_dataset(DATA, "train")
    for label in map(label_of, a.rows):
        if label == "Clean" or "bdr_sign_agreement" in records.get(label, {}):
            continue
        rec = records[label] = {"row": label, **structure(clean, load_dataset(make_set(label), "train"))}
        with atomic_file(log, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records.values()))
        print(f"{label}: class share {rec['class_share']:.3f} ({rec['class_low_share']:.3f} of it smooth), BDR keeps {100 * rec['bdr_kept']:.2f}% of values, "
              f"their class share {rec['bdr_class_share']:.3f}, sign agreement {rec['bdr_sign_agreement']:.3f}",
              flush=True)


def _agg(aggs: dict, stat: str, row: str, col: str):
    """The fastcnn aggregate of a row's cells in a column for ``stat`` (final / best), None without cells."""
    return next((v for k, v in aggs[stat].items() if k[0] == row and k[2] == col and k[1] == "fastcnn"), None)


def _cell(aggs: dict, row: str, col: str) -> str:
    """'final ± std / peak ± std (n)' of one row and column, '-' without cells."""
    parts = []
    for stat in ("final", "best"):
        a = _agg(aggs, stat, row, col)
        if a is None:
            return "-"
        parts.append(f"{a.mean:.2f} ± {a.std:.2f}" if a.std is not None else f"{a.mean:.2f}")
    return f"{parts[0]} / {parts[1]} ({a.n})"


#: the point the rule chose (shipped as fmnist-class-robust): robust-class-lf3:2000 since 2026-12-08 (session 7),
#: robust-class-lf3:1000 before it, then robust-class-lin:1000, robust-class-at4:4247 first
CHOSEN = "robust-class-lf3:2000"
#: the previous chosen point and the variants tried after it, each at the point measured under the columns its
#: design aimed at (the README computes from the records which the rule chooses)
DESCRIBED = ["robust-class-lf3:1000", "robust-class-lin:1000", "robust-class-bdr:500", "robust-class-lf:1000", "robust-class-lfb:1000",
             "robust-class-lf10:1000", "robust-class-lf3u:1000", "robust-class-lf3l:1000", "robust-class-lf3:3000"]
#: the sample-wise point the rule chose (shipped as fmnist-sample-robust), and the sample-wise points tried after it
CHOSEN_SAMPLE = "robust-sample-at4:4500"
DESCRIBED_SAMPLE = ["robust-sample-lf3:1000", "robust-sample-lf3r:1000", "robust-sample-lin:1000"]


def _final(aggs: dict, row: str, col: str) -> str:
    """The mean final accuracy of a row's cells in a column, as text ('not measured' without cells)."""
    a = _agg(aggs, "final", row, col)
    return "not measured" if a is None else f"{a.mean:.2f}"


def findings(aggs: dict, shapes: dict, rows: list[str], against: str) -> str:
    """One sentence per row: its columns, structure and verdict beside ``against``'s, every number read from the
    records (a row whose set fails the reveal gate is no candidate, whatever its accuracy)."""
    gate = {r["row"]: r.get("gate") for r in read_jsonl(HERE / "sets.jsonl")}

    def say(row: str) -> str:
        cols = ", ".join(f"{c} {_final(aggs, row, c)}" for c in COLUMNS)
        sh = shapes.get(row)
        return cols + (f"; smooth share {sh['class_low_share']:.3f}, BDR keeps {100 * sh['bdr_kept']:.2f}%" if sh else "")

    def verdict(row: str) -> str:
        g = gate.get(row)
        if g and not g["hides"]:
            return (f" (does not hide: reveal {g['reveal_psnr']:.2f} dB against the trivial {g['trivial_psnr']:.2f}, "
                    f"{g['reveal_psnr'] - g['trivial_psnr']:.2f} dB over, 8 needed; not a candidate)")
        mine, theirs = _final(aggs, row, "Vanilla"), _final(aggs, against, "Vanilla")
        if "not" in mine + theirs:
            return ""
        return " (Vanilla above the chosen point's: not chosen)" if float(mine) >= float(theirs) else \
            " (Vanilla below the chosen point's: the rule chooses it)"
    return " ".join(f"{r}: {say(r)}{verdict(r)}." for r in rows) + f" The chosen {against}: {say(against)}."


def rule_choice(aggs: dict, mode: str) -> tuple[str, float] | None:
    """What the rule chooses from the records now: the gated variant point of ``mode`` with the lowest mean Vanilla
    final accuracy over 3 or more seeds (None without one)."""
    gate = {r["row"]: r.get("gate") for r in read_jsonl(HERE / "sets.jsonl")}
    scored = [(row, a.mean) for (row, model, col, _), a in aggs["final"].items()
              if col == "Vanilla" and model == "fastcnn" and a.n >= 3 and row.partition(":")[0] in VARIANTS
              and VARIANTS[row.partition(":")[0]][0] == mode and (gate.get(row) or {}).get("hides")]
    return min(scored, key=lambda t: t[1]) if scored else None


def pending(aggs: dict) -> list[str]:
    """A paragraph for each mode whose rule choice in the records is not the shipped point (measured, not shipped
    yet), so the README never says a point is chosen that the rule no longer chooses."""
    out = []
    for mode, shipped, name in (("class", CHOSEN, "fmnist-class-robust"), ("sample", CHOSEN_SAMPLE,
                                                                         "fmnist-sample-robust")):
        best = rule_choice(aggs, mode)
        if best and best[0] != shipped:
            out += [f"**Not shipped yet:** by the records the rule now chooses {best[0]} (hold-out Vanilla "
                    f"{best[1]:.2f} against the shipped {shipped}'s {_final(aggs, shipped, 'Vanilla')}); `{name}` is "
                    f"still {shipped}, whose test-split row is the one reported. Shipping it (`run.py ship {best[0]} "
                    f"--as {name}`) supersedes that row's cells.", ""]
    return out


def table_lines() -> list[str]:
    """The selection table: every row measured so far, its reveal gate and visual cost beside its victims."""
    recs = read_results(HERE / "selection.jsonl")
    sets = {r["row"]: r for r in read_jsonl(HERE / "sets.jsonl")}
    shapes = {r["row"]: r for r in read_jsonl(HERE / "structure.jsonl")} if (HERE / "structure.jsonl").exists() else {}
    aggs = {stat: aggregate(recs, stat) for stat in ("final", "best")}
    rows = list(dict.fromkeys(r["row"] for r in recs))
    cols = [c for c in COLUMNS if any(r["countermeasure"] == c for r in recs)]
    cpus = sorted({f"{v.get('cpu_model')} (bf16 {v.get('cpu_bf16')}, {v.get('cpu_threads')} thread(s))" for r in recs
                   for v in [r.get("versions") or {}]})
    seeds = sorted({r["seed"] for r in recs})
    out = ["| row | reveal PSNR (dB) | trivial | hides | protected PSNR (dB) | SSIM | mean abs delta (levels) | "
           "class share | smooth share | BDR keeps (%) | its class share | its sign agreement | " + " | ".join(cols) + " |",
           "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(cols)]
    for row in rows:
        s = sets.get(row, {})
        g, v = s.get("gate"), s.get("visual")
        gate = [f"{g['reveal_psnr']:.2f}", f"{g['trivial_psnr']:.2f}", "yes" if g["hides"] else "no"] if g else ["-"] * 3
        vis = [f"{v['psnr']:.2f}", f"{v['ssim']:.3f}", f"{v['mean_abs_levels']:.2f}"] if v else ["-"] * 3
        sh = shapes.get(row)
        shape = [f"{sh['class_share']:.3f}", f"{sh['class_low_share']:.3f}", f"{100 * sh['bdr_kept']:.2f}",
                 f"{sh['bdr_class_share']:.3f}", f"{sh['bdr_sign_agreement']:.3f}" if "bdr_sign_agreement" in sh
                 else "-"] if sh else ["-"] * 5
        out.append(f"| {row} | " + " | ".join(gate + vis + shape + [_cell(aggs, row, c) for c in cols]) + " |")
    return ["Shortcut structure (structure.jsonl, `run.py structure ROW`; from each set alone): class share = the "
            "share of the perturbation's energy in its class mean (1: one pattern per class); smooth share = the share of the "
            "class patterns' energy (what tells the classes apart) at spatial frequencies <= 1/8 cycle per pixel; BDR keeps = the share of "
            "values whose 2-bit BDR differs from the clean image's (all the BDR column's victim sees of the "
            "perturbation); its class share = the same class share of those BDR differences (low where which pixels "
            "cross depends on the image); its sign agreement = the share of those differences that go the one way "
            "their class's differences go at that pixel (1: what BDR keeps is a class pattern in sign, however few "
            "images cross at a pixel). Read by linear models (bdr-probe.md, `bdr_probe.py ROW`): the class is in "
            "what BDR keeps for every row (a linear model reads it off the kept changes alone), so BDR does not "
            "remove the shortcut's information; the rows differ in whether fastcnn uses it.", "",
            f"Victims: fastcnn, victim profile `fast` (937 steps), seeds {', '.join(map(str, seeds))}; clean accuracy "
            "on the 5,000-image hold-out (%), final / peak, mean ± sample std (n seeds). Machine(s): "
            + (", ".join(cpus) or "not recorded") + ".", "", *out]


def cmd_table(a: argparse.Namespace) -> None:
    recs = read_results(HERE / "selection.jsonl")
    aggs = {stat: aggregate(recs, stat) for stat in ("final", "best")}
    shapes = {r["row"]: r for r in read_jsonl(HERE / "structure.jsonl")} if (HERE / "structure.jsonl").exists() else {}
    lines = ["# Robust Deep Hiding on Fashion-MNIST: selection on the validation hold-out (issue 33)", "",
             "Generated by `experiments/robust-fmnist/run.py table` from selection.jsonl (victims) and sets.jsonl "
             "(reveal gate on 2,000 of the hold-out's covers, stored uint8; the protected 55,000 against their "
             "clean originals). Every row is made from the 55,000 training images outside the hold-out "
             "(`fashion-mnist?holdout=1`); no number here used the test split or victim seeds 0-2.", "",
             "Rows: " + "; ".join(f"`{k}`: {v[2]}" for k, v in VARIANTS.items()) + "; `Clean`: the 55,000 as they are; "
             "`DH-C`: the shipped fmnist-class; `semantic-added-C`: the secret added at the budget. A variant at a step "
             "is NAME:STEP (its snapshot).", "", f"Selection rule: {RULE}.", "", *table_lines(), "",
             f"Chosen and shipped: class-wise {CHOSEN} as `fmnist-class-robust` (since 2026-12-08, session 7; before "
             f"it robust-class-lf3:1000, robust-class-lin:1000 and robust-class-at4:4247), sample-wise {CHOSEN_SAMPLE} as "
             "`fmnist-sample-robust` (src/deephide/hiders/NAME/card.md); reported as "
             "the rows DH-C-robust and DH-S-robust of results/reference-fmnist (test split, seeds 0-2), where their "
             "cells accumulate with the campaign's (a new shipped hider is a new recipe: the row's earlier cells are "
             "superseded). robust-class-lin adds L_lin, PIL's objective on the stored perturbation; it was designed when "
             "the PIL attack's first hold-out victim was on record (seed 100: 16.56; PIL is a baseline, not a candidate: "
             "it hides nothing). Its Vanilla peak "
             "(60.55) is above robust-class-at4's (39.68): the victim learns the content first, then the shortcut. "
             "robust-class-jb (JPEG and BDR three times as often in the surrogate's views) was not chosen: "
             "Vanilla 35.19 against 27.03, and JPEG10 no better (66.80 against 68.81). Training states: hiders/NAME "
             "(checkpoint with optimizer, surrogate, the measured snapshots); `run.py train NAME` continues one on any "
             "machine.", "",
             "The chosen point beside the previous one and the variants tried after it (each at the point measured "
             "under the columns its design aimed at; final "
             "accuracy, mean of the seeds): " + findings(aggs, shapes, DESCRIBED, CHOSEN), "",
             "Sample-wise, the same way: " + findings(aggs, shapes, DESCRIBED_SAMPLE, CHOSEN_SAMPLE), "",
             *pending(aggs)]
    (HERE / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


def keep_state(name: str) -> None:
    """Commit-sized state of a variant's run into results/robust-fmnist/hiders/NAME (checkpoint with optimizer,
    surrogate, bank, log, summary; the measured snapshots' weights), so `train NAME` continues it elsewhere."""
    src, dst = RUNS / name, HERE / "hiders" / name
    measured = {str(r.get("step")) for r in read_jsonl(HERE / "sets.jsonl") if r["row"].partition(":")[0] == name}
    hiderdir.keep_state(src, dst, snapshots=sorted(measured))  # the measured snapshots only


def selection_record(chosen: str) -> dict:
    """How ``chosen`` was picked: the rule, the split, the seeds and every compared row's hold-out numbers."""
    recs = read_results(HERE / "selection.jsonl")
    aggs = aggregate(recs, "final")
    rows = {}
    for (row, model, col, _), a in aggs.items():
        rows.setdefault(row, {})[col] = {"final_mean": round(a.mean, 2), "final_std": None if a.std is None else
                                         round(a.std, 2), "n": a.n}
    return {"split": f"{DATA}: victims trained on the protected 55,000, scored on the clean 5,000-image hold-out "
                     "(src/deephide/data/splits/fashion-mnist-holdout.json)",
            "seeds": sorted({r["seed"] for r in recs}), "model": "fastcnn", "profile": "fast",
            "rule": RULE,
            "chosen": chosen, "compared": rows, "records": "results/robust-fmnist/selection.jsonl",
            "test_split_or_seeds_0_2_used": False}


def cmd_ship(a: argparse.Namespace) -> None:
    """The chosen point as a shipped hider: weights (no optimizer), bank, log, summary and a card with its selection
    record; the full training state stays in results/robust-fmnist/hiders/NAME."""
    name, step, ck = point(a.point)
    label = label_of(a.point)
    sets = {r["row"]: r for r in read_jsonl(HERE / "sets.jsonl")}
    if label not in sets or not sets[label]["gate"]["hides"]:
        sys.exit(f"run.py ship: {label} has no passing reveal gate in sets.jsonl (run `select {label}` first)")
    keep_state(name)
    dst = ROOT / "src" / "deephide" / "hiders" / a.as_name
    info = read_checkpoint(ck)
    g, v = sets[label]["gate"], sets[label]["visual"]
    run = info["training"]["run"]
    sel = selection_record(label)
    m = sets[label]["versions"]
    card = {"name": a.as_name, "variant": name, "what": VARIANTS[name][2], "mode": VARIANTS[name][0], "steps": step,
            "trained_on": run["train"], "profile": run["profile"], "hider": info["hider"].to_dict(),
            "wall_time_h": round(info["training"]["seconds"] / 3600, 2), "machine": m, "reveal_gate": g,
            "visual": v, "selection": sel, "state": f"results/robust-fmnist/hiders/{name}",
            "command": " ".join(command(name)).replace(str(ROOT) + "/", "") + f"  (then: run.py ship {label} --as {a.as_name})"}
    vanilla = sel["compared"].get(label, {}).get("Vanilla", {})
    init = run.get("init") or {}
    start = (f"Continued from `{init['from']}` (its step {init.get('iteration')})" if init.get("from")
             else "Trained from scratch")
    card_md = "\n".join([
        f"# Hider card: {a.as_name} (robust Deep Hiding, issue 33; beyond the paper)", "",
        f"- {VARIANTS[name][2]}. Deep Hiding INN (4 coupling blocks), {card['mode']}-wise, Fashion-MNIST 32x32 RGB view, "
        f"SIG secret bank (`bank/`), eps 8/255 kept by the hider itself.",
        f"- {start} on `{run['train']}` (the 55,000 training images outside the validation hold-out): "
        f"{step:,} steps, {card['wall_time_h']:.2f} h on {m.get('cpu_model')} (native bf16 {m.get('cpu_bf16')}), one "
        "thread beside other jobs on 2 cores. Full training state (optimizer, surrogate): " + card["state"] + ".",
        f"- Reveal gate (2,000 hold-out covers, stored uint8): PSNR {g['reveal_psnr']:.2f} dB, SSIM {g['reveal_ssim']:.3f}; "
        f"trivial answer {g['trivial_psnr']:.2f} dB; margin {g['margin_db']:+.2f} dB: **hides**.",
        f"- Visual cost on the protected 55,000: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, mean |delta| "
        f"{v['mean_abs_levels']:.2f} levels, {100 * v['frac_at_bound']:.1f}% of values at +-8.",
        f"- **Selection**: {sel['rule']}; {sel['split']}; victims fastcnn (`fast`), seeds "
        f"{', '.join(map(str, sel['seeds']))}. Chosen {label}: hold-out Vanilla final "
        f"{vanilla.get('final_mean')} ± {vanilla.get('final_std')}. Compared: "
        + "; ".join(f"{r} (Vanilla {c.get('Vanilla', {}).get('final_mean')})" for r, c in sel["compared"].items())
        + ". No choice used the test split or victim seeds 0-2 (results/robust-fmnist/README.md).",
        f"- Command: `{card['command']}`.", ""])
    ship_hider(HERE / "hiders" / name, dst, card, card_md, checkpoint=ck, reveal_gate=g)
    print(f"shipped {label} as {dst}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or continue) a variant, one thread")
    t.add_argument("name", choices=list(VARIANTS))
    t.add_argument("--seconds", type=float)
    s = sub.add_parser("select", help="make each row's set (gate, PSNR/SSIM) and run its hold-out victims")
    s.add_argument("rows", nargs="+", help="NAME[:STEP] of a variant, or a baseline: " + ", ".join(BASELINES))
    s.add_argument("--seeds", nargs="+", type=int, default=SELECTION_SEEDS)
    s.add_argument("--columns", nargs="+", default=COLUMNS)
    s.add_argument("--models", nargs="+", default=["fastcnn"])
    s.add_argument("--workers", type=int, help="grid workers (default: the grid's own)")
    gt = sub.add_parser("gate", help="the reveal gate of variant points, printed (no set made)")
    gt.add_argument("points", nargs="+", help="NAME:STEP of a variant")
    st = sub.add_parser("structure", help="each row's shortcut structure from its set alone (structure.jsonl)")
    st.add_argument("rows", nargs="+")
    sub.add_parser("table", help="write results/robust-fmnist/README.md")
    k = sub.add_parser("keep", help="copy a variant's training state into results/robust-fmnist/hiders (to commit)")
    k.add_argument("name", choices=list(VARIANTS))
    sh = sub.add_parser("ship", help="ship a chosen point into src/deephide/hiders/AS with its selection card")
    sh.add_argument("point", help="NAME:STEP or NAME")
    sh.add_argument("--as", dest="as_name", required=True)
    a = ap.parse_args()
    {"train": cmd_train, "select": cmd_select, "gate": cmd_gate, "structure": cmd_structure, "table": cmd_table, "ship": cmd_ship,
     "keep": lambda a: keep_state(a.name)}[a.cmd](a)


if __name__ == "__main__":
    main()
