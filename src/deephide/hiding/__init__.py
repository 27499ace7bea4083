"""Hiding network: Haar wavelets, the HiNet-style INN hider, its losses, budget and checkpoints.

Importing this package only defines functions and classes (no side effects).
"""

from ..ops.budget import bounded_perturbation, project_to_budget, quantise_within_budget
from .checkpoint import load_hider, load_training_state, read_checkpoint, save_hider
from .inn import CouplingBlock, DenseSubnet, Hider, HiderConfig
from .losses import (DEFAULT_WEIGHTS, freq_loss, hide_loss, lfc_loss, perturbation_to_image, reveal_loss, total_loss,
                     use_loss)
from .profiles import HIDER_PROFILES, get_hider_profile, hider_config, loss_weights
from ..ops.wavelets import SUBBANDS, dwt, iwt, lowpass

__all__ = [
    "CouplingBlock", "DEFAULT_WEIGHTS", "bounded_perturbation", "DenseSubnet", "HIDER_PROFILES", "Hider", "HiderConfig",
    "SUBBANDS", "dwt", "freq_loss", "get_hider_profile", "hide_loss", "hider_config", "iwt",
    "lfc_loss", "load_hider", "load_training_state", "loss_weights", "lowpass",
    "perturbation_to_image", "project_to_budget", "quantise_within_budget", "read_checkpoint",
    "reveal_loss", "save_hider", "total_loss", "use_loss",
]
