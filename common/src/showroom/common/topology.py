"""The bus: subjects, streams, key-value buckets and durable consumer names.

Everything that exists on NATS is declared here, once, and created
idempotently by :func:`ensure_topology` when any service starts, so services
can start in any order and a fresh server needs no manual setup.

Streams
-------
CRAWLS    ``crawl.{requested,cancelled,finished}.<brand>``              crawl jobs and their outcome
FRONTIER  ``frontier.<priority>.<host>``                               fetch tasks (work queue)
PAGES     ``page.{scraped,unchanged,failed}.<brand>``                  the source of truth replay reads
INDEX     ``page.indexed.<brand>``                                     what reached the search index
ANSWERS   ``rag.answered``                                             audit of questions and answers
DLQ       ``dlq.<service>``                                            poison messages with the reason
PRODUCTS  ``product.changed.<brand>``                                  price/availability/spec changes
REPLAYS   ``replay.{requested,cancelled,finished}``                           index rebuilds from the PAGES stream

Request/reply (core NATS, queue groups): ``rag.ask``, ``index.search``, ``index.stats`` and ``index.audit``;
``showroom.health`` is answered by every service instance (no queue group).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


class Subjects:
    """Subject names; functions build the per-brand / per-host ones."""

    ASK = "rag.ask"
    ASK_STREAM = "rag.ask.stream"
    SEARCH = "index.search"
    PRODUCTS = "index.products"
    ANSWERED = "rag.answered"
    INDEX_STATS = "index.stats"
    INDEX_AUDIT = "index.audit"
    INDEX_VERSIONS = "index.versions"
    """The collection's versions, which one the alias points at, and each one's size and build."""
    INDEX_DROP_VERSION = "index.drop_version"
    """Per-URL chunk counts and indexes held by the index (indexer-svc); for audits and the chaos tests."""
    HEALTH = "showroom.health"
    """Every service instance answers a request here with its health (scatter-gather; see common.service)."""

    @staticmethod
    def crawl_requested(brand: str) -> str:
        return f"crawl.requested.{brand}"

    @staticmethod
    def crawl_finished(brand: str) -> str:
        return f"crawl.finished.{brand}"

    @staticmethod
    def crawl_cancelled(brand: str) -> str:
        return f"crawl.cancelled.{brand}"

    @staticmethod
    def frontier(priority: str, host: str) -> str:
        return f"frontier.{priority}.{host_token(host)}"

    @staticmethod
    def page_scraped(brand: str) -> str:
        return f"page.scraped.{brand}"

    @staticmethod
    def page_unchanged(brand: str) -> str:
        return f"page.unchanged.{brand}"

    @staticmethod
    def page_failed(brand: str) -> str:
        return f"page.failed.{brand}"

    @staticmethod
    def page_indexed(brand: str) -> str:
        return f"page.indexed.{brand}"

    @staticmethod
    def dlq(service: str) -> str:
        return f"dlq.{service}"

    @staticmethod
    def product_changed(brand: str) -> str:
        return f"product.changed.{brand}"

    REPLAY_REQUESTED = "replay.requested"
    REPLAY_CANCELLED = "replay.cancelled"
    REPLAY_FINISHED = "replay.finished"


def host_token(host: str) -> str:
    """A host (``shop.example.com:8443``) as one subject token (``shop_example_com_8443``)."""
    return "".join(c if c.isalnum() or c == "-" else "_" for c in host.lower())


def url_key(url: str) -> str:
    """A stable, KV-safe key for a URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    max_age: float = 0  # seconds, 0 = forever
    duplicate_window: float = 120.0
    description: str = ""

    def config(self, replicas: int) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=self.subjects,
            retention=self.retention,
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            num_replicas=replicas,
        )


@dataclass(frozen=True)
class BucketSpec:
    name: str
    ttl: float = 0
    history: int = 1
    description: str = ""


class Streams:
    CRAWLS = StreamSpec(
        "CRAWLS",
        ["crawl.requested.*", "crawl.cancelled.*", "crawl.finished.*"],
        max_age=90 * DAY,
        description="Crawl jobs and their outcome",
    )
    FRONTIER = StreamSpec(
        "FRONTIER",
        ["frontier.*.*"],
        retention=RetentionPolicy.WORK_QUEUE,
        description="Fetch tasks, one subject per priority and host",
    )
    # A long dedup window makes a page event published twice (a scraper that
    # crashed after publishing but before acking its task) count once.
    PAGES = StreamSpec(
        "PAGES",
        ["page.scraped.*", "page.unchanged.*", "page.failed.*"],
        duplicate_window=600.0,
        description="Every fetched page: the source of truth that replay reads",
    )
    INDEX = StreamSpec(
        "INDEX",
        ["page.indexed.*"],
        max_age=90 * DAY,
        duplicate_window=600.0,
        description="Pages that reached the search index",
    )
    ANSWERS = StreamSpec("ANSWERS", ["rag.answered"], max_age=90 * DAY, description="Questions and answers")
    DLQ = StreamSpec("DLQ", ["dlq.*"], description="Messages a service gave up on, with the reason")
    PRODUCTS = StreamSpec(
        "PRODUCTS", ["product.changed.*"], max_age=365 * DAY, description="Product price/availability/spec changes"
    )
    REPLAYS = StreamSpec(
        "REPLAYS",
        ["replay.requested", "replay.cancelled", "replay.finished"],
        max_age=90 * DAY,
        description="Index rebuilds from the PAGES stream",
    )

    ALL = (CRAWLS, FRONTIER, PAGES, INDEX, ANSWERS, DLQ, PRODUCTS, REPLAYS)


class Buckets:
    CRAWLS = BucketSpec("crawls", description="crawl_id -> status and exact counts")
    CRAWL_URLS = BucketSpec(
        "crawl_urls", ttl=30 * DAY, description="<crawl_id>.<url key> -> URL state; per-crawl dedup"
    )
    PAGES = BucketSpec("pages", description="<url key> -> content hash, ETag, Last-Modified, links; change detection")
    HOSTS = BucketSpec("hosts", ttl=DAY, description="<host> -> fetch leases and next start time; per-host politeness")
    RENDER_HINTS = BucketSpec("render_hints", ttl=30 * DAY, description="<url pattern key> -> http|browser")
    INFLIGHT = BucketSpec("crawl_inflight", ttl=DAY, description="<crawl_id>.<scraper instance> -> pages in flight")
    BRANDS = BucketSpec("brands", description="<brand> -> registry entry (start URLs, schedule) and its last crawl")
    PRODUCT_VERSIONS = BucketSpec(
        "product_versions", history=64, description="<url key> -> a product's versions (KV history is the timeline)"
    )
    LINEAGE = BucketSpec(
        "lineage", history=64, description="<url key> -> the page events that produced its indexed versions"
    )
    REPLAYS = BucketSpec("replays", description="replay_id -> spec, progress and outcome")

    ALL = (CRAWLS, CRAWL_URLS, PAGES, HOSTS, RENDER_HINTS, INFLIGHT, BRANDS, PRODUCT_VERSIONS, LINEAGE, REPLAYS)


class ObjectStores:
    HTML = "html"
    """content hash -> raw HTML, so pages can be re-extracted without re-crawling."""


class Durables:
    """Durable consumer names.  Each service owns its own; metrics-svc never shares one."""

    SCRAPER_CRAWLS = "scraper-crawls"
    SCRAPER_FRONTIER = "scraper-frontier"
    SCRAPER_FRONTIER_HIGH = "scraper-frontier-high"
    TRACKER_PAGES = "tracker-pages"
    TRACKER_INDEX = "tracker-index"
    INDEXER_PAGES = "indexer-pages"
    METRICS_PAGES = "metrics-pages"
    METRICS_CRAWLS = "metrics-crawls"
    METRICS_INDEX = "metrics-index"
    METRICS_ANSWERS = "metrics-answers"
    METRICS_DLQ = "metrics-dlq"
    INDEXER_REPLAYS = "indexer-replays"


class QueueGroups:
    RAG = "rag-svc"
    INDEXER = "indexer-svc"


@dataclass
class Topology:
    streams: tuple[StreamSpec, ...] = Streams.ALL
    buckets: tuple[BucketSpec, ...] = Buckets.ALL
    replicas: int = 1
    created: list[str] = field(default_factory=list)


async def ensure_topology(js: JetStreamContext, replicas: int = 1) -> Topology:
    """Create or update every stream and bucket; safe to call from every service at start-up."""
    topo = Topology(replicas=replicas)
    for spec in topo.streams:
        cfg = spec.config(replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(cfg)
            topo.created.append(spec.name)
            continue
        try:
            await js.update_stream(cfg)
        except BadRequestError as exc:  # e.g. retention cannot change in place
            log.warning("stream %s kept its existing config: %s", spec.name, exc)
    for bucket in topo.buckets:
        config = KeyValueConfig(
            bucket=bucket.name, description=bucket.description, history=bucket.history, ttl=bucket.ttl or None,
            replicas=replicas, storage=StorageType.FILE,
        )  # fmt: skip
        if (await open_bucket(js, config))[1]:
            topo.created.append(f"kv:{bucket.name}")
    try:
        await js.object_store(ObjectStores.HTML)
    except Exception:  # not found; nats-py's error class differs by version
        await js.create_object_store(
            ObjectStores.HTML,
            config=ObjectStoreConfig(
                bucket=ObjectStores.HTML, description="Raw HTML by content hash", replicas=replicas,
                storage=StorageType.FILE,
            ),
        )  # fmt: skip
        topo.created.append(f"obj:{ObjectStores.HTML}")
    if topo.created:
        log.info("created %s", ", ".join(topo.created))
    return topo


async def open_bucket(js: JetStreamContext, config: KeyValueConfig) -> tuple[KeyValue, bool]:
    """Open the bucket ``config`` names, creating it if missing; returns (bucket, created).

    Every bucket allows direct gets, as the NATS CLI and Go client make them by default (nats-py does
    not): a read is answered by the stream itself, as the raw message, instead of going through the
    JetStream API as JSON with base64 data and an advisory for each request.  A read then costs about a quarter
    less CPU, client and server together (``bench/kv.py``).  A bucket made before is switched over in
    place.  With replicas, any of them may answer a direct get, so a read can trail a write by the
    replication delay: every compare-and-set here re-reads on a conflict."""
    stream = f"KV_{config.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        config.direct = True
        return await js.create_key_value(config), True
    if not info.config.allow_direct:
        info.config.allow_direct = True
        await js.update_stream(info.config)
        log.info("bucket %s now allows direct gets", config.bucket)
    return await js.key_value(config.bucket), False
