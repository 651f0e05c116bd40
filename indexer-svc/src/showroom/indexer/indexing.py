"""Page events in, searchable chunks out; and the searches rag-svc and the gateway ask for.

Micro-batching.  Pages arrive one message at a time (several handlers in flight); embedding
them one page per call would leave the embedder with tiny batches.  :class:`Indexer` queues
pages and embeds together what arrived within ``max_wait_ms`` (or up to ``max_batch_chunks``
chunks), so throughput approaches the raw embedder's while no page waits longer than the bound.

Incremental.  A page whose content hash (and chunker version) the index already holds costs one
point lookup and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from showroom.common.events import (
    PageIndexed,
    PageScraped,
    ProductSearchRequest,
    ProductSearchResponse,
    ProductSummary,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from showroom.indexer.chunking import CHUNKER_VERSION, Chunk, chunk_page
from showroom.indexer.embedding import Embedder, QueryEmbeddings
from showroom.indexer.sparse import Bm25Encoder
from showroom.indexer.store import ChunkStore, ProductQuery, SearchFilter

log = logging.getLogger(__name__)

_IN_STOCK = {"instock", "in stock", "limitedavailability", "onlineonly", "instoreonly"}


def in_stock(availability: str | None) -> bool:
    if not availability:
        return False
    return availability.rsplit("/", 1)[-1].strip().lower() in _IN_STOCK


def page_payloads(page: PageScraped, chunks: list[Chunk]) -> list[dict[str, Any]]:
    """Per chunk: the text, where it came from (page version) and the product's structured fields."""
    p = page.product
    product_fields: dict[str, Any] = {"is_product": False, "kind": "page"}
    if p is not None and p.name:
        stocked = in_stock(p.availability)
        product_fields = {
            "is_product": True,
            "kind": "product",
            "stock": "in" if stocked else "out",
            "product_name": p.name,
            "category": (p.category or "").lower() or None,
            "sku": p.sku,
            "price": p.price,
            "currency": p.priceCurrency,
            "availability": p.availability,
            "in_stock": stocked,
        }
    return [
        {
            "brand": page.brand,
            "title": page.title,
            "text": c.text,
            "section": c.section,
            "content_hash": page.content_hash,
            "chunker": CHUNKER_VERSION,
            "chunks": len(chunks),
            "fetched_at": page.fetched_at.isoformat(),
            "crawl_id": page.crawl_id,
            "product": p.model_dump() if p else None,
            **product_fields,
        }
        for c in chunks
    ]


@dataclass
class _Pending:
    page: PageScraped
    done: asyncio.Future[PageIndexed]
    queued_at: float


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
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunk_words = chunk_words
        self.sparse = sparse or Bm25Encoder()
        self.max_batch_chunks = max_batch_chunks
        self.max_wait_s = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._queries = QueryEmbeddings()  # concurrent searches share query-embedding calls

    # -- indexing ---------------------------------------------------------------------------

    async def index_page(self, page: PageScraped) -> PageIndexed:
        """Index one page, sharing an embedding batch with pages that arrive meanwhile."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="indexer-batches")
        done: asyncio.Future[PageIndexed] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(page, done, time.perf_counter()))
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
            try:
                results = await self.index_pages([b.page for b in batch])
            except Exception as exc:  # every waiter learns of it; its handler decides to retry
                for b in batch:
                    if not b.done.done():
                        b.done.set_exception(exc)
                continue
            for b, result in zip(batch, results, strict=True):
                if not b.done.done():
                    b.done.set_result(result)

    async def index_pages(self, pages: list[PageScraped]) -> list[PageIndexed]:
        """Index ``pages`` with one embedder call for all the chunks that need embedding."""
        t0 = time.perf_counter()
        work: list[tuple[PageScraped, list[Chunk]] | None] = []
        for page in pages:
            if await self._unchanged(page):
                work.append(None)
            else:
                work.append((page, chunk_page(page, self.chunk_words)))
        texts = [c.text for w in work if w for c in w[1]]
        if texts:
            # numpy's matmuls release the GIL: a thread keeps the event loop (and searches) going.
            dense, sparse = await asyncio.gather(
                asyncio.to_thread(self.embedder.embed, texts), asyncio.to_thread(self.sparse.embed_documents, texts)
            )
        else:
            dense, sparse = np.zeros((0, self.embedder.dim), dtype=np.float32), []
        results = []
        offset = 0
        for page, w in zip(pages, work, strict=True):
            n = len(w[1]) if w else 0
            if w is not None:
                await self.store.replace_page(
                    page.url, dense[offset : offset + n], sparse[offset : offset + n], page_payloads(page, w[1])
                )
            offset += n
            results.append(
                PageIndexed(
                    crawl_id=page.crawl_id,
                    trace_id=page.trace_id,
                    brand=page.brand,
                    url=page.url,
                    content_hash=page.content_hash,
                    chunks=n if w is not None else await self.store.count(page.url),
                    collection=self.store.collection,
                    fetched_at=page.fetched_at,
                    index_ms=(time.perf_counter() - t0) * 1000,
                    unchanged=w is None,
                )
            )
        return results

    async def _unchanged(self, page: PageScraped) -> bool:
        """The index holds this very content, chunked by this very chunker: nothing to do."""
        held = await self.store.page_version(page.url)
        return (
            held is not None
            and held.get("content_hash") == page.content_hash
            and held.get("chunker") == CHUNKER_VERSION
        )

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

    # -- search -----------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResponse:
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
