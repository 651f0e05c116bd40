"""Page events in, searchable chunks out; and the search that rag-svc asks for over ``index.search``."""

from __future__ import annotations

import asyncio
import logging
import time

from showroom.common.events import PageIndexed, PageScraped, SearchHit, SearchRequest, SearchResponse
from showroom.indexer.chunking import chunk_page
from showroom.indexer.embedding import Embedder
from showroom.indexer.store import ChunkStore

log = logging.getLogger(__name__)


class Indexer:
    def __init__(self, store: ChunkStore, embedder: Embedder, chunk_words: int) -> None:
        self.store = store
        self.embedder = embedder
        self.chunk_words = chunk_words

    async def index_page(self, page: PageScraped) -> PageIndexed:
        t0 = time.perf_counter()
        chunks = chunk_page(page, self.chunk_words)
        # The embedder is numpy: its matmuls release the GIL, so a thread keeps the event loop free.
        vectors = await asyncio.to_thread(self.embedder.embed, [c.text for c in chunks]) if chunks else None
        payloads = [
            {
                "brand": page.brand,
                "title": page.title,
                "text": c.text,
                "section": c.section,
                "content_hash": page.content_hash,
                "fetched_at": page.fetched_at.isoformat(),
                "crawl_id": page.crawl_id,
                "product": page.product.model_dump() if page.product else None,
            }
            for c in chunks
        ]
        if vectors is not None:
            await self.store.replace_page(page.url, vectors, payloads)
        else:
            await self.store.replace_page(page.url, _empty(self.embedder.dim), [])
        return PageIndexed(
            crawl_id=page.crawl_id,
            trace_id=page.trace_id,
            brand=page.brand,
            url=page.url,
            content_hash=page.content_hash,
            chunks=len(chunks),
            collection=self.store.collection,
            fetched_at=page.fetched_at,
            index_ms=(time.perf_counter() - t0) * 1000,
        )

    async def search(self, request: SearchRequest) -> SearchResponse:
        vector = await asyncio.to_thread(self.embedder.embed_query, request.query)
        points = await self.store.search(vector, request.top_k, request.brand)
        hits = []
        for p in points:
            payload = p.payload or {}
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
                )
            )
        return SearchResponse(hits=hits)


def _empty(dim: int):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.zeros((0, dim), dtype=np.float32)
