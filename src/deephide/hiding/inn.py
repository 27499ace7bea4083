"""HiNet-style invertible hiding network (Jing et al., ICCV 2021), as used by Deep Hiding.

Data flow (all images float (N, C, H, W) in [0, 1], C = ``config.channels``, H = W = image_size):

    hide:   [s, r] = INN([DWT(cover), DWT(secret)]);  stego = IWT(s)
    reveal: [_, h] = INN^-1([DWT(stego), z]);         secret_hat = IWT(h)

Each coupling block starts as the identity (last conv of every subnet zero-initialised), so a
fresh hider returns ``stego == cover`` exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import DeephideError
from ..ops.budget import bounded_perturbation
from ..ops.wavelets import dwt, iwt


GREY_COVERS = ("rgb", "shared")
DELTA_BANDS = ("all", "ll")


@dataclass(frozen=True)
class HiderConfig:
    """Architecture of a :class:`Hider` (everything needed to rebuild it before loading weights).

    blocks: number of affine coupling blocks (HiNet: 16).
    growth: channels added by each dense conv of the subnets (HiNet: 32).
    clamp: bound of the log-scale, s(t) in (-clamp, clamp) (HiNet: 2.0).
    image_size: side of the square images the hider is trained for (even).
    channels: image channels of cover and secret (3 = RGB).
    grey_covers: what ``hide`` does on a cover whose channels are all equal (a grey image stored as
        RGB): "rgb" keeps the INN's per-channel perturbation (HiNet, the paper); "shared" replaces it
        by its mean over channels, so a grey image stays grey.
    delta_bands: which single-level Haar bands of the perturbation ``hide`` keeps: "all" (HiNet, the
        paper) or "ll" (2x2 block means only: meant to survive shifts, filters and JPEG).
    eps_levels: the budget the hider keeps by itself, in uint8 levels (8 = 8/255): ``hide`` maps the
        INN's perturbation smoothly into the eps-ball and the [0, 1] box (budget.bounded_perturbation),
        so what protect stores is what the hider made and the clip on write changes nothing.
        None = unbounded (the paper's soft budget, checkpoints made before this setting).
    """

    blocks: int
    growth: int
    clamp: float
    image_size: int
    channels: int = 3
    grey_covers: str = "rgb"
    delta_bands: str = "all"
    eps_levels: int | None = None

    def __post_init__(self) -> None:
        for name in ("blocks", "growth", "image_size", "channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DeephideError(f"hider config: {name} must be a positive integer, got {v!r}")
        # upper bounds: a forged config must not make us allocate hundreds of GB before failing
        limits = {"blocks": 256, "growth": 4096, "image_size": 8192}
        for name, hi in limits.items():
            if getattr(self, name) > hi:
                raise DeephideError(f"hider config: {name} must be <= {hi}, got {getattr(self, name)}")
        if self.channels not in (1, 3):
            raise DeephideError(f"hider config: channels must be 1 or 3, got {self.channels}")
        if self.image_size % 2:
            raise DeephideError(f"hider config: image_size must be even (Haar DWT), got {self.image_size}")
        if not isinstance(self.clamp, (int, float)) or isinstance(self.clamp, bool) or not 0 < self.clamp < 1e3:
            raise DeephideError(f"hider config: clamp must be > 0, got {self.clamp!r}")
        object.__setattr__(self, "clamp", float(self.clamp))
        if self.grey_covers not in GREY_COVERS:
            raise DeephideError(f"hider config: grey_covers must be one of {', '.join(GREY_COVERS)}, "
                                f"got {self.grey_covers!r}")
        if self.eps_levels is not None and (not isinstance(self.eps_levels, int) or isinstance(self.eps_levels, bool)
                                            or not 1 <= self.eps_levels <= 255):
            raise DeephideError("hider config: eps_levels must be an integer in 1..255 or null, "
                                f"got {self.eps_levels!r}")
        if self.delta_bands not in DELTA_BANDS:
            raise DeephideError(f"hider config: delta_bands must be one of {', '.join(DELTA_BANDS)}, "
                                f"got {self.delta_bands!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "hider config") -> "HiderConfig":
        """Build from a JSON dict; unknown or missing keys are a one-line error naming ``where``."""
        if not isinstance(d, dict):
            raise DeephideError(f"{where}: hider config must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DeephideError(f"{where}: unknown hider config keys {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise DeephideError(f"{where}: incomplete hider config ({e})") from None
        except DeephideError as e:  # name the file, not just "hider config"
            raise DeephideError(f"{where}: {str(e).removeprefix('hider config: ')}") from None


def soft_clamp(t: torch.Tensor, clamp: float) -> torch.Tensor:
    """s(t) = clamp * 2 * (sigmoid(t) - 0.5): a smooth map to (-clamp, clamp), s(0) = 0."""
    return clamp * 2.0 * (torch.sigmoid(t) - 0.5)


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast gives ``x``'s convolutions here, or None outside autocast (or when x already has it)."""
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return None
    low = torch.get_autocast_dtype(kind)
    return low if x.dtype != low else None


class DenseSubnet(nn.Module):
    """Residual-dense conv net used for phi, rho and eta: (N, c_in, h, w) -> (N, c_out, h, w).

    Five 3x3 convs; conv k sees the input concatenated with the outputs of convs 1..k-1
    (each ``growth`` channels); LeakyReLU(0.01) after convs 1-4; conv 5 is zero-initialised so
    the subnet outputs exactly 0 at init.
    """

    def __init__(self, c_in: int, c_out: int, growth: int = 32, init_scale: float | None = 0.01):
        super().__init__()
        if min(c_in, c_out, growth) < 1:
            raise DeephideError(f"DenseSubnet: channel counts must be positive, got {c_in}, {c_out}, {growth}")
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in + k * growth, growth if k < 4 else c_out, 3, padding=1) for k in range(5)
        )
        self.act = nn.LeakyReLU(0.01, inplace=True)
        self.reset_parameters(init_scale)

    def reset_parameters(self, init_scale: float | None = 0.01) -> None:
        """HiNet init: N(0, init_scale^2) for convs 1-4 (None keeps PyTorch's default); conv 5 zero."""
        with torch.no_grad():
            if init_scale is not None:
                for conv in self.convs[:4]:
                    for p in conv.parameters():
                        p.normal_(0.0, init_scale)
            # zero last conv: the whole coupling block starts as the exact identity
            self.convs[4].weight.zero_()
            self.convs[4].bias.zero_()  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = _autocast_dtype(x)
        # without a gradient to keep in fp32 (protect), x is cast once for all five convs: the same values
        once = x.to(low) if low is not None and not (x.requires_grad and torch.is_grad_enabled()) else None
        feats: list[torch.Tensor] = []
        for conv in self.convs:
            # under autocast every conv reads its input in the low precision: casting x at each use keeps the cat in
            # that precision (a cat of fp32 x with bf16 features is an fp32 copy of the whole stack, cast back per conv;
            # benchmarks/HIDER_STEP.md); per use, so x's gradient still sums in fp32: the same values bit for bit
            xin = once if once is not None else x.to(low) if low is not None else x
            out = conv(torch.cat([xin, *feats], dim=1))
            feats.append(self.act(out) if len(feats) < 4 else out)
        return feats[-1]


class CouplingBlock(nn.Module):
    """HiNet affine coupling block on x = [x1 (cover part), x2 (secret part)] along channels.

    forward: y1 = x1 + phi(x2);  y2 = x2 * exp(s(rho(y1))) + eta(y1)
    inverse: x2 = (y2 - eta(y1)) * exp(-s(rho(y1)));  x1 = y1 - phi(x2)
    Shapes: (N, channels_cover + channels_secret, h, w) both ways.
    """

    def __init__(self, channels_cover: int = 12, channels_secret: int = 12, clamp: float = 2.0,
                 growth: int = 32, init_scale: float | None = 0.01):
        super().__init__()
        self.c1, self.c2, self.clamp = channels_cover, channels_secret, float(clamp)
        self.phi = DenseSubnet(channels_secret, channels_cover, growth, init_scale)
        self.rho = DenseSubnet(channels_cover, channels_secret, growth, init_scale)
        self.eta = DenseSubnet(channels_cover, channels_secret, growth, init_scale)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.c1 + self.c2:
            raise DeephideError(
                f"coupling block: expected (N, {self.c1 + self.c2}, h, w), got {tuple(x.shape)}"
            )
        return x[:, : self.c1], x[:, self.c1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self._split(x)
        y1 = x1 + self.phi(x2)
        y2 = x2 * torch.exp(soft_clamp(self.rho(y1), self.clamp)) + self.eta(y1)
        return torch.cat((y1, y2), dim=1)

    def forward_cover(self, x: torch.Tensor) -> torch.Tensor:
        """y1 of :meth:`forward` alone (N, channels_cover, h, w), the same values: one subnet of three."""
        x1, x2 = self._split(x)
        return x1 + self.phi(x2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = self._split(y)
        # multiply by exp(-s) rather than divide by exp(s): same value, one op cheaper, no 0-division
        x2 = (y2 - self.eta(y1)) * torch.exp(-soft_clamp(self.rho(y1), self.clamp))
        x1 = y1 - self.phi(x2)
        return torch.cat((x1, x2), dim=1)


def ll_only(delta: torch.Tensor) -> torch.Tensor:
    """The LL band of ``delta`` (float (N, C, H, W), H and W even): each 2x2 block replaced by its mean.

    Why: the paper's INN puts much of the perturbation into the fine Haar bands, which a one-pixel shift,
    a 3x3 filter or JPEG remove or negate. Measured (results/reference-fmnist/hider-tuning, with grey_covers
    shared): MeanF 16.6 -> 12.9 % but Vanilla 25.1 -> 32.9 % and JPEG10 33.0 -> 45.7 %, so it is off by default.
    """
    bands, c = dwt(delta), delta.shape[1]
    return iwt(torch.cat((bands[:, :c], torch.zeros_like(bands[:, c:])), dim=1))


def share_on_grey(delta: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """``delta`` with its channel mean in every channel, on the images whose ``cover`` is grey.

    delta, cover: float (N, C, H, W); a cover is grey when its channels are equal at every pixel.
    Why: a colour perturbation on a grey image is both visible as a tint and removed whole by a
    grayscale conversion (the Gray countermeasure keeps only the luma); a shared one survives it.
    """
    if cover.shape[1] == 1:
        return delta
    grey = (cover.amax(dim=1) == cover.amin(dim=1)).flatten(1).all(dim=1)  # (N,)
    shared = delta.mean(dim=1, keepdim=True).expand_as(delta)
    return torch.where(grey[:, None, None, None], shared, delta)


class Hider(nn.Module):
    """The hiding INN: a stack of :class:`CouplingBlock` between Haar DWT and IWT.

    ``hide(cover, secret)`` and ``reveal(stego, z)`` take float images (N, C, S, S) in [0, 1]
    with C = ``config.channels`` and S = ``config.image_size``. With ``config.eps_levels`` set, ``hide``
    keeps the budget itself (smooth map, :func:`deephide.ops.budget.bounded_perturbation`); protect
    still projects and quantises as the hard guarantee.
    """

    def __init__(self, config: HiderConfig, init_scale: float | None = 0.01):
        super().__init__()
        if not isinstance(config, HiderConfig):
            raise DeephideError(f"Hider: config must be a HiderConfig, got {type(config).__name__}")
        self.config = config
        c4 = 4 * config.channels
        self.blocks = nn.ModuleList(
            CouplingBlock(c4, c4, config.clamp, config.growth, init_scale) for _ in range(config.blocks)
        )

    @property
    def dwt_channels(self) -> int:
        """Channels of one image in DWT space (4 x image channels, e.g. 12 for RGB)."""
        return 4 * self.config.channels

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_images(self, x: torch.Tensor, what: str) -> None:
        s, c = self.config.image_size, self.config.channels
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise DeephideError(f"hider {what}: expected a float tensor in [0, 1], "
                                f"got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            got = "x".join(str(v) for v in x.shape[-2:]) if x.ndim >= 2 else str(tuple(x.shape))
            if x.ndim == 4 and x.shape[1] == c:
                raise DeephideError(f"hider {what}: hider trained for {s}x{s} images, data is {got}")
            raise DeephideError(f"hider {what}: expected shape (N, {c}, {s}, {s}), got {tuple(x.shape)}")

    def _check_any_size(self, x: torch.Tensor, what: str) -> None:
        """A float (N, C, H, W) image batch with C = config.channels and H, W even (the Haar DWT), at any size."""
        c = self.config.channels
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1] != c \
                or x.shape[2] % 2 or x.shape[3] % 2:
            raise DeephideError(f"hider {what}: expected float (N, {c}, H, W) with H and W even, "
                                f"got {tuple(getattr(x, 'shape', ()))}")

    def inn_forward(self, x: torch.Tensor) -> torch.Tensor:
        """INN in the hiding direction: (N, 2*dwt_channels, S/2, S/2) -> same shape."""
        for block in self.blocks:
            x = block(x)
        return x

    def inn_forward_cover(self, x: torch.Tensor) -> torch.Tensor:
        """The cover half of :meth:`inn_forward`'s output, (N, dwt_channels, S/2, S/2), the same values: the last
        block's secret half (2 of its 3 subnets) is what only the residual r needs, which protect and training
        discard: 1/6 of a 4-block hider's hiding FLOPs, 1/3 of a 2-block one's."""
        for block in self.blocks[:-1]:
            x = block(x)
        return self.blocks[-1].forward_cover(x)

    def inn_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """INN in the revealing direction, the exact inverse of :meth:`inn_forward`."""
        for block in reversed(self.blocks):
            y = block.inverse(y)
        return y

    def perturbation(self, cover: torch.Tensor, secret: torch.Tensor,
                     residual: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The INN's perturbation before the budget map: (raw delta, r).

        cover, secret: float (N, C, S, S) in [0, 1], same shape. raw delta: float (N, C, S, S), any
        range; r: float (N, 4C, S/2, S/2), the lost-information residual in DWT space, or None with
        ``residual=False`` (not computed: :meth:`inn_forward_cover`; raw delta and its gradients the same).
        """
        self._check_images(cover, "cover")
        self._check_images(secret, "secret")
        return self._perturbation(cover, secret, residual)

    def _perturbation(self, cover: torch.Tensor, secret: torch.Tensor,
                      residual: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if cover.shape[0] != secret.shape[0]:
            raise DeephideError(f"hider hide: {cover.shape[0]} covers but {secret.shape[0]} secrets")
        c_dwt = dwt(cover)
        x = torch.cat((c_dwt, dwt(secret)), dim=1)
        k = self.dwt_channels
        if residual:
            y = self.inn_forward(x)
            s, r = y[:, :k], y[:, k:]
        else:
            s, r = self.inn_forward_cover(x), None
        # residual form IWT(s - DWT(cover)): equal to IWT(s) - cover in exact arithmetic, but the
        # ~8/255 perturbation is not buried in the round-off of a full-image round trip, and an
        # identity INN gives stego == cover bit for bit
        delta = iwt(s - c_dwt)
        if self.config.delta_bands == "ll":
            delta = ll_only(delta)
        if self.config.grey_covers == "shared":
            delta = share_on_grey(delta, cover)
        return delta, r

    def bound(self, raw: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
        """``raw`` mapped into the hider's own budget (``config.eps_levels``); unchanged when it has none."""
        if self.config.eps_levels is None:
            return raw
        return bounded_perturbation(raw, cover, self.config.eps_levels / 255.0)

    def hide(self, cover: torch.Tensor, secret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hide ``secret`` in ``cover``.

        cover, secret: float (N, C, S, S) in [0, 1], same shape.
        Returns (stego, r): stego float (N, C, S, S) = cover + the bounded perturbation, within
        ``config.eps_levels`` of the cover and in [0, 1] (unprojected and possibly outside both for a
        hider without eps_levels); r float (N, 4C, S/2, S/2), the lost-information residual.
        """
        raw, r = self.perturbation(cover, secret)
        return cover + self.bound(raw, cover), r

    def stego(self, cover: torch.Tensor, secret: torch.Tensor) -> torch.Tensor:
        """:meth:`hide`'s stego images alone, the same values bit for bit, without computing the residual r
        (inn_forward_cover): what protect stores and training reveals from. Shapes as :meth:`hide`."""
        self._check_images(cover, "cover")
        self._check_images(secret, "secret")
        raw, _ = self._perturbation(cover, secret, residual=False)
        return cover + self.bound(raw, cover)

    def hide_any_size(self, cover: torch.Tensor, secret: torch.Tensor) -> torch.Tensor:
        """:meth:`hide` on images of any even size: the INN is convolutional, so a hider trained on S x S images
        runs on (N, C, H, W) covers of another size (a data owner's photos, or tiles of them).

        cover, secret: float (N, C, H, W) in [0, 1], same shape, H and W even. Returns the stego images, float
        (N, C, H, W), within ``config.eps_levels`` of the cover. How well it hides at another size is measured,
        not assumed (the folder report and the hider card's reveal gate).

        >>> h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=32, eps_levels=8))
        >>> h.hide_any_size(torch.rand(1, 3, 48, 70), torch.rand(1, 3, 48, 70)).shape
        torch.Size([1, 3, 48, 70])
        """
        self._check_any_size(cover, "cover")
        self._check_any_size(secret, "secret")
        if cover.shape != secret.shape:
            raise DeephideError(f"hider hide: cover {tuple(cover.shape)} and secret {tuple(secret.shape)} differ")
        raw, _ = self._perturbation(cover, secret, residual=False)
        return cover + self.bound(raw, cover)

    def reveal(self, stego: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Recover the hidden image: float (N, C, S, S) -> secret_hat float (N, C, S, S).

        z: the residual fed to the inverse, float (N, 4C, S/2, S/2); None = zeros (inference).
        Pass Gaussian noise in training (HiNet) or the ``r`` from :meth:`hide` for an exact check.
        """
        self._check_images(stego, "stego")
        return self._reveal(stego, z)

    def _reveal(self, stego: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        s_dwt = dwt(stego)
        if z is None:
            z = torch.zeros_like(s_dwt)
        elif tuple(z.shape) != tuple(s_dwt.shape):
            raise DeephideError(f"hider reveal: z must have shape {tuple(s_dwt.shape)}, got {tuple(z.shape)}")
        x = self.inn_inverse(torch.cat((s_dwt, z.to(s_dwt.dtype)), dim=1))
        return iwt(x[:, self.dwt_channels:])

    def reveal_any_size(self, stego: torch.Tensor) -> torch.Tensor:
        """:meth:`reveal` (z = 0) on stego images of any even size, float (N, C, H, W) in [0, 1] -> the revealed
        secrets, float (N, C, H, W): the inverse of :meth:`hide_any_size`.

        >>> h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=32, eps_levels=8))
        >>> h.reveal_any_size(torch.rand(2, 3, 40, 26)).shape
        torch.Size([2, 3, 40, 26])
        """
        self._check_any_size(stego, "stego")
        return self._reveal(stego, None)

    def forward(self, cover: torch.Tensor, secret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`hide`."""
        return self.hide(cover, secret)
