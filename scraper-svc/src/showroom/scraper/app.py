"""scraper-svc: seeds crawls, fetches frontier tasks and tracks each crawl's progress."""

from __future__ import annotations

import logging
import random

import httpx
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub

from showroom.common.bus import bind_trace, make_broker
from showroom.common.events import CrawlRequested, FetchTask, PageFailed, PageIndexed, PageScraped
from showroom.common.service import build_app
from showroom.common.topology import Buckets, Durables, Streams
from showroom.scraper.browser import BrowserPool
from showroom.scraper.crawler import Crawler
from showroom.scraper.errors import TransientFetchError
from showroom.scraper.robots import RobotsCache
from showroom.scraper.settings import ScraperSettings
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.tracker import CrawlTracker

log = logging.getLogger(__name__)

settings = ScraperSettings()
broker = make_broker(settings.nats_servers, "scraper-svc")
_deps: dict[str, object] = {}


def crawler() -> Crawler:
    return _deps["crawler"]  # type: ignore[return-value]


def tracker() -> CrawlTracker:
    return _deps["tracker"]  # type: ignore[return-value]


def _stream(spec: object) -> JStream:
    return JStream(spec.name, declare=False)  # type: ignore[attr-defined]


@broker.subscriber(
    "crawl.requested.*",
    stream=_stream(Streams.CRAWLS),
    durable=Durables.SCRAPER_CRAWLS,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=ConsumerConfig(max_deliver=5, ack_wait=120),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
async def on_crawl_requested(event: CrawlRequested) -> None:
    bind_trace(event)
    await crawler().seed(event)


@broker.subscriber(
    "frontier.*",
    stream=_stream(Streams.FRONTIER),
    durable=Durables.SCRAPER_FRONTIER,
    pull_sub=PullSub(batch_size=settings.concurrency, timeout=5),
    max_workers=settings.concurrency,
    # A task whose page outlives ack_wait is redelivered to another scraper; keep it above the nav timeout.
    config=ConsumerConfig(ack_wait=max(60, settings.nav_timeout_ms // 1000 * 3), max_ack_pending=1000),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
async def on_fetch_task(task: FetchTask, msg: NatsMessage) -> None:
    bind_trace(task)
    deliveries = msg.raw_message.metadata.num_delivered
    try:
        await crawler().process(task, deliveries)
    except TransientFetchError as exc:
        delay = exc.retry_after or settings.retry_base_s * 2 ** (deliveries - 1)
        delay = min(delay * random.uniform(0.8, 1.2), 300)
        log.info("retrying %s in %.1fs (attempt %d): %s", task.url, delay, deliveries, exc)
        raise NackMessage(delay=delay) from exc


_ORDERED = ConsumerConfig(max_ack_pending=1, max_deliver=-1, ack_wait=30)


@broker.subscriber(
    "page.*.*",
    stream=_stream(Streams.PAGES),
    durable=Durables.TRACKER_PAGES,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=_ORDERED,
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
async def track_page(body: dict[str, object], msg: NatsMessage) -> None:
    subject = msg.raw_message.subject
    event = PageScraped.model_validate(body) if subject.startswith("page.scraped.") else PageFailed.model_validate(body)
    bind_trace(event)
    await tracker().on_page(event, msg.raw_message.metadata.sequence.stream)


@broker.subscriber(
    "page.indexed.*",
    stream=_stream(Streams.INDEX),
    durable=Durables.TRACKER_INDEX,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=_ORDERED,
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
async def track_indexed(event: PageIndexed, msg: NatsMessage) -> None:
    bind_trace(event)
    await tracker().on_indexed(event, msg.raw_message.metadata.sequence.stream)


async def start_dependencies() -> None:
    js = broker.config.connection_state.stream
    crawls = await js.key_value(Buckets.CRAWLS.name)
    urls = await js.key_value(Buckets.CRAWL_URLS.name)
    guard = SsrfGuard(settings.ssrf_allow_hosts)
    http = httpx.AsyncClient(
        headers={"User-Agent": settings.user_agent}, timeout=settings.http_timeout_s, max_redirects=10
    )
    pool = None
    if settings.browser:
        pool = BrowserPool(
            executable_path=settings.chromium_path,
            size=settings.concurrency,
            user_agent=settings.user_agent,
            guard=guard,
            nav_timeout_ms=settings.nav_timeout_ms,
            settle_timeout_ms=settings.settle_timeout_ms,
            recycle_after=settings.recycle_after,
        )
        await pool.start()
    _deps.update(
        http=http,
        browser=pool,
        crawler=Crawler(
            broker=broker,
            crawls=crawls,
            urls=urls,
            browser=pool,
            http=http,
            robots=RobotsCache(http, guard, settings.user_agent),
            guard=guard,
            max_deliveries=settings.max_deliveries,
        ),
        tracker=CrawlTracker(broker, crawls),
    )


async def stop_dependencies() -> None:
    if pool := _deps.get("browser"):
        await pool.stop()  # type: ignore[attr-defined]
    if http := _deps.get("http"):
        await http.aclose()  # type: ignore[attr-defined]


app = build_app(
    broker,
    settings,
    on_startup=[start_dependencies],
    after_shutdown=[stop_dependencies],
    ready=lambda: "crawler" in _deps,
)
