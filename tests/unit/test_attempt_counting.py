"""When a fetch attempt is written to ``crawl_urls``: before fetching on a redelivery (its scraper may
have died fetching it), and only on a retried failure on a first delivery."""

from __future__ import annotations

import json
import time

import pytest
from nats.js.errors import KeyNotFoundError

from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlSpec, CrawlStatus, FetchTask
from showroom.common.topology import url_key
from showroom.scraper.crawler import Crawler, Outcome, _CachedCrawl
from showroom.scraper.errors import RetryLater, TransientFetchError

URL = "http://127.0.0.1:8088/lab/static/articles/1"


class _Entry:
    def __init__(self, value: bytes) -> None:
        self.value = value


class _Urls:
    """The ``crawl_urls`` bucket, keeping every put in order."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.puts: list[dict[str, object]] = []

    async def get(self, key: str) -> _Entry:
        if key not in self.values:
            raise KeyNotFoundError
        return _Entry(self.values[key])

    async def put(self, key: str, value: bytes) -> int:
        self.values[key] = value
        self.puts.append(json.loads(value))
        return len(self.puts)


class _Gate:
    async def acquire(self, host: str, concurrency: int, delay_s: float) -> str:
        return "lease"

    async def release(self, host: str, lease: str) -> None:
        return None


class _Inflight:
    instance = "test"

    async def begin(self, crawl_id: str) -> None:
        return None

    async def end(self, crawl_id: str) -> None:
        return None


class _Robots:
    async def crawl_delay(self, url: str) -> float:
        return 0.0


class _Fetcher:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.calls = 0

    async def fetch(self, *args: object) -> object:
        self.calls += 1
        if self.fails:
            raise TransientFetchError("http_503", status_code=503)
        return object()


class _Pages:
    async def get(self, key: str) -> _Entry:
        raise KeyNotFoundError


def _crawler(urls: _Urls, fetcher: _Fetcher) -> Crawler:
    crawler = Crawler(
        broker=None, crawls=None, urls=urls, pages=_Pages(), html_store=None, fetcher=fetcher, gate=_Gate(),
        inflight=_Inflight(), http=None, robots=_Robots(), guard=None, max_attempts=3, retry_base_s=0.01,
    )  # type: ignore[arg-type]  # fmt: skip
    spec = CrawlSpec(brand="lab", start_urls=[URL])
    state = CrawlState(crawl_id="c1", brand="lab", spec=spec, trace_id="t", status=CrawlStatus.RUNNING)
    crawler._crawls["c1"] = _CachedCrawl(state, time.monotonic())

    async def published(task: FetchTask, *args: object) -> Outcome:
        return Outcome(task.url, "scraped")

    crawler._publish_page = published  # type: ignore[method-assign]
    return crawler


TASK = FetchTask(crawl_id="c1", brand="lab", url=URL, depth=1)


async def test_a_first_delivery_that_succeeds_writes_no_attempt() -> None:
    urls, fetcher = _Urls(), _Fetcher(fails=False)
    outcome = await _crawler(urls, fetcher).process(TASK, first_delivery=True)
    assert outcome.status == "scraped" and fetcher.calls == 1
    assert urls.puts == []


async def test_a_redelivery_writes_its_attempt_before_fetching() -> None:
    urls, fetcher = _Urls(), _Fetcher(fails=False)
    urls.values[f"c1.{url_key(URL)}"] = json.dumps({"state": "queued", "parent": "seed"}).encode()
    await _crawler(urls, fetcher).process(TASK, first_delivery=False)
    assert urls.puts == [{"state": "queued", "parent": "seed", "attempts": 1}]


async def test_a_failed_first_attempt_is_counted_before_it_is_retried() -> None:
    urls, fetcher = _Urls(), _Fetcher(fails=True)
    crawler = _crawler(urls, fetcher)
    with pytest.raises(RetryLater):
        await crawler.process(TASK, first_delivery=True)
    assert urls.puts == [{"attempts": 1}]
    # The retry is a redelivery: attempt 2 is written before its fetch, and not again on failure.
    with pytest.raises(RetryLater):
        await crawler.process(TASK, first_delivery=False)
    assert urls.puts == [{"attempts": 1}, {"attempts": 2}]
    # The last attempt fails for good (dead letter, page.failed): that path is the crawl integration tests'.
    assert fetcher.calls == 2
