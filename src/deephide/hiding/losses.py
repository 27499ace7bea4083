"""Deep Hiding training losses: L_total = L_hide + w1 L_reveal + w2 L_freq + w3 L_LFC (+ w_use L_use, not in the paper).

Reductions. The hider profiles use ``lfc_reduction = "sum"`` (the paper's formula, a sum over
same-class pairs): with 10 classes x 4 images per batch (120 ordered pairs) and 1 - cos ~ 0.5, the
sum is ~60, i.e. ~1000x the reveal MSE (~0.06 on this project's CPU runs), which is what the paper
reports, and w3 = 1e-4 then puts w3 L_LFC at ~0.1 x w1 L_reveal (measured values: hider logs).
The mean reduction (below) is kept as an option; with it, w3 = 1e-4 makes LFC ~1000x too weak.
Original note on the mean:
every pixel loss is a *mean* over all elements (batch-size and image-size independent), and
L_LFC is a *mean* over same-class ordered pairs. With mean MSE, L_reveal is ~1e-3 at a 30 dB
reveal PSNR while 1 - cos of ReLU feature maps is ~0.1-1, i.e. L_LFC is ~100-1000x the others,
which is what the paper reports ("the w3 loss is typically 1000x larger"); a *sum* over pairs
would grow with (batch size)^2 / classes and make w3 depend on the batch.
"""

from __future__ import annotations

from typing import Callable, Collection, Mapping

import torch
import torch.nn.functional as F

from ..errors import DeephideError
from ..ops.wavelets import lowpass
from ..training.linear import linearization_loss

#: Loss terms known to :func:`total_loss`, in logging order.
TERMS: tuple[str, ...] = ("hide", "reveal", "freq", "lfc", "use", "sv", "lin", "lin_bdr", "quiet", "class", "smooth")

#: Paper defaults: L_hide unweighted, w1 (reveal) = 1, w2 (freq) = 1, w3 (LFC) = 1e-4; L_use and L_sv (the
#: surrogate victim's cross-entropy, hiding.surrogate), L_lin (PIL's objective) and L_quiet are not in the paper (0).
DEFAULT_WEIGHTS: dict[str, float] = {"hide": 1.0, "reveal": 1.0, "freq": 1.0, "lfc": 1e-4, "use": 0.0, "sv": 0.0,
                                     "lin": 0.0, "lin_bdr": 0.0, "quiet": 0.0, "class": 0.0,
                                     "smooth": 0.0}


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise DeephideError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def hide_loss(stego: torch.Tensor, cover: torch.Tensor, eps: float) -> torch.Tensor:
    """Budget-overflow penalty: mean over all elements of relu(|stego - cover| - eps)^2.

    stego, cover: float (N, C, H, W) in [0, 1]; eps >= 0 (8/255 by default elsewhere).
    Exactly 0 while every pixel is inside the eps-ball (the paper's "L_hide stays 0").
    """
    _same_shape(stego, cover, "hide_loss")
    if eps < 0:
        raise DeephideError(f"hide_loss: eps must be >= 0, got {eps}")
    return F.relu((stego - cover).abs() - eps).square().mean()


def reveal_loss(secret_hat: torch.Tensor, secret: torch.Tensor) -> torch.Tensor:
    """MSE (mean over all elements) between the revealed and the hidden image, (N, C, H, W)."""
    _same_shape(secret_hat, secret, "reveal_loss")
    return F.mse_loss(secret_hat, secret)


def freq_loss(stego: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """MSE (mean) between the Haar LL sub-bands of stego and cover, (N, C, H, W) -> scalar.

    LL is orthonormal (= 2 x the 2x2 mean), so this is 4 x the MSE of the 2x2-average-pooled
    images: it keeps low frequencies and pushes hidden content into the detail bands.
    """
    _same_shape(stego, cover, "freq_loss")
    return F.mse_loss(lowpass(stego), lowpass(cover))


def quiet_loss(stego: torch.Tensor, cover: torch.Tensor, eps: float, target: float) -> torch.Tensor:
    """Visible-cost excess (not in the paper): mean over images of relu(rms(stego - cover) / eps - target)^2.

    stego, cover: float (N, C, H, W) in [0, 1]; eps > 0; target > 0, the largest wanted RMS perturbation as a share
    of eps (0.45 at 8/255 = 3.6 levels RMS, a PSNR of 37 dB). 0 for an image whose perturbation is that quiet or
    quieter, so it only pulls down the loud ones. Why: L_hide is a hinge at the budget, so nothing else keeps a
    photo's perturbation from filling the whole eps-ball (a PSNR near 30 dB), which a photographer sees.
    """
    _same_shape(stego, cover, "quiet_loss")
    if not eps > 0 or not target > 0:
        raise DeephideError(f"quiet_loss: need eps > 0 and target > 0, got eps {eps}, target {target}")
    # clamped: sqrt's gradient at 0 (a fresh identity hider) is infinite, and 0 x inf a NaN
    rms = (stego - cover).square().flatten(1).mean(1).clamp_min(1e-12).sqrt() / eps
    return F.relu(rms - target).square().mean()


def use_loss(stego: torch.Tensor, cover: torch.Tensor, eps: float, target: float) -> torch.Tensor:
    """Budget-use shortfall (not in the paper): mean over images of relu(target - mean|stego - cover| / eps)^2.

    stego, cover: float (N, C, H, W) in [0, 1]; eps > 0; target in [0, 1], the wanted mean |delta| as a
    share of eps (0.75 = 6 of 8 levels). 0 once an image's perturbation uses that much of the budget on
    average, so it pulls no image past the target. Why: a hider that only reveals and keeps its budget drifts
    to small perturbations (measured: mean |delta| 4.3 levels at step 500, 3.5 at 2,756), and the victims'
    accuracy rose with it (fastcnn 58.5 -> 76.3 %), while 98% of the perturbation's energy is its class mean,
    i.e. the shortcut is there but faint.
    """
    _same_shape(stego, cover, "use_loss")
    if not eps > 0 or not 0.0 <= target <= 1.0:
        raise DeephideError(f"use_loss: need eps > 0 and 0 <= target <= 1, got eps {eps}, target {target}")
    used = (stego - cover).abs().flatten(1).mean(1) / eps
    return F.relu(target - used).square().mean()


def class_loss(stored: torch.Tensor, cover: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Class spread (not in the paper; issue 33): mean over images and values of ((delta_i - mean_y delta) / eps)^2,
    delta = stored - cover and mean_y the mean perturbation of image i's class within the batch (the batches hold
    whole classes: ``per_class`` images each).

    stored, cover: float (N, C, H, W) in [0, 1]; labels: int64 (N,); eps > 0. 0 when every class's images carry one
    pattern. Why: a victim that adversarially trains at 2/255 can take 2 levels off any pattern, and one fixed
    pattern per class at 8 levels keeps its class after that (EM-C: AT-2/255 30.02 in the reference table); the part
    of a perturbation that differs from image to image is what such a victim can remove.
    """
    _same_shape(stored, cover, "class_loss")
    if not eps > 0:
        raise DeephideError(f"class_loss: need eps > 0, got {eps}")
    delta = (stored - cover).flatten(1) / eps
    onehot = F.one_hot(labels, int(labels.max()) + 1).to(delta.dtype)  # (N, K)
    means = (onehot.T @ delta) / onehot.sum(0).clamp_min(1)[:, None]  # (K, D)
    return (delta - means[labels]).square().mean()


def smooth_loss(stored: torch.Tensor, cover: torch.Tensor, eps: float, sigma: float = 2.0) -> torch.Tensor:
    """Fine-detail energy of the perturbation (not in the paper; issue 33): mean of ((delta - G_sigma * delta) / eps)^2,
    delta = stored - cover, G_sigma a Gaussian blur (kornia, 4 sigma + 1 taps, reflect border).

    stored, cover: float (N, C, H, W) in [0, 1]; eps > 0; sigma > 0 in pixels. 0 for a perturbation the blur keeps.
    Why: on the hold-out, the class patterns of the point that held best under AT-2/255 (robust-class-at4, 45.51) had
    87% of their energy at spatial frequencies <= 1/8 cycle per pixel, those of the point that lost it
    (robust-class-lin, 89.63) 53% (experiments/robust-fmnist: spectra of the sets' class-mean perturbations).
    """
    from kornia.filters import gaussian_blur2d

    _same_shape(stored, cover, "smooth_loss")
    if not eps > 0 or not sigma > 0:
        raise DeephideError(f"smooth_loss: need eps > 0 and sigma > 0, got eps {eps}, sigma {sigma}")
    delta = (stored - cover).float()
    taps = 2 * int(round(2 * sigma)) + 1
    blurred = gaussian_blur2d(delta, (taps, taps), (sigma, sigma), border_type="reflect")
    return ((delta - blurred) / eps).square().mean()


def linear_shortcut_loss(linear: Callable[[torch.Tensor], torch.Tensor], stored: torch.Tensor, cover: torch.Tensor,
                         labels: torch.Tensor, lmd: float = 0.9) -> torch.Tensor:
    """L_lin (not in the paper; issue 33): PIL's objective (Liu, Chen & Zhang, ICLR 2026) on the stored perturbation.

    linear: a bias-free linear classifier fitted on clean images (training.linear), logits (N, K); stored, cover:
    float (N, C, H, W) in [0, 1]; labels: int64 (N,); lmd in [0, 1]. With delta = stored - cover (PIL stores
    x - n, so n = -delta):  lmd * CE(linear(-delta), y)  [the perturbation alone names the class to a linear model:
    a shortcut]  + (1 - lmd) * KL(uniform || softmax(linear(stored)))  [the stored image tells it nothing]. For a
    linear model the two agree: linear(stored) = linear(cover) - linear(-delta).
    """
    _same_shape(stored, cover, "linear_shortcut_loss")
    if not 0.0 <= lmd <= 1.0:
        raise DeephideError(f"linear_shortcut_loss: lmd must be in [0, 1], got {lmd}")
    return linearization_loss(linear, cover - stored, stored, labels, lmd)


def bdr_linear_shortcut_loss(linear: Callable[[torch.Tensor], torch.Tensor], stored: torch.Tensor,
                              cover: torch.Tensor, labels: torch.Tensor, lmd: float = 0.9) -> torch.Tensor:
    """L_lin_bdr (not in the paper; issue 33): L_lin on what the BDR countermeasure leaves, i.e. PIL's objective with
    stored and cover both reduced to 2 bits (round(3 x) / 3; the stored image through ``bdr-soft``: the same values,
    a gradient where a move crosses a threshold). Shapes and lmd as :func:`linear_shortcut_loss`. Why: of a
    perturbation BDR keeps ~3.8% of the values (the pixels it pushes across a threshold), and on the hold-out what it
    kept of the shipped point was no class pattern (BDR 87.21, Clean 91.13); this asks the kept moves to name the
    class to a linear model on their own.
    """
    from .distortions import DISTORTIONS

    _same_shape(stored, cover, "bdr_linear_shortcut_loss")
    seen, _ = DISTORTIONS["bdr-soft"](stored.float(), stored, torch.Generator())
    return linear_shortcut_loss(linear, seen, torch.round(cover.float() * 3.0) / 3.0, labels, lmd)


def perturbation_to_image(x_pm: torch.Tensor, eps: float) -> torch.Tensor:
    """Map a perturbation in [-eps, eps] affinely onto the image range [0, 1]: x / (2 eps) + 0.5.

    The LFC feature network was trained on [0, 1] images; a raw +-8/255 map would look to it like
    a flat grey-black image whose features all point the same way (cosine ~1 for any pair, no
    useful gradient). Rescaled, the perturbation is "seen" as an image, which is also how the
    paper visualises perturbation maps. Values outside the budget map outside [0, 1] and are
    *not* clipped (clipping would cut the gradient).
    """
    if not eps > 0:
        raise DeephideError(f"lfc_loss: eps must be > 0, got {eps}")
    return x_pm / (2.0 * eps) + 0.5


def lfc_loss(features_fn: Callable[[torch.Tensor], torch.Tensor], stego: torch.Tensor,
             cover: torch.Tensor, labels: torch.Tensor, eps: float = 8 / 255,
             to_image: bool = True, reduction: str = "mean", repulsion: float = 0.0) -> torch.Tensor:
    """Latent Feature Concentration: same-class perturbations should have aligned features.

    stego, cover: float (N, C, H, W); labels: int (N,).
    features_fn: frozen network, float (N, C, H, W) in [0, 1] -> features (N, ...), e.g. the
        last conv map of a clean ResNet-18. It must not run under no_grad: the gradient flows
        through it to the stego image (its own parameters are simply not optimised).
    to_image: feed :func:`perturbation_to_image` of x_pm = stego - cover (default) or raw x_pm.

    L = mean (``reduction="mean"``, in [0, 2]) or sum (``"sum"``, the paper's formula) over ordered
    pairs (i, j), i != j, labels[i] == labels[j], of 1 - cos(f_i, f_j). See the module docstring. A batch with no
    same-class pair gives a zero that still depends on the inputs (so backward() works and adds nothing).
    repulsion: weight of a between-class term added to it, the same reduction over pairs with
    labels[i] != labels[j] of max(cos(f_i, f_j), 0): pulling each class together alone lets every class
    collapse onto one common direction (measured: same-class cosine 0.987, saturated); this pushes the
    classes apart, which is what makes the hidden content a class shortcut. 0 = the paper's L_LFC.
    """
    _same_shape(stego, cover, "lfc_loss")
    if labels.ndim != 1 or labels.shape[0] != stego.shape[0]:
        raise DeephideError(f"lfc_loss: labels must have shape ({stego.shape[0]},), got {tuple(labels.shape)}")
    x_pm = stego - cover
    labels = labels.to(x_pm.device)
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    if not bool(same.any()):
        # skip the feature pass: nothing to concentrate, but keep a graph for backward()
        return x_pm.sum() * 0.0
    inp = perturbation_to_image(x_pm, eps) if to_image else x_pm
    feats = features_fn(inp)
    if feats.shape[0] != stego.shape[0]:
        raise DeephideError(f"lfc_loss: features_fn returned {feats.shape[0]} rows for {stego.shape[0]} images")
    # float32 for the cosine: bf16 norms of long feature vectors lose ~3 digits
    f = F.normalize(feats.reshape(feats.shape[0], -1).float(), dim=1, eps=1e-8)
    cos = f @ f.t()
    if reduction not in ("mean", "sum"):
        raise DeephideError(f"lfc_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    reduce = torch.sum if reduction == "sum" else torch.mean  # sum: the paper's formula over same-class pairs
    loss = reduce(1.0 - cos[same])
    diff = labels[:, None] != labels[None, :]
    if repulsion and bool(diff.any()):
        loss = loss + repulsion * reduce(cos[diff].clamp(min=0.0))
    return loss


def total_loss(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None,
               enabled: Collection[str] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the loss terms, plus float values for logging.

    terms: name -> scalar tensor, names from :data:`TERMS` ("hide", "reveal", "freq", "lfc", "use", "sv", "lin").
    weights: name -> weight; missing names take :data:`DEFAULT_WEIGHTS`.
    enabled: names that count (None = all terms given). A term that is disabled or has weight 0
        is left out of the sum (so it may be absent from ``terms`` and a NaN in it is harmless)
        but is still logged when given. L_hide only (paper Table K): ``enabled={"hide"}``.
    Returns (total scalar tensor, {name: value, ..., "total": value}); values are unweighted
    except "total".
    """
    w = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise DeephideError(f"total_loss: unknown loss weights {unknown}; known: {', '.join(TERMS)}")
        w.update({k: float(v) for k, v in weights.items()})
    unknown = sorted((set(terms) | set(enabled or ())) - set(TERMS))
    if unknown:
        raise DeephideError(f"total_loss: unknown loss terms {unknown}; known: {', '.join(TERMS)}")
    wanted = set(terms) if enabled is None else set(enabled)
    active = [t for t in TERMS if t in wanted and w[t] != 0.0]
    missing = [t for t in active if t not in terms]
    if missing:
        raise DeephideError(f"total_loss: enabled terms not computed: {missing}")
    if not active:
        raise DeephideError("total_loss: every loss term is disabled")
    total = sum((w[t] * terms[t] for t in active[1:]), w[active[0]] * terms[active[0]])
    names = [t for t in TERMS if t in terms] + ["total"]
    # one stacked transfer instead of one .item() per term: a single device sync per step
    values = torch.stack([terms[t].detach().float().reshape(()) for t in names[:-1]] + [total.detach().float()])
    return total, dict(zip(names, values.tolist()))
