"""The frozen feature network of L_LFC (the paper: a ResNet-18) trained on the clean training set, cached per dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from ..data import ImageSet
from ..errors import DeephideError
from ..fsutil import atomic_file, write_json
from ..models import build_model


def cache_root() -> Path:
    """``$DEEPHIDE_CACHE`` or ``~/.cache/deephide``: trained helper models reused across runs."""
    return Path(os.environ.get("DEEPHIDE_CACHE", Path.home() / ".cache" / "deephide"))


def feature_model(train: ImageSet, test: ImageSet, profile: str = "cpu", model: str = "resnet18",
                  iterations: int | None = None, seed: int = 0, device: str = "auto",
                  cache: Path | None = None, progress: bool = True) -> torch.nn.Module:
    """A frozen ``model`` trained on clean ``train`` (victim ``profile``), loaded from cache when present.

    Returns the model in eval mode with gradients disabled for its parameters (gradients still
    flow to its input, as L_LFC needs). Cache key: data fingerprint, model, profile, iterations, seed.
    """
    from ..evaluation.trainer import data_fingerprint, result_record, train_victim
    from ..profiles import get_profile

    prof = get_profile("victim", profile, iterations=iterations)
    key = f"{data_fingerprint(train)}-{model}-{profile}-{prof['iterations']}-s{seed}"
    d = (cache or cache_root()) / "lfc" / key
    h, w, c = train.shape
    net = build_model(model, num_classes=train.num_classes, in_channels=c, image_size=h)
    wfile = d / "weights.safetensors"
    if wfile.exists():
        try:
            net.load_state_dict(load_file(str(wfile)))
        except Exception as e:  # corrupt or foreign file: a one-line error, not a traceback
            raise DeephideError(f"{wfile}: cached feature model unusable ({str(e).splitlines()[0]}); delete it to retrain") from None
    else:
        from ..distributed import current

        res = train_victim(train, test, model, prof, seed=seed, device=device, progress=progress)
        net = res["model_state"].cpu()
        from safetensors.torch import save as st_save

        if current().is_main:  # under torchrun every rank holds the same weights; one writes them
            with atomic_file(wfile) as f:  # concurrent runs never see a half-written cache entry
                f.write(st_save({k: v.contiguous() for k, v in net.state_dict().items()}))
            rec = result_record(res)
            write_json(d / "train.json", {k: rec[k] for k in ("final_acc", "best_acc", "config", "versions", "wall_time_s")})
    net = net.float().to(memory_format=torch.contiguous_format).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def features_fn(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N, C, H, W) in [0, 1] -> last-conv features (N, C', h, w)`` of a frozen model."""
    return net.features
