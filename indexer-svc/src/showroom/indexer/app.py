"""indexer-svc: owns the Qdrant collection; indexes page events and serves ``index.search``."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub

from showroom.common.bus import bind_trace, dead_letters, decode, make_broker, publish_event
from showroom.common.errors import PermanentError
from showroom.common.events import (
    PageScraped,
    ProductSearchRequest,
    ProductSearchResponse,
    SearchRequest,
    SearchResponse,
)
from showroom.common.service import build_app
from showroom.common.topology import Durables, QueueGroups, Streams, Subjects
from showroom.indexer.embedding import load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.settings import IndexerSettings
from showroom.indexer.store import open_store

log = logging.getLogger(__name__)

settings = IndexerSettings()
SERVICE = "indexer-svc"
broker = make_broker(settings.nats_servers, SERVICE)
_deps: dict[str, Indexer] = {}
PAGE_DELIVERIES = 5


@broker.subscriber(
    "page.scraped.*",
    stream=JStream(Streams.PAGES.name, declare=False),
    durable=Durables.INDEXER_PAGES,
    pull_sub=PullSub(batch_size=settings.index_concurrency, timeout=5),
    config=ConsumerConfig(max_deliver=PAGE_DELIVERIES, ack_wait=settings.index_ack_wait_s, max_ack_pending=256),
    ack_policy=AckPolicy.NACK_ON_ERROR,
    # Several pages in flight at once share the indexer's embedding micro-batches.
    max_workers=settings.index_concurrency,
)
@dead_letters(broker, SERVICE, max_deliver=PAGE_DELIVERIES, max_bytes=settings.max_event_bytes)
async def on_page_scraped(msg: NatsMessage) -> None:
    page = decode(msg, PageScraped)
    bind_trace(page)
    if len(page.markdown) > settings.index_max_markdown_chars:
        raise PermanentError(
            f"page too long to index: {len(page.markdown)} characters of markdown "
            f"(SHOWROOM_INDEX_MAX_MARKDOWN_CHARS={settings.index_max_markdown_chars})"
        )
    indexed = await _deps["indexer"].index_page(page)
    # Keyed by the page event's stream sequence: a redelivered page event announces its indexing once.
    seq = msg.raw_message.metadata.sequence.stream
    await publish_event(
        broker,
        indexed,
        Subjects.page_indexed(page.brand),
        stream=Streams.INDEX.name,
        msg_id=f"{indexed.collection}.{seq}",
    )


@broker.subscriber(Subjects.SEARCH, queue=QueueGroups.INDEXER, max_workers=settings.search_concurrency)
async def on_search(request: SearchRequest) -> SearchResponse:
    try:
        return await _deps["indexer"].search(request)
    except Exception as exc:  # the caller gets a reason, never a hang
        log.exception("search failed")
        return SearchResponse(hits=[], error=str(exc)[:300])


@broker.subscriber(Subjects.PRODUCTS, queue=QueueGroups.INDEXER, max_workers=settings.search_concurrency)
async def on_products(request: ProductSearchRequest) -> ProductSearchResponse:
    try:
        return await _deps["indexer"].products(request)
    except Exception as exc:
        log.exception("product search failed")
        return ProductSearchResponse(products=[], error=str(exc)[:300])


@broker.subscriber(Subjects.INDEX_STATS, queue=QueueGroups.INDEXER)
async def on_stats(_: object = None) -> dict[str, object]:
    """The index's size, for the gateway's /v1/system/status and metrics-svc."""
    return {"collection": settings.collection, "chunks": await _deps["indexer"].store.count()}


@broker.subscriber(Subjects.INDEX_AUDIT, queue=QueueGroups.INDEXER)
async def on_audit(request: dict[str, object] | None = None) -> dict[str, object]:
    """Per-URL chunk counts and indexes (``{"brand": ...}`` narrows it): the embedded store is locked
    by this process, so this is how tests and operators check that every page is stored exactly once."""
    brand = (request or {}).get("brand") if isinstance(request, dict) else None
    return {"pages": await _deps["indexer"].audit(str(brand) if brand else None)}


def make_embedder():  # type: ignore[no-untyped-def]
    if settings.embedder.strip().lower() == "gemini":
        key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None
        return load_embedder("gemini", api_key=key, model=settings.gemini_embedding_model,
                             dim=settings.gemini_embedding_dim, base_url=settings.gemini_base_url)  # fmt: skip
    return load_embedder(settings.embedder)


async def open_index() -> None:
    embedder = make_embedder()
    store = open_store(
        settings.collection, url=settings.qdrant_url, path=settings.qdrant_path, backend=settings.store_backend
    )
    await store.ensure_collection(embedder.name, embedder.dim)
    _deps["indexer"] = Indexer(
        store,
        embedder,
        settings.chunk_tokens,
        max_batch_chunks=settings.batch_max_chunks,
        max_wait_ms=settings.batch_max_wait_ms,
    )
    log.info("index %s ready (%s, %d-d, %s)", settings.collection, embedder.name, embedder.dim,
             await store.current_version())  # fmt: skip


async def close_index() -> None:
    if indexer := _deps.get("indexer"):
        await indexer.close()
        await indexer.store.close()


app = build_app(
    broker, settings, on_startup=[open_index], after_shutdown=[close_index], ready=lambda: "indexer" in _deps
)
