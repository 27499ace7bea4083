"""A surrogate victim inside hider training (not in the paper): the "surrogate-victim term" variant.

Why: the shipped hiders hide (reveal gate passed) and their perturbation is ~98% its class mean, a class shortcut,
yet victims learn past it (fastcnn 76%, ResNet-20 45% final on DH-C). Error-minimising noise (min-min, Huang et al.
2021) makes the shortcut the easiest thing to fit by training the perturbation against a model that is itself
being trained on it. Here a small victim model (the surrogate) trains on the stored images as the hider makes
them, one SGD step per hider step, under the victims' own augmentation (random crop + flip); the hider's term

    L_sv = CE(surrogate(augment(stored)), y)

asks the stored perturbation to make each image easy for that surrogate to classify. The hider still has to
reveal its secret from the same stored image, so the shortcut it builds carries the hidden content.

Robust views (issue 33, not in the paper). A victim trained under a countermeasure sees the stored images through
it; a shortcut that JPEG, bit-depth reduction or noise wash out is no shortcut for that victim. With ``views`` the
surrogate fits, and scores for the hider, the stored batch through one view drawn per call: a distortion of
``hiding.distortions`` (the tables' data families, each with a gradient) or a batch countermeasure (``mixup``,
``cutmix``: soft targets). With ``adv_levels`` it trains adversarially (PGD, L-inf radius adv_levels/255, the
AT countermeasure's attack) and the hider's term is the surrogate's loss on the adversarial point: the min-min-max
of REM (Fu et al. 2022), so the shortcut holds against a victim that adversarially trains at a small radius.

State (weights and SGD momentum) is saved beside the hider's checkpoint (``surrogate.safetensors``) and follows
rollbacks, so an interrupted training resumes to the same weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from ..errors import DeephideError, error_line
from ..fsutil import atomic_file
from ..countermeasures import build_countermeasure
from ..countermeasures.adversarial import pgd_linf
from ..models import build_model
from ..runtime import derive_seed
from ..training.augment import random_crop_flip
from ..training.linear import fit_linear
from .distortions import DISTORTIONS, check_distortions

#: batch countermeasures a surrogate view may draw besides the distortions (label-mixing: soft targets)
MIXES = {"mixup": "Mixup", "cutmix": "CutMix"}
#: PGD as the AT countermeasure runs it for the tables' AT-2/255 and AT-4/255 columns: 2 steps of 5/8 the radius
ADV_STEPS, ADV_ALPHA = 2, 5 / 8


def check_views(names: Any) -> tuple[str, ...]:
    """The profile's ``sv_views`` as a tuple (a list, or names joined by '+'), each a distortion or a mix."""
    return check_distortions(names, extra=tuple(MIXES), setting="sv_views")


class SurrogateVictim:
    """A victim model trained alongside the hider on its stored images.

    model: a registered victim architecture (``fastcnn`` by default: cheap and augmentation-trained like the
    grid's victim); images float (N, 3, S, S) in [0, 1], labels int (N,).
    """

    def __init__(self, model: str, num_classes: int, image_size: int, lr: float, device: torch.device,
                 seed: int = 0, views: Any = (), adv_levels: float = 0.0) -> None:
        self._spec = (model, num_classes, image_size, lr, device)
        self.views, self.adv_eps = check_views(views), float(adv_levels) / 255.0
        if not self.adv_eps >= 0:
            raise DeephideError(f"sv_adv_levels must be >= 0, got {adv_levels!r}")
        self.num_classes = num_classes
        self._mixes = {n: build_countermeasure(MIXES[n]) for n in set(self.views) & set(MIXES)}  # built once
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Fresh weights (seeded) and a fresh optimizer: the surrogate starts learning again."""
        model, num_classes, image_size, lr, device = self._spec
        with torch.random.fork_rng(devices=[]):  # the surrogate's init does not move the hider's RNG streams
            torch.manual_seed(seed)
            self.net = build_model(model, num_classes, 3, image_size).to(device)
        self.net.train()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def view(self, stored: torch.Tensor, labels: torch.Tensor,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """What a victim's batch looks like: one view drawn from ``views`` (none when empty), then the victims'
        crop + flip. stored: float (N, 3, S, S) in [0, 1]; labels int (N,). Returns (x float (N, 3, S, S),
        target: int (N,) or float (N, classes) soft labels after a mix); differentiable in ``stored``."""
        x, y = stored.float(), labels
        if self.views:
            pick = self.views[int(torch.randint(len(self.views), (1,), generator=gen))]
            if pick in MIXES:
                x, y = self._mixes[pick].apply_batch(x, y, self.num_classes, gen)
            else:
                x = DISTORTIONS[pick](x, x, gen)[0]
        return random_crop_flip(x, gen), y

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x`` moved to PGD's point against the surrogate (unchanged without ``adv_levels``); the offset is detached,
        so a gradient still reaches ``x``: (N, 3, S, S)."""
        if not self.adv_eps:
            return x
        hard = y if y.ndim == 1 else y.argmax(1)  # PGD ascends the loss of the label a mixed image mostly carries
        was = self.net.training
        self.net.eval()
        try:
            x0 = x.detach()
            return x + (pgd_linf(self.net, x0, hard, self.adv_eps, ADV_ALPHA * self.adv_eps, ADV_STEPS, gen) - x0)
        finally:
            self.net.train(was)

    def fit(self, stored: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> float:
        """One SGD step on a view of the (detached) stored batch, adversarial with ``adv_levels``; returns its loss."""
        x, y = self.view(stored.detach(), labels, gen)
        x = self._adversarial(x, y, gen)
        loss = F.cross_entropy(self.net(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def loss(self, stored: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """L_sv: cross-entropy of the surrogate on augmented stored images, differentiable in ``stored`` only
        (the surrogate's own weights take no gradient from it)."""
        x, y = self.view(stored, labels, gen)
        x = self._adversarial(x, y, gen)  # min-min-max: the hider minimises the loss at the surrogate's worst point
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            return F.cross_entropy(self.net(x), y)
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)

    def state(self) -> dict[str, Any]:
        """A deep copy of weights and optimizer state (for rollbacks)."""
        return {"net": copy.deepcopy(self.net.state_dict()), "opt": copy.deepcopy(self.opt.state_dict())}

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])

    def save(self, path: Path) -> None:
        """Weights and SGD momentum buffers as one safetensors file, written atomically."""
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        for i, p in enumerate(self.net.parameters()):
            buf = self.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{i}"] = buf.detach().cpu().contiguous()
        with atomic_file(path) as f:
            f.write(st_save(tensors))

    def restore(self, path: Path) -> None:
        """Load what :meth:`save` wrote (a one-line error when the file does not fit this surrogate)."""
        try:
            t = load_file(str(path))
            dev = next(self.net.parameters()).device
            self.net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})
            for i, p in enumerate(self.net.parameters()):
                if f"momentum.{i}" in t:
                    self.opt.state[p]["momentum_buffer"] = t[f"momentum.{i}"].to(dev)
        except Exception as e:  # noqa: BLE001  (a corrupt or foreign file: one line, not a traceback)
            raise DeephideError(f"{path}: unusable surrogate state ({error_line(e)})") from None


def cover_linear(covers: torch.Tensor, train: Any, seed: int) -> torch.nn.Module:
    """L_lin's linear classifier (hiding.losses.linear_shortcut_loss): a bias-free linear model fitted on the clean
    ``covers`` (uint8 (N, C, H, W) on the training device) with ``train``'s labels, PIL's settings (30 epochs, lr
    0.003, batch 512), seeded by the run seed: fitted again, the same, when a run resumes (nothing is stored)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "linear_surrogate"))
    labels = torch.from_numpy(train.labels).to(covers.device)
    return fit_linear(covers, labels, train.num_classes, gen=gen)[0]
