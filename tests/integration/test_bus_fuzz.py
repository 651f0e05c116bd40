"""Hostile bus input against the real services (subprocesses of the embedded stack).

Garbage — random bytes, truncated JSON, JSON of the wrong shape or types, oversized bodies, a schema
version from the future, events for crawls nobody requested — is published to every subject a service
consumes, interleaved with real crawls.  Every bad message must end in the DLQ of every service that
reads it, with a reason; the crawls must complete with exact counts; no consumer may be left with
pending or unacknowledged messages, and no service may have crashed.

And schema evolution: a page event stored by the schema-1 code (``tests/fixtures/page_scraped_v1.json``)
is still indexed; the same event claiming schema 3 is dead-lettered with the reason.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack
from showroom.common.events import (
    CrawlRequested,
    CrawlSpec,
    Event,
    FetchTask,
    PageFailed,
    PageIndexed,
    PageScraped,
    PageUnchanged,
    new_id,
    utcnow,
)
from showroom.common.topology import Durables, Streams, Subjects
from tests.conftest import wait_for
from tests.integration.test_dlq import lab_stack, stream_events

pytestmark = pytest.mark.e2e

ARTICLES = 5
FUZZ_HEADER = "Fuzz-Id"
V1_PAGE = Path(__file__).parents[1] / "fixtures" / "page_scraped_v1.json"
MAX_EVENT_BYTES = 1024 * 1024
"""The services' default SHOWROOM_MAX_EVENT_BYTES; the embedded nats-server takes up to 2 MiB."""

CONSUMERS = {  # durable consumer -> its stream: every one must end with nothing pending
    Durables.SCRAPER_CRAWLS: Streams.CRAWLS.name,
    Durables.SCRAPER_FRONTIER: Streams.FRONTIER.name,
    Durables.TRACKER_PAGES: Streams.PAGES.name,
    Durables.TRACKER_INDEX: Streams.INDEX.name,
    Durables.INDEXER_PAGES: Streams.PAGES.name,
    "rag-cache-invalidation": Streams.INDEX.name,
}


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with lab_stack(tmp_path_factory.mktemp("fuzz-stack"), ARTICLES) as s:
        yield s


@pytest.fixture
async def nc(stack: Stack) -> AsyncIterator[Client]:
    client = await nats.connect(stack.config.nats_url)
    yield client
    await client.close()


def _samples(crawl_id: str) -> dict[str, tuple[str, Event, set[str]]]:
    """A valid event per consumed subject, and which services read that subject."""
    url = "http://127.0.0.1:9/lab/static/articles/1"
    spec = CrawlSpec(brand="fuzz", start_urls=[url])
    page = {"crawl_id": crawl_id, "brand": "fuzz", "url": url, "depth": 0}
    return {
        "crawl.requested": (Subjects.crawl_requested("fuzz"), CrawlRequested(crawl_id=crawl_id, spec=spec),
                            {"scraper-svc"}),
        "frontier": (Subjects.frontier("normal", "127.0.0.1:9"), FetchTask(**page), {"scraper-svc"}),
        "page.scraped": (Subjects.page_scraped("fuzz"), PageScraped(**page, final_url=url, status_code=200,
                         fetch_mode="http", content_hash="h" * 64, markdown="# Fuzz\n\nA page."),
                         {"tracker", "indexer-svc"}),
        "page.unchanged": (Subjects.page_unchanged("fuzz"), PageUnchanged(**page, content_hash="h", fetch_mode="http",
                           not_modified=True), {"tracker"}),
        "page.failed": (Subjects.page_failed("fuzz"), PageFailed(**page, reason="http_404"), {"tracker"}),
        "page.indexed": (Subjects.page_indexed("fuzz"), PageIndexed(crawl_id=crawl_id, brand="fuzz", url=url,
                         content_hash="h", chunks=1, collection="c", fetched_at=utcnow()), {"tracker", "rag-svc"}),
    }  # fmt: skip


def garbage(rng: random.Random, event: Event) -> dict[str, tuple[bytes, str]]:
    """Kinds of bad body made from a valid ``event``, each with the reason its letter must give."""
    good = json.loads(event.model_dump_json())
    text = json.dumps(good)
    wrong_types = {k: ([1, 2] if isinstance(v, str) else "not-a-number" if isinstance(v, int) else {"x": 1})
                   for k, v in good.items()}  # fmt: skip
    padded = good | {"padding": "x" * (MAX_EVENT_BYTES + 1000)}
    return {
        "random bytes": (rng.randbytes(rng.randint(1, 3000)), "Invalid JSON"),
        "truncated JSON": (text[: rng.randint(1, len(text) - 1)].encode(), "Invalid JSON"),
        "wrong types": (json.dumps(wrong_types).encode(), "invalid "),
        "not an object": (json.dumps(rng.choice([[1, 2], "event", 42, None])).encode(), "invalid "),
        "empty": (b"", "Invalid JSON"),
        "oversized JSON": (json.dumps(padded).encode(), "oversized: "),
        "oversized bytes": (rng.randbytes(MAX_EVENT_BYTES + 1), "oversized: "),
        "schema_version 99": (json.dumps(good | {"schema_version": 99}).encode(), "unsupported schema_version 99"),
    }


async def test_garbage_on_every_stream_is_dead_lettered_with_reasons_and_never_blocks_real_crawls(
    stack: Stack, nc: Client
) -> None:
    config, js, rng = stack.config, nc.jetstream(), random.Random(20261122)
    expected: dict[str, tuple[set[str], str]] = {}  # fuzz id -> (services that must dead-letter it, reason)

    async def publish_garbage(batch: str) -> None:
        for name, (subject, event, readers) in _samples(crawl_id="nosuchcrawl" + batch).items():
            bad = garbage(rng, event)
            if batch != "a":  # megabytes each: once is enough
                bad = {k: v for k, v in bad.items() if not k.startswith("oversized")}
            # Valid in every way but one: the crawl was never requested.  The indexer indexes pages whatever
            # their crawl (PAGES is the source of truth replays read); everyone else needs the crawl's record.
            bad["unknown crawl"] = (event.model_dump_json().encode(), "unknown crawl 'nosuchcrawl")
            for kind, (body, reason) in bad.items():
                fuzz_id = f"{batch}/{name}/{kind}"
                services = readers - {"indexer-svc", "rag-svc"} if kind == "unknown crawl" else readers
                if services:
                    expected[fuzz_id] = (services, reason)
                await js.publish(subject, body, headers={FUZZ_HEADER: fuzz_id})

    demo = config.demo_url
    crawl = {"start_urls": [f"{demo}/lab/static/"], "include": [f"^{demo}/lab/static/"], "use_sitemaps": False,
             "render": "never", "host_delay_ms": 0, "host_concurrency": 4}  # fmt: skip
    async with (
        FinishedCrawls(config.nats_url) as finished,
        GatewayClient(config.gateway_url, config.api_key) as client,
    ):
        await publish_garbage("a")
        first = await client.crawl("lab", **crawl)
        await publish_garbage("b")
        second = await client.crawl("lab", **crawl)
        await publish_garbage("c")
        for crawl_id in (first, second):
            done = await finished.wait(crawl_id, 120)
            c = done["counts"]
            assert done["status"] == "completed", done
            assert c["scraped"] + c["unchanged"] == ARTICLES + 1 and c["failed"] == 0, c

        want = sum(len(services) for services, _ in expected.values())
        await wait_for(lambda: _total_at_least(client, want), 60, f"{want} dead letters")
        by_id: dict[str, list[dict[str, Any]]] = {}
        for letter in await _all_letters(client):
            if "/" in (fuzz_id := letter["headers"].get(FUZZ_HEADER, "")):
                by_id.setdefault(fuzz_id, []).append(letter)

    problems = []
    for fuzz_id, (services, reason) in sorted(expected.items()):
        letters = by_id[fuzz_id]
        if {letter["service"] for letter in letters} != services or len(letters) != len(services):
            problems.append(f"{fuzz_id}: dead-lettered by {[x['service'] for x in letters]}, expected {services}")
        problems += [f"{fuzz_id} ({x['service']}): reason {x['reason']!r} lacks {reason!r}"
                     for x in letters if reason not in x["reason"]]  # fmt: skip
    assert not problems, "\n".join(problems)
    assert not set(by_id) - set(expected), f"dead-lettered but valid: {set(by_id) - set(expected)}"
    # An oversized event is kept whole when its letter fits the server's max_payload, else its head, marked.
    assert not any(x["truncated"] for x in by_id["a/page.scraped/oversized JSON"])
    assert all(x["truncated"] and len(x["payload"]) <= 4096 for x in by_id["a/page.scraped/oversized bytes"])

    for durable, stream in CONSUMERS.items():  # nothing stuck: every message was acked
        info = await js.consumer_info(stream, durable)
        assert info.num_pending == 0 and info.num_ack_pending == 0, (durable, info)
    assert all(proc.poll() is None for proc in stack.procs.values()), {n: p.poll() for n, p in stack.procs.items()}


async def _total_at_least(client: GatewayClient, n: int) -> bool:
    return bool((await client.dlq_list(limit=1))["total"] >= n)


async def _all_letters(client: GatewayClient) -> list[dict[str, Any]]:
    letters, after = [], 0
    while True:
        page = await client.dlq_list(after=after, limit=200)
        for item in page["items"]:
            letters.append(await client.dlq_get(item["id"]))
        if page["next_after"] is None:
            return letters
        after = page["next_after"]


async def test_a_stored_v1_page_event_is_still_indexed_and_a_v3_one_is_dead_lettered(stack: Stack, nc: Client) -> None:
    js = nc.jetstream()
    stored = json.loads(V1_PAGE.read_text())
    assert stored["schema_version"] == 1 and "html_key" not in stored
    v1 = stored | {"url": stored["url"] + "?v1", "event_id": new_id()}
    v3 = stored | {"url": stored["url"] + "?v3", "event_id": new_id(), "schema_version": 3}
    subject = Subjects.page_scraped(stored["brand"])
    await js.publish(subject, json.dumps(v1).encode())
    await js.publish(subject, json.dumps(v3).encode(), headers={FUZZ_HEADER: "v3"})

    async def indexed_v1() -> list[dict[str, Any]]:
        events = await stream_events(nc, Streams.INDEX.name, Subjects.page_indexed(stored["brand"]))
        return [e for e in events if e["url"] == v1["url"]]

    (event,) = await wait_for(indexed_v1, 30, "the v1 page indexed")
    assert event["content_hash"] == stored["content_hash"] and event["chunks"] >= 1

    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as client:

        async def v3_letter() -> dict[str, Any] | None:
            return next((x for x in await _all_letters(client)
                         if x["service"] == "indexer-svc" and x["headers"].get(FUZZ_HEADER) == "v3"), None)  # fmt: skip

        letter = await wait_for(v3_letter, 30, "the v3 page's dead letter")
    assert "unsupported schema_version 3: this code reads PageScraped up to 2" in letter["reason"]
    assert json.loads(letter["payload"])["url"] == v3["url"]  # kept whole, to re-drive once the code reads v3
