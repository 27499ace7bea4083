"""The frozen feature network of L_LFC (the paper: a ResNet-18) trained on the clean training set,
cached per dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from ..data import ImageSet
from ..errors import DeephideError, error_line
from ..fsutil import atomic_file, write_json
from ..models import build_model


def cache_root() -> Path:
    """``$DEEPHIDE_CACHE`` or ``~/.cache/deephide``: trained helper models reused across runs."""
    return Path(os.environ.get("DEEPHIDE_CACHE", Path.home() / ".cache" / "deephide"))


#: epochs of the clean set the feature network sees when the set is small (its class structure is learnt by then)
SMALL_SET_EPOCHS = 30


def sized_schedule(n: int, iterations: int, batch_size: int) -> tuple[int, int]:
    """(iterations, batch size) of the feature network for a clean set of ``n`` images.

    A large set keeps the victim profile's schedule (Fashion-MNIST: 1,400 steps of 128, 3 epochs). A small
    one is not trained for hundreds of epochs: the batch shrinks to a quarter of the set (at least 8, so
    a folder of a few dozen images still trains) and the steps to :data:`SMALL_SET_EPOCHS` epochs.
    Example: 320 images -> (120, 80); 96 -> (120, 24); 60,000 -> (1400, 128).
    """
    if n < 2:
        raise DeephideError(f"L_LFC: {n} training image(s); the feature network needs at least 2")
    bs = min(batch_size, max(8, n // 4), n)
    return min(iterations, max(1, -(-SMALL_SET_EPOCHS * n // bs))), bs


def feature_model(train: ImageSet, test: ImageSet, profile: str = "cpu", model: str = "resnet18",
                  iterations: int | None = None, seed: int = 0, device: str = "auto",
                  cache: Path | None = None, progress: bool = True, record: dict | None = None) -> torch.nn.Module:
    """A frozen ``model`` trained on clean ``train`` (victim ``profile``), loaded from cache when present.

    Returns the model in eval mode with gradients disabled for its parameters (gradients still
    flow to its input, as L_LFC needs). Cache key: data fingerprint, model, profile, iterations, seed
    (and the batch size where :func:`sized_schedule` shrank it). iterations: None = sized by the set.
    record: a dict to fill with how the network was trained (model, iterations, batch size, epochs,
    clean test accuracy, cached or not), for the hider's summary.
    """
    from ..training.trainer import data_fingerprint, result_record, train_victim
    from ..profiles import get_profile

    prof = get_profile("victim", profile, iterations=iterations)
    if iterations is None:
        prof["iterations"], bs = sized_schedule(len(train), prof["iterations"], prof["batch_size"])
    else:
        bs = min(prof["batch_size"], len(train))
    shrunk = bs != prof["batch_size"]
    prof["batch_size"] = bs
    prof["eval_every"] = min(prof["eval_every"], prof["iterations"])
    key = f"{data_fingerprint(train)}-{model}-{profile}-{prof['iterations']}" + (f"-b{bs}" if shrunk else "") \
        + f"-s{seed}"
    d = (cache or cache_root()) / "lfc" / key
    h, w, c = train.shape
    net = build_model(model, num_classes=train.num_classes, in_channels=c, image_size=h)
    wfile = d / "weights.safetensors"
    if wfile.exists():
        try:
            net.load_state_dict(load_file(str(wfile)))
        except Exception as e:  # corrupt or foreign file: a one-line error, not a traceback
            raise DeephideError(f"{wfile}: cached feature model unusable ({error_line(e)}); "
                                "delete it to retrain") from None
    else:
        from ..training.distributed import current

        res = train_victim(train, test, model, prof, seed=seed, device=device, progress=progress)
        net = res["model_state"].cpu()
        from safetensors.torch import save as st_save

        if current().is_main:  # under torchrun every rank holds the same weights; one writes them
            with atomic_file(wfile) as f:  # concurrent runs never see a half-written cache entry
                f.write(st_save({k: v.contiguous() for k, v in net.state_dict().items()}))
            rec = result_record(res)
            write_json(d / "train.json",
                       {k: rec[k] for k in ("final_acc", "best_acc", "config", "versions", "wall_time_s")})
    if record is not None:
        record.update(model=model, profile=profile, iterations=prof["iterations"], batch_size=bs,
                      epochs=round(prof["iterations"] * bs / len(train), 2), cache=str(d))
        info = d / "train.json"
        if info.exists():
            import json

            rec = json.loads(info.read_text())
            record.update(final_acc=rec.get("final_acc"), wall_time_s=rec.get("wall_time_s"))
    net = net.float().to(memory_format=torch.contiguous_format).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def features_fn(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N, C, H, W) in [0, 1] -> last-conv features (N, C', h, w)`` of a frozen model."""
    return net.features
