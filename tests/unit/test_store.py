"""The chunk store's contract, run against both backends: Qdrant Edge and qdrant-client (local mode
standing in for a Qdrant server)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from showroom.common.events import PageScraped, Product, ProductSearchRequest, SearchRequest
from showroom.indexer.chunking import chunk_page
from showroom.indexer.embedding import HashingEmbedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.preparing import chunker_id, page_payloads
from showroom.indexer.sparse import Bm25Encoder
from showroom.indexer.store import ChunkStore, ModelMismatchError, SearchFilter, open_store, point_id

BACKENDS = ["edge", "local"]


def make_store(backend: str, root: Path) -> ChunkStore:
    return open_store("pages", path=str(root / "q") if backend == "edge" else ":memory:", backend=backend)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChunkStore]:
    s = make_store(request.param, tmp_path)
    await s.ensure_collection("hashing-v1", 64)
    yield s
    await s.close()


@pytest.fixture
def indexer(store: ChunkStore) -> Indexer:
    return Indexer(store, HashingEmbedder(64), 60, max_wait_ms=5)


def page(url: str, markdown: str, *, brand: str = "northwind", product: Product | None = None, h: str = "h1",
         title: str = "") -> PageScraped:  # fmt: skip
    return PageScraped(crawl_id="c", brand=brand, url=url, final_url=url, depth=1, status_code=200, fetch_mode="http",
                       content_hash=h, title=title or url, markdown=markdown, product=product)  # fmt: skip


def monitor(name: str, price: float, availability: str = "InStock", brand: str = "Northwind",
            category: str = "Studio Monitors", woofer: str = "8 in") -> Product:  # fmt: skip
    return Product(name=name, brand=brand, category=category, price=price, priceCurrency="USD",
                   availability=availability, sku=name.upper(), specs={"Woofer size": woofer})  # fmt: skip


async def test_reindexing_a_page_is_idempotent(indexer: Indexer) -> None:
    p = page("http://s/a", "# A\n\n" + "alpha beta gamma. " * 60)
    first = (await indexer.index_pages([p]))[0]
    assert first.chunks > 1 and not first.unchanged
    n = await indexer.store.count()
    again = (await indexer.index_pages([p]))[0]
    assert again.unchanged and again.chunks == first.chunks
    assert await indexer.store.count() == n


class GatedEmbedder(HashingEmbedder):
    """Holds its first call until released, so a second live batch forms while the first is in flight."""

    def __init__(self) -> None:
        super().__init__(64)
        self.started, self.release = threading.Event(), threading.Event()

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(timeout=30)
        return super().embed(texts)


async def test_a_live_batch_waits_for_an_earlier_batchs_write_of_the_same_url(store: ChunkStore) -> None:
    embedder = GatedEmbedder()
    indexer = Indexer(store, embedder, 60, max_wait_ms=0)
    long = asyncio.create_task(indexer.index_page(page("http://s/a", "# A\n\n" + "zebra quagga okapi. " * 80)))
    await asyncio.to_thread(embedder.started.wait, 30)  # the long version's batch is embedding
    short = asyncio.create_task(indexer.index_page(page("http://s/a", "# A\n\nA short note on tapirs.", h="h2")))
    others = asyncio.create_task(indexer.index_page(page("http://s/b", "# B\n\nUnrelated words.", h="h3")))
    embedder.release.set()
    first, second, _ = await asyncio.gather(long, short, others)
    assert first.chunks > 2 and second.chunks == 1
    assert await store.count("http://s/a") == 1  # the short version's lookup saw the long one's chunks
    await indexer.close()


async def test_a_changed_page_leaves_no_stale_chunk(indexer: Indexer) -> None:
    await indexer.index_pages([page("http://s/a", "# A\n\n" + "zebra quagga okapi. " * 80, h="h1")])
    assert await indexer.store.count("http://s/a") > 2
    await indexer.index_pages([page("http://s/a", "# A\n\nNow only a short note about tapirs.", h="h2")])
    assert await indexer.store.count("http://s/a") == 1
    hits = (await indexer.search(SearchRequest(query="zebra quagga okapi", top_k=10))).hits
    assert all("zebra" not in h.text for h in hits)
    assert hits and hits[0].content_hash == "h2"


async def test_a_stored_chunk_comes_back_with_its_whole_payload(indexer: Indexer) -> None:
    """Qdrant Edge stores most fields packed into one JSON string: every read unpacks them."""
    p = page("http://s/nw-8", "# NW-8\n\n" + 'Déep bass, "quoted" words. ' * 40, product=monitor("NW-8", 399.5))
    await indexer.index_pages([p], [42])
    chunks = chunk_page(p, 60)
    expected = [dict(x, url=p.url, chunk_index=i) for i, x in enumerate(page_payloads(p, chunks, chunker_id(60), 42))]
    assert len(expected) > 1 and expected[0]["product"]["specs"] == {"Woofer size": "8 in"}
    assert sorted(await indexer.store.payloads(), key=lambda x: x["chunk_index"]) == expected
    assert await indexer.store.page_version(p.url) == expected[0]
    hits = await indexer.store.search(
        indexer.embedder.embed_query("deep bass"), None, 1, SearchFilter(category="studio monitors")
    )
    assert hits and hits[0].payload == expected[hits[0].payload["chunk_index"]]
    assert point_id(p.url, 3) == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.url}#3"))


async def test_audit_lists_each_pages_chunk_indexes_by_brand(indexer: Indexer) -> None:
    long = page("http://s/a", "# A\n\n" + "zebra quagga okapi. " * 80, h="h1")
    await indexer.index_pages([long, page("http://s/b", "# B\n\nshort.", brand="cobalt", h="h2")])
    audit = await indexer.audit("northwind")
    assert set(audit) == {"http://s/a"}
    n = audit["http://s/a"]["chunks"]
    assert n > 2 and audit["http://s/a"] == {"chunks": n, "indexes": list(range(n)), "hashes": ["h1"]}
    assert (await indexer.audit())["http://s/b"] == {"chunks": 1, "indexes": [0], "hashes": ["h2"]}


async def test_another_embedding_model_is_refused(store: ChunkStore, tmp_path: Path) -> None:
    with pytest.raises(ModelMismatchError):
        await store.ensure_collection("other-model", 64)
    with pytest.raises(ModelMismatchError):
        await store.ensure_collection("hashing-v1", 128)
    with pytest.raises(ModelMismatchError):
        await store.replace_page("http://s/x", np.ones((1, 32), dtype=np.float32),
                                 Bm25Encoder().embed_documents(["x"]), [{"text": "x"}])  # fmt: skip


async def test_edge_store_persists_and_refuses_another_model_after_reopening(tmp_path: Path) -> None:
    s = make_store("edge", tmp_path)
    await s.ensure_collection("hashing-v1", 64)
    await Indexer(s, HashingEmbedder(64), 60).index_pages([page("http://s/a", "Persistent words.")])
    await s.close()
    s = make_store("edge", tmp_path)
    with pytest.raises(ModelMismatchError):
        await s.ensure_collection("sentence-transformers/all-MiniLM-L6-v2", 384)
    await s.ensure_collection("hashing-v1", 64)
    assert await s.count() == 1
    await s.close()


async def test_hybrid_search_finds_exact_keywords_and_filters(indexer: Indexer) -> None:
    await indexer.index_pages([
        page("http://s/nw8", "# NW-8\n\nA studio monitor.", product=monitor("NW-8 Monitor", 449)),
        page("http://s/nw5", "# NW-5\n\nA small studio monitor.", product=monitor("NW-5 Monitor", 249, woofer="5 in")),
        page("http://c/mx8", "# MX-8\n\nAn analog mixer.", brand="cobalt",
             product=monitor("MX-8 Mixer", 599, brand="Cobalt", category="Mixers")),
        page("http://s/support", "# Support\n\n## Warranty\n\nEvery product has a three-year warranty."),
    ])  # fmt: skip
    hits = (await indexer.search(SearchRequest(query="warranty years", top_k=3))).hits
    assert hits[0].url == "http://s/support"
    hits = (await indexer.search(SearchRequest(query="NW-5 woofer size", top_k=3))).hits
    assert hits[0].url == "http://s/nw5"

    by_brand = (await indexer.search(SearchRequest(query="studio monitor mixer", brand="cobalt", top_k=10))).hits
    assert {h.url for h in by_brand} == {"http://c/mx8"}
    by_category = (await indexer.search(SearchRequest(query="monitor", category="Studio Monitors", top_k=10))).hits
    assert {h.url for h in by_category} == {"http://s/nw8", "http://s/nw5"}
    by_url = (await indexer.search(SearchRequest(query="monitor", url="http://s/nw8", top_k=10))).hits
    assert {h.url for h in by_url} == {"http://s/nw8"}
    assert await indexer.store.search(np.zeros(64, np.float32), None, 5, SearchFilter(brand="nobody")) == []


async def test_structured_product_search(indexer: Indexer) -> None:
    await indexer.index_pages([
        page("http://s/nw8", "NW-8.", product=monitor("NW-8 Monitor", 449)),
        page("http://s/nw5", "NW-5.", product=monitor("NW-5 Monitor", 249, woofer="5 in")),
        page("http://s/nw3", "NW-3.", product=monitor("NW-3 Monitor", 149, availability="OutOfStock")),
        page("http://c/mx8", "MX-8.", brand="cobalt", product=monitor("MX-8 Mixer", 599, brand="Cobalt",
                                                                        category="Mixers")),
        page("http://s/support", "Support page, no product."),
    ])  # fmt: skip
    found = await indexer.products(ProductSearchRequest(brand="northwind", category="studio monitors", max_price=300,
                                                        in_stock=True))  # fmt: skip
    assert [p.name for p in found.products] == ["NW-5 Monitor"]
    assert found.products[0].price == 249 and found.products[0].specs == {"Woofer size": "5 in"}
    everything = await indexer.products(ProductSearchRequest())
    assert [p.name for p in everything.products] == ["NW-3 Monitor", "NW-5 Monitor", "NW-8 Monitor", "MX-8 Mixer"]
    text = await indexer.products(ProductSearchRequest(q="mixer"))
    assert [p.url for p in text.products] == ["http://c/mx8"]
    priced = await indexer.products(ProductSearchRequest(min_price=200, max_price=500))
    assert {p.name for p in priced.products} == {"NW-5 Monitor", "NW-8 Monitor"}


async def test_a_new_version_is_swapped_in_atomically_behind_the_alias(store: ChunkStore) -> None:
    indexer = Indexer(store, HashingEmbedder(64), 60)
    await indexer.index_pages([page("http://s/old", "Old words.")])
    v1 = await store.current_version()
    v2 = await store.create_version("hashing-v1", 64)
    assert await store.current_version() == v1  # building v2 does not disturb readers
    await store.swap_alias(v2)
    assert await store.current_version() == v2
    assert await store.count() == 0
    await indexer.index_pages([page("http://s/new", "New words.")])
    assert await store.versions() == [v1, v2]
    await store.swap_alias(v1)
    assert await store.count() == 1
    assert (await indexer.search(SearchRequest(query="old words", top_k=1))).hits[0].url == "http://s/old"


async def test_micro_batches_share_one_embedding_call(store: ChunkStore) -> None:
    import asyncio

    calls: list[int] = []

    class Counting(HashingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return super().embed(texts)

    indexer = Indexer(store, Counting(64), 60, max_wait_ms=200, max_batch_chunks=1000)
    results = await asyncio.gather(*(indexer.index_page(page(f"http://s/{i}", f"Page {i}.")) for i in range(10)))
    assert [r.url for r in results] == [f"http://s/{i}" for i in range(10)]
    assert sum(calls) == 10 and len(calls) <= 2
    await indexer.close()


async def test_a_reopened_edge_store_serves_concurrent_first_searches(tmp_path: Path) -> None:
    # A restarted indexer-svc opens its shard on the first search; a burst of first searches
    # must open it once (Qdrant Edge locks the WAL: a second open fails).
    first = make_store("edge", tmp_path)
    await first.ensure_collection("hashing-v1", 64)
    embedder = HashingEmbedder(64)
    await Indexer(first, embedder, 60).index_pages([page("http://s/a", "# A\n\nalpha beta gamma delta.")])
    await first.close()
    del first

    reopened = make_store("edge", tmp_path)
    await reopened.ensure_collection("hashing-v1", 64)
    indexer = Indexer(reopened, embedder, 60)
    import asyncio

    results = await asyncio.gather(*(indexer.search(SearchRequest(query="alpha", top_k=3)) for _ in range(20)))
    assert all(r.hits and r.hits[0].url == "http://s/a" for r in results)
    await reopened.close()


async def test_raw_events_are_stored_as_the_pages_themselves_would_be(store: ChunkStore, tmp_path: Path) -> None:
    # A replay's path (index_events: decoded, chunked and encoded in one go, possibly in another
    # process) and the live path (index_pages) must store the very same payloads.
    embedder = HashingEmbedder(64)
    pages = [
        page("http://s/p", "# NW-8\n\n" + "Eight inch woofer, ribbon tweeter. " * 40, product=monitor("NW-8", 349.0)),
        page("http://s/q", "# About\n\nA plain page.", brand="cobalt", h="h2"),
    ]
    live = Indexer(store, embedder, 60)
    await live.index_pages(pages, [1, 2])
    expected = sorted(await store.payloads(), key=lambda p: (p["url"], p["chunk_index"]))

    other = make_store("edge" if "Edge" in type(store).__name__ else "local", tmp_path / "other")
    await other.ensure_collection(embedder.name, embedder.dim)
    replay = Indexer(other, embedder, 60)
    events = [(1, pages[0].model_dump_json().encode()), (2, pages[1].model_dump_json().encode()), (3, b"{}")]
    counts = await replay.index_events(events)
    assert counts == (2, 0, 1)  # the undecodable one is skipped
    got = sorted(await other.payloads(), key=lambda p: (p["url"], p["chunk_index"]))
    assert got == expected and len(got) > 2
    products = await replay.products(ProductSearchRequest(max_price=400, in_stock=True))
    assert [p.name for p in products.products] == ["NW-8"]
    await other.close()


async def test_an_edge_shard_is_flushed_as_points_accumulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from showroom.indexer import store as store_module

    monkeypatch.setattr(store_module, "FLUSH_AFTER_POINTS", 5)
    s = make_store("edge", tmp_path)
    await s.ensure_collection("hashing-v1", 64)
    version = await s.current_version()
    assert version is not None
    flushes: list[str] = []

    class Spy:
        def __init__(self, shard: object) -> None:
            self.shard = shard

        def __getattr__(self, name: str) -> object:
            return getattr(self.shard, name)

        def flush(self) -> None:
            flushes.append(version)
            self.shard.flush()  # type: ignore[attr-defined]

    s._shards[version] = Spy(await s._shard())  # type: ignore[attr-defined]
    indexer = Indexer(s, HashingEmbedder(64), 60)
    await indexer.index_pages([page(f"http://s/{i}", f"Page {i}.") for i in range(3)])  # 3 points
    assert flushes == []
    await indexer.index_pages([page(f"http://s/{i}", f"Page {i}.") for i in range(3, 6)])  # 6 in all
    assert flushes == [version]
    monkeypatch.setattr(store_module, "FLUSH_AFTER_S", 0.0)  # a slow trickle is flushed too
    await indexer.index_pages([page("http://s/late", "A late page.")])
    assert flushes == [version, version]
    await s.close()


async def test_two_indexers_writing_one_version_keep_each_pages_newest_event(store: ChunkStore) -> None:
    # After a replay's swap, the live path and the replay's last pass write the same version
    # through two Indexers.  An older event whose batch looked the page up before a newer one was
    # written must not overwrite it when its (slow) embedding is done.
    embedding = threading.Event()
    release = threading.Event()

    class Slow(HashingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            embedding.set()
            release.wait(10)
            return super().embed(texts)

    url = "http://s/page"
    replay = Indexer(store, Slow(64), 60)
    live = Indexer(store, HashingEmbedder(64), 60)
    older = asyncio.create_task(replay.index_pages([page(url, "Older words.", h="older")], [7]))
    await asyncio.to_thread(embedding.wait, 10)  # looked up, now embedding
    newer = asyncio.create_task(live.index_pages([page(url, "Newer words.", h="newer")], [9]))
    # The newer batch's chance to write first, if nothing stops it (it waits for the older one's).
    await asyncio.wait({newer}, timeout=0.2)
    release.set()
    (first,), (second,) = await asyncio.gather(older, newer)
    assert not first.unchanged and not second.unchanged
    held = await store.page_version(url)
    assert held is not None and (held["content_hash"], held["stream_seq"]) == ("newer", 9)
