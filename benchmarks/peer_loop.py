"""The reference victim training loop, written the way the peer codebases (REM, APBench, ISS) do it.

A ``torch.utils.data.Dataset`` that turns each uint8 image into a PIL image and applies
``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip`` + ``ToTensor`` per image (torchvision's
semantics, implemented with Pillow/numpy because torchvision is not installed here), a
``DataLoader`` with worker processes, fp32, contiguous (NCHW) memory, and ``loss.item()`` every step.
The model, optimiser, learning-rate schedule and data are the same as our trainer's, so the measured
ratio is the cost of the input pipeline and precision choices alone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps


class PeerImageDataset(torch.utils.data.Dataset):
    """uint8 images (N, H, W, C) + int labels (N,) -> (float (C, H, W) in [0, 1], label) per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool, pad: int = 4) -> None:
        self.images, self.labels, self.train, self.pad = images, labels, train, pad

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = self.images[i]
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        if self.train:
            w, h = img.size
            img = ImageOps.expand(img, border=self.pad, fill=0)  # RandomCrop(padding=4): zero padding
            top, left = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
            img = img.crop((left, top, left + w, top + h))
            if torch.rand(()) < 0.5:  # RandomHorizontalFlip(p=0.5)
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = np.asarray(img, dtype=np.float32) / 255.0  # ToTensor
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[i])


def train_reference(images: np.ndarray, labels: np.ndarray, model_name: str, profile: dict[str, Any],
                    iterations: int, warmup: int, workers: int, seed: int = 0) -> dict[str, Any]:
    """Train ``model_name`` for ``iterations`` steps the peer way; time steps ``warmup``..end.

    Returns images/s over the timed steps (loader waits included, as a user experiences them),
    the trained model (for an accuracy check) and the last loss.
    """
    from deephide.training.trainer import lr_at
    from deephide.models import build_model

    torch.manual_seed(seed)
    h, _, c = images.shape[1:]
    model = build_model(model_name, num_classes=int(labels.max()) + 1, in_channels=c, image_size=h)
    opt = torch.optim.SGD(model.parameters(), lr=profile["lr"], momentum=profile["momentum"],
                          weight_decay=profile["weight_decay"], nesterov=profile["nesterov"])
    loader = torch.utils.data.DataLoader(
        PeerImageDataset(images, labels, train=True), batch_size=profile["batch_size"], shuffle=True,
        num_workers=workers, drop_last=True, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed))
    model.train()
    it, t_start, loss_v = 0, None, float("nan")
    while it < iterations:
        for x, y in loader:
            if it == warmup:
                t_start = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = lr_at(it, profile)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_v = loss.item()  # the peers log every step
            it += 1
            if it >= iterations:
                break
    elapsed = time.perf_counter() - (t_start if t_start is not None else time.perf_counter())
    timed_images = (iterations - warmup) * profile["batch_size"]
    return {"images_per_s": timed_images / elapsed if elapsed > 0 else float("nan"), "model": model,
            "last_loss": loss_v, "seconds": elapsed}
