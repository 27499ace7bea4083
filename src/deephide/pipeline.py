"""The main job end to end: semantic bank -> hider -> protect -> victims on clean and protected data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .data import ImageSet, load_dataset
from .data.stored import save_imageset
from .errors import DeephideError
from .fsutil import write_json

# One hyperparameter dict for the demo, sized for any 2-core CPU: one without native bf16 (AVX2 only) trains
# victims ~7-10x slower than one with AVX512-BF16/AMX. The demo protects with a shipped hider instead of training
# one (the previous demo trained 300 steps, 14.4 of its 33.5 min there, and that hider did not hide); its sets
# under 3 victim seeds: results/demo-fmnist/README.md.
DEMO = {
    "dataset": "fashion-mnist",
    # the shipped hider this protects with ({mode} = class or sample; `deephide list hiders`, its card:
    # src/deephide/hiders/NAME/card.md); "train" = train one here with the settings below (`deephide train-hider`).
    # The robust ones: chosen on the validation hold-out, the strongest rows of the reference tables (DH-C-robust
    # against DH-C: results/reference-fmnist/README.md), and as cheap to run (the same 4-block INN)
    "hider": "fmnist-{mode}-robust",
    "semantic_source": "sig",
    "mode": "class",
    "hider_profile": "cpu",
    # when a hider is trained here (hider "train"): L_LFC through fastcnn features instead of ResNet-18 (a ResNet-18
    # step is ~20x a fastcnn step without bf16), and 300 instead of 500 hider steps
    "hider_overrides": {"lfc_model": "fastcnn", "iterations": 300},
    "lfc_iterations": 469,       # one epoch of clean training: enough for the feature network's class structure
    # the reference tables' victim and schedule (results/reference-fmnist): 2 epochs, ~90% clean
    "victim_model": "fastcnn",
    "victim_profile": "fast",
    "victim_overrides": {},      # e.g. {"iterations": 50} for a smoke run
    "seed": 0,
    "eps": 8,
}


def train_hider_job(train: ImageSet, test: ImageSet | None, secrets: str | None, mode: str, profile: dict, out: Path,
                    seed: int = 0, lfc_iterations: int | None = None, device: str = "auto",
                    progress: bool = True, time_limit_s: float | None = None, init: str | None = None,
                    **secret_options: Any) -> dict:
    """Bank + (cached) LFC feature network + hider training, all recorded in ``out``.

    secrets: a semantic source or bank directory; None = the ``init`` hider's bank, else ``sig``.
    init: a hider (directory, checkpoint or shipped name) whose weights (and, unless ``secrets`` is given, secret
    bank) a new training starts from."""
    from .training.distributed import barrier, current
    from .hiding.hiderdir import BANK, checkpoint_dir, hider_bank_dir, resolve_hider
    from .hiding.lfc import feature_model, features_fn
    from .hiding.profiles import loss_weights
    from .hiding.train import train_hider
    from .semantic import bank_for, load_bank, save_bank

    t_start = time.perf_counter()  # the time limit covers the bank and the feature network too
    world = current()  # under torchrun: rank 0 makes and saves the bank, the others then read it
    out.mkdir(parents=True, exist_ok=True)
    bank = None
    init_ck = None
    if init is not None:
        init_ck = checkpoint_dir(resolve_hider(init))
        src_bank = hider_bank_dir(init)
        if world.is_main and secrets is None and src_bank is not None and not (out / BANK).is_dir():
            # the secrets it learnt to hide, for this set's classes as protect maps them (class k: secret k mod M)
            bank = load_bank(src_bank).for_classes(train.num_classes)
            save_bank(bank, out / BANK)
    if world.is_main and not (out / BANK).is_dir():
        bank = bank_for(train, secrets or "sig", mode, seed, **secret_options)
        save_bank(bank, out / BANK)
    barrier(world)
    if bank is None:  # resuming (the bank the hider started with), or a rank other than 0
        bank = load_bank(out / BANK)
    feats = None
    if loss_weights(profile)["lfc"] > 0:
        if test is None:
            raise DeephideError(f"train-hider: L_LFC needs the clean test set to train its {profile['lfc_model']} "
                                "(give --test)")
        lfc_record: dict = {}
        net = feature_model(train, test, profile="cpu", model=profile["lfc_model"], iterations=lfc_iterations,
                            seed=seed, device=device, progress=progress, record=lfc_record)
        from .runtime import pick_device
        feats = features_fn(net.to(pick_device(device)))
    left = None if time_limit_s is None else max(0.0, time_limit_s - (time.perf_counter() - t_start))
    summary = train_hider(train, bank, profile, out, mode=mode, seed=seed, features=feats, device=device,
                          progress=progress, time_limit_s=left, init=init_ck)
    if feats is not None and world.is_main:  # how L_LFC's feature network was trained
        from .fsutil import write_json
        from .hiding.hiderdir import SUMMARY

        summary["lfc_feature_network"] = lfc_record
        write_json(out / SUMMARY, summary)
    # the reveal gate on held-out covers, from stored uint8 images (none before a first step: nothing to open)
    if test is not None and world.is_main and summary["iterations_done"] > 0:
        from .fsutil import write_json
        from .hiding.hiderdir import SUMMARY, open_hider
        from .protect import reveal_gate

        hider, _ = open_hider(out, image_size=train.shape[0])
        summary["reveal_gate"] = reveal_gate(test, hider, bank, mode, levels=round(float(profile["eps"]) * 255),
                                             seed=seed, device=device)
        write_json(out / SUMMARY, summary)
    return summary


def run_demo(out: Path, force: bool = False, progress: bool = True, **overrides: Any) -> dict:
    """Protect Fashion-MNIST with a CPU-trained hider and compare victims trained on clean vs protected data."""
    from .hiding.hiderdir import bank_dir, open_hider, read_summary, resolve_hider
    from .hiding.profiles import get_hider_profile
    from .profiles import get_profile
    from .protect import protect, verify
    from .semantic import load_bank

    from .profiles import pick_profile

    cfg = pick_profile({"default": DEMO}, "demo", "default", overrides)
    out = Path(out)
    if force:
        from .fsutil import remove_output_dir
        remove_output_dir(out, {"hider", "protected", "summary.json"}, "demo")
    t0 = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    train = load_dataset(cfg["dataset"], "train")
    test = load_dataset(cfg["dataset"], "test")
    if cfg["hider"] != "train":  # a shipped hider: its training is recorded in its card, not repeated here
        cfg["hider"] = cfg["hider"].format(mode=cfg["mode"])
        hdir = resolve_hider(cfg["hider"])
        say(f"[1/4] shipped hider {cfg['hider']} ({hdir})")
        hsum = read_summary(hdir)
        mode = (hsum.get("run") or {}).get("mode", cfg["mode"])
        if mode != cfg["mode"]:
            raise DeephideError(f"demo: hider {cfg['hider']} was trained {mode}-wise, "
                                f"the demo asks for {cfg['mode']}-wise")
    else:
        hdir = out / "hider"
        say(f"[1/4] training the hider ({cfg['hider_profile']} profile, {cfg['mode']}-wise, "
            f"secrets: {cfg['semantic_source']})")
        hprof = get_hider_profile(cfg["hider_profile"], **cfg["hider_overrides"])
        hsum = train_hider_job(train, test, cfg["semantic_source"], cfg["mode"], hprof, hdir, seed=cfg["seed"],
                               lfc_iterations=cfg["lfc_iterations"], progress=progress)
        if not hsum["finished"]:
            raise DeephideError(f"{hdir}: hider training stopped early ({hsum['stopped']}); rerun to resume")
    say(f"[2/4] protecting {len(train)} images (eps {cfg['eps']}/255)")
    hider, info = open_hider(hdir, image_size=train.shape[0])
    bank = load_bank(bank_dir(hdir))
    prot = protect(train, hider, bank, cfg["mode"], levels=cfg["eps"], seed=cfg["seed"], progress=progress,
                   hider_info=info)
    prot = prot.replace(test_spec=cfg["dataset"])
    save_imageset(prot, out / "protected", force=True)
    ver = verify(train, prot, levels=cfg["eps"])
    vprof = get_profile("victim", cfg["victim_profile"], **cfg["victim_overrides"])
    t1 = time.perf_counter()
    clean, prot_res, how = _demo_victims(train, prot, test, out / "protected", cfg, vprof, progress, say)
    t2 = time.perf_counter()
    summary = {"config": cfg, "hider": hsum, "verify": ver, "clean": clean, "protected": prot_res,
               "minutes": round((t2 - t0) / 60, 2),
               # the phases' wall time (the victims' own wall times overlap when they train side by side)
               "phases_minutes": {"to_protected_set": round((t1 - t0) / 60, 2), "victims": round((t2 - t1) / 60, 2)},
               "victims_run": how}
    write_json(out / "summary.json", summary)
    return summary


def _demo_victims(train: ImageSet, prot: ImageSet, test: ImageSet, prot_dir: Path, cfg: dict, vprof: dict,
                  progress: bool, say: Callable[..., None]) -> tuple[dict, dict, str]:
    """The demo's two victims (clean, protected) as result records, and how they ran. On a CPU with >= 2 threads
    they train side by side in two processes, half the threads each (``runtime.side_by_side``: sooner than one after
    the other, and with one thread each they are the grid's one-thread cells byte for byte); else one after the
    other here."""
    import torch

    from .runtime import SideError, pick_device, side_by_side
    from .training.trainer import result_record, train_victim

    model, seed, names = cfg["victim_model"], cfg["seed"], ("clean", "protected")
    threads = torch.get_num_threads()
    if pick_device("auto").type != "cpu" or threads < 2:
        recs = []
        for i, (name, data) in enumerate(zip(names, (train, prot))):
            say(f"[{3 + i}/4] victim {model} on {name} data")
            recs.append(result_record(train_victim(data, test, model, vprof, seed=seed, progress=progress)))
        return recs[0], recs[1], f"one after the other, {threads} thread(s)"
    each = threads // 2
    say(f"[3/4] victim {model} on clean data and [4/4] on protected data, side by side ({each} thread(s) each)")

    def report(i: int, rec: dict) -> None:
        say(f"      {names[i]:>9}: step {rec['iteration']}/{vprof['iterations']}, test accuracy "
            f"{rec['test_acc']:.2f}% ({rec['time']:.0f} s)")

    try:
        recs = side_by_side(_demo_victim, [(cfg["dataset"], cfg["dataset"], model, vprof, seed),
                                           (str(prot_dir), cfg["dataset"], model, vprof, seed)], each,
                            on_report=report if progress else None)
    except SideError as e:
        raise DeephideError(f"demo: the victim on {names[e.index]} data failed: {e.message}") from None
    return recs[0], recs[1], f"side by side, {each} thread(s) each"


def _demo_victim(train_spec: str, test_spec: str, model: str, vprof: dict, seed: int,
                 report: Callable[[Any], None]) -> dict:
    """One demo victim in a ``side_by_side`` process: its sets loaded by spec, each evaluation reported."""
    from .training.trainer import result_record, train_victim

    return result_record(train_victim(load_dataset(train_spec, "train"), load_dataset(test_spec, "test"), model,
                                      vprof, seed=seed, progress=False, on_eval=report))
