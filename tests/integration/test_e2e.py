"""The spine, end to end: crawl the demo brands on the real stack, then ask and get cited answers.

Real nats-server (JetStream), real Chromium through Playwright, the demo site
on 127.0.0.1, the five services as separate processes, the offline MiniLM
embedder and embedded Qdrant.  Tests wait on the bus's own events.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from showroom.cli.client import FinishedCrawls, GatewayClient, GatewayError
from showroom.cli.stack import Stack, StackConfig
from showroom.demo_site import allowed_paths, disallowed_paths, products

pytestmark = pytest.mark.e2e

CRAWL_TIMEOUT_S = 240


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    root: Path = tmp_path_factory.mktemp("stack")
    async with Stack(StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24))) as s:
        yield s


@pytest.fixture(scope="module")
async def crawled(stack: Stack) -> dict[str, dict]:
    """Crawl both demo brands at once; returns each brand's final status, as announced on the bus."""
    config = stack.config
    statuses: dict[str, dict] = {}
    async with FinishedCrawls(config.nats_url) as finished, GatewayClient(config.gateway_url, config.api_key) as client:
        ids = {brand: await client.crawl(brand, **spec) for brand, spec in config.demo_crawl_specs().items()}
        for brand, crawl_id in ids.items():
            await finished.wait(crawl_id, CRAWL_TIMEOUT_S)
            statuses[brand] = await client.status(crawl_id)
    return statuses


def brand_pages(brand: str, paths: list[str]) -> set[str]:
    return {p for p in paths if p.startswith(f"/{brand}/")}


def test_the_demo_crawls_the_portal_page_beside_the_brands(crawled: dict[str, dict]) -> None:
    assert crawled["portal"]["status"] == "completed"
    assert crawled["portal"]["counts"]["indexed"] == 1


@pytest.mark.parametrize("brand", ["northwind", "cobalt"])
async def test_crawl_completes_with_exact_counts(crawled: dict[str, dict], brand: str) -> None:
    status = crawled[brand]
    expected = len(brand_pages(brand, allowed_paths()))
    assert status["status"] == "completed"
    assert status["counts"] == {
        "discovered": expected,
        "scraped": expected,
        "unchanged": 0,
        "failed": 0,
        "skipped": len(brand_pages(brand, disallowed_paths())),
        "indexed": expected,
        "queued": 0,
        "in_flight": 0,
    }


async def test_every_allowed_page_is_indexed_and_no_disallowed_one(stack: Stack, crawled: dict[str, dict]) -> None:

    site = stack.config.demo_url
    nc = await nats.connect(stack.config.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("INDEX")
        indexed_urls: set[str] = set()
        sub = await js.subscribe("page.indexed.*", ordered_consumer=True)
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=5)
            indexed_urls.add(json.loads(msg.data)["url"])
        await sub.unsubscribe()
    finally:
        await nc.drain()
    assert indexed_urls == {site + p for p in allowed_paths()}
    assert not indexed_urls & {site + p for p in disallowed_paths()}


async def test_spec_question_is_answered_with_the_right_value_citing_the_product_page(
    stack: Stack, crawled: dict[str, dict]
) -> None:
    product = next(p for p in products() if p.model == "NW-8")
    woofer = dict(product.specs)["Woofer size"]
    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as client:
        answer = await client.ask(f"What is the woofer size of the {product.name}?", brand="northwind")
    assert answer["model"] == "extractive"
    assert woofer in answer["answer"]
    assert answer["citations"], answer
    assert answer["citations"][0]["url"] == stack.config.demo_url + product.path
    assert f"[{answer['citations'][0]['n']}]" in answer["answer"]


async def test_price_question_cites_the_product_page(stack: Stack, crawled: dict[str, dict]) -> None:
    product = next(p for p in products() if p.brand_slug == "cobalt" and p.category_slug == "mixers")
    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as client:
        answer = await client.ask(f"How much does the {product.name} cost?", brand="cobalt")
    assert f"{product.price:,.2f}" in answer["answer"]
    assert answer["citations"][0]["url"] == stack.config.demo_url + product.path


async def test_status_of_an_unknown_crawl_is_404(stack: Stack) -> None:
    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as client:
        with pytest.raises(GatewayError) as err:
            await client.status("0" * 32)
    assert err.value.status == 404


async def _stream_events(nats_url: str, stream: str, subject: str) -> list[dict]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        events = []
        for _ in range(total):
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                break  # the rest are on other subjects of the stream
            events.append(json.loads(msg.data))
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


async def test_auto_render_spends_the_browser_only_on_javascript_pages(stack: Stack, crawled: dict[str, dict]) -> None:
    events = await _stream_events(stack.config.nats_url, "PAGES", "page.scraped.*")
    modes = {e["url"].removeprefix(stack.config.demo_url): e["fetch_mode"] for e in events}
    product_paths = {p.path for p in products()}
    assert {path for path, mode in modes.items() if mode == "browser"} == product_paths
    assert all(mode == "http" for path, mode in modes.items() if path not in product_paths)


async def test_recrawl_of_an_unchanged_site_re_embeds_nothing(stack: Stack, crawled: dict[str, dict]) -> None:
    config = stack.config
    indexed_before = len(await _stream_events(config.nats_url, "INDEX", "page.indexed.*"))
    async with FinishedCrawls(config.nats_url) as finished, GatewayClient(config.gateway_url, config.api_key) as client:
        crawl_id = await client.crawl("northwind", **config.demo_crawl_specs()["northwind"])
        await finished.wait(crawl_id, CRAWL_TIMEOUT_S)
        status = await client.status(crawl_id)
    expected = len(brand_pages("northwind", allowed_paths()))
    assert status["status"] == "completed"
    assert status["counts"]["unchanged"] == expected
    assert status["counts"]["scraped"] == status["counts"]["indexed"] == 0
    assert len(await _stream_events(config.nats_url, "INDEX", "page.indexed.*")) == indexed_before
    unchanged = [e for e in await _stream_events(config.nats_url, "PAGES", "page.unchanged.northwind")
                 if e["crawl_id"] == crawl_id]  # fmt: skip
    assert len(unchanged) == expected
