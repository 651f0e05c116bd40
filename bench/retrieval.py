"""Indexer throughput, freshness and query latency, in one run.

    uv run python bench/retrieval.py [--points 100000] [--clients 20] [--queries 400]

1. Throughput: the same chunk texts (demo-site pages, repeated with varied URLs) embedded by the
   raw MiniLM embedder, then indexed page by page through ``Indexer.index_page`` (16 pages in
   flight, micro-batched, BM25 + Qdrant Edge upserts included).  Reports chunks/s and the ratio,
   three rounds in turn, and the median ratio.
2. Freshness: pages offered at a steady rate (half the measured throughput) through
   ``index_page``; for each, the time from hand-over to the first search that finds it.  This is
   the indexer's share of page.scraped -> searchable (the NATS hop adds ~1 ms).
3. Query latency at scale: a Qdrant Edge collection with ``--points`` chunks (synthetic unit
   vectors and BM25 vectors of synthetic product text, 2 brands, optimised), ``--clients``
   concurrent clients each running the full query path except the LLM and the bus: MiniLM query
   embedding + BM25 query + hybrid RRF search with a brand filter.  p50/p95.
4. Cache hits: ``AnswerCache.get`` on a real nats-server's KV bucket (what a hit costs rag-svc).

Figures go to stdout.  Run it under ``flock /tmp/showroom-heavy.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eval.dataset import pages
from showroom.common.events import Answer, AskRequest, Citation
from showroom.indexer.chunking import chunk_page
from showroom.indexer.embedding import load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.sparse import Bm25Encoder
from showroom.indexer.store import EdgeChunkStore, SearchFilter, open_store


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def corpus(n_pages: int):  # type: ignore[no-untyped-def]
    base = pages()
    out = []
    for i in range(n_pages):
        p = base[i % len(base)]
        out.append(p.model_copy(update={"url": f"{p.url}?copy={i}", "content_hash": f"{p.content_hash}-{i}"}))
    return out


async def throughput(embedder, n_pages: int, rounds: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Raw embedder vs indexer on the same texts, ``rounds`` times in turn (the median ratio).

    In turn, because this machine's speed drifts by 10-30% from one minute to the next (shared
    caches, other tenants): one raw run against one indexer run can show either side ahead."""
    docs = corpus(n_pages)
    texts = [c.text for p in docs for c in chunk_page(p, 180)]
    embedder.embed(texts[:16])  # warm
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("bench", path=tmp)
        await store.ensure_collection(embedder.name, embedder.dim)
        indexer = Indexer(store, embedder, 180)
        sem = asyncio.Semaphore(16)

        async def one(p):  # type: ignore[no-untyped-def]
            async with sem:
                return await indexer.index_page(p)

        ratios, elapsed = [], 0.0
        for r in range(rounds):
            t0 = time.perf_counter()
            embedder.embed(texts)
            raw = len(texts) / (time.perf_counter() - t0)
            # New content each round: the indexer embeds every page again instead of skipping it.
            fresh = [p.model_copy(update={"content_hash": f"{p.content_hash}-r{r}"}) for p in docs]
            t0 = time.perf_counter()
            results = await asyncio.gather(*(one(p) for p in fresh))
            elapsed = time.perf_counter() - t0
            piped = sum(x.chunks for x in results) / elapsed
            ratios.append(piped / raw)
            print(f"[throughput] round {r + 1}: {len(texts)} chunks: raw embedder {raw:.1f} chunks/s; "
                  f"indexer {piped:.1f} chunks/s ({piped / raw:.0%} of raw)")  # fmt: skip
        print(f"[throughput] median over {rounds} rounds: indexer at {sorted(ratios)[rounds // 2]:.0%} of raw")

        # Freshness at steady load: pages offered at half the indexer's page rate.
        rate = 0.5 * len(docs) / elapsed
        fresh = corpus(40)
        fresh = [p.model_copy(update={"url": p.url + "&f=1", "content_hash": p.content_hash + "f"}) for p in fresh]
        delays: list[float] = []

        async def offer(p, at: float):  # type: ignore[no-untyped-def]
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            t = time.perf_counter()
            await indexer.index_page(p)
            dense = np.zeros(embedder.dim, dtype=np.float32)
            while not await store.search(dense, None, 1, SearchFilter(url=p.url)):
                await asyncio.sleep(0.005)
            delays.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(offer(p, start + i / rate) for i, p in enumerate(fresh)))
        print(f"[freshness] {len(fresh)} pages at {rate:.2f} pages/s: hand-over -> searchable "
              f"p50 {pct(delays, 50) * 1000:.0f} ms, p95 {pct(delays, 95) * 1000:.0f} ms")  # fmt: skip
        await indexer.close()
        await store.close()
    return sorted(ratios)[rounds // 2]


async def query_latency(embedder, points: int, clients: int, queries: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    bm25 = Bm25Encoder()
    words = "monitor mixer woofer tweeter synth drum headphone interface channel preamp weight price usb midi".split()
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeChunkStore("bench100k", tmp)
        await store.ensure_collection(embedder.name, embedder.dim)
        t0 = time.perf_counter()
        batch = 500
        for start in range(0, points, batch):
            n = min(batch, points - start)
            vecs = rng.standard_normal((n, embedder.dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            texts = [" ".join(random.choices(words, k=12)) + f" model {start + i}" for i in range(n)]
            sparse = bm25.embed_documents(texts)
            # One page per 500-chunk batch keeps fills fast; filters and ids behave as for real pages.
            url = f"http://bench/{'northwind' if (start // batch) % 2 else 'cobalt'}/{start}"
            payloads = [{"brand": url.split("/")[3], "text": t, "kind": "page"} for t in texts]
            await store.replace_page(url, vecs, sparse, payloads)
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        await store.optimize()
        print(f"[scale] {await store.count()} chunks filled in {fill:.0f}s, optimised in "
              f"{time.perf_counter() - t0:.0f}s")  # fmt: skip

        questions = [f"What is the {random.choice(words)} of the NW-{i % 40} {random.choice(words)}?"
                     for i in range(queries)]  # fmt: skip
        latencies: list[float] = []
        queue = list(questions)

        async def client() -> None:
            while queue:
                q = queue.pop()
                t = time.perf_counter()
                dense = await asyncio.to_thread(embedder.embed_query, q)
                await store.search(dense, bm25.embed_query(q), 8, SearchFilter(brand="northwind"))
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(client() for _ in range(clients)))
        print(f"[query] {queries} hybrid brand-filtered queries, {clients} concurrent clients, {points} chunks: "
              f"p50 {pct(latencies, 50) * 1000:.1f} ms, p95 {pct(latencies, 95) * 1000:.1f} ms "
              f"(MiniLM query embedding + BM25 + Qdrant Edge RRF search; no bus, no LLM)")  # fmt: skip
        single = []
        for q in questions[:100]:
            dense = embedder.embed_query(q)
            t = time.perf_counter()
            await store.search(dense, bm25.embed_query(q), 8, SearchFilter(brand="northwind"))
            single.append(time.perf_counter() - t)
        print(f"[query] store search alone (1 client): p50 {pct(single, 50) * 1000:.2f} ms, "
              f"p95 {pct(single, 95) * 1000:.2f} ms")  # fmt: skip
        await store.close()


async def cache_hits(n: int = 500) -> None:
    import nats

    from showroom.cli.stack import free_port, nats_server_binary
    from showroom.common.answercache import answer_key
    from showroom.rag.cache import AnswerCache

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", tmp]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220 -- a bench, once
        try:
            await asyncio.sleep(0.3)
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            cache = await AnswerCache.open(nc.jetstream(), 600)
            request = AskRequest(question="What is the woofer size of the NW-8?")
            answer = Answer(question=request.question, answer="8 in [1]", model="extractive",
                            citations=[Citation(n=1, url="http://x", title="x", snippet="8 in", score=1,
                                                content_hash="h")])  # fmt: skip
            key = answer_key(request, "extractive", "0.0")
            await cache.put(key, answer)
            times = []
            for _ in range(n):
                t = time.perf_counter()
                assert await cache.get(key) is not None
                times.append(time.perf_counter() - t)
            print(
                f"[cache] hit (KV get + decode): p50 {pct(times, 50) * 1000:.2f} ms, p95 {pct(times, 95) * 1000:.2f} ms"
            )
            await nc.close()
        finally:
            proc.terminate()
            proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=150)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--queries", type=int, default=400)
    args = ap.parse_args()
    embedder = load_embedder("minilm")
    await throughput(embedder, args.pages)
    await cache_hits()
    await query_latency(embedder, args.points, args.clients, args.queries)


if __name__ == "__main__":
    asyncio.run(main())
