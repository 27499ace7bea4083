"""Hider checkpoints: a directory of safetensors + JSON, never pickle.

Layout of a checkpoint directory:
    config.json            format tag, HiderConfig, profile name, training state (iteration, ...),
                           library versions, optimizer type + param groups + scalar state (steps)
    weights.safetensors    the hider's state_dict (float32)
    optimizer.safetensors  optional: optimizer state tensors, keys ``opt.{param_idx}.{name}``
                           (e.g. ``opt.3.exp_avg``, ``opt.3.exp_avg_sq`` for Adam)

The directory is written to a temporary name and renamed when complete (deephide.fsutil).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import DeephideError, error_line
from ..fsutil import atomic_dir, write_json
from .inn import Hider, HiderConfig

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
OPTIMIZER_FILE = "optimizer.safetensors"
FORMAT = "deephide-hider"
FORMAT_VERSION = 1


def _jsonable(v: Any) -> Any:
    """Optimizer hyperparameters as JSON values (tuples -> lists, 0-d tensors -> floats)."""
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Split an optimizer state_dict into JSON (groups, scalars) and safetensors (tensors)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                tensors[f"opt.{idx}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = float(v) if k == "step" else _jsonable(v)
    groups = [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]]
    meta = {"type": type(optimizer).__name__, "param_groups": groups, "scalars": scalars}
    return meta, tensors


def save_hider(path: str | os.PathLike, hider: Hider, *, profile: str | None = None,
               training: dict[str, Any] | None = None,
               optimizer: torch.optim.Optimizer | None = None, overwrite: bool = False) -> Path:
    """Write ``hider`` (and optionally its optimizer and training state) to directory ``path``.

    training: JSON-serialisable dict, e.g. {"iteration": 1200, "seed": 0, "losses": {...}}.
    overwrite: replace an existing checkpoint (atomically) instead of refusing.
    """
    from ..runtime import versions

    if not isinstance(hider, Hider):
        raise DeephideError(f"save_hider: expected a Hider, got {type(hider).__name__}")
    path = Path(path)
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in hider.state_dict().items()}
    config: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "hider": hider.config.to_dict(),
        "profile": profile, "training": training or {}, "versions": versions(),
    }
    opt_tensors: dict[str, torch.Tensor] | None = None
    if optimizer is not None:
        config["optimizer"], opt_tensors = _optimizer_payload(optimizer)
    with atomic_dir(path, force=overwrite) as tmp:
        save_file(weights, str(tmp / WEIGHTS_FILE))
        if opt_tensors is not None:
            save_file(opt_tensors, str(tmp / OPTIMIZER_FILE))
        write_json(tmp / CONFIG_FILE, config)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The validated contents of ``path/config.json`` (format, hider config, training state)."""
    path = Path(path)
    if not path.is_dir():
        raise DeephideError(f"{path}: not a hider checkpoint directory (missing or not a directory)")
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise DeephideError(f"{cfg_file}: missing (not a hider checkpoint)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeephideError(f"{cfg_file}: unreadable JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise DeephideError(f"{cfg_file}: not a deephide hider checkpoint (format tag missing)")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise DeephideError(f"{cfg_file}: unsupported checkpoint version {cfg.get('format_version')!r} "
                            f"(expected {FORMAT_VERSION})")
    cfg["hider"] = HiderConfig.from_dict(cfg.get("hider"), where=str(cfg_file))
    return cfg


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise DeephideError(f"{file}: missing")
    try:
        return load_file(str(file), device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise DeephideError(f"{file}: unreadable safetensors ({error_line(e)})") from None


def trained_for_any_size(saved: dict[str, Any]) -> bool:
    """Whether the checkpoint ``saved`` (read_checkpoint's dict) was trained for images of any size: its profile
    says so (``any_size``, the photo profile: crops at several scales), so it is used at any even size, what it
    does there measured by its card's gates rather than assumed."""
    from .profiles import HIDER_PROFILES

    return bool(HIDER_PROFILES.get(saved.get("profile") or "", {}).get("any_size", False))


def load_hider(path: str | os.PathLike, image_size: int | None = None,
               device: torch.device | str = "cpu") -> Hider:
    """Rebuild the hider saved in ``path`` and load its weights (float32, on ``device``).

    image_size: the side of the images it will be used on; a mismatch with the size it was trained for is an
    error, unless its profile trained it for any size (trained_for_any_size). Weights that do not fit the
    architecture in config.json (missing, extra or mis-shaped tensors) or that hold NaN/inf are errors naming the
    file.
    """
    path = Path(path)
    saved = read_checkpoint(path)
    config: HiderConfig = saved["hider"]
    if image_size is not None and int(image_size) != config.image_size:
        s = config.image_size
        if not trained_for_any_size(saved):
            raise DeephideError(f"{path}: hider trained for {s}x{s} images, data is {image_size}x{image_size}")
        # a multi-scale hider (the photo profile): the INN is convolutional, only the size it is checked against moves
        config = dataclasses.replace(config, image_size=int(image_size))
    wfile = path / WEIGHTS_FILE
    state = _load_tensors(wfile)
    hider = Hider(config, init_scale=None)
    expected = hider.state_dict()
    arch = f"blocks={config.blocks}, growth={config.growth}, channels={config.channels}"
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        what = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {extra[0]}"
        raise DeephideError(f"{wfile}: does not match the architecture in {CONFIG_FILE} ({arch}): {what}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise DeephideError(
                f"{wfile}: tensor {k} has shape {tuple(state[k].shape)}, the architecture in {CONFIG_FILE} "
                f"({arch}) needs {tuple(v.shape)}"
            )
        if not state[k].is_floating_point() or not bool(torch.isfinite(state[k]).all()):
            raise DeephideError(f"{wfile}: tensor {k} holds NaN/inf or non-float values (diverged training?)")
    hider.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return hider.to(device)


def load_training_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """The saved training state dict; if ``optimizer`` is given, restore its state too.

    The optimizer must be of the saved type and built over the parameters of a hider of the
    saved architecture, in ``hider.parameters()`` order.
    """
    path = Path(path)
    cfg = read_checkpoint(path)
    training = cfg.get("training") or {}
    if optimizer is None:
        return training
    cfg_file = path / CONFIG_FILE
    meta = cfg.get("optimizer")
    if not isinstance(meta, dict):
        raise DeephideError(f"{cfg_file}: no optimizer state saved in this checkpoint")
    if meta.get("type") != type(optimizer).__name__:
        raise DeephideError(f"{cfg_file}: optimizer state is for {meta.get('type')}, not {type(optimizer).__name__}")
    ofile = path / OPTIMIZER_FILE
    tensors = _load_tensors(ofile)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    groups = meta.get("param_groups") or []
    if [len(g.get("params", [])) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise DeephideError(f"{cfg_file}: optimizer parameter groups do not match this model")
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "opt" or not parts[1].isdigit() or int(parts[1]) >= len(params):
            raise DeephideError(f"{ofile}: unexpected tensor {key}")
        idx = int(parts[1])
        if tuple(t.shape) != tuple(params[idx].shape):
            raise DeephideError(f"{ofile}: tensor {key} has shape {tuple(t.shape)}, "
                                f"parameter has {tuple(params[idx].shape)}")
        state.setdefault(idx, {})[parts[2]] = t.to(params[idx].device)
    for idx_s, scal in (meta.get("scalars") or {}).items():
        if not idx_s.isdigit() or int(idx_s) >= len(params):
            raise DeephideError(f"{cfg_file}: optimizer state for unknown parameter {idx_s}")
        for k, v in scal.items():
            # torch's Adam keeps its step count as a float32 tensor
            state.setdefault(int(idx_s), {})[k] = torch.tensor(float(v), dtype=torch.float32) if k == "step" else v
    restored_groups = []
    for g in groups:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        restored_groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": restored_groups})
    except (ValueError, KeyError, TypeError) as e:
        raise DeephideError(f"{cfg_file}: optimizer state does not fit this optimizer ({e})") from None
    return training
