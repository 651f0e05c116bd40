"""scraper-svc: seeds crawls, fetches frontier tasks and tracks each crawl's progress."""

from __future__ import annotations

import logging

import httpx
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import ConsumerConfig, JStream, PullSub

from showroom.common.bus import Message, bind_trace, dead_letters, decode, make_broker
from showroom.common.events import CrawlRequested, FetchTask, PageFailed, PageIndexed, PageScraped, PageUnchanged
from showroom.common.inflight import InflightCounter
from showroom.common.service import build_app
from showroom.common.topology import Buckets, Durables, ObjectStores, Streams
from showroom.scraper.browser import BrowserPool
from showroom.scraper.crawler import SERVICE, Crawler
from showroom.scraper.errors import RetryLater
from showroom.scraper.fetching import Fetcher
from showroom.scraper.politeness import HostGate
from showroom.scraper.robots import RobotsCache
from showroom.scraper.settings import ScraperSettings
from showroom.scraper.ssrf import GuardedTransport, SsrfGuard
from showroom.scraper.tracker import CrawlTracker

log = logging.getLogger(__name__)

settings = ScraperSettings()
broker = make_broker(settings.nats_servers, SERVICE)
_deps: dict[str, object] = {}


def crawler() -> Crawler:
    return _deps["crawler"]  # type: ignore[return-value]


def tracker() -> CrawlTracker:
    return _deps["tracker"]  # type: ignore[return-value]


def _stream(name: str) -> JStream:
    return JStream(name, declare=False)


def _guard(service: str, max_deliver: int):  # type: ignore[no-untyped-def]
    return dead_letters(broker, service, max_deliver=max_deliver, max_bytes=settings.max_event_bytes)


SEED_DELIVERIES = 5


@broker.subscriber(
    "crawl.requested.*",
    stream=_stream(Streams.CRAWLS.name),
    durable=Durables.SCRAPER_CRAWLS,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=ConsumerConfig(max_deliver=SEED_DELIVERIES, ack_wait=120),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
@_guard(SERVICE, SEED_DELIVERIES)
async def on_crawl_requested(msg: Message) -> None:
    event = decode(msg, CrawlRequested)
    bind_trace(event)
    await crawler().seed(event)


@_guard(SERVICE, -1)  # a URL's attempts are bounded in crawl_urls; politeness deferrals redeliver too
async def _fetch(msg: Message) -> None:
    task = decode(msg, FetchTask)
    bind_trace(task)
    try:
        await crawler().process(task, first_delivery=msg.raw_message.metadata.num_delivered == 1)
    except RetryLater as later:
        # Back to the frontier for a while; the URL's own attempt count bounds retries, not redeliveries.
        log.debug("%s deferred %.2fs: %s", task.url, later.wait, later.why)
        raise NackMessage(delay=later.wait) from later


# Tasks are acked after their page event is stored; ack_wait exceeds the slowest page's fetch so a
# page in progress is not handed to a second scraper, and a killed scraper's tasks come back after it.
_FRONTIER = {
    "pull_sub": PullSub(batch_size=settings.concurrency, timeout=5),
    "max_workers": settings.concurrency,
    "config": ConsumerConfig(ack_wait=settings.task_ack_wait_s, max_ack_pending=1000),
    "ack_policy": AckPolicy.NACK_ON_ERROR,
}


@broker.subscriber(
    "frontier.normal.*", stream=_stream(Streams.FRONTIER.name), durable=Durables.SCRAPER_FRONTIER, **_FRONTIER
)
async def on_fetch_task(msg: Message) -> None:
    await _fetch(msg)


@broker.subscriber(
    "frontier.high.*", stream=_stream(Streams.FRONTIER.name), durable=Durables.SCRAPER_FRONTIER_HIGH, **_FRONTIER
)
async def on_fetch_task_high(msg: Message) -> None:
    """High-priority crawls have workers of their own, so a big normal crawl cannot starve them."""
    await _fetch(msg)


TRACKER_DELIVERIES = 20
"""One event in flight keeps counts in stream order, so an event failing for good must not hold the
stream forever; 20 deliveries with backoff (capped at 30 s) outlast a restarting nats-server."""
_ORDERED = ConsumerConfig(max_ack_pending=1, max_deliver=TRACKER_DELIVERIES, ack_wait=settings.tracker_ack_wait_s)
_PAGE_EVENTS = {"page.scraped.": PageScraped, "page.unchanged.": PageUnchanged, "page.failed.": PageFailed}


@broker.subscriber(
    "page.*.*",
    stream=_stream(Streams.PAGES.name),
    durable=Durables.TRACKER_PAGES,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=_ORDERED,
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
@_guard("tracker", TRACKER_DELIVERIES)
async def track_page(msg: Message) -> None:
    subject = msg.raw_message.subject
    model = next(m for prefix, m in _PAGE_EVENTS.items() if subject.startswith(prefix))
    event = decode(msg, model)
    bind_trace(event)
    await tracker().on_page(event, msg.raw_message.metadata.sequence.stream)


@broker.subscriber(
    "page.indexed.*",
    stream=_stream(Streams.INDEX.name),
    durable=Durables.TRACKER_INDEX,
    pull_sub=PullSub(batch_size=1, timeout=5),
    config=_ORDERED,
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
@_guard("tracker", TRACKER_DELIVERIES)
async def track_indexed(msg: Message) -> None:
    event = decode(msg, PageIndexed)
    bind_trace(event)
    await tracker().on_indexed(event, msg.raw_message.metadata.sequence.stream)


async def start_dependencies() -> None:
    js = broker.config.connection_state.stream
    kv = {b.name: await js.key_value(b.name) for b in Buckets.ALL}
    guard = SsrfGuard(settings.ssrf_allow_hosts)
    http = httpx.AsyncClient(
        headers={"User-Agent": settings.user_agent},
        timeout=settings.http_timeout_s,
        follow_redirects=False,
        event_hooks={"request": [guard.check_request]},  # robots.txt and sitemaps follow redirects
        transport=GuardedTransport(guard),  # and each connection dials what was checked (no DNS rebinding)
        trust_env=False,  # an environment proxy would do the resolving, past the guard
    )
    pool = None
    if settings.browser:
        pool = BrowserPool(
            executable_path=settings.chromium_path,
            chromium_args=settings.chromium_args,
            size=settings.concurrency,
            user_agent=settings.user_agent,
            guard=guard,
            nav_timeout_ms=settings.nav_timeout_ms,
            settle_timeout_ms=settings.settle_timeout_ms,
            recycle_after=settings.recycle_after,
            context_recycle_after=settings.context_recycle_after,
            max_bytes=settings.max_page_bytes,
            max_redirects=settings.max_redirects,
            script_timeout_ms=settings.script_timeout_ms,
        )
        await pool.start()
    inflight = InflightCounter(kv[Buckets.INFLIGHT.name])
    inflight.start()
    _deps.update(
        http=http,
        browser=pool,
        inflight=inflight,
        crawler=Crawler(
            broker=broker,
            crawls=kv[Buckets.CRAWLS.name],
            urls=kv[Buckets.CRAWL_URLS.name],
            pages=kv[Buckets.PAGES.name],
            html_store=await js.object_store(ObjectStores.HTML),
            fetcher=Fetcher(
                http=http,
                browser=pool,
                guard=guard,
                hints=kv[Buckets.RENDER_HINTS.name],
                max_bytes=settings.max_page_bytes,
                max_redirects=settings.max_redirects,
                fetch_timeout_s=settings.fetch_timeout_s,
            ),
            # A lease outlives its fetch only when its scraper died mid-page; the task comes back after
            # task_ack_wait_s, and so should the host's slot.
            gate=HostGate(kv[Buckets.HOSTS.name], lease_ttl_s=settings.task_ack_wait_s),
            inflight=inflight,
            http=http,
            robots=RobotsCache(http, guard, settings.user_agent),
            guard=guard,
            max_attempts=settings.max_attempts,
            retry_base_s=settings.retry_base_s,
        ),
        tracker=CrawlTracker(broker, kv[Buckets.CRAWLS.name]),
    )


async def stop_dependencies() -> None:
    if inflight := _deps.get("inflight"):
        await inflight.stop()  # type: ignore[attr-defined]
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
