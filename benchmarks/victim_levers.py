"""Which measures could halve a grid cell on a 2-core CPU? Each candidate of issue 20 (item 1), measured in one run.

    python benchmarks/victim_levers.py --out benchmarks/VICTIM_LEVERS.md     # ~3 min on an idle CPU

The grid cell is fastcnn's `fast` profile (batch 128, bf16 autocast where native, channels-last, one thread). Each
lever below is timed against the profile's own setting in alternating rounds of this one process (the median of
``--rounds`` timings each), so a busy machine slows both alike:

- batch shape: one training step (crop-flip, forward, backward, SGD: the trainer's) per image, at several
  batch sizes (fewer, larger steps for the same images; a recipe change, so only worth testing for accuracy if the
  per-image cost falls);
- precision and layout: the same step in bf16 / fp32, channels-last / NCHW;
- several seeds in one process: the three seeds of a cell stacked into one network of grouped convolutions
  (``groups=3``: each seed's weights see only its own channels, so the three trainings stay exact and independent),
  timed layer by layer as forward + backward of fastcnn's four 3x3 convolutions against three separate ones; the
  elementwise layers (BatchNorm, GELU, max-pool) touch three times the elements either way;
- share of the peak: the profile's step in GFLOP/s against the one-thread matmul rate measured in this run;
- evaluation: one evaluation of the 10,000 test images (batch 256) against the 235 training steps between two
  evaluations: the share a lower evaluation frequency could save (at the price of a coarser peak).
torch.compile is measured by ``compile_probe.py`` (0.94x on this machine kind: not a lever).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # a script, not a package: its helpers live beside it
    sys.path.insert(0, str(HERE))

#: fastcnn's 3x3 convolutions at 32x32 input: (input channels, output channels, side)
CONVS = ((32, 64, 16), (64, 64, 8), (64, 128, 8), (128, 128, 4))


def med(fn: Callable[[], Any], rounds: int, reps: int) -> float:
    """Median over ``rounds`` of the mean seconds of ``reps`` calls (after one untimed call)."""
    fn()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append((time.perf_counter() - t0) / reps)
    return statistics.median(out)


def make_step(batch: int, bf16: bool, channels_last: bool, n: int = 4096) -> Callable[[], None]:
    """One training step of the grid victim on a random uint8 batch of ``batch`` (32x32x3, 10 classes)."""
    import torch
    import torch.nn.functional as F

    from deephide.models import build_model
    from deephide.training.augment import augment_batch

    torch.manual_seed(0)
    net = build_model("fastcnn", num_classes=10, in_channels=3, image_size=32)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    if not channels_last:
        images = images.contiguous()
    labels = torch.randint(0, 10, (n,))
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, n, (batch,), generator=gen)
        x = augment_batch(images[idx].float().div_(255), "crop-flip", gen).contiguous(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def conv_pair(cin: int, cout: int, side: int, groups: int, batch: int = 128) -> Callable[[], None]:
    """Forward + backward (input and weight gradients) of one bf16 channels-last 3x3 conv of ``groups`` stacked seeds."""
    import torch
    import torch.nn.functional as F

    cl = torch.channels_last
    x = torch.randn(batch, groups * cin, side, side).bfloat16().contiguous(memory_format=cl).requires_grad_()
    w = torch.randn(groups * cout, cin, 3, 3).bfloat16().contiguous(memory_format=cl).requires_grad_()
    g = torch.randn(batch, groups * cout, side, side).bfloat16().contiguous(memory_format=cl)

    def run() -> None:
        F.conv2d(x, w, padding=1, groups=groups).backward(g)
        x.grad = w.grad = None

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="steps per timing of the training step (default 8)")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--quick", action="store_true", help="1 round of 1 step each (smoke test)")
    ap.add_argument("--out", default=str(HERE / "VICTIM_LEVERS.md"))
    a = ap.parse_args(argv)
    import torch

    from deephide.data import load_dataset
    from deephide.models import build_model
    from deephide.runtime import bf16_supported
    from deephide.training.trainer import evaluate_accuracy

    from benchlib import count_flops, machine, matmul_gflops

    if a.quick:
        a.rounds, a.steps = 1, 1
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    bf16 = bf16_supported(torch.device("cpu"))
    m = machine(torch.device("cpu"))
    lines = ["# Levers for a grid cell's cost (issue 20, item 1)", "",
             f"Command: `python benchmarks/victim_levers.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}; CPU: {m['cpu']}, {m['cpus']} logical cores, "
             f"native bf16: {m['bf16_native']}; torch {m['torch']}; one thread; median of {a.rounds} rounds", ""]

    # batch shape: per-image cost of a step at each batch size (same images per timing)
    per_img = {b: med(make_step(b, bf16, True), a.rounds, max(1, a.steps * 128 // b)) / b for b in a.batches}
    ref = per_img.get(128, next(iter(per_img.values())))
    lines += ["## Batch shape (the profile: 128)", "", "| batch | us per image | vs 128 |", "|---:|---:|---:|"]
    lines += [f"| {b} | {1e6 * t:.1f} | {ref / t:.2f}x |" for b, t in per_img.items()] + [""]

    # precision and layout
    lines += ["## Precision and layout (batch 128; the profile: bf16 where native, channels-last)", "",
              "| precision | layout | ms per step | vs the profile |", "|---|---|---:|---:|"]
    combos = [(p, c) for p in ((True, False) if bf16 else (False,)) for c in (True, False)]
    times = {pc: med(make_step(128, *pc), a.rounds, a.steps) for pc in combos}
    base = times[(bf16, True)]
    lines += [f"| {'bf16' if p else 'fp32'} | {'channels-last' if c else 'NCHW'} | {1e3 * t:.1f} | {base / t:.2f}x |"
              for (p, c), t in times.items()] + [""]

    # the profile's step against this CPU's one-thread matmul rate: what share of the peak a cell uses
    flops = count_flops(make_step(128, bf16, True)) / 128  # convolutions and the linear layer; 2 per multiply-add
    dtype = torch.bfloat16 if bf16 else torch.float32
    rate = matmul_gflops(torch.device("cpu"), dtype, 2048, max(3, a.rounds))
    achieved = flops * 128 / base / 1e9
    lines += ["## Share of the peak (batch 128, the profile's setting)", "",
              f"One training image costs {flops / 1e9:.4f} GFLOP (forward and backward, torch's FlopCounterMode); the "
              f"profile's step runs at {achieved:.1f} GFLOP/s, **{100 * achieved / rate:.1f}% of the {rate:,.0f} GFLOP/s "
              f"{'bf16' if bf16 else 'fp32'} matmul rate** measured in this run on one thread (2048 x 2048).", ""]

    # several seeds in one process: grouped convolutions
    lines += ["## Three seeds in one network (grouped convolutions), fastcnn's 3x3 convolutions, batch 128", "",
              "| conv (in, out, side) | 3 separate: ms | grouped (3 seeds): ms | speedup |", "|---|---:|---:|---:|"]
    tot = [0.0, 0.0]
    for cin, cout, side in CONVS:
        one = med(conv_pair(cin, cout, side, 1), a.rounds, a.steps)
        grp = med(conv_pair(cin, cout, side, 3), a.rounds, a.steps)
        tot[0] += 3 * one
        tot[1] += grp
        lines.append(f"| ({cin}, {cout}, {side}) | {3e3 * one:.2f} | {1e3 * grp:.2f} | {3 * one / grp:.2f}x |")
    lines += [f"| all four | {1e3 * tot[0]:.2f} | {1e3 * tot[1]:.2f} | {tot[0] / tot[1]:.2f}x |", ""]

    # evaluation: its share of a cell
    test = load_dataset("synthetic?n=10000&classes=10&size=32" if a.quick else "fashion-mnist", "test")
    x_test = torch.from_numpy(test.images).permute(0, 3, 1, 2)
    y_test = torch.from_numpy(test.labels)
    net = build_model("fastcnn", num_classes=10, in_channels=3, image_size=32).to(memory_format=torch.channels_last)
    t_eval = med(lambda: evaluate_accuracy(net, x_test, y_test, 256, bf16, True), max(1, a.rounds // 2), 1)
    t_between = 235 * base
    lines += ["## Evaluation", "",
              f"One evaluation of {len(test):,} test images (batch 256): {t_eval:.2f} s; the 235 training steps between "
              f"two evaluations: {t_between:.1f} s; so evaluations are {100 * t_eval / (t_eval + t_between):.1f}% of "
              f"the training and evaluation time (halving their frequency saves about half of that, and coarsens "
              f"the peak).", "",
              f"Wall time of this run: {time.perf_counter() - t_start:.0f} s."]
    out = Path(a.out)
    out.write_text("\n".join(lines) + "\n")
    print(f"victim_levers: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
