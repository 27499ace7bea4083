"""How long `make reference` (experiments/reference-fmnist/campaign.py) takes on this machine, from measured step times.

Why: the same 2-core run differs several-fold between CPUs with and without native bf16, and a session's machine
is drawn by chance; this says before starting whether the run fits. It times, here:
- one training step of each victim the reference grids use (batch 128, the `fast` profile's precision and
  memory format, ONE thread: the grid runs two cells side by side), and one evaluation forward pass;
- the `long` hider profile's training step through the real training loop (INN + L_LFC through fastcnn features,
  all threads; random weights cost what trained ones do) and the INN's protection throughput (fp32, as `protect` runs);
then multiplies by the campaign's counts: every cell of the grids it schedules (campaign.yaml's passes; an AT cell costs
1 + its PGD steps passes per step), its ablation hiders (ablation_hiders x steps) and each set it makes
with a hider (protecting the 60,000 images).
Not counted: attack sets (5.4 min in all on the bf16 machine of benchmarks/RESULTS.md), verify, countermeasure
preprocessing (JPEG: ~11 s per 50,000 images there), reports. Two cells sharing the machine slow each other, so
the grid estimate is a lower bound; the note beside the committed output compares it with measured cells.

Usage: python benchmarks/reference_cost.py [--out FILE]   (~3-10 min; prints Markdown)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, median, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "experiments" / "reference-fmnist" / "campaign.yaml"
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000


def campaign() -> Any:
    """The reference campaign's declaration (experiments/reference-fmnist/campaign.yaml: its grids, sets, hiders)."""
    from deephide.evaluation.campaign import load_campaign

    return load_campaign(CAMPAIGN)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def victim_step_s(model_name: str, prof: dict, threads: int, steps: int) -> tuple[float, float]:
    """Seconds per training step (batch ``prof['batch_size']``) and per evaluated test image, at ``threads``."""
    from deephide.models import build_model
    from deephide.runtime import amp_dtype, autocast

    dev = torch.device("cpu")
    dtype = amp_dtype(dev, prof["bf16"])
    fmt = torch.channels_last if prof["channels_last"] else torch.contiguous_format
    net = build_model(model_name, 10, 3, 32).to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.rand(prof["batch_size"], 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (prof["batch_size"],))

    def step() -> None:
        with autocast(dev, dtype is not None, dtype or torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with torch_threads(threads):
        step()  # warm-up: allocation and kernel selection
        train = median([timed(step) for _ in range(steps)])
    xe = torch.rand(prof["eval_batch_size"], 3, 32, 32).contiguous(memory_format=fmt)

    def evaluate() -> None:
        with torch.no_grad(), autocast(dev, dtype is not None, dtype or torch.bfloat16):
            net.eval()(xe)
        net.train()

    with torch_threads(threads):
        evaluate()
        per_image = median([timed(evaluate) for _ in range(max(2, steps // 2))]) / prof["eval_batch_size"]
    return train, per_image


def cell_seconds(cell: dict, step: dict[str, tuple[float, float]]) -> float:
    """One grid cell: its training steps (x (1 + PGD steps) for AT) plus its test-set evaluations."""
    prof = cell["profile_settings"]
    per_step, per_eval_image = step[cell["model"]]
    passes = 1 + int(cell["countermeasure_params"].get("steps", 10)) if cell["countermeasure_name"] == "AT" else 1
    evals = prof["iterations"] // prof["eval_every"] + (prof["iterations"] % prof["eval_every"] != 0)
    return prof["iterations"] * per_step * passes + evals * TEST_IMAGES * per_eval_image


def hider_step_s(threads: int, steps: int, profile: str = "long") -> float:
    """Seconds per hider step of ``profile``, through train_hider (difference of two runs: no start-up cost)."""
    from deephide.data import load_dataset
    from deephide.hiding.lfc import features_fn
    from deephide.hiding.profiles import get_hider_profile
    from deephide.hiding.train import train_hider
    from deephide.models import build_model
    from deephide.semantic import make_bank

    train = load_dataset("synthetic?n=400&size=32&classes=10", "train")
    bank = make_bank("next-class", train, "class", 32, 0)
    net = build_model(get_hider_profile(profile)["lfc_model"], 10, 3, 32).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    secs = []
    for n in (2, 2 + steps):
        prof = get_hider_profile(profile, iterations=n, checkpoint_every=10**6, log_every=10**6, snapshot_at=())
        with tempfile.TemporaryDirectory() as d, torch_threads(threads):
            secs.append(train_hider(train, bank, prof, Path(d) / "h", features=features_fn(net), progress=False)["seconds"])
    return (secs[1] - secs[0]) / steps


def protect_image_s(threads: int, batch: int = 256, repeats: int = 3) -> float:
    """Seconds per image of the shipped hiders' INN hide (`long` profile; fp32, as `deephide protect` runs)."""
    from deephide.hiding import Hider
    from deephide.hiding.profiles import get_hider_profile, hider_config

    hider = Hider(hider_config(get_hider_profile("long"), 32, 3)).eval()
    cover, secret = torch.rand(batch, 3, 32, 32), torch.rand(batch, 3, 32, 32)

    def hide() -> None:
        with torch.no_grad():
            hider.hide(cover, secret)

    with torch_threads(threads):
        hide()
        return median([timed(hide) for _ in range(repeats)]) / batch


def protect_count() -> int:
    """The campaign's sets made by a hider, shipped or its own (each protects the 60,000 images)."""
    return sum(1 for cmd in campaign().sets.values() if cmd and cmd[0] == "protect")


def grid_cells() -> dict[str, list[dict]]:
    """Every cell of the campaign's grids (expanded by label: the sets need not exist yet)."""
    from deephide.evaluation.grid import expand, load_config

    c = campaign()
    return {g: expand(dataclasses.replace(load_config(c.configs / f"{g}.yaml"), identity="label")) for g in c.grids}


def estimate(steps: int) -> str:
    from deephide.hiding.profiles import get_hider_profile

    cores = torch.get_num_threads()
    cells = grid_cells()
    profs = {(cell["model"], cell["profile"]): cell["profile_settings"] for cs in cells.values() for cell in cs}
    step = {}
    for (model, _), prof in sorted(profs.items()):
        step[model] = victim_step_s(model, prof, 1, steps if model != "resnet18" else max(2, steps // 3))
    h_step = hider_step_s(cores, max(2, steps // 2))
    p_img = protect_image_s(cores)
    hp = get_hider_profile("long")
    n_protect = protect_count()
    camp = campaign()
    hider_s = len(camp.hiders) * camp.hider_steps * h_step
    grid_s = {name: sum(cell_seconds(c, step) for c in cs) / 2 for name, cs in cells.items()}  # two cells at a time
    protect_s = n_protect * TRAIN_IMAGES * p_img
    total = protect_s + hider_s + sum(grid_s.values())
    m = machine(torch.device("cpu"))
    out = [
        "# `make reference`: estimated wall time on this machine",
        "",
        f"Command: `python benchmarks/reference_cost.py`. Machine: {m['cpu']}, {m['cpus']} cores, native bf16: "
        f"{m['bf16_native']}, torch {m['torch']}, {cores} threads.",
        "",
        "## Measured step times",
        "",
        "| what | threads | seconds |",
        "|---|---|---|",
    ]
    for model, (s, e) in step.items():
        out.append(f"| victim {model}: training step (batch 128) / one evaluated test image | 1 | {s:.3f} / {e * 1e3:.3f} ms |")
    out += [
        f"| hider (`long` profile, batch {hp['batch_size']}, L_LFC through {hp['lfc_model']}): training step | {cores} | {h_step:.3f} |",
        f"| INN protection, per image (fp32) | {cores} | {p_img * 1e3:.3f} ms |",
        "",
        "## Estimate",
        "",
        "| stage | count | hours |",
        "|---|---|---|",
        f"| ablation hiders ({camp.hider_steps} steps each) | {len(camp.hiders)} | {hider_s / 3600:.2f} |",
        f"| sets protected by a hider ({TRAIN_IMAGES:,} images each) | {n_protect} | {protect_s / 3600:.2f} |",
    ]
    for name, s in grid_s.items():
        out.append(f"| grid {name} (two 1-thread cells at a time) | {len(cells[name])} cells | {s / 3600:.2f} |")
    out += [f"| **total** (attack sets, preprocessing and the summary not counted; cells taken over from earlier "
            f"runs not subtracted) | | **{total / 3600:.2f}** |", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per measurement (median)")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    a = ap.parse_args(argv)
    text = estimate(a.steps)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
