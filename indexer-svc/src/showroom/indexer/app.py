"""indexer-svc: owns the Qdrant collection; indexes page events and serves ``index.search``."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, PullSub
from nats.js import JetStreamContext

from showroom.common.bus import Message, bind_trace, dead_letters, decode, kv_get, kv_keys, make_broker, publish_event
from showroom.common.errors import PermanentError
from showroom.common.events import (
    PageScraped,
    ProductSearchRequest,
    ProductSearchResponse,
    ReplayRequested,
    SearchRequest,
    SearchResponse,
)
from showroom.common.replays import ReplayState
from showroom.common.service import build_app
from showroom.common.topology import Buckets, Durables, ObjectStores, QueueGroups, Streams, Subjects
from showroom.indexer.embedding import Embedder, load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.provenance import Provenance
from showroom.indexer.replay import ReExtract, ReplayRunner, orphaned
from showroom.indexer.settings import IndexerSettings
from showroom.indexer.store import open_store

log = logging.getLogger(__name__)

settings = IndexerSettings()
SERVICE = "indexer-svc"
broker = make_broker(settings.nats_servers, SERVICE)
_deps: dict[str, Any] = {}
_replays: set[asyncio.Task[Any]] = set()
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
async def on_page_scraped(msg: Message) -> None:
    page = decode(msg, PageScraped)
    bind_trace(page)
    if len(page.markdown) > settings.index_max_markdown_chars:
        raise PermanentError(
            f"page too long to index: {len(page.markdown)} characters of markdown "
            f"(SHOWROOM_INDEX_MAX_MARKDOWN_CHARS={settings.index_max_markdown_chars})"
        )
    seq = msg.raw_message.metadata.sequence.stream
    indexed = await _deps["indexer"].index_page(page, seq)
    await _deps["provenance"].record(page, seq, indexed)
    # Keyed by the page event's stream sequence: a redelivered page event announces its indexing once.
    await publish_event(
        broker,
        indexed,
        Subjects.page_indexed(page.brand),
        stream=Streams.INDEX.name,
        msg_id=f"{settings.collection}.{seq}",
    )


@broker.subscriber(
    Subjects.REPLAY_REQUESTED,
    stream=JStream(Streams.REPLAYS.name, declare=False),
    durable=Durables.INDEXER_REPLAYS,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=ConsumerConfig(max_deliver=PAGE_DELIVERIES, ack_wait=60),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
@dead_letters(broker, SERVICE, max_deliver=PAGE_DELIVERIES, max_bytes=settings.max_event_bytes)
async def on_replay_requested(msg: Message) -> None:
    """Start the replay in the background: it runs for minutes, its progress lives in KV."""
    request = decode(msg, ReplayRequested)
    bind_trace(request)
    start_replay(request.replay_id)


def start_replay(replay_id: str) -> None:
    if any(t.get_name() == f"replay-{replay_id}" for t in _replays):
        return  # a redelivered request for a replay this process is running
    task = asyncio.create_task(_deps["replays"].run(replay_id), name=f"replay-{replay_id}")
    _replays.add(task)
    task.add_done_callback(_replays.discard)


async def resume_replays() -> None:
    """Take over replays that no indexer is running (this one was restarted mid-replay)."""
    kv = _deps["replays_kv"]
    for key in await kv_keys(broker.config.connection_state.stream, Buckets.REPLAYS.name):
        state, _ = await kv_get(kv, key, ReplayState)
        if state is not None and orphaned(state):
            log.info("resuming replay %s from sequence %d", key, state.progress.position)
            start_replay(key)


@broker.subscriber(Subjects.INDEX_VERSIONS, queue=QueueGroups.INDEXER)
async def on_versions(_: object = None) -> dict[str, object]:
    """The collection's versions: which one the alias points at, and each one's build and size."""
    store = _deps["indexer"].store
    current = await store.current_version()
    versions = []
    for version in await store.versions():
        versions.append({"name": version, "current": version == current, "meta": await store.version_meta(version),
                         "chunks": await store.pinned(version).count()})  # fmt: skip
    return {"collection": settings.collection, "current": current, "versions": versions}


@broker.subscriber(Subjects.INDEX_DROP_VERSION, queue=QueueGroups.INDEXER)
async def on_drop_version(request: dict[str, str]) -> dict[str, object]:
    """Delete a version the alias does not point at (e.g. the one a replay replaced)."""
    try:
        await _deps["indexer"].store.drop_version(str(request.get("version", "")))
    except ValueError as exc:
        return {"dropped": False, "error": str(exc)}
    return {"dropped": True}


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


@functools.cache
def make_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: SHOWROOM_EMBEDDER), configured from settings; one
    instance per name, shared by the live path and replays."""
    name = (name or settings.embedder).strip().lower()
    if name == "gemini":
        key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None
        return load_embedder("gemini", api_key=key, model=settings.gemini_embedding_model,
                             dim=settings.gemini_embedding_dim, base_url=settings.gemini_base_url)  # fmt: skip
    return load_embedder(name)


async def open_index() -> None:
    store = open_store(
        settings.collection, url=settings.qdrant_url, path=settings.qdrant_path, backend=settings.store_backend
    )
    version = await store.current_version()
    meta = await store.version_meta(version) if version else {}
    # A version built by a replay names its embedder and chunk size: the alias, not the
    # environment, decides how pages are indexed from then on.
    key = meta.get("embedder_key") or settings.embedder
    if key != settings.embedder:
        log.warning("%s was rebuilt with the %s embedder; following it, not SHOWROOM_EMBEDDER=%s",
                    version, key, settings.embedder)  # fmt: skip
    embedder = make_embedder(key)
    indexer = Indexer(
        store,
        embedder,
        int(meta.get("chunk_tokens") or settings.chunk_tokens),
        max_batch_chunks=settings.batch_max_chunks,
        max_wait_ms=settings.batch_max_wait_ms,
        embedder_factory=make_embedder,
    )
    if version is None:
        version = await store.create_version(embedder.name, embedder.dim, embedder_key=key, **indexer.version_meta())
        await store.swap_alias(version)
    await store.ensure_collection(embedder.name, embedder.dim)
    await indexer.follow_alias()
    js = broker.config.connection_state.stream
    _deps["provenance"] = await Provenance.open(broker, js)
    _deps["replays_kv"] = await js.key_value(Buckets.REPLAYS.name)
    _deps["replays"] = ReplayRunner(js, _deps["replays_kv"], indexer, make_embedder,
                                    re_extract=await html_re_extractor(js))  # fmt: skip
    _deps["indexer"] = indexer
    log.info("index %s ready (%s, %d-d, chunks of up to %d tokens, %s)", settings.collection, embedder.name,
             embedder.dim, indexer.chunk_words, version)  # fmt: skip
    await resume_replays()


async def html_re_extractor(js: JetStreamContext) -> ReExtract | None:
    """Re-extraction from the raw HTML the scraper archived, with the scraper's own extractor.

    ``None`` where the extractor is not installed (an indexer image without showroom-scraper):
    replays asking for ``re_extract`` then fail with that reason.
    """
    try:
        from showroom.scraper.extract import extract
    except ImportError:
        return None
    html = await js.object_store(ObjectStores.HTML)

    async def re_extract(page: PageScraped) -> PageScraped:
        if not page.html_key:
            return page  # not archived: the event's own extraction is all there is
        raw = (await html.get(page.html_key)).data or b""
        doc = await asyncio.to_thread(extract, raw.decode(errors="replace"), page.final_url)
        # The content hash names the fetched version (its HTML), so lineage still leads to it.
        return page.model_copy(update={"title": doc.title, "markdown": doc.markdown, "product": doc.product})

    return re_extract


async def stop_replays() -> None:
    """Stop running replays before the connection drains; each resumes from its last position
    when an indexer starts again."""
    for task in list(_replays):
        task.cancel()
    await asyncio.gather(*_replays, return_exceptions=True)


async def close_index() -> None:
    if indexer := _deps.get("indexer"):
        await indexer.close()
        await indexer.store.close()


app = build_app(
    broker,
    settings,
    on_startup=[open_index],
    on_shutdown=[stop_replays],
    after_shutdown=[close_index],
    ready=lambda: "indexer" in _deps,
)
