"""The paper's generator: Stable Diffusion + ControlNet-Canny from a local model directory.

Optional (``pip install deephide[diffusion]``: diffusers + transformers); nothing is downloaded.
``model_dir`` is a diffusers Stable Diffusion folder (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/); the ControlNet-Canny folder is ``controlnet_dir`` or
``<model_dir>/controlnet``. Every class uses one prompt ("a photo of a <anchor name>") and one
Canny edge map (of its anchor pictogram rendered at ``gen_size``), so members share semantics and
global shape; each image has its own seed, so texture and colour differ.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DeephideError, error_line
from .render import render_member

if TYPE_CHECKING:
    from .sig import Plan

_HINT = "pip install deephide[diffusion]  (diffusers + transformers)"


def canny_map(image: np.ndarray, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """uint8 (H, W, 3) white-on-black Canny edges of uint8 RGB ``image`` (H, W, 3), via kornia."""
    import kornia
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    _, edges = kornia.filters.canny(x, low_threshold=low, high_threshold=high)
    e = (edges[0, 0] > 0.5).to(torch.uint8).mul(255).numpy()
    return np.repeat(e[..., None], 3, axis=2)


def check_diffusion(model_dir: str | None, controlnet_dir: str | None) -> tuple[Path, Path]:
    """Fail fast (before any planning): the two local folders exist and diffusers imports."""
    if not model_dir:
        raise DeephideError("generator=diffusion: option model_dir=<local Stable Diffusion folder> is required")
    root = Path(model_dir).expanduser()
    if not (root / "model_index.json").is_file():
        raise DeephideError(f"model_dir={root}: no diffusers Stable Diffusion folder there (model_index.json missing); "
                            "nothing is downloaded")
    cn = Path(controlnet_dir).expanduser() if controlnet_dir else root / "controlnet"
    if not (cn / "config.json").is_file():
        raise DeephideError(f"controlnet_dir={cn}: no ControlNet-Canny folder there (config.json missing); "
                            "pass controlnet_dir=<dir>")
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise DeephideError(f"generator=diffusion: diffusers/transformers not installed ({_HINT})") from None
    return root, cn


def load_pipeline(model_dir: str | None, controlnet_dir: str | None, device: str):
    """A StableDiffusionControlNetPipeline on ``device`` from local folders only."""
    root, cn = check_diffusion(model_dir, controlnet_dir)
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from ..runtime import pick_device

    dev = pick_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    try:
        with warnings.catch_warnings():
            # newer diffusers rename torch_dtype to dtype; the old name works across versions
            warnings.simplefilter("ignore", FutureWarning)
            controlnet = ControlNetModel.from_pretrained(str(cn), torch_dtype=dtype, local_files_only=True)
            pipe = StableDiffusionControlNetPipeline.from_pretrained(
                str(root), controlnet=controlnet, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise DeephideError(f"model_dir={root}: cannot load the pipeline ({error_line(e)})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def generate_diffusion(plan: "Plan", size: int, count: int, seed: int, prompts: Sequence[str],
                       seeds: Sequence[int], background: str, model_dir: str | None = None,
                       controlnet_dir: str | None = None, steps: int = 20, guidance: float = 7.5,
                       gen_size: int = 512, device: str = "auto", batch: int = 8) -> np.ndarray:
    """uint8 (C * count, size, size, 3): ``count`` images per class, class-major like ``prompts``."""
    import torch
    from PIL import Image

    from .render import background_for

    pipe = load_pipeline(model_dir, controlnet_dir, device)
    # SD latents are 1/8 of the image side (smaller test VAEs divide less; 8 suits both)
    gen = max(8, gen_size // 8 * 8)
    out = []
    for k in range(len(plan.class_names)):
        bg = background_for(background, k, seed, np.random.default_rng(seeds[k * count]))
        shape = render_member(plan.anchor_rgba(k), gen, bg, None, 0.0, outline=False)
        control = Image.fromarray(canny_map(shape))
        for lo in range(0, count, batch):
            idx = range(k * count + lo, k * count + min(count, lo + batch))
            # CPU generators: the same seed gives the same noise on any device
            gens = [torch.Generator(device="cpu").manual_seed(int(seeds[i])) for i in idx]
            res = pipe(prompt=[prompts[i] for i in idx], image=[control] * len(idx),
                       num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                       height=gen, width=gen, output_type="np")
            for img in np.asarray(res.images):
                pil = Image.fromarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
                out.append(np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS
                                                  if size < gen else Image.Resampling.BICUBIC)))
    return np.stack(out).astype(np.uint8)


def diffusion_meta(opts: dict[str, Any]) -> dict[str, Any]:
    """Versions of the optional libraries, for the bank's manifest."""
    import importlib.metadata as md

    out = dict(opts)
    for pkg in ("diffusers", "transformers"):
        try:
            out[f"{pkg}_version"] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
