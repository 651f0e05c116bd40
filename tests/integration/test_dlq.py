"""Dead letters on the real stack: a poison page lands in the DLQ with its reason, the pipeline keeps going,
and re-driving it after the fix indexes it exactly once; and the gateway's DLQ API (list, page, show,
delete, purge, refusals) that operators and ``showroom dlq`` use.

The poison is realistic: a page whose markdown exceeds indexer-svc's SHOWROOM_INDEX_MAX_MARKDOWN_CHARS.
The fix is what an operator would do: restart indexer-svc with a higher limit.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from typer.testing import CliRunner

from showroom.cli.client import FinishedCrawls, GatewayClient, GatewayError
from showroom.cli.main import app as cli
from showroom.cli.stack import Stack, StackConfig
from showroom.common.events import SearchRequest, SearchResponse
from showroom.common.topology import Streams, Subjects
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

LIMIT = 40_000
"""Markdown characters the indexer takes at first: the lab's static articles fit, a 0.1 MiB page does not."""
ARTICLES = 6


def lab_stack(root: Path, articles: int, **env: str) -> Stack:
    """The embedded stack, light: hashing embedder, no browser, a demo lab of ``articles`` static pages."""
    return Stack(
        StackConfig.ephemeral(
            root,
            api_key=secrets.token_urlsafe(24),
            embedder="hashing",
            demo_args=["--static-pages", str(articles)],
            extra_env={"SHOWROOM_BROWSER": "false", **env},
        )
    )


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with lab_stack(
        tmp_path_factory.mktemp("dlq-stack"), ARTICLES, SHOWROOM_INDEX_MAX_MARKDOWN_CHARS=str(LIMIT)
    ) as s:
        yield s


@pytest.fixture
async def nc(stack: Stack) -> AsyncIterator[Client]:
    """A client of the module's stack's nats-server."""
    client = await nats.connect(stack.config.nats_url)
    yield client
    await client.close()


def lab_crawl(stack: Stack, *start_paths: str) -> dict[str, Any]:
    demo = stack.config.demo_url
    return {
        "start_urls": [demo + p for p in start_paths],
        "include": [f"^{demo}/lab/(static/|huge)"],
        "use_sitemaps": False,
        "render": "never",
        "host_delay_ms": 0,
        "host_concurrency": 4,
        "max_pages": 50,
    }


async def stream_events(nc: Client, stream: str, subject: str) -> list[dict[str, Any]]:
    """Every message of ``stream`` on ``subject``, decoded, in order."""
    js, events, seq = nc.jetstream(), [], 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return events
        events.append(json.loads(raw.data or b"{}"))
        seq = (raw.seq or seq) + 1


async def test_poison_page_is_dead_lettered_the_pipeline_keeps_going_and_redrive_after_the_fix_indexes_it_once(
    stack: Stack, nc: Client
) -> None:
    config = stack.config
    async with (
        FinishedCrawls(config.nats_url) as finished,
        GatewayClient(config.gateway_url, config.api_key) as client,
    ):
        crawl_id = await client.crawl("lab", **lab_crawl(stack, "/lab/static/", "/lab/huge?mb=0.1"))

        async def poison_letter() -> dict[str, Any] | None:
            for item in (await client.dlq_list(service="indexer-svc"))["items"]:
                if "/lab/huge" in json.loads((await client.dlq_get(item["id"]))["payload"])["url"]:
                    return item
            return None

        letter = await wait_for(poison_letter, 60, "the huge page's dead letter")
        assert letter["reason"].startswith("page too long to index: ")
        assert f"SHOWROOM_INDEX_MAX_MARKDOWN_CHARS={LIMIT}" in letter["reason"]
        assert letter["subject"] == Subjects.page_scraped("lab") and letter["stream"] == Streams.PAGES.name
        assert letter["deliveries"] == 1  # permanent: no retries spent on it
        huge = json.loads((await client.dlq_get(letter["id"]))["payload"])["url"]

        # The pipeline keeps going: every other page of the crawl is indexed...
        async def all_but_one_indexed() -> dict[str, Any] | None:
            st = await client.status(crawl_id)
            c = st["counts"]
            done = c["discovered"] == c["scraped"] + c["failed"] and c["indexed"] == c["scraped"] - 1
            return st if done and c["scraped"] == ARTICLES + 2 else None

        st = await wait_for(all_but_one_indexed, 60, "every other page indexed")
        # ...and the crawl is not "completed" while one of its pages is not answerable.
        assert st["status"] == "running"
        # ...and a crawl started after the poison completes.
        other = await client.crawl("portal", start_urls=[f"{config.demo_url}/"], include=[f"^{config.demo_url}/$"],
                                   use_sitemaps=False, render="never", host_delay_ms=0)  # fmt: skip
        assert (await finished.wait(other, 60))["status"] == "completed"

        # The fix: indexer-svc with a higher limit.
        stack.kill("indexer", signal.SIGTERM)
        config.extra_env["SHOWROOM_INDEX_MAX_MARKDOWN_CHARS"] = "1000000"
        stack.start_service("indexer")
        await stack.wait_service_ready("indexer")

        # Two operators re-drive it at once: it is published once, and leaves the DLQ.
        first, second = await asyncio.gather(client.dlq_redrive([letter["id"]]), client.dlq_redrive([letter["id"]]))
        assert first["redriven"] + second["redriven"] == [letter["id"]]
        with pytest.raises(GatewayError) as gone:
            await client.dlq_get(letter["id"])
        assert gone.value.status == 404

        final = await finished.wait(crawl_id, 90)
        assert final["status"] == "completed"
        assert final["counts"]["indexed"] == final["counts"]["scraped"] == ARTICLES + 2  # counted once, not twice

    indexed = await stream_events(nc, Streams.INDEX.name, Subjects.page_indexed("lab"))
    of_huge = [e for e in indexed if e["url"] == huge]
    assert len(of_huge) == 1 and of_huge[0]["chunks"] > 1
    # Its chunks are in the index once: the search for its URL finds distinct chunks, and the index
    # holds exactly the chunks the page.indexed events announced.
    reply = await nc.request(
        Subjects.SEARCH, SearchRequest(query="filler text", url=huge, top_k=50).model_dump_json().encode(), timeout=10
    )
    hits = SearchResponse.model_validate_json(reply.data).hits
    assert hits and all(h.url == huge for h in hits)
    assert len({h.chunk_index for h in hits}) == len(hits) == min(of_huge[0]["chunks"], 50)
    everything = indexed + await stream_events(nc, Streams.INDEX.name, Subjects.page_indexed("portal"))
    announced = {e["url"]: e["chunks"] for e in everything}
    stats = json.loads((await nc.request(Subjects.INDEX_STATS, b"", timeout=10)).data)
    assert stats["chunks"] == sum(announced.values())


async def test_dlq_api_lists_pages_shows_deletes_and_purges(stack: Stack, nc: Client) -> None:
    config = stack.config
    js = nc.jetstream()
    async with GatewayClient(config.gateway_url, config.api_key) as client:
        await client.dlq_purge()
        assert (await client.dlq_list())["total"] == 0
        # Poison for two services: page.indexed is read by the tracker and rag-svc's cache invalidation.
        for n in range(3):
            await js.publish(Subjects.page_indexed("lab"), f'{{"broken": {n}'.encode())

        async def letters(service: str, count: int) -> list[dict[str, Any]] | None:
            items = (await client.dlq_list(service=service))["items"]
            return items if len(items) == count else None

        tracker = await wait_for(lambda: letters("tracker", 3), 30, "the tracker's letters")
        await wait_for(lambda: letters("rag-svc", 3), 30, "rag-svc's letters")
        assert all(i["reason"].startswith("invalid PageIndexed: Invalid JSON") for i in tracker)
        assert [i["payload_summary"] for i in tracker] == ['{"broken": 0', '{"broken": 1', '{"broken": 2']

        page1 = await client.dlq_list(service="tracker", limit=2)
        assert len(page1["items"]) == 2 and page1["total"] == 3 and page1["next_after"] == page1["items"][1]["id"]
        page2 = await client.dlq_list(service="tracker", limit=2, after=page1["next_after"])
        assert [i["id"] for i in page2["items"]] == [tracker[2]["id"]] and page2["next_after"] is None

        whole = await client.dlq_get(tracker[0]["id"])
        assert whole["payload"] == '{"broken": 0' and whole["service"] == "tracker"

        await client.dlq_delete(tracker[0]["id"])
        with pytest.raises(GatewayError) as missing:
            await client.dlq_delete(tracker[0]["id"])
        assert missing.value.status == 404
        assert (await client.dlq_list(service="tracker"))["total"] == 2

        # Unknown ids are reported, not an error; a bad request is a 422 naming the problem.
        result = await client.dlq_redrive([999_999])
        assert result["not_found"] == [999_999] and result["redriven"] == []
        for body in ({}, {"ids": [1], "all": True}, {"ids": [1], "service": "tracker"}, {"ids": [0]}):
            resp = await client.http.post("/v1/dlq/redrive", json=body)
            assert resp.status_code == 422, (body, resp.text)
        assert (await client.http.get("/v1/dlq", params={"service": "no.dots"})).status_code == 422

        # Re-driving all of rag-svc's letters before any fix: rag-svc alone reads the copies (the tracker
        # skips them) and dead-letters them again, as new letters.
        rag = [i["id"] for i in (await client.dlq_list(service="rag-svc"))["items"]]
        result = await client.dlq_redrive(all=True, service="rag-svc")
        assert result["redriven"] == rag and result["more"] is False
        again = await wait_for(lambda: letters("rag-svc", 3), 30, "rag-svc's letters again")
        assert not {i["id"] for i in again} & set(rag)
        assert (await client.dlq_get(again[0]["id"]))["headers"]["Showroom-Redrive-For"] == "rag-svc"
        assert (await client.dlq_list(service="tracker"))["total"] == 2

        assert await client.dlq_purge(service="rag-svc") == 3
        assert (await client.dlq_list(service="rag-svc"))["total"] == 0
        assert (await client.dlq_list())["total"] == 2  # the tracker's are untouched
        assert await client.dlq_purge() == 2


async def test_cli_lists_redrives_and_purges_dead_letters(stack: Stack, nc: Client) -> None:
    config = stack.config
    env = {"SHOWROOM_URL": config.gateway_url, "SHOWROOM_API_KEY": config.api_key, "COLUMNS": "250"}
    runner = CliRunner()

    def showroom(*args: str) -> str:
        result = runner.invoke(cli, ["dlq", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    async with GatewayClient(config.gateway_url, config.api_key) as client:
        await client.dlq_purge()
        await nc.jetstream().publish(Subjects.page_unchanged("lab"), b'{"crawl_id": "c"}')
        (letter,) = await wait_for(lambda: _letters(client, "tracker"), 30, "the tracker's letter")

    listed = await asyncio.to_thread(showroom, "list", "--service", "tracker")
    assert re.search(rf"{letter['id']}\s+│\s+tracker\s+│\s+page\.unchanged\.lab\s+│\s+1\s+│", listed), listed
    assert "invalid PageUnchanged: Field required" in listed and "1 of 1" in listed
    assert '"payload": "{\\"crawl_id\\": \\"c\\"}"' in await asyncio.to_thread(showroom, "show", str(letter["id"]))
    redriven = json.loads(await asyncio.to_thread(showroom, "redrive", str(letter["id"])))
    assert redriven["redriven"] == [letter["id"]]
    async with GatewayClient(config.gateway_url, config.api_key) as client:  # still poison: a new letter
        await wait_for(lambda: _letters(client, "tracker"), 30, "the re-driven copy's letter")
    assert "purged 1 letters" in await asyncio.to_thread(showroom, "purge", "--service", "tracker", "--yes")
    refused = runner.invoke(cli, ["dlq", "redrive"], env=env)
    assert refused.exit_code != 0 and "give letter ids, or --all" in refused.output


async def _letters(client: GatewayClient, service: str) -> list[dict[str, Any]]:
    return list((await client.dlq_list(service=service))["items"])
