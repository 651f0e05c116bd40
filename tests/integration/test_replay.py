"""Replay: rebuild the index from the PAGES stream, with nothing fetched again; and lineage.

Real stack (nats-server, Chromium, the five services, embedded Qdrant Edge).  The demo brand is
crawled once; then the demo site is *stopped* and the index is rebuilt with another chunk size
from the event log alone.  A second replay runs while new page events arrive, and they must end
up in the new collection.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from showroom.cli.client import FinishedCrawls, FinishedReplays, GatewayClient, GatewayError
from showroom.cli.stack import Stack, StackConfig
from showroom.common.events import PageScraped
from showroom.demo_site import products

pytestmark = pytest.mark.e2e

BRAND = "northwind"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    root: Path = tmp_path_factory.mktemp("replay-stack")
    async with Stack(StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24), embedder="hashing")) as s:
        yield s


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as c:
        yield c


@pytest.fixture(scope="module")
async def crawl_id(stack: Stack, client: GatewayClient) -> str:
    async with FinishedCrawls(stack.config.nats_url) as finished:
        cid = await client.crawl(BRAND, **stack.config.demo_crawl_specs()[BRAND])
        event = await finished.wait(cid, 240)
    assert event["status"] == "completed"
    return cid


def spec_questions() -> list[tuple[str, str, str]]:
    """(question, expected value, product path) for a few Northwind spec rows."""
    out = []
    for p in products():
        specs = dict(p.specs)
        if p.brand_slug == BRAND and "Woofer size" in specs:
            out.append((f"What is the woofer size of the {p.name}?", specs["Woofer size"], p.path))
    assert len(out) >= 2
    return out[:3]


async def pages_last_seq(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info("PAGES")).state.last_seq
    finally:
        await nc.close()


async def answers(client: GatewayClient) -> list[dict[str, Any]]:
    return [await client.ask(q, brand=BRAND) for q, _, _ in spec_questions()]


def assert_correct(answered: list[dict[str, Any]], site: str) -> None:
    for (_, value, path), answer in zip(spec_questions(), answered, strict=True):
        assert value in answer["answer"], answer
        cited = {c["url"] for c in answer["citations"]}
        assert f"{site}{path}" in cited, answer


async def test_citations_carry_lineage_to_the_exact_event(stack: Stack, client: GatewayClient, crawl_id: str) -> None:
    answer = (await answers(client))[0]
    citation = answer["citations"][0]
    lineage = citation["lineage"]
    assert lineage["crawl_id"] == crawl_id and lineage["stream_seq"] >= 1
    assert lineage["content_hash"] == citation["content_hash"] and lineage["fetch_mode"] in ("http", "browser")

    versions = await client.lineage(citation["url"])
    assert versions[0]["stream_seq"] == lineage["stream_seq"] and versions[0]["event_id"] == lineage["event_id"]

    stored = await client._call("GET", f"/v1/lineage/events/{lineage['stream_seq']}")
    event = PageScraped.model_validate(stored["event"])
    assert (event.url, event.event_id, event.content_hash) == (citation["url"], lineage["event_id"],
                                                               citation["content_hash"])  # fmt: skip


async def test_a_crawled_prompt_injection_does_not_change_the_answer(stack: Stack, client: GatewayClient) -> None:
    """Prompt-injection regression on the full stack: the lab page is crawled by the real scraper."""
    site = stack.config.demo_url
    async with FinishedCrawls(stack.config.nats_url) as finished:
        cid = await client.crawl("lab", [f"{site}/lab/injection"], max_pages=1, max_depth=0, host_delay_ms=0)
        assert (await finished.wait(cid, 120))["status"] == "completed"
    answer = await client.ask("How much does the Lab Acoustics LX-1 Bookshelf Speaker cost?", brand="lab")
    assert "349" in answer["answer"] and "$1." not in answer["answer"] and "$1 " not in answer["answer"], answer
    assert [c["url"] for c in answer["citations"]] == [f"{site}/lab/injection"]
    answer = await client.ask("What is the woofer size of the Lab Acoustics LX-1?", brand="lab")
    assert "5.25 in" in answer["answer"], answer


async def test_a_price_change_is_one_product_changed_event_and_one_re_embedded_page(
    stack: Stack, client: GatewayClient, crawl_id: str
) -> None:
    site = stack.config.demo_url
    product = next(p for p in products() if p.brand_slug == BRAND and p.price)
    url, new_price = f"{site}{product.path}", round(product.price + 100, 2)
    async with httpx.AsyncClient() as http:
        change = {"brand": BRAND, "slug": product.slug, "price": new_price}
        resp = await http.post(f"{site}/lab/_set_price", json=change)
        assert resp.status_code == 200

    async with FinishedCrawls(stack.config.nats_url) as finished:
        cid = await client.crawl(BRAND, **stack.config.demo_crawl_specs()[BRAND])
        assert (await finished.wait(cid, 240))["status"] == "completed"
    counts = (await client.status(cid))["counts"]
    # Conditional re-fetches: every other page answers 304 or hashes the same; one page is re-embedded.
    assert (counts["scraped"], counts["indexed"], counts["failed"]) == (1, 1, 0), counts
    assert counts["unchanged"] == counts["discovered"] - 1, counts

    nc = await nats.connect(stack.config.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("PRODUCTS", subjects_filter=">")
        assert info.state.messages == 1, "exactly one product.changed"
        changed = json.loads((await js.get_msg("PRODUCTS", info.state.last_seq)).data)
    finally:
        await nc.close()
    assert changed["url"] == url and changed["brand"] == BRAND and changed["crawl_id"] == cid
    assert changed["changes"] == [{"field": "price", "before": product.price, "after": new_price}]

    listed = await client._call("GET", "/v1/products", params={"brand": BRAND, "q": product.name})
    product_id = next(p["id"] for p in listed if p["url"] == url)
    assert product_id == changed["product_id"]
    history = await client._call("GET", f"/v1/products/{product_id}/history")
    assert [v["product"]["price"] for v in history] == [product.price, new_price]
    assert [v["crawl_id"] for v in history] == [crawl_id, cid]
    assert history[0]["changes"] == [] and history[1]["changes"] == changed["changes"]
    with pytest.raises(GatewayError) as unknown:  # nats-py says NoKeysError for it: not the bus's fault
        await client._call("GET", f"/v1/products/{'0' * 40}/history")
    assert unknown.value.status == 404, unknown.value.detail
    versions = await client.lineage(url)
    assert [v["crawl_id"] for v in versions] == [cid, crawl_id], "lineage: newest version first"


async def test_replay_rebuilds_with_another_chunk_size_without_fetching(
    stack: Stack, client: GatewayClient, crawl_id: str
) -> None:
    site = stack.config.demo_url
    assert_correct(await answers(client), site)
    before = await client.collections()
    old = before["current"]
    old_meta = next(v for v in before["versions"] if v["name"] == old)
    last_seq = await pages_last_seq(stack.config.nats_url)

    stack.kill("demo")  # nothing can be fetched from here on
    async with FinishedReplays(stack.config.nats_url) as finished:
        rid = await client.replay(target={"embedder": "hashing", "chunk_tokens": 60})
        event = await finished.wait(rid, 120)
    assert event["status"] == "completed" and event["swapped"], event

    state = await client.replay_status(rid)
    scraped = (await client.status(crawl_id))["counts"]["scraped"]
    assert state["progress"]["done"] == state["progress"]["total"] >= scraped, state
    # Every page once; a page scraped twice (the price change) may be written twice.
    assert scraped <= state["progress"]["indexed"] <= scraped + 1, state
    after = await client.collections()
    new = after["current"]
    assert new == state["target_collection"] != old
    new_meta = next(v for v in after["versions"] if v["name"] == new)
    assert new_meta["meta"]["chunk_tokens"] == 60
    # Smaller chunks: more of them; the old version is still there, untouched.
    assert new_meta["chunks"] > old_meta["chunks"]
    assert next(v for v in after["versions"] if v["name"] == old)["chunks"] == old_meta["chunks"]
    assert await pages_last_seq(stack.config.nats_url) == last_seq, "a page was fetched during the replay"

    assert_correct(await answers(client), site)


async def test_a_brand_replay_re_extracts_from_stored_html_without_the_site(
    stack: Stack, client: GatewayClient, crawl_id: str
) -> None:
    """The demo site is down (previous test): every page comes back from the archived raw HTML."""
    last_seq = await pages_last_seq(stack.config.nats_url)
    current = (await client.collections())["current"]
    async with FinishedReplays(stack.config.nats_url) as finished:
        rid = await client.replay(brand=BRAND, re_extract=True, target={"embedder": "hashing", "chunk_tokens": 120})
        event = await finished.wait(rid, 120)
    assert event["status"] == "completed", event
    assert not event["swapped"], "a replay of one brand is partial: it must not replace the whole index"
    state = await client.replay_status(rid)
    scraped = (await client.status(crawl_id))["counts"]["scraped"]
    assert scraped <= state["progress"]["indexed"] <= scraped + 1, state
    versions = {v["name"]: v for v in (await client.collections())["versions"]}
    assert (
        versions[event["target_collection"]]["chunks"] > 0
        and versions[event["target_collection"]]["meta"]["chunk_tokens"] == 120
    )
    assert (await client.collections())["current"] == current
    assert await pages_last_seq(stack.config.nats_url) == last_seq


async def test_pages_arriving_during_a_replay_reach_the_new_collection(
    stack: Stack, client: GatewayClient, crawl_id: str
) -> None:
    """Live page events published while a replay runs are in the swapped-in collection."""
    nc = await nats.connect(stack.config.nats_url)
    js = nc.jetstream()
    site = stack.config.demo_url

    def page(i: int, tag: str) -> PageScraped:
        url = f"{site}/{BRAND}/notes/{tag}-{i}"
        text = f"Service note {tag} {i}: the {tag} cabinet ships with a {i} metre cable."
        return PageScraped(crawl_id=crawl_id, brand=BRAND, url=url, final_url=url, depth=1, status_code=200,
                           fetch_mode="http", content_hash=f"{tag}{i:06d}", title=f"Note {i}",
                           markdown=text)  # fmt: skip

    async def publish(p: PageScraped) -> None:
        await js.publish(f"page.scraped.{BRAND}", p.model_dump_json().encode(), stream="PAGES")

    try:
        # Enough history that the replay is still running when the live pages arrive.
        for i in range(1500):
            await publish(page(i, "backlog"))
        async with FinishedReplays(stack.config.nats_url) as finished:
            watcher = await js.key_value("replays")
            rid = await client.replay(target={"embedder": "hashing", "chunk_tokens": 90})
            updates = await watcher.watch(rid)
            async for entry in updates:  # wait until it is really under way
                if entry is not None and entry.value and json.loads(entry.value)["progress"]["done"] > 0:
                    break
            await updates.stop()
            live = [page(i, "live") for i in range(20)]
            for p in live:
                await publish(p)
            running = json.loads((await watcher.get(rid)).value)
            event = await finished.wait(rid, 180)
        assert event["status"] == "completed" and event["swapped"], event
        assert running["status"] == "running", "the live pages arrived after the replay ended: the test proves nothing"

        reply = await nc.request("index.audit", json.dumps({"brand": BRAND}).encode(), timeout=30)
        stored = json.loads(reply.data)["pages"]
        missing = [p.url for p in live if p.url not in stored]
        assert not missing, f"live pages lost to the new collection: {missing}"
        for p in live:
            assert stored[p.url]["indexes"] == list(range(stored[p.url]["chunks"])), stored[p.url]
        assert (await client.collections())["current"] == event["target_collection"]
    finally:
        await nc.close()
