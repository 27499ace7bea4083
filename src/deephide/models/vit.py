"""A small Vision Transformer for 32x32 and 224x224 inputs (no pretrained weights exist offline).

Shape: patch 4 below 128 px (32x32 -> 8x8 = 64 tokens), patch 16 at >= 128 px (224 -> 14x14 = 196
tokens); width 384, depth 7, 8 heads (head dim 48), MLP ratio 2, pre-norm blocks, learned position
embeddings, no dropout. This is ViT-Lite-7/4 (Hassani et al. 2021, the usual from-scratch CIFAR ViT)
widened from 256 to 384: ~8.3M params at 32x32.

There is no CLS token: the classifier reads the mean of the final LayerNorm-ed patch tokens. So
``features`` is those normed tokens reshaped to a map (N, 384, H/p, W/p) and the head is the same
global-average-pool + linear as the CNNs' (``forward = head(flatten(pool(features(x))))`` holds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import DeephideError
from .base import VictimNet, uses_imagenet_stem
from .registry import MODELS


class Attention(nn.Module):
    """Multi-head self-attention over (N, L, D) tokens via fused scaled-dot-product attention."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (N, heads, L, D/heads)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(VictimNet):
    """Patchify conv -> + position embedding -> blocks -> LayerNorm; mean-token classifier.

    The position embedding fixes the input size: inputs must be ``image_size`` x ``image_size``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        dim: int = 384,
        depth: int = 7,
        heads: int = 8,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        patch = 16 if uses_imagenet_stem(image_size) else 4
        if image_size % patch:
            raise DeephideError(f"vit needs an image size divisible by its patch size {patch}, got {image_size}")
        self.patch = patch
        self.grid = image_size // patch
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.feature_channels = dim
        self.head = nn.Linear(dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                # ViT's usual init: small truncated-normal weights, zero biases.
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def body(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise DeephideError(
                f"vit was built for {self.image_size}x{self.image_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}; build it with image_size={x.shape[-1]}"
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (N, L, D)
        tokens = self.norm(self.blocks(tokens))
        n, length, dim = tokens.shape
        return tokens.transpose(1, 2).reshape(n, dim, self.grid, self.grid)


@MODELS.register("vit")
def vit(num_classes: int, in_channels: int, image_size: int) -> ViT:
    """Small ViT (dim 384, depth 7, 8 heads, patch 4 at 32 / 16 at 224, mean-token head); 8.3M params."""
    return ViT(num_classes, in_channels, image_size)
