"""SecretBank: the semantic images hidden by the protector, grouped by class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DeephideError


def resize_secret(secret: np.ndarray, w: int, h: int) -> np.ndarray:
    """A secret, uint8 (S, S, 3), resized to w x h (bicubic): how a class's secret meets a cover of another size
    (a data owner's photo, or a set the bank was not made for). Returns uint8 (h, w, 3)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(secret), "RGB").resize((w, h), Image.Resampling.BICUBIC))


@dataclass(frozen=True, eq=False)
class SecretBank:
    """Semantic images to hide, one group per class.

    images: uint8 (M, H, W, 3), the secrets.
    group: int64 (M,), the class each secret belongs to (every class 0..num_classes-1 has >= 1).
    num_classes: number of classes of the dataset the bank was made for.
    meta: JSON-serialisable record (source name, prompts, cluster ids, seeds, ...).
    """

    images: np.ndarray
    group: np.ndarray
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise DeephideError("secret bank: images must be uint8 (M, H, W, 3), "
                                f"got {self.images.dtype} {self.images.shape}")
        if self.group.shape != (self.images.shape[0],):
            raise DeephideError("secret bank: one group id per secret is required")
        object.__setattr__(self, "group", self.group.astype(np.int64, copy=False))
        missing = sorted(set(range(self.num_classes)) - set(self.group.tolist()))
        if missing:
            raise DeephideError(f"secret bank: classes without secrets: {missing[:10]}")

    def members(self, k: int) -> np.ndarray:
        """Indices of the secrets of class ``k``."""
        return np.flatnonzero(self.group == k)

    def resized(self, h: int, w: int) -> "SecretBank":
        """This bank with every secret resized to h x w (bicubic, as the folder product resizes a class's secret to
        each photo); itself when the size is already h x w. For a hider used at another size than its bank's.

        >>> SecretBank(np.zeros((2, 4, 4, 3), np.uint8), np.arange(2), 2).resized(6, 8).images.shape
        (2, 6, 8, 3)
        """
        if self.images.shape[1:3] == (h, w):
            return self
        imgs = np.stack([resize_secret(x, w, h) for x in self.images])
        return SecretBank(imgs, self.group, self.num_classes, {**self.meta, "resized_to": [h, w]})

    def for_classes(self, k: int) -> "SecretBank":
        """This bank for a dataset of ``k`` classes, as the folder product maps them: class j hides the secrets of
        class j mod ``num_classes`` (the first k groups when k is smaller). A warm start on a data owner's folder
        thus learns the secrets its classes will hide.

        >>> b = SecretBank(np.zeros((3, 2, 2, 3), np.uint8), np.arange(3), 3)
        >>> b.for_classes(5).group.tolist(), b.for_classes(2).num_classes
        ([0, 1, 2, 3, 4], 2)
        """
        if k == self.num_classes:
            return self
        idx = np.concatenate([self.members(j % self.num_classes) for j in range(k)])
        group = np.concatenate([np.full(self.members(j % self.num_classes).size, j) for j in range(k)])
        meta = {**self.meta, "for_classes": {"from": self.num_classes, "to": k, "rule": "class j hides j mod from"}}
        return SecretBank(self.images[idx], group.astype(np.int64), k, meta)

    def assign(self, labels: np.ndarray, mode: str, seed: int = 0) -> np.ndarray:
        """Index of the secret each sample hides.

        class: every sample of class k hides the first secret of group k.
        sample: sample i of class k hides a member of group k, cycling through a seeded
            permutation of the group so members are used evenly.
        """
        labels = np.asarray(labels, dtype=np.int64)
        out = np.empty(labels.shape[0], dtype=np.int64)
        rng = np.random.default_rng(seed)
        for k in np.unique(labels):
            idx = np.flatnonzero(labels == k)
            mem = self.members(int(k)) if k < self.num_classes else np.array([], dtype=np.int64)
            if mem.size == 0:
                raise DeephideError(f"secret bank: class {int(k)} has no secrets")
            if mode == "class":
                out[idx] = mem[0]
            elif mode == "sample":
                reps = -(-idx.size // mem.size)
                order = np.concatenate([rng.permutation(mem) for _ in range(reps)])[: idx.size]
                out[idx] = order
            else:
                raise DeephideError(f"unknown protection mode '{mode}'; choose class or sample")
        return out
