"""The crawler on the real stack against the demo site's lab: one scenario per behaviour.

Real nats-server, real Chromium, two scraper processes sharing every crawl.
The demo site counts every request it serves (``/lab/_stats``), which is how
"fetched exactly once" and "retried N times" are checked.  Tests wait on
``crawl.finished`` events; the hashing embedder keeps indexing out of the way.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack, StackConfig, free_port

pytestmark = pytest.mark.e2e

STATIC_PAGES = 40


class Lab:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.site = stack.config.demo_url
        self.client = GatewayClient(stack.config.gateway_url, stack.config.api_key)
        self.scraper_ports: list[int] = []

    def spec(self, section: str, *starts: str, **overrides: Any) -> dict[str, Any]:
        return {
            "brand": "lab",
            "start_urls": [self.site + s for s in starts],
            "include": [f"^{re.escape(self.site)}{section}"],
            "use_sitemaps": False,
            "host_concurrency": 8,
            "host_delay_ms": 0,
            "max_depth": 50,
            "max_pages": 1000,
        } | overrides

    async def crawl(self, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run a crawl to its end; returns its final status and its page events."""
        async with FinishedCrawls(self.stack.config.nats_url) as finished:
            crawl_id = await self.client.crawl(**spec)
            await finished.wait(crawl_id)
        return await self.client.status(crawl_id), await self.page_events(crawl_id)

    async def page_events(self, crawl_id: str) -> list[dict[str, Any]]:
        nc = await nats.connect(self.stack.config.nats_url)
        try:
            js = nc.jetstream()
            total = (await js.stream_info("PAGES")).state.messages
            sub = await js.subscribe("page.*.*", stream="PAGES", ordered_consumer=True)
            events = []
            for _ in range(total):
                msg = await sub.next_msg(timeout=5)
                event = json.loads(msg.data)
                if event["crawl_id"] == crawl_id:
                    events.append(event | {"subject": msg.subject})
            return events
        finally:
            await nc.close()

    async def stats(self, prefix: str) -> dict[str, int]:
        async with httpx.AsyncClient() as http:
            return dict((await http.get(f"{self.site}/lab/_stats", params={"prefix": prefix})).json())

    async def reset(self) -> None:
        async with httpx.AsyncClient() as http:
            (await http.post(f"{self.site}/lab/_reset")).raise_for_status()


@pytest.fixture(scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    config = StackConfig.ephemeral(
        tmp_path_factory.mktemp("crawler"), api_key=secrets.token_urlsafe(24), embedder="hashing"
    )
    config.demo_args = ["--static-pages", str(STATIC_PAGES)]
    # Short enough that a killed scraper's tasks come back within the test, long enough for a page.
    config.extra_env |= {"SHOWROOM_TASK_ACK_WAIT_S": "10", "SHOWROOM_RETRY_BASE_S": "0.2"}
    stack = Stack(config)
    await stack.start(timeout=120)
    port = free_port()
    stack.start_service("scraper", name="scraper-2", port=port)
    await stack.wait_ready("scraper-2", port)
    lab = Lab(stack)
    lab.scraper_ports = [config.ports["scraper"], port]
    yield lab
    await lab.client.__aexit__()
    await stack.stop()


def _paths(events: list[dict[str, Any]], site: str, kind: str = "scraped") -> list[str]:
    return sorted(e["url"].removeprefix(site) for e in events if e["subject"].startswith(f"page.{kind}."))


async def test_tracking_parameter_duplicates_are_fetched_once(lab: Lab) -> None:
    await lab.reset()
    status, events = await lab.crawl(lab.spec("/lab/tracking/", "/lab/tracking/"))
    targets = ["/lab/tracking/", "/lab/tracking/item/1", "/lab/tracking/item/2?color=blue&size=m",
               "/lab/tracking/item/2?color=red&size=m", "/lab/tracking/item/3"]  # fmt: skip
    assert status["status"] == "completed"
    assert _paths(events, lab.site) == sorted(targets)
    assert status["counts"]["discovered"] == len(targets)
    assert await lab.stats("/lab/tracking/") == dict.fromkeys(targets, 1)


async def test_redirects_are_followed_in_scope_and_loops_fail(lab: Lab) -> None:
    starts = ["/lab/redirect/start", "/lab/redirect/loop-a", "/lab/redirect/offsite"]
    status, events = await lab.crawl(lab.spec("/lab/redirect/", *starts))
    scraped = [e for e in events if e["subject"].startswith("page.scraped.")]
    assert [(e["url"], e["final_url"]) for e in scraped] == [
        (lab.site + "/lab/redirect/start", lab.site + "/lab/redirect/final")
    ]
    failed = {e["url"].removeprefix(lab.site): e["reason"] for e in events if e["subject"].startswith("page.failed.")}
    assert failed == {"/lab/redirect/loop-a": "redirect_loop", "/lab/redirect/offsite": "redirect_out_of_scope"}
    assert status["counts"]["failed"] == 2


async def test_transient_failures_are_retried_and_permanent_ones_are_not(lab: Lab) -> None:
    await lab.reset()
    key = secrets.token_hex(4)
    starts = [f"/lab/flaky/429?key={key}", f"/lab/flaky/500?key={key}", "/lab/broken", "/lab/missing"]
    status, events = await lab.crawl(lab.spec("/lab/", *starts, max_depth=0))
    assert _paths(events, lab.site) == sorted(starts[:2])
    failed = {e["url"].removeprefix(lab.site): (e["reason"], e["attempts"]) for e in events if "failed" in e["subject"]}
    assert failed == {"/lab/broken": ("http_500", 4), "/lab/missing": ("http_404", 1)}
    stats = await lab.stats("/lab/")
    assert stats[f"/lab/flaky/429?key={key}"] == 2  # 429 (Retry-After: 1), then 200
    assert stats[f"/lab/flaky/500?key={key}"] == 3  # 500, 500, 200
    assert stats["/lab/broken"] == 4 and stats["/lab/missing"] == 1
    assert status["status"] == "completed"


async def test_pages_given_up_on_are_dead_lettered_with_the_reason(lab: Lab) -> None:
    nc = await nats.connect(lab.stack.config.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe("dlq.scraper-svc", ordered_consumer=True)
        letters = []
        while True:
            try:
                letters.append(json.loads((await sub.next_msg(timeout=1)).data))
            except nats.errors.TimeoutError:
                break
    finally:
        await nc.close()
    broken = [d for d in letters if json.loads(d["payload"])["url"].endswith("/lab/broken")]
    assert broken and broken[0]["reason"].startswith("http_500") and broken[0]["deliveries"] == 4


async def test_an_infinite_calendar_stays_bounded(lab: Lab) -> None:
    status, _ = await lab.crawl(lab.spec("/lab/calendar", "/lab/calendar?month=2026-11"))
    counts = status["counts"]
    assert status["status"] == "completed"
    assert counts["discovered"] <= 60  # one path may vary its query 50 times in a crawl
    assert counts["skipped"] > 0


async def test_the_browser_aborts_every_off_site_request(lab: Lab) -> None:
    async def blocked() -> float:
        total = 0.0
        async with httpx.AsyncClient() as http:
            for port in lab.scraper_ports:
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError:  # a scraper killed by another test
                    continue
                total += sum(map(float, re.findall(r'blocked_requests_total\{reason="out_of_scope"\} (\S+)', text)))
        return total

    before = await blocked()
    status, events = await lab.crawl(lab.spec("/lab/offsite", "/lab/offsite", render="always", max_depth=1))
    assert _paths(events, lab.site) == ["/lab/offsite", "/lab/offsite/local"]
    assert status["counts"]["discovered"] == 2
    # The image, script, stylesheet and iframe from example.invalid were aborted in the browser.
    assert await blocked() - before >= 4


async def test_cancel_stops_a_crawl_within_seconds(lab: Lab) -> None:
    nc = await nats.connect(lab.stack.config.nats_url)
    first_page: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished: asyncio.Queue[dict] = asyncio.Queue()

    async def on_page(msg) -> None:  # type: ignore[no-untyped-def]
        if not first_page.done():
            first_page.set_result(None)

    async def on_finished(msg) -> None:  # type: ignore[no-untyped-def]
        await finished.put(json.loads(msg.data))

    await nc.subscribe("page.scraped.slowlab", cb=on_page)
    await nc.subscribe("crawl.finished.slowlab", cb=on_finished)
    spec = lab.spec("/lab/static/", "/lab/static/", brand="slowlab", host_delay_ms=400, host_concurrency=1)
    try:
        crawl_id = await lab.client.crawl(**spec)
        await asyncio.wait_for(first_page, 30)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        cancelled = await lab.client.http.delete(f"/v1/crawls/{crawl_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert (await asyncio.wait_for(finished.get(), 5))["status"] == "cancelled"
        # Every task of the crawl left on the frontier is drained without a fetch: the work queue empties.
        js = nc.jetstream()
        async with asyncio.timeout(15):
            while (await js.stream_info("FRONTIER")).state.messages:
                await asyncio.sleep(0.1)
        drained_in = loop.time() - t0
    finally:
        await nc.close()
    events = await lab.page_events(crawl_id)
    assert len(events) < STATIC_PAGES  # it really stopped early
    assert drained_in < 10
    status = await lab.client.status(crawl_id)
    assert status["status"] == "cancelled"


async def test_two_scrapers_share_a_crawl_and_one_killed_mid_crawl_loses_nothing(lab: Lab) -> None:
    await lab.reset()
    nc = await nats.connect(lab.stack.config.nats_url)
    seen: list[str] = []
    enough = asyncio.Event()

    async def on_page(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(json.loads(msg.data)["url"])
        if len(seen) >= 8:
            enough.set()

    await nc.subscribe("page.scraped.killlab", cb=on_page)
    # The JavaScript twin of the articles: no other test crawls it, so every page is new to this crawl.
    spec = lab.spec("/lab/js/", "/lab/js/", brand="killlab", render="always", host_concurrency=8)
    try:
        task = asyncio.create_task(lab.crawl(spec))
        await asyncio.wait_for(enough.wait(), 60)
        lab.stack.kill("scraper-2", signal.SIGKILL)
        status, events = await task
    finally:
        await nc.close()
    expected = ["/lab/js/"] + [f"/lab/js/articles/{i}" for i in range(1, STATIC_PAGES + 1)]
    assert status["status"] == "completed"
    assert status["counts"]["scraped"] == status["counts"]["discovered"] == status["counts"]["indexed"] == len(expected)
    assert _paths(events, lab.site) == sorted(expected)  # each page's event exactly once
    assert len({e["fetched_by"] for e in events}) == 2  # both scrapers took part
    stats = {k: v for k, v in (await lab.stats("/lab/js/")).items() if "/api/" not in k}
    assert set(stats) == set(expected)  # nothing missed; a page in flight in the killed scraper may be fetched twice
    assert sum(stats.values()) <= len(expected) + 8
