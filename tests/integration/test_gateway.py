"""The gateway against a real nats-server: auth, validation, and status read from shared KV state."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.client import Client

from showroom.common.apikeys import ApiKeyEntry
from showroom.gateway.app import create_app
from showroom.gateway.settings import GatewaySettings

KEY = "test-key-0123456789abcdef"


def _settings(nats_url: str) -> GatewaySettings:
    return GatewaySettings(nats_url=nats_url, api_keys=[ApiKeyEntry.for_key(KEY)], ask_timeout_s=2)


@pytest.fixture
async def gateway(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(nats_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


CRAWL = {"brand": "krk", "start_urls": ["https://www.krkmusic.com/"], "max_pages": 10}


async def test_missing_key_is_401_with_a_message(gateway: httpx.AsyncClient) -> None:
    resp = await gateway.post("/v1/crawls", json=CRAWL)
    assert resp.status_code == 401
    assert "X-API-Key" in resp.json()["detail"]


async def test_wrong_key_is_401(gateway: httpx.AsyncClient) -> None:
    resp = await gateway.get("/v1/crawls/abc", headers={"X-API-Key": "nope-nope-nope-nope"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "invalid API key"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CRAWL, "brand": "Not A Slug"}, "brand"),
        ({**CRAWL, "start_urls": []}, "start_urls"),
        ({**CRAWL, "start_urls": ["not a url"]}, "start_urls"),
        ({**CRAWL, "max_pages": 0}, "max_pages"),
        ({**CRAWL, "include": ["(unclosed"]}, "include"),
        ({**CRAWL, "exclude": [""]}, "exclude"),
        ({**CRAWL, "surprise": 1}, "surprise"),
    ],
)
async def test_malformed_crawl_is_422_naming_the_field(gateway: httpx.AsyncClient, body: dict, field: str) -> None:
    resp = await gateway.post("/v1/crawls", json=body, headers={"X-API-Key": KEY})
    assert resp.status_code == 422
    assert any(field in map(str, err["loc"]) for err in resp.json()["detail"]), resp.json()


async def test_non_json_body_is_422(gateway: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    resp = await gateway.post("/v1/ask", content=b"{not json", headers=headers)
    assert resp.status_code == 422


async def test_accepted_crawl_is_published_and_its_status_is_shared_state(
    gateway: httpx.AsyncClient, nc: Client, nats_url: str
) -> None:
    js = nc.jetstream()
    sub = await js.subscribe("crawl.requested.krk", ordered_consumer=True, deliver_policy="new")
    resp = await gateway.post("/v1/crawls", json=CRAWL, headers={"X-API-Key": KEY})
    assert resp.status_code == 202
    crawl_id = resp.json()["crawl_id"]
    msg = await sub.next_msg(timeout=5)
    event = json.loads(msg.data)
    assert event["crawl_id"] == crawl_id
    assert event["spec"]["allowed_domains"] == ["www.krkmusic.com"]
    assert event["schema_version"] == 1 and event["trace_id"]

    # A second gateway replica answers the same, because status lives in JetStream KV.
    other = create_app(_settings(nats_url))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as replica:
            status = (await replica.get(f"/v1/crawls/{crawl_id}", headers={"X-API-Key": KEY})).json()
    assert status["status"] == "queued"
    assert status["counts"] == dict.fromkeys(
        ["discovered", "scraped", "unchanged", "failed", "skipped", "indexed", "queued", "in_flight"], 0
    )
    assert resp.headers["X-Response-Time-Ms"]


async def test_ask_without_rag_svc_is_503_not_500(gateway: httpx.AsyncClient) -> None:
    resp = await gateway.post("/v1/ask", json={"question": "What is the woofer size?"}, headers={"X-API-Key": KEY})
    assert resp.status_code == 503
    assert "rag-svc" in resp.json()["detail"]


def test_settings_refuse_to_run_without_keys_outside_development() -> None:
    with pytest.raises(ValueError, match="SHOWROOM_API_KEYS"):
        GatewaySettings(api_keys=[], environment="production")


async def test_streamed_ask_without_rag_svc_is_503_at_once(nats_url: str) -> None:
    # A long answer timeout: only nats-server's no-responders status can make this quick.
    app = create_app(GatewaySettings(nats_url=nats_url, api_keys=[ApiKeyEntry.for_key(KEY)], ask_timeout_s=30))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            t0 = time.perf_counter()
            resp = await client.post(
                "/v1/ask/stream", json={"question": "What is the woofer size?"}, headers={"X-API-Key": KEY}
            )
            elapsed = time.perf_counter() - t0
    assert resp.status_code == 503
    assert "rag-svc" in resp.json()["detail"]
    assert elapsed < 1.0
