"""One-shot check of the GPU path (about 2-3 minutes on one modern GPU, well under 5).

    python benchmarks/gpu_check.py [--out DIR] [--quick]
    python benchmarks/gpu_check.py --report DIR/gpu_check.json > DIR/README.md   # the tables of a run

What it runs on CUDA, with the library's own functions (the code the CPU tests exercise):
1. victim training (``train_victim``), ResNet-18 and ResNet-20, a few hundred iterations of batch 128
   with the ``cpu`` recipe (bf16 autocast + channels_last; data and augmentation on the GPU): steady-state
   images/s, and that the net learns the synthetic set;
2. the fp16 + GradScaler path (what a GPU without bf16 gets), ResNet-20: finite loss, learns;
3. protection (``protect``) of 50,000 32x32 images with a 16-block INN in bf16 and fp32: images/s end
   to end and of the bare INN, and the budget (every stored pixel within 8 levels);
4. hider training (``train_hider``, ``paper`` profile: 16 blocks, batch 32, L_LFC through a ResNet-18):
   images/s and peak GPU memory;
5. the ceiling they are compared with, measured in the same run: matmul TFLOP/s in bf16 and fp32 (TF32 off), and
   each loop's share of it (images/s x FLOPs per image from torch's FlopCounterMode).
Prints a table, writes ``gpu_check.json`` to ``--out`` (default: $OUT when set), exits 0 when every
check passed, 1 when one failed, and 0 with a message when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script: its helpers live beside it
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from benchlib import count_flops, machine, matmul_gflops, median, random_hider, synthetic_bank, timed  # noqa: E402

LEVELS = 8
# iterations per victim run (after ``warm`` warm-up ones), images protected, hider iterations
FULL = {"models": ("resnet18", "resnet20"), "victim": 400, "warm": 40, "n": 20_000, "protect_n": 50_000,
        "blocks": 16, "batch": 1024, "hider": 40, "hider_profile": "paper"}
QUICK = dict(FULL, victim=100, protect_n=12_500, hider=10)
DRY = {"models": ("resnet20",), "victim": 4, "warm": 2, "n": 128, "protect_n": 64, "blocks": 2, "batch": 32, "hider": 2,
       "hider_profile": "tiny", "matmul_n": 128}


@functools.lru_cache(maxsize=None)
def synthetic(n: int, split: str = "train"):
    """The CIFAR-shaped synthetic set (made once per size: it is generated on the CPU)."""
    from deephide.data import load_dataset

    return load_dataset(f"synthetic?n={n}&classes=10&size=32", split)


def victim_rate(model: str, iters: int, warm: int, n: int, dev: torch.device, fp16: bool = False) -> dict[str, Any]:
    """Steady-state images/s of ``train_victim`` (evaluations excluded) and the final accuracy."""
    from deephide.training import trainer
    from deephide.profiles import get_profile

    batch = min(128, n // 4)
    train, test = synthetic(n), synthetic(max(64, n // 10), "test")
    prof = get_profile("victim", "cpu", iterations=warm + iters, eval_every=warm, batch_size=batch, bf16=True)
    times: dict[int, float] = {}
    orig = trainer.amp_dtype
    if fp16:  # what a GPU without bf16 gets: fp16 autocast + GradScaler
        trainer.amp_dtype = lambda device, wanted, allow_fp16=True: torch.float16
    try:
        res = trainer.train_victim(train, test, model, prof, seed=0, device=str(dev), progress=False,
                                   on_eval=lambda r: times.__setitem__(r["iteration"], r["time"]))
    finally:
        trainer.amp_dtype = orig
    rate = iters * batch / max(1e-6, times[warm + iters] - times[warm])
    loss = res["history"][-1]["train_loss"]
    return {"images_per_s": rate, "final_acc": res["final_acc"], "train_loss": loss, "amp": res["amp"],
            "device": res["device"], "ok": bool(np.isfinite(loss)) and (res["final_acc"] > 50.0 or n < 1000)}


def protect_rate(n: int, blocks: int, batch: int, dev: torch.device) -> dict[str, Any]:
    """Protection of ``n`` images (in memory, fp32 and bf16) and the bare INN on the same batches."""
    from deephide.protect import protect
    from deephide.runtime import autocast

    ds = synthetic(n)
    bank = synthetic_bank(10, 32)
    hider = random_hider(blocks, 32).to(dev)
    cover = torch.rand(batch, 3, 32, 32, device=dev)
    out: dict[str, Any] = {"n": n, "blocks": blocks, "batch": batch}
    for prec in ("fp32", "bf16"):
        bf16 = prec == "bf16"

        def bare(bf16: bool = bf16) -> None:
            with torch.no_grad(), autocast(dev, bf16):
                for _ in range(n // batch):
                    hider.hide(cover, cover)

        bare()  # warm-up (cuDNN algorithm search)
        t_bare = median([timed(bare, dev) for _ in range(2)])
        t0 = time.perf_counter()
        prot = protect(ds, hider, bank, "class", levels=LEVELS, batch_size=batch, device=str(dev), bf16=bf16,
                       progress=False)
        t_e2e = time.perf_counter() - t0
        linf = int(np.abs(prot.images.astype(np.int16) - ds.images.astype(np.int16)).max())
        changed = float((prot.images != ds.images).mean())
        out[prec] = {"bare_images_per_s": (n // batch) * batch / t_bare, "end_to_end_images_per_s": n / t_e2e,
                     "seconds": t_e2e, "linf_levels": linf, "share_changed": changed,
                     "ok": linf <= LEVELS and changed > 0}
    out["ok"] = out["fp32"]["ok"] and out["bf16"]["ok"]
    return out


def hider_rate(profile: str, iters: int, warm: int, dev: torch.device, tmp: Path) -> dict[str, Any]:
    """``train_hider`` (``paper``: 16-block INN, batch 32) with L_LFC through random ResNet-18 features, bf16."""
    from deephide.hiding import get_hider_profile
    from deephide.hiding.hiderdir import read_log
    from deephide.hiding.train import train_hider
    from deephide.models import build_model

    train = synthetic(2_000)
    bank = synthetic_bank(10, 32, per_class=4)
    feat = build_model("resnet18", num_classes=10).to(dev).eval()
    for p in feat.parameters():
        p.requires_grad_(False)
    prof = get_hider_profile(profile, iterations=warm + iters, log_every=1, checkpoint_every=10**9, bf16=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    s = train_hider(train, bank, prof, tmp / "hider", mode="class", features=feat.features, device=str(dev),
                    progress=False)
    log = read_log(tmp / "hider")
    secs = {r["iteration"]: r["seconds"] for r in log}
    rate = iters * prof["batch_size"] / max(0.1, secs[warm + iters] - secs[warm])
    last = log[-1]
    return {"images_per_s": rate, "bf16": s["bf16"], "device": s["device"], "rollbacks": s["rollbacks"],
            "peak_gpu_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
            "reveal_psnr": last["reveal_psnr"], "blocks": s["run"]["profile"]["blocks"],
            "ok": bool(s["finished"] and np.isfinite(last["total"]))}


def peak(dev: torch.device, n: int) -> dict[str, Any]:
    """Measured matmul GFLOP/s (n^3 products, bf16 and fp32 without TF32) and FLOPs per image of each loop."""
    from deephide.models import build_model
    from deephide.runtime import full_fp32

    with full_fp32(dev):
        rates = {"fp32": matmul_gflops(dev, torch.float32, n, 5), "bf16": matmul_gflops(dev, torch.bfloat16, n, 5)}
    x = torch.rand(1, 3, 32, 32)
    flops = {f"{m} training step": count_flops(lambda net=build_model(m, num_classes=10): net(x).sum().backward())
             for m in ("resnet18", "resnet20")}
    with torch.no_grad():
        flops["INN hide (16 blocks)"] = count_flops(lambda h=random_hider(16, 32): h.hide(x, x))
    return {"matmul_gflops": rates, "flops_per_image": flops, "ok": all(v > 0 for v in rates.values())}


def shares(res: dict[str, Any]) -> dict[str, float]:
    """Each loop's images/s as a share of the measured matmul peak of its precision (bf16 unless fp32)."""
    pk = res.get("peak") or {}
    rates, fpi = pk.get("matmul_gflops"), pk.get("flops_per_image")
    if not rates or not fpi:
        return {}
    out = {}
    for m in ("resnet18", "resnet20"):
        r = res.get(f"victim {m} bf16", {})
        if "images_per_s" in r:
            out[f"victim {m} bf16"] = r["images_per_s"] * fpi[f"{m} training step"] / (rates["bf16"] * 1e9)
    for prec in ("fp32", "bf16"):
        r = next((v.get(prec) for k, v in res.items() if k.startswith("protect") and isinstance(v, dict)), None)
        if isinstance(r, dict) and res["plan"]["blocks"] == 16:
            out[f"INN {prec} bare"] = r["bare_images_per_s"] * fpi["INN hide (16 blocks)"] / (rates[prec] * 1e9)
    return {k: round(v, 4) for k, v in out.items()}


def _rates(r: dict[str, Any]) -> dict[str, float]:
    """The images/s figures of one check's result, rounded, for the summary lines."""
    if "images_per_s" in r:
        return {"train": round(r["images_per_s"], 1)}
    out = {}
    for prec in ("fp32", "bf16"):
        if isinstance(r.get(prec), dict):
            out[f"{prec} end-to-end"] = round(r[prec]["end_to_end_images_per_s"], 1)
            out[f"{prec} bare INN"] = round(r[prec]["bare_images_per_s"], 1)
    return out


def report(res: dict[str, Any], source: str) -> str:
    """A run's results (gpu_check.json) as markdown: each loop's images/s and share of the peak measured with it."""
    m, pk = res["machine"], res.get("peak") or {}
    rates, fpi, sh = pk.get("matmul_gflops", {}), pk.get("flops_per_image", {}), res.get("share_of_peak", {})
    lines = [f"# GPU check: {m.get('gpu')} ({m.get('gpu_memory_gib')} GiB), torch {m.get('torch')}, CUDA {m.get('cuda')}",
             "", f"Generated by `python benchmarks/gpu_check.py --report {source}` from the run's JSON "
             f"(`benchmarks/gpu_check.py{' --quick' if res['plan'].get('victim') == QUICK['victim'] else ''}`, "
             f"{res.get('seconds')} s; host: {m.get('cpu_model')}, {m.get('host_cpus')} cores). Ceiling measured in the same run: "
             f"matmul {rates.get('bf16', 0) / 1e3:,.0f} TFLOP/s bf16, {rates.get('fp32', 0) / 1e3:,.1f} TFLOP/s fp32 "
             "(TF32 off). Share = images/s x FLOPs per image (FlopCounterMode) / that rate.", "",
             "| loop | precision | images/s | FLOPs per image | share of matmul peak | check |", "|---|---|---:|---:|---:|---|"]
    for name, r in res.items():
        if not isinstance(r, dict) or "ok" not in r or name == "peak":
            continue
        ok = "ok" if r["ok"] else f"FAILED {r.get('error', '')}"
        if name.startswith("victim"):
            model = name.split()[1]
            f = fpi.get(f"{model} training step")
            share = sh.get(name)
            lines.append(f"| {name} (batch 128, data and augmentation on the GPU) | {r.get('amp')} | "
                         f"{r.get('images_per_s', 0):,.0f} | {f / 1e9:.2f} G | "
                         f"{'' if share is None else f'{100 * share:.2f}%'} | {ok} |" if f else f"| {name} | | | | | {ok} |")
        elif name.startswith("protect"):
            for prec in ("fp32", "bf16"):
                q = r.get(prec) or {}
                share = sh.get(f"INN {prec} bare")
                lines.append(f"| {name}, bare INN (batch {r.get('batch')}) | {prec} | {q.get('bare_images_per_s', 0):,.0f} | "
                             f"{fpi.get('INN hide (16 blocks)', 0) / 1e9:.2f} G | "
                             f"{'' if share is None else f'{100 * share:.2f}%'} | {ok} |")
                lines.append(f"| {name}, end to end ({r.get('n'):,} images, L-inf {q.get('linf_levels')}) | {prec} | "
                             f"{q.get('end_to_end_images_per_s', 0):,.0f} | | | {ok} |")
        elif name.startswith("train-hider"):
            lines.append(f"| train-hider ({res['plan']['hider_profile']} profile, {r.get('blocks')} blocks, L_LFC; peak "
                         f"{r.get('peak_gpu_mb', 0):,.0f} MB) | {'bf16' if r.get('bf16') else 'fp32'} | "
                         f"{r.get('images_per_s', 0):,.0f} | | | {ok} |")
    return "\n".join(lines) + "\n"


def _stage(name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any]) -> None:
    """Run one check; an exception is a failed check, not a crash (the other checks still run)."""
    t0 = time.perf_counter()
    print(f"[gpu_check] {name} ...", flush=True)
    try:
        results[name] = fn()
    except Exception as e:  # report and continue: a one-shot run should say as much as it can
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    results[name]["seconds_total"] = round(time.perf_counter() - t0, 1)
    print(f"[gpu_check] {name}: {json.dumps(results[name], default=str)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="directory for gpu_check.json (default: $OUT)")
    ap.add_argument("--quick", action="store_true", help="fewer iterations and images (~1 minute)")
    ap.add_argument("--dry-run-cpu", action="store_true",
                    help="run every check at toy sizes on the CPU (tests this script; numbers meaningless)")
    ap.add_argument("--report", metavar="JSON", help="print a run's gpu_check.json as markdown tables and exit")
    a = ap.parse_args(argv)
    if a.report:
        print(report(json.loads(Path(a.report).read_text()), a.report), end="")
        return 0
    if a.dry_run_cpu:
        dev, plan = torch.device("cpu"), DRY
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check. "
              "Run it on a GPU machine.")
        return 0
    else:
        dev, plan = torch.device("cuda"), QUICK if a.quick else FULL
    res: dict[str, Any] = {"machine": machine(dev), "plan": plan}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deephide-gpu-") as td:
        for model in plan["models"]:
            _stage(f"victim {model} bf16",
                   lambda model=model: victim_rate(model, plan["victim"], plan["warm"], plan["n"], dev), res)
        _stage("victim resnet20 fp16+GradScaler",
               lambda: victim_rate("resnet20", plan["victim"] // 2, plan["warm"], plan["n"], dev, fp16=True), res)
        _stage(f"protect {plan['blocks']}-block", lambda: protect_rate(plan["protect_n"], plan["blocks"], plan["batch"], dev), res)
        _stage("train-hider", lambda: hider_rate(plan["hider_profile"], plan["hider"], 5 if plan["hider"] > 5 else 1,
                                                  dev, Path(td)), res)
        _stage("peak", lambda: peak(dev, plan.get("matmul_n", 8192)), res)
    res["share_of_peak"] = shares(res)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    failed = [name for name, r in res.items() if isinstance(r, dict) and r.get("ok") is False]
    print(f"\ngpu_check on {res['machine'].get('gpu', dev)} ({res['seconds']:.0f} s):")
    for name, r in res.items():
        if isinstance(r, dict) and "ok" in r:
            print(f"  {'OK  ' if r['ok'] else 'FAIL'} {name}: images/s {_rates(r)} {r.get('error', '')}")
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "gpu_check.json").write_text(json.dumps(res, indent=2, default=str))
    if res["share_of_peak"]:
        print(f"  share of the measured matmul peak {res['peak']['matmul_gflops']} GFLOP/s: {res['share_of_peak']}")
    print("all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
