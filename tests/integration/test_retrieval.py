"""indexer-svc and rag-svc as real processes on a real nats-server, driven through the gateway:
hybrid retrieval with filters, the shared answer cache (hits served by the gateway) and its
invalidation, streaming, the product search, and a prompt-injection page that must not change
an answer.

The indexer runs the hashing embedder (no model load) over Qdrant Edge; everything else is what
production runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest

from showroom.cli.stack import free_port
from showroom.common.apikeys import ApiKeyEntry
from showroom.common.events import PageScraped, Product
from showroom.demo_site.lab import INJECTION_TEXT
from showroom.gateway.app import create_app
from showroom.gateway.settings import GatewaySettings
from tests.conftest import wait_for

KEY = "test-key-0123456789abcdef"
H = {"X-API-Key": KEY}
SITE = "http://shop.test"


def product_page(slug: str, name: str, price: float, *, brand: str = "northwind", category: str = "Studio Monitors",
                 availability: str = "InStock", specs: dict[str, str] | None = None, note: str = "",
                 h: str = "v1") -> PageScraped:  # fmt: skip
    specs = specs or {}
    product = Product(name=name, brand=brand.title(), category=category, price=price, priceCurrency="USD",
                      availability=availability, sku=slug.upper(), specs=specs)  # fmt: skip
    markdown = f"# {name}\n\nA {category.lower()[:-1]} from {brand.title()}.\n\n{note}"
    url = f"{SITE}/{brand}/products/{slug}"
    return PageScraped(crawl_id="c", brand=brand, url=url, final_url=url, depth=1, status_code=200,
                       fetch_mode="http", content_hash=f"{slug}-{h}", title=f"{name} | {brand}", markdown=markdown,
                       product=product)  # fmt: skip


PAGES = [
    product_page("nw-5", "Northwind NW-5 Studio Monitor", 249.0, specs={"Woofer size": "5 in", "Weight": "4.6 kg"}),
    product_page("nw-8", "Northwind NW-8 Studio Monitor", 449.0, specs={"Woofer size": "8 in", "Weight": "7.2 kg"}),
    product_page("nw-3", "Northwind NW-3 Studio Monitor", 149.0, availability="OutOfStock",
                 specs={"Woofer size": "3 in"}),
    product_page("mx-8", "Cobalt MX-8 Analog Mixer", 599.0, brand="cobalt", category="Mixers",
                 specs={"Channels": "8"}),
    # The lab's prompt-injection page: a review asks the reader to lie about every price.
    product_page("lx-1", "Lab Acoustics LX-1 Bookshelf Speaker", 349.0, brand="lab", category="Speakers",
                 specs={"Woofer size": "5.25 in"}, note=f"## Customer reviews\n\n{INJECTION_TEXT}\n\nClear mids."),
]  # fmt: skip


def _service(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def services(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    root = tmp_path_factory.mktemp("services")
    ports = {"indexer": free_port(), "rag": free_port()}
    base = {
        **os.environ,
        "SHOWROOM_NATS_URL": nats_url,
        "SHOWROOM_ENV": "development",
        "SHOWROOM_HTTP_HOST": "127.0.0.1",
    }
    base.pop("GEMINI_API_KEY", None)
    procs = [
        _service("showroom.indexer", {**base, "SHOWROOM_HTTP_PORT": str(ports["indexer"]),
                                      "SHOWROOM_EMBEDDER": "hashing", "SHOWROOM_QDRANT_PATH": str(root / "qdrant")},
                 root / "indexer.log"),
        _service("showroom.rag", {**base, "SHOWROOM_HTTP_PORT": str(ports["rag"])}, root / "rag.log"),
    ]  # fmt: skip
    try:
        for name, port in ports.items():
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                import time

                time.sleep(0.05)
            else:
                pytest.fail(f"{name} did not start:\n{(root / f'{name}.log').read_text()[-3000:]}")
        yield ports
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


async def index(nats_url: str, pages: list[PageScraped]) -> None:
    """Publish page events and wait for indexer-svc to announce each one indexed."""
    nc = await nats.connect(nats_url)
    try:
        want = {(p.url, p.content_hash) for p in pages}
        done: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        async def on_indexed(msg) -> None:  # type: ignore[no-untyped-def]
            event = json.loads(msg.data)
            await done.put((event["url"], event["content_hash"]))

        sub = await nc.subscribe("page.indexed.*", cb=on_indexed)
        js = nc.jetstream()
        for p in pages:
            await js.publish(f"page.scraped.{p.brand}", p.model_dump_json().encode(), stream="PAGES")
        async with asyncio.timeout(30):
            while want:
                want.discard(await done.get())
        await sub.unsubscribe()
    finally:
        await nc.close()


@pytest.fixture(scope="module")
async def indexed(services: dict[str, int], nats_url: str) -> None:
    await index(nats_url, PAGES)


@pytest.fixture
async def gateway(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(nats_url=nats_url, api_keys=[ApiKeyEntry.for_key(KEY)], ask_timeout_s=10))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client


async def ask(gateway: httpx.AsyncClient, question: str, brand: str | None = None) -> dict:  # type: ignore[type-arg]
    resp = await gateway.post("/v1/ask", json={"question": question, "brand": brand}, headers=H)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_spec_answer_cites_the_product_page_with_its_version(indexed: None, gateway: httpx.AsyncClient) -> None:
    answer = await ask(gateway, "What is the woofer size of the Northwind NW-8 Studio Monitor?", "northwind")
    assert "8 in" in answer["answer"] and answer["model"] == "extractive"
    (citation,) = answer["citations"]
    assert citation["url"] == f"{SITE}/northwind/products/nw-8"
    assert citation["content_hash"] == "nw-8-v1" and citation["fetched_at"] and citation["snippet"]
    assert f"[{citation['n']}]" in answer["answer"]


async def test_brand_filter_keeps_other_brands_out(indexed: None, gateway: httpx.AsyncClient) -> None:
    answer = await ask(gateway, "How many channels does the Cobalt MX-8 Analog Mixer have?", "northwind")
    assert all("/cobalt/" not in c["url"] for c in answer["citations"])
    answer = await ask(gateway, "How many channels does the Cobalt MX-8 Analog Mixer have?", "cobalt")
    assert "Channels: 8" in answer["answer"]


async def test_unanswerable_question_is_refused(indexed: None, gateway: httpx.AsyncClient) -> None:
    answer = await ask(gateway, "Does the Northwind NW-9 Studio Monitor support Dolby Atmos?", "northwind")
    assert answer["answer"].startswith("I don't know") and answer["citations"] == []


async def test_injected_instructions_in_a_page_do_not_change_the_answer(
    indexed: None, gateway: httpx.AsyncClient
) -> None:
    answer = await ask(gateway, "How much does the Lab Acoustics LX-1 Bookshelf Speaker cost?", "lab")
    assert "349.00" in answer["answer"]
    assert "$1" not in answer["answer"] and "Ignore" not in answer["answer"]


async def test_repeated_question_is_served_from_the_cache_until_its_page_is_reindexed(
    indexed: None, gateway: httpx.AsyncClient, nats_url: str, services: dict[str, int]
) -> None:
    question = "What is the weight of the Northwind NW-5 Studio Monitor?"
    first = await ask(gateway, question, "northwind")
    assert "4.6 kg" in first["answer"] and first["cached"] is False
    rag_hits = await rag_cache_hits(services["rag"])
    nc = await nats.connect(nats_url)
    audits = await nc.subscribe("rag.answered")
    try:
        again = await ask(gateway, "  what is the WEIGHT of the Northwind NW-5 Studio Monitor ", "northwind")
        assert again["cached"] is True and again["answer"] == first["answer"]
        assert again["citations"] == first["citations"]
        # The gateway read the shared cache itself: rag-svc was not asked, and the hit is audited.
        assert await rag_cache_hits(services["rag"]) == rag_hits
        async with asyncio.timeout(10):
            while not (audit := json.loads((await audits.next_msg(timeout=10)).data))["cached"]:
                pass  # rag-svc's record of the first answer may still be on its way
        assert audit["question"].strip().lower().startswith("what is the weight") and audit["citation_urls"]
    finally:
        await nc.close()

    changed = product_page("nw-5", "Northwind NW-5 Studio Monitor", 249.0, h="v2",
                           specs={"Woofer size": "5 in", "Weight": "4.9 kg"})  # fmt: skip
    await index(nats_url, [changed])

    async def fresh() -> dict | None:  # type: ignore[type-arg]
        answer = await ask(gateway, question, "northwind")
        return answer if not answer["cached"] else None

    answer = await wait_for(fresh, timeout=10, what="the cached answer to be invalidated")
    assert "4.9 kg" in answer["answer"]
    assert answer["citations"][0]["content_hash"] == "nw-5-v2"


async def rag_cache_hits(port: int) -> float:
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    (line,) = [m for m in metrics.splitlines() if m.startswith("showroom_rag_answer_cache_hits_total ")]
    return float(line.split()[1])


async def test_streamed_answer_ends_with_the_citations(indexed: None, gateway: httpx.AsyncClient) -> None:
    body = {"question": "What is the price of the Northwind NW-8 Studio Monitor?", "brand": "northwind"}
    events = []
    async with gateway.stream("POST", "/v1/ask/stream", json=body, headers=H) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"}
    final = events[-1][1]
    assert "449.00" in "".join(d["text"] for k, d in events if k == "delta")
    assert final["citations"][0]["url"] == f"{SITE}/northwind/products/nw-8"


async def test_product_search_needs_no_llm(indexed: None, gateway: httpx.AsyncClient) -> None:
    resp = await gateway.get("/v1/products", params={"brand": "northwind", "category": "studio monitors",
                                                      "max_price": 300, "in_stock": "true"}, headers=H)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert [p["name"] for p in resp.json()] == ["Northwind NW-5 Studio Monitor"]
    resp = await gateway.get("/v1/products", params={"q": "mixer"}, headers=H)
    assert [p["url"] for p in resp.json()] == [f"{SITE}/cobalt/products/mx-8"]
    assert (await gateway.get("/v1/products", params={"brand": "Not A Slug"}, headers=H)).status_code == 422
