"""Ablation sources of the paper's Table D: what happens without SIG's controlled semantics.

random-prompt   random emoji with no inter-class control: every secret is drawn from the whole pool
                (class mode: one per class; sample mode: ``per_class`` per class), rendered like SIG's
                anchors but on white and without variation, since there is no class shape to keep.
next-class      clean training images of class (k + 1) mod K (class mode: one fixed image; sample
                mode: ``per_class`` different images), gray replicated to RGB, resized to ``size``.
random-natural  images of another dataset (``dataset=<spec>``), drawn at random regardless of
                their class. Default: ``fashion-mnist`` (installed offline by Debian's
                dataset-fashion-mnist) unless the training set is Fashion-MNIST itself, in which
                case ``dataset=`` is required (e.g. ``cifar100:/data/cifar-100-python``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DeephideError
from .registry import SEMANTIC_SOURCES
from .bank import SecretBank
from .options import Options
from .pool import emoji_rgba, load_pool
from .render import render_member
from .sig import DEFAULT_PER_CLASS, member_seed

if TYPE_CHECKING:
    from ..data.imageset import ImageSet

DEFAULT_NATURAL = "fashion-mnist"


def _count(mode: str, per_class: int) -> int:
    return per_class if mode == "sample" else 1


@SEMANTIC_SOURCES.register("random-prompt")
def random_prompt_source(train: "ImageSet", mode: str, size: int, seed: int, **options: Any) -> SecretBank:
    """Table D 'random prompts': random pool emoji per secret, no inter-class control."""
    o = Options("random-prompt", options)
    per_class = o.int("per_class", DEFAULT_PER_CLASS, lo=1)
    pool_limit = o.int("pool_limit", None, lo=2)
    font = o.str("font", None)
    used = o.finish()
    pool = load_pool(font, pool_limit)
    count = _count(mode, per_class)
    total = train.num_classes * count
    rng = np.random.default_rng([seed % (2**32), 0x5EED])
    # distinct emoji while the pool lasts, so no two classes share one by construction
    picks = np.concatenate([rng.permutation(len(pool)) for _ in range(-(-total // len(pool)))])[:total]
    images = np.stack([render_member(emoji_rgba(pool.font, pool.chars[int(p)]), size, (255, 255, 255))
                       for p in picks])
    group = np.repeat(np.arange(train.num_classes, dtype=np.int64), count)
    meta = {"source": "random-prompt", "options": used, "class_names": list(train.class_names),
            "prompts": [pool.names[int(p)] for p in picks], "pool_indices": picks.tolist(),
            "pool_size": len(pool)}
    return SecretBank(images, group, train.num_classes, meta)


@SEMANTIC_SOURCES.register("next-class")
def next_class_source(train: "ImageSet", mode: str, size: int, seed: int, **options: Any) -> SecretBank:
    """Table D 'next class': clean training images of class (k + 1) mod K."""
    o = Options("next-class", options)
    per_class = o.int("per_class", DEFAULT_PER_CLASS, lo=1)
    used = o.finish()
    k_total = train.num_classes
    if k_total < 2:
        raise DeephideError("semantic source 'next-class': the training set needs at least 2 classes")
    count = _count(mode, per_class)
    picks: list[int] = []
    for k in range(k_total):
        nxt = (k + 1) % k_total
        idx = np.flatnonzero(train.labels == nxt)
        if idx.size == 0:
            raise DeephideError(f"semantic source 'next-class': class {nxt} ({train.class_names[nxt]!r}) "
                                "has no training images")
        rng = np.random.default_rng(member_seed(seed, k, 0))
        picks.extend(_draw(rng, idx, count).tolist())
    images = to_secret_images(train.images[np.asarray(picks)], size)
    group = np.repeat(np.arange(k_total, dtype=np.int64), count)
    meta = {"source": "next-class", "options": used, "class_names": list(train.class_names),
            "train_indices": picks, "hidden_class": [int(train.labels[i]) for i in picks]}
    return SecretBank(images, group, k_total, meta)


@SEMANTIC_SOURCES.register("random-natural")
def random_natural_source(train: "ImageSet", mode: str, size: int, seed: int, **options: Any) -> SecretBank:
    """Table D 'random natural images': images of another dataset, regardless of class."""
    o = Options("random-natural", options)
    per_class = o.int("per_class", DEFAULT_PER_CLASS, lo=1)
    spec = o.str("dataset", None)
    used = o.finish()
    if not spec:
        if str(train.provenance.get("loader", "")) == DEFAULT_NATURAL:
            raise DeephideError("semantic source 'random-natural': the training set is Fashion-MNIST; "
                                "give another dataset with dataset=<spec> (e.g. cifar100:/data/cifar-100-python)")
        spec = DEFAULT_NATURAL
    used["dataset"] = spec
    from ..data import load_dataset

    other = load_dataset(spec)
    count = _count(mode, per_class)
    total = train.num_classes * count
    rng = np.random.default_rng([seed % (2**32), 0xA7])
    picks = _draw(rng, np.arange(len(other)), total)
    images = to_secret_images(other.images[picks], size)
    group = np.repeat(np.arange(train.num_classes, dtype=np.int64), count)
    meta = {"source": "random-natural", "options": used, "class_names": list(train.class_names),
            "dataset": spec, "dataset_indices": picks.tolist(),
            "dataset_labels": [int(other.labels[i]) for i in picks]}
    return SecretBank(images, group, train.num_classes, meta)


def _draw(rng: np.random.Generator, idx: np.ndarray, n: int) -> np.ndarray:
    """``n`` entries of ``idx``: without replacement while they last, then repeating."""
    reps = -(-n // idx.size)
    return np.concatenate([rng.permutation(idx) for _ in range(reps)])[:n]


def to_secret_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (M, h, w, 1|3) -> uint8 (M, size, size, 3): gray replicated, resized (area or bicubic)."""
    from PIL import Image

    out = np.empty((images.shape[0], size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        rgb = np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im
        if rgb.shape[:2] != (size, size):
            pil = Image.fromarray(rgb)
            # BOX when shrinking (no aliasing), BICUBIC when enlarging
            filt = Image.Resampling.BOX if min(rgb.shape[:2]) > size else Image.Resampling.BICUBIC
            rgb = np.asarray(pil.resize((size, size), filt))
        out[i] = rgb
    return out
