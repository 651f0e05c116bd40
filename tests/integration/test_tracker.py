"""The crawl tracker on real JetStream KV: exact counts, whatever is redelivered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client

from showroom.common.bus import kv_get
from showroom.common.crawls import CrawlState
from showroom.common.errors import UnknownCrawl
from showroom.common.events import CrawlSpec, CrawlStatus, PageFailed, PageIndexed, PageScraped, new_id, utcnow
from showroom.common.topology import ensure_topology
from showroom.scraper.tracker import CrawlTracker


@pytest.fixture
async def tracker(nats_url: str) -> AsyncIterator[tuple[CrawlTracker, object]]:
    broker = NatsBroker(nats_url)
    await broker.start()
    js = broker.config.connection_state.stream
    await ensure_topology(js)
    crawls = await js.key_value("crawls")
    yield CrawlTracker(broker, crawls), crawls
    await broker.stop()


async def _running_crawl(crawls, discovered: int) -> str:  # type: ignore[no-untyped-def]
    crawl_id = new_id()
    spec = CrawlSpec(brand="krk", start_urls=["https://krk.example/"])
    state = CrawlState(crawl_id=crawl_id, brand="krk", spec=spec, trace_id="t", status=CrawlStatus.RUNNING,
                       seeded=True)  # fmt: skip
    state.counts.discovered = discovered
    await crawls.put(crawl_id, state.model_dump_json().encode())
    return crawl_id


def _scraped(crawl_id: str, url: str, new_links: list[str]) -> PageScraped:
    return PageScraped(crawl_id=crawl_id, brand="krk", url=url, final_url=url, depth=0, status_code=200,
                       fetch_mode="browser", content_hash="h", new_links=new_links)  # fmt: skip


def _indexed(crawl_id: str, url: str) -> PageIndexed:
    return PageIndexed(crawl_id=crawl_id, brand="krk", url=url, content_hash="h", chunks=2, collection="c",
                       fetched_at=utcnow())  # fmt: skip


async def test_redelivered_events_count_once_and_the_crawl_finishes_once(tracker, nc: Client) -> None:  # type: ignore[no-untyped-def]
    t, crawls = tracker
    crawl_id = await _running_crawl(crawls, discovered=1)
    sub = await nc.subscribe("crawl.finished.krk")

    await t.on_page(_scraped(crawl_id, "https://krk.example/", ["https://krk.example/a"]), seq=10)
    await t.on_page(_scraped(crawl_id, "https://krk.example/", ["https://krk.example/a"]), seq=10)  # redelivery
    await t.on_indexed(_indexed(crawl_id, "https://krk.example/"), seq=3)
    await t.on_page(PageFailed(crawl_id=crawl_id, brand="krk", url="https://krk.example/a", depth=1,
                               reason="http_404", status_code=404), seq=11)  # fmt: skip
    state, _ = await kv_get(crawls, crawl_id, CrawlState)
    assert state is not None
    assert state.status is CrawlStatus.COMPLETED
    assert state.counts.model_dump() == {
        "discovered": 2, "scraped": 1, "unchanged": 0, "failed": 1, "skipped": 0, "indexed": 1
    }  # fmt: skip

    # Redelivery of the event that finished the crawl re-announces it (the stream dedups), counts unchanged.
    await t.on_page(PageFailed(crawl_id=crawl_id, brand="krk", url="https://krk.example/a", depth=1,
                               reason="http_404"), seq=11)  # fmt: skip
    msg = await sub.next_msg(timeout=5)
    assert b'"status":"completed"' in msg.data
    state, _ = await kv_get(crawls, crawl_id, CrawlState)
    assert state.counts.failed == 1


async def test_crawl_waits_for_indexing_before_completing(tracker) -> None:  # type: ignore[no-untyped-def]
    t, crawls = tracker
    crawl_id = await _running_crawl(crawls, discovered=1)
    state = await t.on_page(_scraped(crawl_id, "https://krk.example/", []), seq=20)
    assert state is not None and state.status is CrawlStatus.RUNNING
    state = await t.on_indexed(_indexed(crawl_id, "https://krk.example/"), seq=7)
    assert state is not None and state.status is CrawlStatus.COMPLETED


async def test_events_of_unknown_crawls_are_refused_with_the_reason(tracker) -> None:  # type: ignore[no-untyped-def]
    """The consumer dead-letters them (see test_bus_fuzz); nothing is counted anywhere."""
    t, crawls = tracker
    with pytest.raises(UnknownCrawl, match="unknown crawl 'nope'"):
        await t.on_page(_scraped("nope", "https://krk.example/", []), seq=30)
    with pytest.raises(UnknownCrawl):
        await t.on_indexed(_indexed("nope", "https://krk.example/"), seq=31)
    assert (await kv_get(crawls, "nope", CrawlState))[0] is None
