"""Speed and memory benchmarks of deephide -> benchmarks/RESULTS.md (tables) + benchmarks/results.json.

    python benchmarks/run.py                        # the full run (~20-25 min on a 2-core CPU)
    python benchmarks/run.py --quick --out /tmp/b   # tiny sizes: a smoke test of every code path (seconds)
    python benchmarks/run.py --accuracy             # also both victim loops for equal epochs (hours on a CPU)
    python benchmarks/run.py --attack-sets runs/attacks --hider runs/demo/hider

Every comparison is a ratio of two measurements made in the same run, each the median of
``--repeats`` timings. Peak memory is measured in a fresh subprocess per setting (ru_maxrss), so
one measurement cannot inflate another. Throughputs are also stated as a fraction of the measured
matmul rate of this machine (FLOPs per image from torch's FlopCounterMode).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from benchlib import (count_flops, machine, matmul_gflops, median, peak_rss_mb, random_hider,  # noqa: E402
                    synthetic_bank, timed)

from deephide.errors import DeephideError  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each measurement is. ``FULL`` is the committed run; ``QUICK`` only exercises the code."""

    repeats: int
    victim_models: tuple[str, ...]
    victim_n: int                      # synthetic CIFAR-like training images (32x32 RGB, 10 classes)
    victim_batch: int
    victim_iters: dict[str, tuple[int, int]]   # model -> (warm-up iterations, timed iterations)
    ref_workers: int                   # DataLoader worker processes of the reference loop
    victim_compile: bool               # also time our trainer with the profile's compile=True
    inn_blocks: int
    inn_growth: int
    inn_batch: int
    inn_bare_batches: int              # batches per bare-INN timing
    protect_n: int                     # images per end-to-end protection timing (in-process)
    rss_n: tuple[int, int]             # the two set sizes of the peak-RSS comparison (subprocesses)
    hider_profile: str
    hider_iters: tuple[int, int]       # (warm-up, timed) hider training iterations
    hider_n: int
    cm_n: int                          # images per countermeasure timing
    matmul_n: int
    reveal_n: int                      # images whose reveal PSNR is measured
    threads: int | None                # torch threads (None: torch's default, all cores)
    matmul_gflop: float                # work per matmul timing


FULL = Sizes(repeats=3, victim_models=("resnet18", "resnet20"), victim_n=10_000, victim_batch=128,
             victim_iters={"resnet18": (5, 30), "resnet20": (10, 100)}, ref_workers=2, victim_compile=True,
             inn_blocks=16, inn_growth=32, inn_batch=256, inn_bare_batches=4, protect_n=2048,
             rss_n=(5_000, 50_000), hider_profile="paper", hider_iters=(2, 8), hider_n=2_000,
             cm_n=50_000, matmul_n=2048, reveal_n=512, threads=None, matmul_gflop=4.0)
QUICK = Sizes(repeats=1, victim_models=("resnet18", "resnet20"), victim_n=64, victim_batch=16,
              victim_iters={"resnet18": (1, 2), "resnet20": (1, 2)}, ref_workers=1, victim_compile=False,
              inn_blocks=2, inn_growth=8, inn_batch=32, inn_bare_batches=1, protect_n=64,
              rss_n=(64, 256), hider_profile="tiny", hider_iters=(1, 2), hider_n=64,
              cm_n=200, matmul_n=256, reveal_n=32, threads=1, matmul_gflop=0.05)

COUNTERMEASURES = ("JPEG", "JPEG10", "Gray+JPEG", "MeanF", "MedianF", "GaussF", "BDR", "Gray")
LEVELS = 8  # the budget of every protection here: 8/255


# ------------------------------------------------------------------ data


def synthetic(n: int, classes: int = 10, size: int = 32, split: str = "train"):
    """The deterministic CIFAR-shaped synthetic set (uint8 (n, size, size, 3))."""
    from deephide.data import load_dataset

    return load_dataset(f"synthetic?n={n}&classes={classes}&size={size}", split)


def victim_profile(batch: int, iterations: int, eval_every: int) -> dict[str, Any]:
    """Our CPU recipe (bf16 + channels_last where native) at the benchmark's batch and length."""
    from deephide.profiles import get_profile

    return get_profile("victim", "cpu", batch_size=batch, iterations=iterations, eval_every=eval_every)


# ------------------------------------------------------------------ compute floor


def bench_floor(sz: Sizes, dev: torch.device) -> dict[str, Any]:
    """Measured matmul GFLOP/s (fp32, bf16) and FLOPs per image of the victims and the INN."""
    from deephide.hiding.train import HideRevealStep
    from deephide.models import build_model
    from deephide.runtime import bf16_supported

    rates = {"fp32": matmul_gflops(dev, torch.float32, sz.matmul_n, max(3, sz.repeats), sz.matmul_gflop)}
    if bf16_supported(dev):
        rates["bf16"] = matmul_gflops(dev, torch.bfloat16, sz.matmul_n, max(3, sz.repeats), sz.matmul_gflop)
    flops: dict[str, int] = {}
    x = torch.rand(1, 3, 32, 32)
    for name in sz.victim_models:
        net = build_model(name, num_classes=10)
        flops[f"{name} inference"] = count_flops(lambda net=net: net(x))
        flops[f"{name} training step"] = count_flops(lambda net=net: net(x).sum().backward())
    hider = random_hider(sz.inn_blocks, sz.inn_growth)
    with torch.no_grad():
        flops["INN hide"] = count_flops(lambda: hider.hide(x, x))
    step = HideRevealStep(hider, LEVELS / 255, True)
    flops["INN training step (no LFC)"] = count_flops(lambda: sum(t.sum() for t in step(x, x, None)).backward())
    return {"matmul_gflops": rates, "flops_per_image": flops,
            "inn": {"blocks": sz.inn_blocks, "growth": sz.inn_growth, "parameters": hider.num_parameters()}}


def fraction(images_per_s: float, flops_per_image: int, gflops: float) -> float:
    """Share of the measured matmul rate that ``images_per_s`` x ``flops_per_image`` represents."""
    return images_per_s * flops_per_image / (gflops * 1e9)


# ------------------------------------------------------------------ victim training


def bench_victim(sz: Sizes, dev: torch.device) -> dict[str, Any]:
    """Our trainer vs the peer-style loop: images/s (steady state, median of repeats) per model."""
    from deephide.training.trainer import train_victim
    from peer_loop import train_reference

    train = synthetic(sz.victim_n)
    test = synthetic(min(256, sz.victim_n), split="test")  # evaluations are excluded from the timing
    out: dict[str, Any] = {}
    for model in sz.victim_models:
        warm, iters = sz.victim_iters[model]
        ours, ref, comp = [], [], []
        prof = victim_profile(sz.victim_batch, warm + iters, warm)

        def steady(prof: dict[str, Any], seed: int) -> tuple[float, dict[str, Any]]:
            times: dict[int, float] = {}
            res = train_victim(train, test, model, prof, seed=seed, device=str(dev), progress=False,
                               on_eval=lambda rec: times.__setitem__(rec["iteration"], rec["time"]))
            # rec["time"] is training time without evaluations; steady state = after the warm-up
            # (which also holds torch.compile's compilation)
            return iters * sz.victim_batch / max(1e-3, times[warm + iters] - times[warm]), res

        for r in range(sz.repeats):
            rate, res = steady(prof, r)
            ours.append(rate)
            if sz.victim_compile:
                comp.append(steady(dict(prof, compile=True), r)[0])
            rprof = dict(prof, bf16=False)
            ref.append(train_reference(train.images, train.labels, model, rprof, warm + iters, warm,
                                       sz.ref_workers, seed=r)["images_per_s"])
        out[model] = {"ours_images_per_s": median(ours), "reference_images_per_s": median(ref),
                      "ratio": median(ours) / median(ref), "ours_runs": ours, "reference_runs": ref,
                      "amp": res["amp"], "channels_last": prof["channels_last"], "batch": sz.victim_batch,
                      "timed_iterations": iters}
        if comp:
            out[model].update(compiled_images_per_s=median(comp), compiled_ratio=median(comp) / median(ref),
                              compiled_runs=comp)
    return out


def bench_accuracy(models: tuple[str, ...], epochs: float, data: str, train_n: int | None,
                   workers: int, dev: torch.device, seeds: int = 3) -> dict[str, Any]:
    """Test accuracy of both loops after the same number of epochs on real data, ``seeds`` seeds each (long)."""
    from deephide.data import load_dataset
    from deephide.training.trainer import evaluate_accuracy, train_victim
    from peer_loop import train_reference

    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    if train_n:
        train = train.subset(np.arange(min(train_n, len(train))), note=f"first {train_n}")
    out: dict[str, Any] = {"data": data, "train_n": len(train), "test_n": len(test), "epochs": epochs, "seeds": seeds}
    x_test = torch.from_numpy(test.images).permute(0, 3, 1, 2).contiguous()
    y_test = torch.from_numpy(test.labels)
    for model in models:
        prof = victim_profile(128, max(1, round(epochs * len(train) / 128)), 10**9)
        rec: dict[str, list[float]] = {"ours_acc": [], "reference_acc": [], "ours_seconds": [], "reference_seconds": []}
        for seed in range(seeds):
            t0 = time.perf_counter()
            ours = train_victim(train, test, model, prof, seed=seed, device=str(dev), progress=False)
            rec["ours_seconds"].append(round(time.perf_counter() - t0, 1))
            t0 = time.perf_counter()
            ref = train_reference(train.images, train.labels, model, dict(prof, bf16=False), prof["iterations"], 0,
                                  workers, seed=seed)
            rec["reference_seconds"].append(round(time.perf_counter() - t0, 1))
            rec["ours_acc"].append(ours["final_acc"])
            rec["reference_acc"].append(evaluate_accuracy(ref["model"], x_test, y_test, 256, False, False))
        out[model] = {"iterations": prof["iterations"], **rec}
    return out


def mean_pm_std(xs: list[float]) -> str:
    """'mean +- std' (sample std, ddof 1; just the value for one run)."""
    from deephide.evaluation.stats import mean_std

    m, s = mean_std(xs)
    return f"{m:.2f}" if s is None else f"{m:.2f} +- {s:.2f}"


# ------------------------------------------------------------------ protection


def protect_end_to_end(set_dir: Path, out_dir: Path, hider: torch.nn.Module, bank: Any, bf16: bool,
                       batch: int, dev: torch.device) -> tuple[float, Any, Any]:
    """Read a stored set, protect it (INN, projection, uint8 quantisation), write it. Returns (s, clean, protected)."""
    from deephide.data.formats import load_any
    from deephide.data.stored import imageset_writer
    from deephide.protect import protect

    t0 = time.perf_counter()
    ds = load_any(set_dir, mmap=True)  # as `deephide protect` does: stream, never hold the set
    with imageset_writer(out_dir, len(ds), ds.shape, force=True) as w:
        prot = protect(ds, hider, bank, "class", levels=LEVELS, batch_size=batch, device=str(dev), bf16=bf16,
                       progress=False, out=w.images)
        w.finish(prot)
    return time.perf_counter() - t0, ds, prot


def budget_linf(clean: np.ndarray, prot: np.ndarray) -> int:
    """Largest |protected - clean| in uint8 levels."""
    return int(np.abs(prot.astype(np.int16) - clean.astype(np.int16)).max(initial=0))


def reveal_psnr(prot: Any, hider: torch.nn.Module, bank: Any, n: int, dev: torch.device) -> float:
    """PSNR (dB) of the fp32 INN reveal of the first ``n`` stored images against the secrets they hide."""
    from deephide.ops.metrics import psnr
    from deephide.protect import reveal

    sub = prot.subset(np.arange(min(n, len(prot))))
    hidden = bank.images[np.asarray(prot.provenance["protection"]["assignment"])[: len(sub)]]
    return psnr(reveal(sub, hider, device=str(dev), progress=False), hidden)


def bench_protect(sz: Sizes, dev: torch.device, tmp: Path, hider_dir: str | None) -> dict[str, Any]:
    """Bare INN hide on random tensors vs protection end to end, fp32 and bf16 (same INN, same batch)."""
    from deephide.data.stored import save_imageset
    from deephide.protect import channels_last, hide_batch
    from deephide.runtime import bf16_supported

    hider = channels_last(random_hider(sz.inn_blocks, sz.inn_growth).to(dev))  # the layout protect() uses
    ds = synthetic(sz.protect_n)
    bank = synthetic_bank(ds.num_classes, 32)
    save_imageset(ds, tmp / "protect-in", force=True)
    precisions = ["fp32"] + (["bf16"] if bf16_supported(dev) else [])
    cover = torch.rand(sz.inn_batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    secret = torch.rand(sz.inn_batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {"n": sz.protect_n, "batch": sz.inn_batch}
    stored: dict[str, np.ndarray] = {}
    for prec in precisions:
        bf16 = prec == "bf16"

        def bare(bf16: bool = bf16) -> None:
            for _ in range(sz.inn_bare_batches):  # protect's own INN call: each core hides its share of the batch
                hide_batch(hider, cover, secret, dev, bf16)

        bare()  # warm-up (oneDNN primitive creation)
        bare_s = [timed(bare, dev) for _ in range(sz.repeats)]
        e2e_s = []
        for _ in range(sz.repeats):
            s, clean, prot = protect_end_to_end(tmp / "protect-in", tmp / "protect-out", hider, bank, bf16,
                                                sz.inn_batch, dev)
            e2e_s.append(s)
        stored[prec] = prot.images
        bare_rate = sz.inn_bare_batches * sz.inn_batch / median(bare_s)
        e2e_rate = sz.protect_n / median(e2e_s)
        out[prec] = {"bare_images_per_s": bare_rate, "end_to_end_images_per_s": e2e_rate,
                     "ratio": e2e_rate / bare_rate, "linf_levels": budget_linf(clean.images, prot.images),
                     "reveal_psnr_random_weights": reveal_psnr(prot, hider, bank, sz.reveal_n, dev)}
    if "bf16" in stored:  # how far bf16 moves the stored pixels (each is still within budget: checked above)
        d = np.abs(stored["bf16"].astype(np.int16) - stored["fp32"].astype(np.int16))
        out["bf16_vs_fp32"] = {"max_levels": int(d.max()), "mean_levels": float(d.mean()),
                               "share_differing": float((d > 0).mean())}
    if hider_dir:
        out["trained"] = trained_reveal(hider_dir, precisions, sz, dev, tmp)
    return out


def trained_reveal(hider_dir: str, precisions: list[str], sz: Sizes, dev: torch.device, tmp: Path) -> dict[str, Any]:
    """Reveal PSNR of a trained hider's protected images in each precision (its own data and bank)."""
    from deephide.data import load_dataset
    from deephide.data.stored import save_imageset
    from deephide.hiding.hiderdir import hider_bank_dir, open_hider
    from deephide.semantic import load_bank

    hider, info = open_hider(hider_dir)
    bank_dir = hider_bank_dir(hider_dir)
    if bank_dir is None:
        raise DeephideError(f"{hider_dir}: no secret bank saved with this hider")
    bank = load_bank(bank_dir)
    data = info.get("summary", {}).get("run", {}).get("train") or "fashion-mnist"
    ds = load_dataset(data, "train")
    ds = ds.subset(np.arange(min(len(ds), max(sz.reveal_n, 64))))
    save_imageset(ds, tmp / "trained-in", force=True)
    out: dict[str, Any] = {"hider": hider_dir, "data": data, "blocks": hider.config.blocks, "n": len(ds)}
    for prec in precisions:
        _, clean, prot = protect_end_to_end(tmp / "trained-in", tmp / "trained-out", hider, bank, prec == "bf16",
                                            sz.inn_batch, dev)
        out[prec] = {"reveal_psnr": reveal_psnr(prot, hider, bank, sz.reveal_n, dev),
                     "linf_levels": budget_linf(clean.images, prot.images)}
    return out


# ------------------------------------------------------------------ subprocess workers (peak memory)


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (its own peak RSS); returns its JSON answer."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))  # the parent's thread count
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise DeephideError(f"benchmark worker {spec['kind']} failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The body of a subprocess measurement: ``protect`` (RSS vs N) or ``train-hider``."""
    dev = torch.device(spec["device"])
    if spec["kind"] == "protect":
        hider = random_hider(spec["blocks"], spec["growth"]).to(dev)
        bank = synthetic_bank(10, 32)
        base = peak_rss_mb()  # torch, deephide and the hider loaded, no data yet
        s, _, _ = protect_end_to_end(Path(spec["set"]), Path(spec["out"]), hider, bank, spec["bf16"],
                                     spec["batch"], dev)
        return {"seconds": s, "baseline_rss_mb": base, "peak_rss_mb": peak_rss_mb()}
    if spec["kind"] == "train-hider":
        return hider_training(spec, dev)
    raise DeephideError(f"unknown worker kind {spec['kind']!r}")


def hider_training(spec: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """Train the profile's hider (with L_LFC through a random ResNet-18) for a few iterations."""
    from deephide.hiding import get_hider_profile
    from deephide.hiding.hiderdir import read_log
    from deephide.hiding.train import train_hider
    from deephide.models import build_model

    warm, iters = spec["iters"]
    prof = get_hider_profile(spec["profile"], iterations=warm + iters, log_every=1, checkpoint_every=10**9,
                             bf16=spec["bf16"])
    train = synthetic(spec["n"])
    bank = synthetic_bank(train.num_classes, 32, per_class=4)
    torch.manual_seed(0)
    feat = build_model("resnet18", num_classes=train.num_classes).to(dev).eval()  # L_LFC's cost, not its features
    for p in feat.parameters():
        p.requires_grad_(False)
    base = peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    s = train_hider(train, bank, prof, spec["out"], mode="class", features=feat.features, device=str(dev),
                    progress=False)
    log = read_log(spec["out"])
    secs = {r["iteration"]: r["seconds"] for r in log}
    dt = max(0.05, secs[warm + iters] - secs[warm]) if warm else max(0.05, secs[iters])  # log seconds: 0.1 s steps
    out = {"images_per_s": iters * prof["batch_size"] / dt, "blocks": prof["blocks"], "batch": prof["batch_size"],
           "bf16": s["bf16"], "baseline_rss_mb": base, "peak_rss_mb": peak_rss_mb(), "parameters": s["parameters"]}
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def bench_rss(sz: Sizes, dev: torch.device, tmp: Path, bf16: bool) -> dict[str, Any]:
    """Peak RSS (and time) of protection end to end at two set sizes, each in a fresh process."""
    from deephide.data.stored import save_imageset

    out: dict[str, Any] = {"bf16": bf16}
    for n in sz.rss_n:
        save_imageset(synthetic(n), tmp / f"rss-{n}", force=True)
        out[str(n)] = _run_worker({"kind": "protect", "device": str(dev), "blocks": sz.inn_blocks,
                                   "growth": sz.inn_growth, "batch": sz.inn_batch, "bf16": bf16,
                                   "set": str(tmp / f"rss-{n}"), "out": str(tmp / f"rss-{n}-out")})
        out[str(n)]["images_per_s"] = n / out[str(n)]["seconds"]
    return out


def bench_hider_training(sz: Sizes, dev: torch.device, tmp: Path, precisions: list[str]) -> dict[str, Any]:
    """Hider training images/s and peak memory per precision (fresh process each)."""
    return {prec: _run_worker({"kind": "train-hider", "device": str(dev), "profile": sz.hider_profile,
                               "iters": list(sz.hider_iters), "n": sz.hider_n, "bf16": prec == "bf16",
                               "out": str(tmp / f"hider-{prec}")})
            for prec in precisions}


# ------------------------------------------------------------------ countermeasures, attack costs


def bench_countermeasures(sz: Sizes) -> dict[str, Any]:
    """Images/s of each data-stage countermeasure on ``cm_n`` 32x32 RGB images."""
    from deephide.countermeasures import build_countermeasure

    images = synthetic(sz.cm_n).images
    out: dict[str, Any] = {"n": sz.cm_n}
    for name in COUNTERMEASURES:
        cm = build_countermeasure(name)
        s = median([timed(lambda cm=cm: cm.apply_data(images, seed=0)) for _ in range(sz.repeats)])
        out[name] = {"images_per_s": sz.cm_n / s, "seconds": s, "params": cm.params}
    return out


def attack_costs(roots: list[str]) -> list[dict[str, Any]]:
    """Generation cost of every stored attack set under ``root`` (from its manifest, not regenerated).

    Baseline attacks record ``provenance.protection.cost.seconds``; a Deep Hiding set records its
    protection seconds and, under ``hider.training``, the seconds its hider took to train.
    """
    rows = []
    dirs = []
    for root in roots:
        base = Path(root)
        if not base.is_dir():
            raise DeephideError(f"--attack-sets {root}: no such directory")
        dirs += sorted(p for p in base.iterdir() if (p / "manifest.json").is_file())
    for d in dirs:
        try:
            p = json.loads((d / "manifest.json").read_text())["provenance"]["protection"]
        except (ValueError, KeyError) as e:
            raise DeephideError(f"{d / 'manifest.json'}: no protection provenance ({e})") from None
        cost = p.get("cost") or {}
        row = {"set": d.name, "method": p.get("method", "?"), "mode": p.get("mode", "?"),
               "seconds": cost.get("seconds", p.get("seconds")), "device": p.get("device", ""),
               "threads": (p.get("versions") or {}).get("cpu_threads", "")}
        train_s = ((p.get("hider") or {}).get("training") or {}).get("seconds")
        if train_s is not None:
            row["hider_training_seconds"] = train_s
        rows.append(row)
    return rows


# ------------------------------------------------------------------ report


def _f(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{nd}f}" if isinstance(x, float) else str(x)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render(res: dict[str, Any]) -> str:
    """RESULTS.md from the results dict."""
    m, fl = res["machine"], res["floor"]
    rate = fl["matmul_gflops"]
    fpi = fl["flops_per_image"]
    L = [f"# Benchmarks{' (QUICK: tiny sizes, numbers meaningless)' if res['quick'] else ''}", "",
         f"Command: `{res['command']}`  ", f"Date: {res['date']}  ", f"Wall time of the run: {res['seconds'] / 60:.1f} min", "",
         "## Machine", "",
         f"- CPU: {m['cpu']}, {m['cpus']} logical cores, {m['memory_gib']} GiB RAM; torch threads {m['torch_threads']}; "
         f"native bf16: {m['bf16_native']}" + (f"; GPU: {m['gpu']}" if m.get("gpu") else ""),
         f"- Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, Pillow {m['pillow']}, deephide {m['deephide']}",
         f"- Measured matmul rate ({res['sizes']['matmul_n']}x{res['sizes']['matmul_n']}): "
         + ", ".join(f"{k} {v:,.1f} GFLOP/s" for k, v in rate.items()),
         "", "## Compute floor: FLOPs per image", "", "| network, pass | GFLOP per image |", "|---|---|"]
    L += [f"| {k} | {v / 1e9:.4f} |" for k, v in fpi.items()]
    L += ["", f"INN: {fl['inn']['blocks']} blocks, growth {fl['inn']['growth']}, {fl['inn']['parameters']:,} parameters.", ""]

    def frac(ips: float, key: str, prec: str) -> str:
        g = rate.get(prec) or rate["fp32"]
        return _pct(fraction(ips, fpi[key], g)) if key in fpi else "n/a"

    v = res["victim"]
    L += ["## Victim training: our trainer vs a peer-style loop", "",
          "Same model, data (synthetic 32x32 RGB, 10 classes), batch, optimiser and schedule. Ours: the whole set "
          "as one uint8 tensor, batched crop+flip, "
          f"{'bf16 autocast' if any(x['amp'] for x in v.values()) else 'fp32'} + channels_last. Reference: DataLoader "
          f"({res['sizes']['ref_workers']} workers) over a Dataset with per-image PIL RandomCrop(32, 4) + flip + "
          "ToTensor, fp32, NCHW. Steady state (after warm-up iterations), median of "
          f"{res['sizes']['repeats']} runs.", "",
          "| model | ours (img/s) | reference (img/s) | ratio | ours + torch.compile (img/s) | ratio | "
          "ours, share of matmul peak | reference, share of fp32 peak |",
          "|---|---|---|---|---|---|---|---|"]
    for model, x in v.items():
        prec = "bf16" if x["amp"] == "bfloat16" else "fp32"
        comp = (f"{_f(x['compiled_images_per_s'])} | **{x['compiled_ratio']:.2f}x**" if "compiled_images_per_s" in x
                else "not measured | -")
        L.append(f"| {model} | {_f(x['ours_images_per_s'])} | {_f(x['reference_images_per_s'])} | "
                 f"**{x['ratio']:.2f}x** | {comp} | {frac(x['ours_images_per_s'], f'{model} training step', prec)} ({prec}) | "
                 f"{frac(x['reference_images_per_s'], f'{model} training step', 'fp32')} |")
    L += ["", "torch.compile is the victim profile's `compile: true` (off by default: its ~40 s of compilation "
          "per run is excluded above as warm-up, so it pays off only for runs of several minutes)."]
    acc = res.get("accuracy")
    L += [""]
    if acc:
        L += [f"Accuracy after equal epochs ({acc['epochs']} epochs of {acc['data']}, {acc['train_n']:,} training / "
              f"{acc['test_n']:,} test images; final-epoch test accuracy, mean +- std over seeds 0-{acc['seeds'] - 1}; "
              "seconds: median wall per run):", "",
              "| model | iterations | ours acc (%) | reference acc (%) | ours (s) | reference (s) |", "|---|---|---|---|---|---|"]
        for model, x in acc.items():
            if isinstance(x, dict):
                L.append(f"| {model} | {x['iterations']} | {mean_pm_std(x['ours_acc'])} | {mean_pm_std(x['reference_acc'])} | "
                         f"{median(x['ours_seconds']):.0f} | {median(x['reference_seconds']):.0f} |")
        L += [""]
    else:
        L += ["Accuracy after equal epochs: not measured in this run (`--accuracy`).", ""]

    p = res["protect"]
    L += ["## Protection: end to end vs the bare INN", "",
          f"{fl['inn']['blocks']}-block INN (random weights: cost equals a trained one's), batch {p['batch']}. Bare: "
          "`protect.hide_batch` (the INN as protect calls it: each core hides its own share of the batch) on random "
          "tensors already in memory. End to end: read a stored set, INN, project to the budget, quantise to uint8, "
          f"write the stored set ({p['n']:,} images). Median of {res['sizes']['repeats']}.", "",
          "| precision | bare INN (img/s) | end to end (img/s) | end to end / bare | share of matmul peak (bare) | "
          "L-inf (levels) | reveal PSNR, random weights (dB) |", "|---|---|---|---|---|---|---|"]
    for prec in ("fp32", "bf16"):
        if prec in p:
            x = p[prec]
            L.append(f"| {prec} | {_f(x['bare_images_per_s'])} | {_f(x['end_to_end_images_per_s'])} | "
                     f"**{_pct(x['ratio'])}** | {frac(x['bare_images_per_s'], 'INN hide', prec)} | {x['linf_levels']} | "
                     f"{_f(x['reveal_psnr_random_weights'], 2)} |")
    if "bf16_vs_fp32" in p:
        b = p["bf16_vs_fp32"]
        L += ["", f"bf16 vs fp32 stored pixels: max {b['max_levels']} levels apart, mean {b['mean_levels']:.3f}, "
              f"{_pct(b['share_differing'])} of values differ (both within the {LEVELS}-level budget)."]
    t = p.get("trained")
    if t:
        L += ["", f"Trained hider `{t['hider']}` ({t['blocks']} blocks) on {t['n']} images of {t['data']}: reveal PSNR "
              + ", ".join(f"{prec} {t[prec]['reveal_psnr']:.2f} dB (L-inf {t[prec]['linf_levels']})"
                          for prec in ("fp32", "bf16") if prec in t) + "."]
    else:
        L += ["", "Reveal PSNR of a trained hider: not measured (`--hider DIR`); with random weights it only shows "
              "the pipeline runs in both precisions."]
    r = res["rss"]
    n1, n2 = (str(n) for n in res["sizes"]["rss_n"])
    L += ["", f"### Peak RSS of protect ({'bf16' if r['bf16'] else 'fp32'}, each size in a fresh process)", "",
          "| images | seconds | img/s | RSS after imports (MiB) | peak RSS (MiB) | growth (MiB) |", "|---|---|---|---|---|---|"]
    for n in (n1, n2):
        x = r[n]
        L.append(f"| {int(n):,} | {x['seconds']:.1f} | {_f(x['images_per_s'])} | {x['baseline_rss_mb']:.0f} | "
                 f"{x['peak_rss_mb']:.0f} | {x['peak_rss_mb'] - x['baseline_rss_mb']:.0f} |")
    L += ["", f"Peak RSS ratio {n2} / {n1} images: **{r[n2]['peak_rss_mb'] / r[n1]['peak_rss_mb']:.2f}x** "
          f"(the uint8 input and output alone are {int(n2) * 3072 * 2 / 2**20:.0f} MiB at {int(n2):,})."]

    h = res["hider_training"]
    L += ["", "## Hider training", "",
          f"Profile `{res['sizes']['hider_profile']}` with L_LFC through a ResNet-18, fresh process per precision.", "",
          "| precision | blocks | batch | img/s | share of matmul peak (no-LFC FLOPs) | peak RSS (MiB) | growth (MiB) |",
          "|---|---|---|---|---|---|---|"]
    for prec, x in h.items():
        share = (frac(x["images_per_s"], "INN training step (no LFC)", prec)
                 if x["blocks"] == fl["inn"]["blocks"] else "n/a")
        L.append(f"| {prec} | {x['blocks']} | {x['batch']} | {_f(x['images_per_s'])} | {share} | "
                 f"{x['peak_rss_mb']:.0f} | {x['peak_rss_mb'] - x['baseline_rss_mb']:.0f} |")

    c = res["countermeasures"]
    L += ["", f"## Countermeasure preprocessing ({c['n']:,} images, 32x32 RGB)", "",
          "| countermeasure | params | img/s | seconds |", "|---|---|---|---|"]
    for name in COUNTERMEASURES:
        x = c[name]
        L.append(f"| {name} | {json.dumps(x['params'])} | {_f(x['images_per_s'], 0)} | {x['seconds']:.2f} |")

    L += ["", "## Generation cost per attack", ""]
    rows = res.get("attack_costs")
    if rows:
        where = ", ".join(f"`{r}`" for r in res["attack_sets"])
        L += [f"From the manifests of the sets under {where} (not regenerated; each measured when it was made).", "",
              "| set | method | mode | generation (s) | hider training (s) | device | threads |", "|---|---|---|---|---|---|---|"]
        for x in rows:
            L.append(f"| {x['set']} | {x['method']} | {x['mode']} | {_f(x['seconds'])} | "
                     f"{_f(x.get('hider_training_seconds'))} | {x['device']} | {x['threads']} |")
    else:
        L += ["Not in this run (`--attack-sets DIR` reads the manifests of stored attack sets)."]

    L += ["", "## Targets (issue 8)", "", "| target | measured | met |", "|---|---|---|"]
    for name, measured, ok in targets(res):
        L.append(f"| {name} | {measured} | {'yes' if ok else 'NO'} |")
    L += ["", "A target marked NO is not met on this machine in this run; the gap is explained in the issue's "
          "closing note, never by editing this generated file.", ""]
    return "\n".join(L)


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the issue's numeric targets that this run measured."""
    out = []
    for model, x in res["victim"].items():
        out.append((f"victim training {model} >= 3x the peer loop", f"{x['ratio']:.2f}x", x["ratio"] >= 3))
    p = res["protect"]
    best = "bf16" if "bf16" in p else "fp32"
    out.append((f"protection end to end >= 85% of the bare INN ({best})", _pct(p[best]["ratio"]), p[best]["ratio"] >= 0.85))
    r = res["rss"]
    n1, n2 = (str(n) for n in res["sizes"]["rss_n"])
    est = 50_000 / r[n2]["images_per_s"]
    out.append((f"50,000 images in <= 5 min ({res['sizes']['inn_blocks']}-block, "
                f"{'bf16' if r['bf16'] else 'fp32'}; from the {int(n2):,}-image run)", f"{est / 60:.1f} min", est <= 300))
    ratio = r[n2]["peak_rss_mb"] / r[n1]["peak_rss_mb"]
    out.append((f"peak RSS of protect does not grow with N ({n1} -> {n2})", f"{ratio:.2f}x", ratio <= 1.1))
    return out


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; numbers are meaningless)")
    ap.add_argument("--out", default=str(HERE), help="directory for RESULTS.md and results.json (default: benchmarks/)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, help="timings per measurement (median reported)")
    ap.add_argument("--accuracy", action="store_true", help="also train both loops for equal epochs (long)")
    ap.add_argument("--accuracy-data", default="fashion-mnist")
    ap.add_argument("--accuracy-epochs", type=float, default=2.0)
    ap.add_argument("--accuracy-n", type=int, help="use only the first N training images")
    ap.add_argument("--accuracy-seeds", type=int, default=3, help="seeds per loop and model (mean +- std)")
    ap.add_argument("--attack-sets", action="append",
                    help="directory of stored attack or Deep Hiding sets: their manifests give generation costs (repeatable)")
    ap.add_argument("--hider", help="a trained hider directory: reveal PSNR in fp32 and bf16")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.repeats is not None and a.repeats < 1:
        ap.error("--repeats must be >= 1")
    if a.accuracy_seeds < 1:
        ap.error("--accuracy-seeds must be >= 1")
    return a


def run(a: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from deephide.runtime import bf16_supported, pick_device

    t0 = time.perf_counter()
    sz = QUICK if a.quick else FULL
    if a.repeats:
        sz = dataclasses.replace(sz, repeats=a.repeats)
    if sz.threads:
        torch.set_num_threads(sz.threads)
    dev = pick_device(a.device)
    precisions = ["fp32"] + (["bf16"] if bf16_supported(dev) else [])
    res: dict[str, Any] = {"quick": a.quick, "command": "python benchmarks/run.py " + shlex.join(argv),
                           "date": _dt.datetime.now().isoformat(timespec="seconds"),
                           "sizes": dataclasses.asdict(sz), "machine": machine(dev)}

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {name}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="deephide-bench-") as td:
        tmp = Path(td)
        step("compute floor")
        res["floor"] = bench_floor(sz, dev)
        step("victim training")
        res["victim"] = bench_victim(sz, dev)
        if a.accuracy:
            step("accuracy after equal epochs")
            res["accuracy"] = bench_accuracy(sz.victim_models, a.accuracy_epochs, a.accuracy_data, a.accuracy_n,
                                             sz.ref_workers, dev, a.accuracy_seeds)
        step("protection")
        res["protect"] = bench_protect(sz, dev, tmp, a.hider)
        step("peak RSS of protect")
        res["rss"] = bench_rss(sz, dev, tmp, bf16="bf16" in precisions)
        step("hider training")
        res["hider_training"] = bench_hider_training(sz, dev, tmp, precisions)
        step("countermeasures")
        res["countermeasures"] = bench_countermeasures(sz)
    if a.attack_sets:
        res["attack_sets"] = a.attack_sets
        res["attack_costs"] = attack_costs(a.attack_sets)
    res["seconds"] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    try:
        if a.worker:
            print(json.dumps(worker(json.loads(a.worker))))
            return 0
        res = run(a, argv)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        from deephide.fsutil import atomic_file, write_json

        write_json(out / "results.json", res)
        with atomic_file(out / "RESULTS.md", "w") as f:
            f.write(render(res))
        print(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'} ({res['seconds'] / 60:.1f} min)")
        return 0
    except DeephideError as e:
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
