"""The onnxruntime all-MiniLM-L6-v2 embedder against vectors from the real sentence-transformers.

``tests/data/minilm_reference.json`` was produced by ``bench/make_minilm_reference.py`` with
sentence-transformers + PyTorch (versions recorded in the file) from the same model files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from showroom.indexer import embedding
from showroom.indexer.embedding import (
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    ModelIntegrityError,
    QueryEmbeddings,
    load_embedder,
    minilm_model_dir,
)

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "minilm_reference.json").read_text())
TEXTS: list[str] = REFERENCE["texts"]
EXPECTED = np.array(REFERENCE["embeddings"], dtype=np.float32)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reference_covers_truncation_and_identity() -> None:
    assert REFERENCE["model"] == MiniLMEmbedder.name
    assert max(REFERENCE["token_counts"]) == REFERENCE["max_seq_length"] == 256
    assert EXPECTED.shape == (len(TEXTS), 384)


def test_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(TEXTS)
    assert vectors.shape == EXPECTED.shape
    assert vectors.dtype == np.float32
    cosines = _cosines(vectors, EXPECTED)
    assert cosines.min() >= 0.9999, dict(zip(TEXTS, cosines.tolist(), strict=True))
    # The reference is rounded to 6 decimals (error <= 5e-7); fp32 reordering adds about as much.
    assert np.abs(vectors - EXPECTED).max() < 1e-5


def test_vectors_do_not_depend_on_call_or_threads(minilm: MiniLMEmbedder) -> None:
    together = minilm.embed(TEXTS)
    one_by_one = np.stack([minilm.embed_query(text) for text in TEXTS])
    threaded = MiniLMEmbedder(threads=3)
    reversed_in_threads = threaded.embed(TEXTS[::-1])[::-1]
    for vectors in (one_by_one, reversed_in_threads):
        assert np.abs(vectors - together).max() < 1e-6
        assert _cosines(vectors, EXPECTED).min() >= 0.9999
    with pytest.raises(ValueError, match="threads"):
        MiniLMEmbedder(threads=0)


def test_inputs_past_256_tokens_are_truncated(minilm: MiniLMEmbedder) -> None:
    long_text = max(TEXTS, key=len)
    vectors = minilm.embed([long_text, long_text + " and a tail the model never sees" * 50])
    assert np.abs(vectors[0] - vectors[1]).max() < 1e-6


def test_vectors_are_unit_length(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["", "a", "Woofer size: 5 in", "x " * 1000])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    query = minilm.embed_query("Woofer size: 5 in")
    assert query.shape == (384,)
    assert query.dtype == np.float32
    np.testing.assert_allclose(query, vectors[2], atol=1e-6)


def test_empty_and_bad_input(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        minilm.embed("not a list")  # type: ignore[arg-type]


def test_minilm_ranks_by_meaning(minilm: MiniLMEmbedder) -> None:
    docs = [
        "Yamaha HS5 powered studio monitor. Woofer size: 5 in; Amplifier power: 70 W",
        "Fender Player Stratocaster electric guitar with alder body and maple neck",
        "Shipping is free for orders over 50 euros; returns accepted within 30 days",
    ]
    scores = minilm.embed(docs) @ minilm.embed_query("speakers for mixing with a five inch woofer")
    assert int(np.argmax(scores)) == 0


def test_weights_with_wrong_hash_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "MINILM_SAFETENSORS_SHA256", "0" * 64)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        MiniLMEmbedder()


def test_corrupted_model_dir_from_env_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = minilm_model_dir()
    for name in ("config.json", "sentence_bert_config.json", "tokenizer.json"):
        (tmp_path / name).symlink_to(source / name)
    weights = bytearray((source / "model.safetensors").read_bytes())
    weights[-1] ^= 0x01  # one flipped bit in the last weight
    (tmp_path / "model.safetensors").write_bytes(weights)
    monkeypatch.setenv(embedding.MINILM_MODEL_DIR_ENV, str(tmp_path))
    assert minilm_model_dir() == tmp_path
    with pytest.raises(ModelIntegrityError, match=str(tmp_path)):
        MiniLMEmbedder()
    with pytest.raises(ModelIntegrityError):
        MiniLMEmbedder(model_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        MiniLMEmbedder(model_dir=tmp_path / "missing")


def test_model_dir_override_with_good_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = minilm_model_dir()
    baked = tmp_path / "baked"
    shutil.copytree(source, baked, ignore=shutil.ignore_patterns("model.safetensors"))
    (baked / "model.safetensors").symlink_to(source / "model.safetensors")
    monkeypatch.setenv(embedding.MINILM_MODEL_DIR_ENV, str(baked))
    embedder = MiniLMEmbedder()
    assert embedder.model_dir == baked
    assert _cosines(embedder.embed(TEXTS[:2]), EXPECTED[:2]).min() >= 0.9999


def test_hashing_embedder_ranks_relevant_text_first() -> None:
    hashing = HashingEmbedder()
    docs = [
        "Shipping is free for orders over 50 euros",
        "Yamaha HS5 studio monitor, woofer size 5 in, amplifier power 70 W",
        "Fender Stratocaster electric guitar, maple neck",
    ]
    scores = hashing.embed(docs) @ hashing.embed_query("studio monitor woofer")
    assert int(np.argmax(scores)) == 1
    assert scores[1] > 0.3


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    a, b = HashingEmbedder(), HashingEmbedder()
    texts = ["Woofer size: 5 in", "Amplifier power: 55 W", ""]
    vectors = a.embed(texts)
    assert vectors.shape == (3, a.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, b.embed(texts))
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-6)
    assert not vectors[2].any()  # no words, no direction
    assert a.embed_query("Woofer size: 5 in").shape == (a.dim,)
    assert a.embed([]).shape == (0, a.dim)
    assert HashingEmbedder(dim=64).embed(["x"]).shape == (1, 64)


def test_load_embedder(minilm: MiniLMEmbedder) -> None:
    hashing = load_embedder("hashing")
    assert isinstance(hashing, HashingEmbedder)
    assert hashing.name == "hashing-v1"
    default = load_embedder()
    assert isinstance(default, MiniLMEmbedder)
    assert (default.name, default.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    for instance in (hashing, default, minilm):
        assert isinstance(instance, Embedder)
    with pytest.raises(ValueError, match="hashing, minilm"):
        load_embedder("bert-large")


class _CountingEmbedder(HashingEmbedder):
    """The real hashing embedder, recording each ``embed`` call's texts."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return super().embed(texts)


async def test_concurrent_queries_share_embedder_calls_and_repeats_are_cached() -> None:
    embedder = _CountingEmbedder()
    queries = QueryEmbeddings(cache_size=100)
    texts = [f"woofer size of the NW-{i}" for i in range(20)]
    vectors = await asyncio.gather(*(queries.embed(embedder, t) for t in [*texts, texts[0]]))
    calls = list(embedder.calls)
    for text, vector in zip([*texts, texts[0]], vectors, strict=True):
        np.testing.assert_array_equal(vector, embedder.embed_query(text))
    assert sorted(t for c in calls for t in c) == sorted(texts)  # the duplicate was embedded once
    assert len(calls) <= 2  # the first query's call, then everything that arrived meanwhile

    before = len(embedder.calls)
    again = await queries.embed(embedder, texts[5])
    assert len(embedder.calls) == before  # from the cache
    np.testing.assert_array_equal(again, vectors[5])
    assert not again.flags.writeable  # a shared cached vector cannot be changed by one caller


async def test_query_cache_is_bounded_and_errors_reach_every_waiter() -> None:
    embedder = _CountingEmbedder()
    queries = QueryEmbeddings(cache_size=3)
    for i in range(5):
        await queries.embed(embedder, f"query {i}")
    n = len(embedder.calls)
    await queries.embed(embedder, "query 0")  # evicted: embedded again
    assert len(embedder.calls) == n + 1

    class Broken(HashingEmbedder):
        name = "broken"

        def embed(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("model unavailable")

    results = await asyncio.gather(*(queries.embed(Broken(), f"q{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_query_arriving_during_a_batch_does_not_wait_for_it() -> None:
    """Two batches run at once: a slow batch (held here on an event) does not hold the next query."""
    started, release = threading.Event(), threading.Event()

    class Held(_CountingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            if "slow" in texts:
                started.set()
                assert release.wait(10)
            return super().embed(texts)

    embedder = Held()
    queries = QueryEmbeddings(workers=2)
    slow = asyncio.create_task(queries.embed(embedder, "slow"))
    assert await asyncio.to_thread(started.wait, 10)
    try:
        fast = await asyncio.wait_for(queries.embed(embedder, "fast"), 10)
        assert not slow.done()  # answered while the first batch was still being embedded
        np.testing.assert_array_equal(fast, embedder.embed_query("fast"))
    finally:
        release.set()
    np.testing.assert_array_equal(await slow, embedder.embed_query("slow"))
