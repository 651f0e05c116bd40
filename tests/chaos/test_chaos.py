"""Faults on the real stack mid-crawl: nothing lost, nothing doubled, counts still the truth.

Real nats-server, real Chromium (``render=auto``: the lab's static section is
fetched over plain HTTP, so 301 pages take seconds, not minutes), the demo
site's lab on 127.0.0.1, every service a separate process.  Each scenario
breaks one thing a third of the way into a 301-page crawl, then
:meth:`Chaos.assert_exactly_once` proves the crawl completed, every page was
scraped, indexed and stored exactly once (chunk by chunk), the status counts
are the truth and no durable consumer holds anything.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from showroom.cli.stack import SERVICES
from showroom.common.topology import Durables, Streams
from showroom.demo_site.lab_pages import lab_article

from .harness import STATIC_PAGES, Chaos, chaos_stack

pytestmark = pytest.mark.chaos

MID_CRAWL = STATIC_PAGES // 3


@pytest.fixture
async def chaos(tmp_path: Path) -> AsyncIterator[Chaos]:
    async with chaos_stack(tmp_path) as c:
        yield c


async def test_a_crawl_with_no_fault_is_exact(chaos: Chaos) -> None:
    crawl_id = await chaos.start_crawl()
    await chaos.assert_exactly_once(crawl_id)


@pytest.mark.parametrize("service", SERVICES)
async def test_sigkill_and_restart_mid_crawl_loses_and_doubles_nothing(chaos: Chaos, service: str) -> None:
    crawl_id = await chaos.start_crawl()
    await chaos.progress.reach(MID_CRAWL)
    await chaos.restart(service, signal.SIGKILL)
    assert chaos.progress.scraped < len(chaos.expected), "the crawl ended before the fault: pace it slower"
    await chaos.assert_exactly_once(crawl_id)
    if service == "rag":  # the restarted service works, not just runs
        title = lab_article(7).title.removeprefix("Buying guide: ")
        answer = await chaos.client.ask(f"How much to spend on {title}?", brand="chaos")
        assert answer["citations"], answer
        assert {c["url"] for c in answer["citations"]} <= chaos.expected


async def test_nats_server_restart_mid_crawl(chaos: Chaos) -> None:
    stack = chaos.stack
    crawl_id = await chaos.start_crawl()
    await chaos.progress.reach(MID_CRAWL)
    stack.kill("nats", signal.SIGKILL)
    await asyncio.sleep(1.0)  # an outage the services notice, not a blip
    await stack.start_nats()  # same store directory and port
    await chaos.assert_exactly_once(crawl_id)
    for service in SERVICES:
        log = chaos.log(service)
        assert "NATS connection lost" in log and "NATS connection restored" in log, (service, stack.tail(service))


LONG_ACK_WAIT_S = 120
"""In the SIGTERM scenarios: a message the stopped process kept would come back only after this, far
beyond the crawl's own time, so a crawl that completes well within it proves nothing was kept."""


async def test_sigterm_drains_the_scraper(tmp_path: Path) -> None:
    async with chaos_stack(tmp_path, SHOWROOM_TASK_ACK_WAIT_S=str(LONG_ACK_WAIT_S)) as chaos:
        crawl_id = await chaos.start_crawl()
        await chaos.progress.reach(MID_CRAWL)
        chaos.stack.kill("scraper", signal.SIGTERM)
        log = chaos.log("scraper")
        assert f"drained {Durables.SCRAPER_FRONTIER}" in log, chaos.stack.tail("scraper")
        chaos.stack.start_service("scraper")
        await chaos.stack.wait_service_ready("scraper")
        # Every task it held was finished (acked) or handed back (nak'd): none waits out the ack wait.
        await chaos.assert_exactly_once(crawl_id, timeout=LONG_ACK_WAIT_S / 2)


async def test_sigterm_lets_the_indexer_finish_its_batch(tmp_path: Path) -> None:
    from showroom.indexer.store import open_store

    async with chaos_stack(tmp_path, SHOWROOM_INDEX_ACK_WAIT_S=str(LONG_ACK_WAIT_S)) as chaos:
        crawl_id = await chaos.start_crawl()
        await chaos.progress.reach(MID_CRAWL)
        chaos.stack.kill("indexer", signal.SIGTERM)
        assert f"drained {Durables.INDEXER_PAGES}" in chaos.log("indexer"), chaos.stack.tail("indexer")
        # The store as the indexer left it (ours to open while it is down): every page whole, none half-written.
        store = open_store("showroom_pages", path=str(chaos.stack.config.root / "qdrant"))
        try:
            chunks = await store.payloads()
        finally:
            await store.close()
        pages: dict[str, list[int]] = {}
        declared: dict[str, int] = {}
        for c in chunks:
            pages.setdefault(c["url"], []).append(c["chunk_index"])
            declared[c["url"]] = c["chunks"]
        assert pages, "nothing was indexed before the SIGTERM"
        assert {url: sorted(ix) for url, ix in pages.items()} == {url: list(range(n)) for url, n in declared.items()}
        indexed = {e["url"] for e in await chaos.events(Streams.INDEX.name, "page.indexed.*", crawl_id)}
        assert indexed <= set(pages)  # every page announced as indexed is in the store
        chaos.stack.start_service("indexer")
        await chaos.stack.wait_service_ready("indexer")
        await chaos.assert_exactly_once(crawl_id, timeout=LONG_ACK_WAIT_S / 2)
