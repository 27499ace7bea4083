"""Settings of every attack per profile: ``paper`` (published defaults), ``cpu`` (2-core CPU), ``tiny`` (tests).

Step sizes and radii are in uint8 levels (0.8 = 0.8/255), as the papers write them. ``paper`` values
come from the authors' code and READMEs (EM: HanxunH/Unlearnable-Examples; REM:
fshp971/robust-unlearnable-examples; LSP: dayu11/Availability-Attacks-Create-Shortcuts as packaged
by APBench; AR: psandovalsegura/autoregressive-poisoning; OPS: the APBench port of Wu et al.).
Each non-paper profile carries a ``shortening`` sentence; :func:`attack_profile` also records the
exact settings that differ from ``paper``, so a provenance record says how far a run is from the paper.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import DeephideError
from ..profiles import coerce_setting

PROFILE_NAMES = ("paper", "cpu", "tiny")
MODEL_FREE = "none: model-free, the published generator runs unchanged"

# ------------------------------------------------------------------ error-minimizing noise (EM, EM-C)

_EM_PAPER: dict[str, Any] = {
    # README of Unlearnable-Examples (sample-wise): ResNet-18, --train_step 10 --num_steps 20 --step_size 0.8
    # --universal_stop_error 0.01, batch 512, SGD 0.1 / 0.9 / 5e-4, noise initialised U(-eps, eps).
    "surrogate": "resnet18", "surrogate_width": 32, "batch_size": 512, "lr": 0.1, "momentum": 0.9,
    "weight_decay": 5e-4, "train_step": 10, "pgd_steps": 20, "step_levels": 0.8, "stop_acc": 99.0,
    "max_rounds": 200, "eval_subset": 0, "subset_portion": 1.0, "bf16": False, "channels_last": False,
}
_EMC_PAPER: dict[str, Any] = {
    **_EM_PAPER,
    # README (class-wise): --num_steps 1 --universal_train_target train_subset --universal_stop_error 0.1
    # --use_subset (universal_train_portion 0.2).
    "pgd_steps": 1, "stop_acc": 90.0, "subset_portion": 0.2,
}

# ------------------------------------------------------------------ robust EM (REM)

_REM_PAPER: dict[str, Any] = {
    # README of robust-unlearnable-examples (CIFAR-10, rem8-4): --train-steps 5000 --batch-size 128 --lr 0.1
    # --lr-decay-rate 0.1 --lr-decay-freq 2000 --weight-decay 5e-4 --momentum 0.9 --pgd-radius 8 --pgd-steps 10
    # --pgd-step-size 1.6 --atk-pgd-radius 4 --atk-pgd-steps 10 --atk-pgd-step-size 0.8 --samp-num 5,
    # perturb-freq 10 (script default), both random starts, EOT over pad-4 crop + flip.
    "surrogate": "resnet18", "surrogate_width": 32, "train_steps": 5000, "batch_size": 128, "lr": 0.1,
    "lr_decay_rate": 0.1, "lr_decay_freq": 2000, "momentum": 0.9, "weight_decay": 5e-4,
    "pgd_steps": 10, "step_levels": 1.6, "eot_samples": 5, "atk_levels": 4.0, "atk_steps": 10,
    "atk_step_levels": 0.8, "perturb_freq": 10, "final_batch_size": 128, "bf16": False, "channels_last": False,
}

# ------------------------------------------------------------------ model-free attacks

_LSP: dict[str, Any] = {
    # perturb_with_lsp: noise_frame_size 8 at 32 px (4x4x3 = 48 features), make_classification with
    # class_sep 10, one Gaussian cluster per class, L2 norm sqrt(d) * 6/255, one draw per image.
    "patch": 8, "class_sep": 10.0, "l2_levels": 6.0, "scale": "l2", "classwise": False,
}
_AR: dict[str, Any] = {
    # ARProcessPerturb3Channel: 3x3 AR filter per class and channel, b ~ N(0, 1), last entry 0, normalised
    # to sum 1; generated at 36x36 from N(0, 1), crop 4. Their CIFAR default scales to L2 = 1; here
    # ``norm=linf`` scales each image's noise to L-inf = eps (their p=inf option).
    # Their shipped coefficients were hand-picked stable draws; ours are redrawn until |x| < max_abs.
    "crop": 4, "norm": "linf", "l2_eps": 1.0, "max_abs": 10.0, "max_tries": 200_000,
}
_OPS: dict[str, Any] = {"sparsity": 1}  # pixel_search: one (position, colour) per class
_RANDOM_C: dict[str, Any] = {}
_SEMANTIC: dict[str, Any] = {"source": "sig", "per_class": 16}

# ------------------------------------------------------------------ perturbation-induced linearization (PIL)

_PIL: dict[str, Any] = {
    # README of jinlinll/pil (CIFAR-10): --pretrain_iter 30 --lr_train 0.003 (SGD, momentum 0.9, no weight decay,
    # cosine over the epochs, batch 512, no augmentation) --attack_iter 30 --eps 8/255 --alpha 0.8/255 --lmd 0.9.
    "surrogate_epochs": 30, "lr": 0.003, "batch_size": 512, "steps": 30, "step_levels": 0.8, "lmd": 0.9,
}

# ------------------------------------------------------------------ ISGAN hider

_ISGAN_PAPER: dict[str, Any] = {
    # Zhang et al. 2019 train with Adam; iterations/batch for the DH paper's Table H are not published.
    "iterations": 10_000, "batch_size": 64, "lr": 1e-3, "alpha": 0.5, "reveal_weight": 1.0,
    "hide_weight": 1.0, "width": 32, "mode": "class", "source": "sig", "per_class": 16,
    "protect_batch_size": 1024, "bf16": False, "channels_last": False,
}


def _p(paper: dict[str, Any], cpu: dict[str, Any], tiny: dict[str, Any], cpu_note: str,
       tiny_note: str = "test-sized: a few steps on a tiny surrogate, for shape and contract checks only"
       ) -> dict[str, dict[str, Any]]:
    return {"paper": dict(paper), "cpu": {**paper, **cpu, "shortening": cpu_note},
            "tiny": {**paper, **tiny, "shortening": tiny_note}}


def _same(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: dict(settings) for name in PROFILE_NAMES}


ATTACK_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "EM": _p(
        _EM_PAPER,
        {"surrogate": "small-cnn", "surrogate_width": 16, "train_step": 50, "pgd_steps": 2, "step_levels": 2.0,
         "max_rounds": 3, "eval_subset": 2048, "bf16": True, "channels_last": True},
        {"surrogate": "small-cnn", "surrogate_width": 8, "batch_size": 32, "train_step": 2, "pgd_steps": 2,
         "step_levels": 2.0, "max_rounds": 2},
        "small 3-conv CNN surrogate (width 16) instead of ResNet-18; at most 3 min-min rounds, each 50 surrogate "
        "steps (paper 10: with so few rounds the surrogate must learn faster) then 2 PGD steps of 2/255 per image "
        "(noise starts U(-eps, eps)), instead of rounds of 10 steps + 20 PGD steps of 0.8/255 until train "
        "accuracy >= 99%; accuracy checked on 2048 images; bf16",
    ),
    "EM-C": _p(
        _EMC_PAPER,
        {"surrogate": "small-cnn", "surrogate_width": 16, "batch_size": 256, "subset_portion": 0.05,
         "max_rounds": 10, "bf16": True, "channels_last": True},
        {"surrogate": "small-cnn", "surrogate_width": 8, "batch_size": 32, "train_step": 2, "max_rounds": 2,
         "subset_portion": 0.5},
        "small 3-conv CNN surrogate (width 16) instead of ResNet-18; class noise updated on a 5% subset "
        "(paper 20%), batch 256, at most 10 rounds instead of until train accuracy >= 90%; bf16",
    ),
    "REM": _p(
        _REM_PAPER,
        {"surrogate": "small-cnn", "surrogate_width": 16, "train_steps": 100, "batch_size": 128,
         "lr_decay_freq": 40, "pgd_steps": 1, "step_levels": 8.0, "eot_samples": 1, "atk_steps": 1,
         "atk_step_levels": 4.0, "perturb_freq": 10, "final_batch_size": 512, "bf16": True,
         "channels_last": True},
        {"surrogate": "small-cnn", "surrogate_width": 8, "train_steps": 4, "batch_size": 16, "lr_decay_freq": 2,
         "pgd_steps": 2, "step_levels": 4.0, "eot_samples": 2, "atk_steps": 1, "atk_step_levels": 4.0,
         "perturb_freq": 2, "final_batch_size": 32},
        "small 3-conv CNN surrogate (width 16) instead of ResNet-18; 100 surrogate steps (lr x0.1 every 40) "
        "instead of 5000; defensive noise: 1 PGD step of 8/255 from U(-eps, eps) with 1 EOT sample instead of "
        "10 steps of 1.6/255 x 5 samples; inner adversary: 1 step of 4/255 (rho_a = 4/255 kept) instead of "
        "10 steps of 0.8/255; bf16",
    ),
    "LSP": _same(_LSP),
    # a linear surrogate costs little on a CPU: the cpu profile is the paper's
    "PIL": {"paper": dict(_PIL), "cpu": {**_PIL, "shortening": "none: the published settings (a linear surrogate)"},
            "tiny": {**_PIL, "surrogate_epochs": 2, "steps": 3, "batch_size": 64,
                     "shortening": "test-sized: 2 surrogate epochs, 3 noise steps"}},
    "AR": _same(_AR),
    "OPS": _same(_OPS),
    "random-noise-C": _same(_RANDOM_C),
    "semantic-added-C": _same(_SEMANTIC),
    "semantic-added-S": _same(_SEMANTIC),
    "ISGAN": _p(
        _ISGAN_PAPER,
        {"iterations": 200, "batch_size": 64, "width": 16, "bf16": True, "channels_last": True},
        {"iterations": 3, "batch_size": 16, "width": 8, "source": "next-class", "per_class": 2},
        "200 Adam steps of batch 64 instead of 10,000, network width 16 instead of 32, bf16 + channels-last "
        "convolutions (the fp32 width-32 hider took 16 min on 60k images on 2 shared cores)",
    ),
}
for _name in ("LSP", "AR", "OPS", "random-noise-C", "semantic-added-C", "semantic-added-S"):
    for _prof in ("cpu", "tiny"):
        ATTACK_PROFILES[_name][_prof]["shortening"] = MODEL_FREE
del _name, _prof


def attack_profile(attack: str, profile: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings of ``attack`` under ``profile`` with ``options`` applied (typed; unknown keys refused).

    Returns a new dict; key ``shortening`` is ``{"note": str, "changed": {key: {"paper": v, "used": v}}}``
    (an empty change list under ``paper`` unless options changed something).
    """
    table = ATTACK_PROFILES.get(attack)
    if table is None:
        raise DeephideError(f"attack {attack}: no profiles defined")
    if profile not in table:
        raise DeephideError(f"attack {attack}: unknown profile '{profile}'; choose one of: {', '.join(PROFILE_NAMES)}")
    s = copy.deepcopy(table[profile])
    note = s.pop("shortening", "none: the published settings")
    passthrough: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key.startswith("bank."):  # options of the semantic source, handed on unchecked
            passthrough[key[5:]] = value
            continue
        if key not in s:
            known = ", ".join(sorted(s)) or "none"
            raise DeephideError(f"attack {attack}: unknown option '{key}'; known: {known}")
        s[key] = coerce_setting(f"attack {attack}", key, value, s[key])
    paper = table["paper"]
    changed = {k: {"paper": paper[k], "used": v} for k, v in s.items() if k in paper and paper[k] != v}
    if passthrough:
        s["bank_options"] = passthrough
    s["shortening"] = {"note": note + (" (plus the options given)" if options else ""), "changed": changed}
    return s
