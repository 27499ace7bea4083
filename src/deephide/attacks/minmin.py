"""Error-minimizing noise: EM / EM-C (Huang et al., ICLR 2021) and robust EM, REM (Fu et al., ICLR 2022).

EM solves min_theta min_delta CE(f_theta(x + delta), y) by alternation: train the surrogate
``train_step`` batches on the perturbed data, then run ``pgd_steps`` signed-gradient descent steps on
every noise (sample-wise) or on the class noises (class-wise: each batch sets a class's noise to the
mean of its samples' updated noises), until the surrogate's accuracy on the perturbed data reaches
``stop_acc`` (99% sample-wise, 90% class-wise in the authors' scripts).

REM solves min_theta min_delta E_T max_{||rho|| <= rho_a} CE(f(T(x + delta) + rho), y): the surrogate is
trained adversarially (PGD radius rho_a = 4/255) on augmented perturbed data, the defensive noise of the
current batch is re-optimised every ``perturb_freq`` steps with expectation over ``eot_samples`` random
crop-flips, and at the end the noise of every image is regenerated with the trained surrogate.

This module: what EM (``em``) and REM (``rem``) share (the noise's start, the clean images, batch cycling)."""

from __future__ import annotations

import torch

from .base import AttackRun


def uniform_noise(shape: tuple[int, ...], eps: float, run: AttackRun) -> torch.Tensor:
    """U(-eps, eps) noise drawn from the run's generator (CPU), moved to the run's device."""
    return (torch.rand(shape, generator=run.gen) * 2 - 1).mul_(eps).to(run.device)


def clean_images(run: AttackRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean set as uint8 (N, C, H, W) and int64 labels on the run's device."""
    return run.train.tensor(run.device), run.train.label_tensor(run.device)


class BatchCycle:
    """Batches of a fixed or per-epoch-reshuffled order, cycling forever (EM's ``next(data_iter)``)."""

    def __init__(self, n: int, batch: int, shuffle: bool, run: AttackRun, drop_last: bool = True) -> None:
        self.n, self.batch, self.shuffle, self.run, self.drop_last = n, min(batch, n), shuffle, run, drop_last
        self.order = self._order()
        self.pos = 0

    def _order(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.run.gen) if self.shuffle else torch.arange(self.n)

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > self.n:
            self.order, self.pos = self._order(), 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx


