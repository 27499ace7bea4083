"""SIG, the paper's Semantic Images Generation, offline: emoji pool + text embeddings + K-means.

Class mode gives each class one image: its anchor pictogram, rendered large and centred on the
class's background colour with a dark silhouette outline. Sample mode gives each class
``per_class`` images that keep that shape, outline and background and vary texture, colour and
geometry by ``variation`` (see render.py); member 0 is always the unvaried anchor. With
``generator=diffusion`` the same plan (prompts, anchor shapes, seeds) drives Stable Diffusion +
ControlNet-Canny from a local model directory instead (see diffusion.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DeephideError
from .registry import SEMANTIC_SOURCES
from .assign import Assignment, assign_classes
from .bank import SecretBank
from .options import Options
from .pool import EmojiPool, emoji_rgba, load_pool
from .render import background_for, render_member
from .text import DEFAULT_ENCODER, encode_texts

if TYPE_CHECKING:  # type only: importing deephide.data pulls in every loader
    from ..data.imageset import ImageSet

DEFAULT_PER_CLASS = 16
DEFAULT_VARIATION = 0.5
DEFAULT_CLUSTERS = 50
DEFAULT_EXCLUDE = 0.5
DEFAULT_PROMPT = "a photo of a {}"
DIFFUSION_OPTIONS = frozenset({"model_dir", "controlnet_dir", "steps", "guidance", "gen_size", "device", "batch"})


@dataclass(frozen=True)
class Plan:
    """What every class hides: the pool, the assignment and the text behind it."""

    pool: EmojiPool
    assignment: Assignment
    class_names: tuple[str, ...]
    encoder: str

    def anchor_name(self, k: int) -> str:
        return self.pool.names[int(self.assignment.anchors[k])]

    def anchor_rgba(self, k: int) -> np.ndarray:
        return emoji_rgba(self.pool.font, self.pool.chars[int(self.assignment.anchors[k])])


def clean_class_name(name: str) -> str:
    """'aquarium_fish' -> 'aquarium fish'; surrounding blanks dropped (empty names stay empty)."""
    return " ".join(str(name).replace("_", " ").split())


def make_plan(class_names: Sequence[str], seed: int, encoder: str = DEFAULT_ENCODER,
              font: str | None = None, pool_limit: int | None = None,
              clusters: int = DEFAULT_CLUSTERS, exclude: float = DEFAULT_EXCLUDE) -> Plan:
    """Embed pool names and class names, cluster, and assign one anchor per class."""
    pool = load_pool(font, pool_limit)
    pool_emb = encode_texts(pool.names, encoder)
    class_emb = encode_texts([clean_class_name(c) for c in class_names], encoder)
    a = assign_classes(pool, pool_emb, class_emb, seed, clusters=clusters, exclude=exclude)
    return Plan(pool, a, tuple(class_names), encoder)


def member_seed(seed: int, k: int, j: int) -> int:
    """The seed of member ``j`` of class ``k``: independent of how many members are made."""
    return int(np.random.SeedSequence([seed % (2**32), k, j]).generate_state(1)[0])


def plan_meta(plan: Plan) -> dict[str, Any]:
    a = plan.assignment
    return {
        "class_names": list(plan.class_names),
        "encoder": plan.encoder,
        "pool_size": len(plan.pool),
        "anchors": [{"char": plan.pool.chars[int(i)], "name": plan.pool.names[int(i)]} for i in a.anchors],
        "clusters": [int(c) for c in a.clusters],
        "cluster_examples": [[plan.pool.names[m] for m in mem[:6]] for mem in a.cluster_members],
        "assignment": {"k": a.k, "excluded": a.excluded, "reused_classes": a.reused,
                       "min_centroid_distance": a.min_centroid_distance},
    }


@SEMANTIC_SOURCES.register("sig")
def sig_source(train: ImageSet, mode: str, size: int, seed: int, **options: Any) -> SecretBank:
    """SIG (default): distant emoji clusters per class; one shape per class, varied texture/colour."""
    o = Options("sig", options)
    per_class = o.int("per_class", DEFAULT_PER_CLASS, lo=1)
    variation = o.float("variation", DEFAULT_VARIATION, 0.0, 1.0)
    clusters = o.int("clusters", DEFAULT_CLUSTERS, lo=1)
    exclude = o.float("exclude", DEFAULT_EXCLUDE, -1.0, 1.0)
    pool_limit = o.int("pool_limit", None, lo=2)
    font = o.str("font", None)
    encoder = o.str("encoder", DEFAULT_ENCODER) or DEFAULT_ENCODER
    background = o.choice("background", "class", ("class", "white", "varied"))
    outline = o.bool("outline", True)
    template = o.str("prompt", DEFAULT_PROMPT) or DEFAULT_PROMPT
    generator = o.choice("generator", "emoji", ("emoji", "diffusion"))
    if generator != "diffusion" and DIFFUSION_OPTIONS & set(options):
        raise DeephideError(f"semantic source 'sig': option(s) {', '.join(sorted(DIFFUSION_OPTIONS & set(options)))} "
                            "apply only with generator=diffusion")
    diff_opts = _diffusion_options(o) if generator == "diffusion" else {}
    used = o.finish()
    if generator == "diffusion":
        from .diffusion import check_diffusion

        check_diffusion(diff_opts["model_dir"], diff_opts["controlnet_dir"])

    plan = make_plan(train.class_names, seed, encoder, font, pool_limit, clusters, exclude)
    count = per_class if mode == "sample" else 1
    prompts = [_prompt(template, plan.anchor_name(k)) for k in range(train.num_classes) for _ in range(count)]
    seeds = [member_seed(seed, k, j) for k in range(train.num_classes) for j in range(count)]
    group = np.repeat(np.arange(train.num_classes, dtype=np.int64), count)
    if generator == "diffusion":
        from .diffusion import generate_diffusion

        images = generate_diffusion(plan, size, count, seed, prompts, seeds, background, **diff_opts)
    else:
        images = np.stack([
            _render_one(plan, k, j, size, seeds[k * count + j], variation, background, outline, seed)
            for k in range(train.num_classes) for j in range(count)
        ])
    if generator == "diffusion":
        from .diffusion import diffusion_meta

        used = diffusion_meta(used)
    meta = {"source": "sig", "generator": generator, "options": used, "prompts": prompts,
            "secret_seeds": seeds, **plan_meta(plan)}
    return SecretBank(images, group, train.num_classes, meta)


def _prompt(template: str, name: str) -> str:
    return template.replace("{}", name) if "{}" in template else f"{template} {name}".strip()


def _render_one(plan: Plan, k: int, j: int, size: int, mseed: int, variation: float,
                background: str, outline: bool, seed: int) -> np.ndarray:
    """Member ``j`` of class ``k``; j = 0 is the unvaried anchor."""
    rng = np.random.default_rng(mseed)
    bg = background_for(background, k, seed, rng)
    return render_member(plan.anchor_rgba(k), size, bg, rng if j > 0 else None, variation, outline)


def _diffusion_options(o: Options) -> dict[str, Any]:
    return {
        "model_dir": o.str("model_dir", None),
        "controlnet_dir": o.str("controlnet_dir", None),
        "steps": o.int("steps", 20, lo=1),
        "guidance": o.float("guidance", 7.5, 0.0, 50.0),
        "gen_size": o.int("gen_size", 512, lo=16),
        "device": o.str("device", "auto"),
        "batch": o.int("batch", 8, lo=1),
    }
