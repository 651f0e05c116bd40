"""indexer-svc: owns the Qdrant collection; indexes page events and serves ``index.search``."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub

from showroom.common.bus import bind_trace, decode_or_dead_letter, make_broker, publish_event
from showroom.common.events import PageScraped, SearchRequest, SearchResponse
from showroom.common.service import build_app
from showroom.common.topology import Durables, QueueGroups, Streams, Subjects
from showroom.indexer.embedding import load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.settings import IndexerSettings
from showroom.indexer.store import ChunkStore

log = logging.getLogger(__name__)

settings = IndexerSettings()
SERVICE = "indexer-svc"
broker = make_broker(settings.nats_servers, SERVICE)
_deps: dict[str, Indexer] = {}


@broker.subscriber(
    "page.scraped.*",
    stream=JStream(Streams.PAGES.name, declare=False),
    durable=Durables.INDEXER_PAGES,
    pull_sub=PullSub(batch_size=8, timeout=5),
    config=ConsumerConfig(max_deliver=5, ack_wait=120, max_ack_pending=256),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
async def on_page_scraped(msg: NatsMessage) -> None:
    page = await decode_or_dead_letter(broker, msg, PageScraped, SERVICE)
    if page is None:
        return
    bind_trace(page)
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
    return await _deps["indexer"].search(request)


async def open_index() -> None:
    embedder = load_embedder(settings.embedder)
    store = ChunkStore.open(settings.collection, url=settings.qdrant_url, path=settings.qdrant_path)
    await store.ensure_collection(embedder.name, embedder.dim)
    _deps["indexer"] = Indexer(store, embedder, settings.chunk_words)
    log.info("index %s ready (%s, %d-d)", settings.collection, embedder.name, embedder.dim)


async def close_index() -> None:
    if indexer := _deps.get("indexer"):
        await indexer.store.close()


app = build_app(
    broker, settings, on_startup=[open_index], after_shutdown=[close_index], ready=lambda: "indexer" in _deps
)
