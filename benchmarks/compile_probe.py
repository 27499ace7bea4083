"""Does torch.compile pay for the grid victim's training step on this CPU? (issue 20: one candidate lever)

    python benchmarks/compile_probe.py [--steps 20] [--rounds 6] [--model fastcnn]

One thread (as a grid cell runs), batch 128 of 32x32 RGB, bf16 autocast where the CPU has native bf16,
channels-last, SGD with Nesterov momentum: the `fast` profile's step. The eager and the compiled step (forward,
backward and optimizer step in one compiled function) are timed in alternating rounds in this one process, so a
busy machine slows both alike; prints the compile time, each median and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deephide.models import build_model
from deephide.runtime import autocast, bf16_supported


def make_step(model: str, bf16: bool):
    torch.manual_seed(0)
    net = build_model(model, num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(torch.device("cpu"), bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fastcnn")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bf16 = bf16_supported(torch.device("cpu"))
    x = torch.rand(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    eager, compiled = make_step(a.model, bf16), torch.compile(make_step(a.model, bf16))
    t0 = time.perf_counter()
    compiled(x, y)
    print(f"compile (first call): {time.perf_counter() - t0:.1f} s")
    for _ in range(3):
        eager(x, y), compiled(x, y)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(a.rounds):
        for name, fn in (("eager", eager), ("compiled", compiled)):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                fn(x, y)
            times[name].append((time.perf_counter() - t0) / a.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.model}, 1 thread, bf16 {bf16}: eager {1e3 * med['eager']:.1f} ms/step, compiled "
          f"{1e3 * med['compiled']:.1f} ms/step, speed-up {med['eager'] / med['compiled']:.2f}x")


if __name__ == "__main__":
    main()
