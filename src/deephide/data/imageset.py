"""ImageSet: the one in-memory dataset type passed between every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DeephideError


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled image set held exactly as stored.

    images: uint8 array (N, H, W, C), C in {1, 3}, values 0..255.
    labels: int64 array (N,), values in [0, len(class_names)).
    class_names: one name per class, index = label.
    provenance: free-form JSON-serialisable record of where the data came from
        (loader, path, split, transformations applied).
    source: a short label used in error messages (usually the file or spec it came from).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        imgs, labels = self.images, self.labels
        where = self.source
        if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8:
            raise DeephideError(f"{where}: images must be a uint8 array, "
                                f"got {getattr(imgs, 'dtype', type(imgs).__name__)}")
        if imgs.ndim != 4 or imgs.shape[3] not in (1, 3):
            raise DeephideError(f"{where}: images must have shape (N, H, W, C) with C in (1, 3), got {imgs.shape}")
        if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DeephideError(f"{where}: labels must be a 1-D integer array")
        if labels.shape[0] != imgs.shape[0]:
            raise DeephideError(f"{where}: {imgs.shape[0]} images but {labels.shape[0]} labels")
        if len(self.class_names) == 0:
            raise DeephideError(f"{where}: no class names")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DeephideError(
                f"{where}: labels out of range [0, {len(self.class_names)}): "
                f"found {int(labels.min())}..{int(labels.max())}"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | np.ndarray, note: str | None = None) -> "ImageSet":
        """A new set holding ``images[indices]`` (copied), with provenance noting the selection."""
        idx = np.asarray(indices, dtype=np.int64)
        prov = dict(self.provenance)
        files = prov.get("files")
        if isinstance(files, list) and len(files) == len(self):  # keep per-image names aligned
            prov["files"] = [files[i] for i in idx.tolist()]
        if note:
            prov.setdefault("steps", []).append(note)
        return ImageSet(self.images[idx], self.labels[idx], self.class_names, prov, self.source)

    def replace(self, images: np.ndarray | None = None, labels: np.ndarray | None = None,
                note: str | None = None, **prov: Any) -> "ImageSet":
        """A new set with some arrays swapped and the provenance extended."""
        p = dict(self.provenance)
        p.update(prov)
        if note:
            p["steps"] = list(p.get("steps", [])) + [note]
        return ImageSet(self.images if images is None else images,
                        self.labels if labels is None else labels,
                        self.class_names, p, self.source)

    def to_rgb(self) -> "ImageSet":
        """Replicate a single channel to three (the paper's RGB view of gray data)."""
        if self.images.shape[3] == 3:
            return self
        return self.replace(np.repeat(self.images, 3, axis=3), note="gray->rgb")

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 tensor (N, C, H, W) on ``device``; convert to float where the stage needs it."""
        return torch.from_numpy(np.ascontiguousarray(self.images)).permute(0, 3, 1, 2).contiguous().to(device)

    def label_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.from_numpy(self.labels).to(device)
