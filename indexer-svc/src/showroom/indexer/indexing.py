"""Page events in, searchable chunks out; and the searches rag-svc and the gateway ask for.

Micro-batching.  Pages arrive one message at a time (several handlers in flight); embedding
them one page per call would leave the embedder with tiny batches.  :class:`Indexer` queues
pages and embeds together what arrived within ``max_wait_ms`` (or up to ``max_batch_chunks``
chunks), so throughput approaches the raw embedder's while no page waits longer than the bound.

Incremental.  A page whose content hash (and chunker version) the index already holds costs one
point lookup and nothing else.

Versions.  Each batch pins the collection version the alias points at when it starts, and
chunks and embeds the way that version was built (its ``meta``: embedder, chunk size).  So when
a replay swaps the alias to a rebuilt version, the next batch follows it, and no batch ever
writes one configuration's chunks into another's collection.

Raw events, chunked elsewhere.  A replay hands :meth:`Indexer.index_events` the page events as they
came off the bus.  Decoding them, chunking, BM25 and the payloads in the store's own form need
neither the store nor the dense model (``preparing.py``), so given a process pool (``pool``, a
replay's) they are done there, and a replay prepares one batch while the last one is written (see
``replay.py``); what comes back is only what the write needs.

Overlapping batches.  Several batches may be in flight at once (the live path runs two; a replay
pipelines its own), so one embeds while another looks up, chunks and writes; embedding itself
takes one batch at a time.  What must stay in order is per URL: a batch that holds a URL an
earlier batch is still writing waits for that write before its point lookup, so it sees what the
earlier one wrote -- a page's short version after its long one deletes the long one's surplus
chunks, and an older event is skipped rather than written over a newer one.  The claims live on
the store (``ChunkStore.claims``, per version and URL), so they hold between Indexers too: after a
replay's swap, the live path and the replay's last pass write the same version.  Batches of other
URLs never wait for each other.

Lineage.  Every chunk records the page event it came from (stream sequence, event id, fetch
mode), so a citation leads back to the exact fetch.  A page event older than the version a
collection already holds for that URL (a replay catching up behind live events) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from showroom.common.events import (
    PageIndexed,
    PageLineage,
    PageScraped,
    ProductSearchRequest,
    ProductSearchResponse,
    ProductSummary,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from showroom.common.topology import url_key
from showroom.indexer.embedding import Embedder, QueryEmbeddings
from showroom.indexer.preparing import (
    PageIdentity,
    PreparedPage,
    RawEvent,
    chunker_id,
    prepare_events,
    prepare_pages,
)
from showroom.indexer.sparse import Bm25Encoder
from showroom.indexer.store import ChunkStore, PageWrite, ProductQuery, SearchFilter, Sparse

log = logging.getLogger(__name__)


def lineage_of(payload: dict[str, Any], collection: str | None = None) -> PageLineage:
    """The page event a stored chunk came from."""
    return PageLineage(
        url=payload.get("url", ""),
        content_hash=payload.get("content_hash", ""),
        fetched_at=payload.get("fetched_at"),
        crawl_id=payload.get("crawl_id"),
        event_id=payload.get("event_id"),
        stream_seq=payload.get("stream_seq"),
        fetch_mode=payload.get("fetch_mode"),
        fetched_by=payload.get("fetched_by"),
        collection=collection,
    )


class IndexedCounts(NamedTuple):
    """What :meth:`Indexer.index_events` did with a batch of events."""

    indexed: int
    unchanged: int
    """Already in the store as they are, or older than what it holds."""
    skipped: int
    """Undecodable, or superseded by a newer event for the same URL in the batch."""


@dataclass
class _Pending:
    page: PageScraped
    seq: int | None
    done: asyncio.Future[PageIndexed]
    queued_at: float


EmbedderFactory = Callable[[str], Embedder]
"""Builds the embedder a collection version names (its ``embedder_key`` meta)."""


class Indexer:
    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        chunk_words: int,
        *,
        sparse: Bm25Encoder | None = None,
        max_batch_chunks: int = 64,
        max_wait_ms: float = 50.0,
        embedder_factory: EmbedderFactory | None = None,
        pool: Executor | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        """Where :meth:`index_events` prepares its events (``None``: in a thread of this process)."""
        self._last_turn: asyncio.Future[None] | None = None
        """Done when the latest :meth:`index_events` call has taken its turn for its URLs."""
        self._batches = asyncio.Semaphore(2)
        """Live batches in flight at once."""
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._embedding = asyncio.Lock()
        self.embedder = embedder
        self.chunk_words = chunk_words
        self.embedder_factory = embedder_factory
        self._version: str | None = None
        self._config_lock = asyncio.Lock()
        self.sparse = sparse or Bm25Encoder()
        self.max_batch_chunks = max_batch_chunks
        self.max_wait_s = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._queries = QueryEmbeddings()  # concurrent searches share query-embedding calls

    # -- indexing ---------------------------------------------------------------------------

    async def index_page(self, page: PageScraped, seq: int | None = None) -> PageIndexed:
        """Index one page (``seq``: its PAGES sequence), sharing an embedding batch with pages that
        arrive meanwhile."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="indexer-batches")
        done: asyncio.Future[PageIndexed] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(page, seq, done, time.perf_counter()))
        return await done

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            chunks = 0
            deadline = first.queued_at + self.max_wait_s
            while chunks < self.max_batch_chunks:
                timeout = deadline - time.perf_counter()
                if timeout <= 0 and self._queue.empty():
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), max(timeout, 0))
                except TimeoutError:
                    break
                batch.append(item)
                chunks += 8  # a rough size; the real count is known after chunking
            await self._batches.acquire()
            task = asyncio.create_task(self._index_batch(batch), name="indexer-batch")
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batch_tasks.discard(task)
        self._batches.release()

    async def _index_batch(self, batch: list[_Pending]) -> None:
        try:
            results = await self.index_pages([b.page for b in batch], [b.seq for b in batch])
        except asyncio.CancelledError:  # the indexer is closing: so are its waiters
            for b in batch:
                b.done.cancel()
            raise
        except Exception as exc:  # every waiter learns of it; its handler decides to retry
            for b in batch:
                if not b.done.done():
                    b.done.set_exception(exc)
            return
        for b, result in zip(batch, results, strict=True):
            if not b.done.done():
                b.done.set_result(result)

    async def follow_alias(self) -> str:
        """The version the alias points at, adopting its chunking and embedder if it moved."""
        version = await self.store.current_version()
        if version is None:
            raise RuntimeError(f"collection {self.store.collection!r} has no version: call ensure_collection()")
        if version != self._version:
            async with self._config_lock:
                if version != self._version:
                    await self._adopt(version)
        return version

    async def _adopt(self, version: str) -> None:
        meta = await self.store.version_meta(version)
        if meta.get("embedder") not in (None, self.embedder.name):
            key = meta.get("embedder_key")
            if not key or self.embedder_factory is None:
                raise RuntimeError(f"{version} was built by {meta.get('embedder')!r}, which this indexer cannot load")
            self.embedder = await asyncio.to_thread(self.embedder_factory, key)
            log.info("following %s: embedder %s", version, self.embedder.name)
        if meta.get("chunk_tokens") and meta["chunk_tokens"] != self.chunk_words:
            log.info("following %s: chunks of up to %s tokens", version, meta["chunk_tokens"])
            self.chunk_words = int(meta["chunk_tokens"])
        self.store.model, self.store.dim = self.embedder.name, self.embedder.dim
        self._version = version

    def version_meta(self) -> dict[str, Any]:
        """What a new version built like this indexer records (see :meth:`_adopt`)."""
        return {"chunk_tokens": self.chunk_words, "chunker": chunker_id(self.chunk_words)}

    async def index_pages(
        self, pages: Sequence[PageScraped], seqs: Sequence[int | None] | None = None
    ) -> list[PageIndexed]:
        """Index ``pages`` with one embedder call for all the chunks that need embedding.

        Batches may be called concurrently (see the module docstring): a batch holding a URL that
        an earlier call is still writing looks it up only once that write is done.
        """
        t0 = time.perf_counter()
        seqs = seqs or [None] * len(pages)
        version = await self.follow_alias()
        chunk_words = self.chunk_words
        async with self._turn(version, {p.url for p in pages}):

            def prepare(i: int) -> PreparedPage:
                return prepare_pages([pages[i]], [seqs[i]], chunk_words)[0]

            work, held = await self._write(pages, seqs, version, chunk_words, prepare)
        return [
            PageIndexed(
                crawl_id=page.crawl_id,
                trace_id=page.trace_id,
                brand=page.brand,
                url=page.url,
                content_hash=page.content_hash,
                chunks=len(w.texts) if w is not None else int(held.get(page.url, {}).get("chunks") or 0),
                collection=version,
                fetched_at=page.fetched_at,
                index_ms=(time.perf_counter() - t0) * 1000,
                unchanged=w is None,
            )
            for page, w in zip(pages, work, strict=True)
        ]

    async def index_events(self, events: Sequence[RawEvent]) -> IndexedCounts:
        """Index raw page events (:func:`prepare_events`, in ``pool`` when there is one): each URL's
        newest.  A replay's path: it counts what it did rather than describe each page.

        The batch takes its turn for its URLs (see :meth:`index_pages`) once it knows them, after
        decoding, and calls take their turns in call order: batches prepared concurrently (in
        several workers or threads) still write a URL's events oldest first.
        """
        loop = asyncio.get_running_loop()
        version = await self.follow_alias()
        chunk_words = self.chunk_words
        before, turn_taken = self._last_turn, loop.create_future()
        self._last_turn = turn_taken
        try:
            call = (prepare_events, events, chunk_words, self.sparse.avg_len, type(self.store).encode_payload)
            if self.pool is not None:
                batch = await loop.run_in_executor(self.pool, *call)
            else:
                batch = await asyncio.to_thread(*call)
            if before is not None:
                await before
            async with self._turn(version, {p.url for p in batch.pages}, turn_taken):
                work, _ = await self._write(batch.pages, batch.seqs, version, chunk_words, batch.prepared.__getitem__)
        finally:
            if not turn_taken.done():  # failed before its turn: the next call need not wait
                turn_taken.set_result(None)
        indexed = sum(w is not None for w in work)
        return IndexedCounts(indexed, len(work) - indexed, batch.skipped)

    @contextlib.asynccontextmanager
    async def _turn(
        self, version: str, urls: set[str], taken: asyncio.Future[None] | None = None
    ) -> AsyncIterator[None]:
        """Wait for the batches before this one (of any Indexer) that are writing any of ``urls``
        into ``version``; the batches after it that hold one of them wait for this one's write (or
        failure).  ``taken`` is resolved once this batch's claims are in place."""
        claims = self.store.claims
        keys = [(version, url) for url in urls]
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        earlier = {f for k in keys if (f := claims.get(k)) is not None}
        claims.update(dict.fromkeys(keys, written))
        if taken is not None:
            taken.set_result(None)
        try:
            if earlier:
                await asyncio.wait(earlier)
            yield
        finally:
            written.set_result(None)
            for key in keys:
                if claims.get(key) is written:
                    del claims[key]

    async def _write(
        self,
        pages: Sequence[PageIdentity],
        seqs: Sequence[int | None],
        version: str,
        chunk_words: int,
        prepare: Callable[[int], PreparedPage],
    ) -> tuple[list[PreparedPage | None], dict[str, dict[str, Any]]]:
        """Look the pages up, then embed and write those that changed (``prepare(i)``: page ``i``'s
        chunks, called only for pages that are written).  Returns what was written per page
        (``None``: unchanged) and what the lookup found."""
        store = self.store.pinned(version)
        chunker = chunker_id(chunk_words)
        held = await store.page_versions([p.url for p in pages])
        work: list[PreparedPage | None] = []
        for i, (page, seq) in enumerate(zip(pages, seqs, strict=True)):
            work.append(None if self._unchanged(held.get(page.url), page, seq, chunker) else prepare(i))
        texts = [t for w in work if w for t in w.texts]
        sparse: list[Sparse]
        if not texts:
            dense, sparse = np.zeros((0, self.embedder.dim), dtype=np.float32), []
        elif all(w.sparse is not None for w in work if w):
            dense = await self._embed(texts)
            sparse = [v for w in work if w for v in w.sparse or ()]
        else:
            dense, sparse = await asyncio.gather(
                self._embed(texts), asyncio.to_thread(self.sparse.embed_documents, texts)
            )
        writes: list[PageWrite] = []
        written: set[str] = set()
        offset = 0
        for page, w in zip(pages, work, strict=True):
            if w is None:
                continue
            n = len(w.texts)
            # Unknown (None) when the batch writes this URL twice: then surplus chunks are deleted.
            had = None if page.url in written else int(held.get(page.url, {}).get("chunks") or 0)
            written.add(page.url)
            writes.append(PageWrite(page.url, dense[offset : offset + n], sparse[offset : offset + n], w.payloads,
                                    had_chunks=had, encoded=w.encoded))  # fmt: skip
            offset += n
        if writes:
            await store.replace_pages(writes)
        return work, held

    async def _embed(self, texts: list[str]) -> np.ndarray:
        """One batch's chunks; batches take turns: overlapping batches hide each other's lookups and
        writes behind embedding, rather than take a second core from searches and the crawler."""
        async with self._embedding:
            # The embedder releases the GIL: a thread keeps the event loop (and searches) going.
            return await asyncio.to_thread(self.embedder.embed, texts)

    @staticmethod
    def _unchanged(held: dict[str, Any] | None, page: PageIdentity, seq: int | None, chunker: str) -> bool:
        """Nothing to do: the index holds this very content chunked this very way, or a newer
        version of the page than this event (a replay reading behind live events)."""
        if held is None:
            return False
        if seq is not None and (held.get("stream_seq") or 0) > seq:
            return True
        return held.get("content_hash") == page.content_hash and held.get("chunker") == chunker

    async def audit(self, brand: str | None = None) -> dict[str, dict[str, Any]]:
        """Per URL: the chunk count its page declared and the chunk indexes actually stored.

        A page is whole when ``indexes == list(range(chunks))`` and every chunk carries the same
        content hash; the chaos tests use this to prove nothing is missing, doubled or half-written.
        """
        pages: dict[str, dict[str, Any]] = {}
        for payload in await self.store.payloads(SearchFilter(brand=brand) if brand else None):
            page = pages.setdefault(payload["url"], {"chunks": payload.get("chunks"), "indexes": [], "hashes": []})
            page["indexes"].append(int(payload["chunk_index"]))
            if payload.get("content_hash") not in page["hashes"]:
                page["hashes"].append(payload.get("content_hash"))
        for page in pages.values():
            page["indexes"].sort()
        return pages

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for task in list(self._batch_tasks):
            task.cancel()

    # -- search -----------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResponse:
        await self.follow_alias()  # a query is embedded by the model of the collection it searches
        dense = await self._queries.embed(self.embedder, request.query)
        sparse = self.sparse.embed_query(request.query)
        flt = SearchFilter(brand=request.brand, category=(request.category or "").lower() or None, url=request.url)
        points = await self.store.search(dense, sparse, request.top_k, flt)
        hits = []
        for p in points:
            payload = p.payload
            hits.append(
                SearchHit(
                    url=payload.get("url", ""),
                    title=payload.get("title", ""),
                    brand=payload.get("brand", ""),
                    text=payload.get("text", ""),
                    score=float(p.score),
                    chunk_index=int(payload.get("chunk_index", 0)),
                    content_hash=payload.get("content_hash", ""),
                    fetched_at=payload.get("fetched_at"),
                    section=payload.get("section", ""),
                    lineage=lineage_of(payload, self._version),
                )
            )
        return SearchResponse(hits=hits, model=self.embedder.name)

    async def products(self, request: ProductSearchRequest) -> ProductSearchResponse:
        query = ProductQuery(
            brand=request.brand,
            category=(request.category or "").lower() or None,
            min_price=request.min_price,
            max_price=request.max_price,
            in_stock=request.in_stock,
            text=request.q,
            limit=request.limit,
        )
        out = []
        for payload in await self.store.products(query):
            product = payload.get("product") or {}
            out.append(
                ProductSummary(
                    id=url_key(payload["url"]),
                    url=payload["url"],
                    name=product.get("name") or payload.get("title", ""),
                    brand=product.get("brand") or payload.get("brand", ""),
                    category=product.get("category"),
                    sku=product.get("sku"),
                    price=product.get("price"),
                    currency=product.get("priceCurrency"),
                    availability=product.get("availability"),
                    in_stock=bool(payload.get("in_stock")),
                    specs=product.get("specs") or {},
                    content_hash=payload.get("content_hash", ""),
                    fetched_at=payload.get("fetched_at"),
                )
            )
        out.sort(key=lambda p: (p.price is None, p.price or 0.0, p.name))
        return ProductSearchResponse(products=out)
