"""Image operations below every method: Haar wavelets (``wavelets``), the L-inf budget (``budget``) and image
similarity (``metrics``). They import nothing of deephide but its errors.
"""

from .budget import bounded_perturbation, clipped_count, project_to_budget, quantise_within_budget
from .metrics import correlation, mse_psnr, psnr, ssim_map, ssim_t, ssim_uint8
from .wavelets import SUBBANDS, dwt, iwt, lowpass

__all__ = ["SUBBANDS", "bounded_perturbation", "clipped_count", "correlation", "dwt", "iwt", "lowpass", "mse_psnr",
           "project_to_budget", "psnr", "quantise_within_budget", "ssim_map", "ssim_t", "ssim_uint8"]
