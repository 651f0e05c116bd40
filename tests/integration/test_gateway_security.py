"""The gateway against hostile and careless clients, on a real nats-server: hashed scoped keys,
401 vs 403 on every route, per-key rate limits, body size and field limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from typer.testing import CliRunner

from showroom.cli.main import app as cli
from showroom.common.apikeys import ApiKeyEntry, Scope, digest
from showroom.gateway.app import create_app
from showroom.gateway.auth import KeyRing
from showroom.gateway.ratelimit import TokenBucket
from showroom.gateway.settings import GatewaySettings
from tests.conftest import nats_server

KEYS = {scope: f"sr_test-{scope.value}-key-0123456789" for scope in Scope}
LIMITED = "sr_test-limited-key-0123456789"


def _settings(nats_url: str, **kw: object) -> GatewaySettings:
    entries = [ApiKeyEntry.for_key(key, [scope], name=scope.value) for scope, key in KEYS.items()]
    entries.append(ApiKeyEntry.for_key(LIMITED, [Scope.ADMIN], name="limited", rate_per_s=0.5, burst=3))
    return GatewaySettings(nats_url=nats_url, api_keys=entries, ask_timeout_s=2, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator:  # type: ignore[type-arg]
    # A server of its own: the probes start real replays, re-drives and crawls, which services
    # that other tests run on the shared server would otherwise pick up.
    with nats_server(tmp_path_factory.mktemp("security-nats")) as url:
        app = create_app(_settings(url, max_body_bytes=4096, rate_per_s=1000, rate_burst=1000))
        async with app.router.lifespan_context(app):
            yield app


@pytest.fixture
async def gateway(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


def _v1_operations(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every documented ``/v1`` operation, with its path parameters filled in."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    ]


# Whatever the routers add, routes under these prefixes keep needing at least this scope.
FLOOR = {
    "/v1/ask": Scope.ASK,
    "/v1/products": Scope.ASK,
    "/v1/lineage": Scope.ASK,
    "/v1/crawls": Scope.CRAWL,
    "/v1/brands": Scope.CRAWL,
    "/v1/replays": Scope.ADMIN,
    "/v1/collections": Scope.ADMIN,
    "/v1/dlq": Scope.ADMIN,
    "/v1/system": Scope.ADMIN,
}


async def test_every_route_is_401_without_a_key_and_403_naming_the_scope_below_its_own(
    app, gateway: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    """Probes every documented operation with no key, an unknown key and a key of each scope."""
    operations = _v1_operations(app)
    assert {"/v1/crawls", "/v1/ask", "/v1/products", "/v1/system/status"} <= {p for _, p in operations}
    refused = 0
    for method, path in operations:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        resp = await gateway.request(method, path, json=body)
        assert resp.status_code == 401 and "X-API-Key" in resp.json()["detail"], (method, path, resp.text)
        resp = await gateway.request(method, path, json=body, headers={"X-API-Key": "sr_unknown-key-0123456789"})
        assert resp.status_code == 401 and resp.json()["detail"] == "invalid API key"
        statuses = {}
        for scope in Scope:
            resp = await gateway.request(method, path, json=body, headers={"X-API-Key": KEYS[scope]})
            statuses[scope] = resp.status_code, resp.json()["detail"] if resp.status_code == 403 else None
        needed = next(s for s in Scope if statuses[s][0] != 403)  # an admin key is never refused
        floor = next((s for prefix, s in FLOOR.items() if path.startswith(prefix)), None)
        assert floor is not None, f"{method} {path}: add its prefix to FLOOR"
        assert needed.includes(floor), f"{method} {path} lets a {needed} key in, less than {floor}"
        for scope in Scope:
            if scope.includes(needed):
                assert statuses[scope][0] not in (401, 403), (method, path, scope, statuses)
            else:
                detail = f"this API key lacks the '{needed.value}' scope, which this route needs"
                assert statuses[scope] == (403, detail), (method, path, scope)
                refused += 1
    assert refused >= 6


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/crawls", {"brand": "krk", "start_urls": ["https://www.krkmusic.com/"]}),
        ("DELETE", "/v1/crawls/abc", None),
        ("GET", "/v1/system/status", None),
    ],
)
async def test_an_ask_key_cannot_crawl_or_administer(
    gateway: httpx.AsyncClient, method: str, path: str, body: dict | None
) -> None:
    resp = await gateway.request(method, path, json=body, headers={"X-API-Key": KEYS[Scope.ASK]})
    assert resp.status_code == 403


async def test_hashed_keys_are_accepted_and_scopes_include_the_lower_ones(gateway: httpx.AsyncClient) -> None:
    # Reaching the route: with no rag-svc and no indexer-svc running, 503 says the key got through.
    for scope in Scope:
        resp = await gateway.post("/v1/ask", json={"question": "woofer size?"}, headers={"X-API-Key": KEYS[scope]})
        assert resp.status_code == 503, (scope, resp.text)
    for scope in (Scope.CRAWL, Scope.ADMIN):
        resp = await gateway.get("/v1/crawls/abc", headers={"X-API-Key": KEYS[scope]})
        assert resp.status_code == 404, (scope, resp.text)


def test_the_running_config_holds_no_plaintext_key(app) -> None:  # type: ignore[no-untyped-def]
    dumped = app.state.settings.model_dump_json()
    for key in [*KEYS.values(), LIMITED]:
        assert key not in dumped and digest(key) in dumped
        assert key not in repr(vars(app.state.keys))


def test_plaintext_keys_are_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        GatewaySettings(api_keys=["a-plaintext-key-0123456789"], environment="production")
    dev = GatewaySettings(api_keys=["a-plaintext-key-0123456789"], environment="development")
    (entry,) = dev.key_entries
    assert entry.sha256 == digest("a-plaintext-key-0123456789") and entry.allows(Scope.ADMIN)
    with pytest.raises(ValueError, match="16 characters"):
        GatewaySettings(api_keys=["short"], environment="development")
    with pytest.raises(ValueError, match="sha256"):
        GatewaySettings(api_keys=[{"name": "x", "sha256": "not-hex", "scopes": ["ask"]}])
    with pytest.raises(ValueError, match="scopes"):
        GatewaySettings(api_keys=[{"name": "x", "sha256": digest("k" * 20), "scopes": ["root"]}])


async def test_rate_limit_is_429_with_retry_after_per_key_and_health_is_exempt(gateway: httpx.AsyncClient) -> None:
    limited = {"X-API-Key": LIMITED}
    codes = [(await gateway.get("/v1/crawls/abc", headers=limited)).status_code for _ in range(3)]
    assert codes == [404, 404, 404]  # the burst
    resp = await gateway.get("/v1/crawls/abc", headers=limited)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"  # one token every 2 s (0.5/s)
    assert "limited" in resp.json()["detail"]
    # Other keys have buckets of their own; health and metrics need no key and are never limited.
    assert (await gateway.get("/v1/crawls/abc", headers={"X-API-Key": KEYS[Scope.ADMIN]})).status_code == 404
    for _ in range(5):
        assert (await gateway.get("/healthz")).status_code == 200
        assert (await gateway.get("/readyz")).status_code == 200
        assert (await gateway.get("/metrics/")).status_code == 200


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=2, stamp=100.0)
    assert [bucket.take(100.0), bucket.take(100.0)] == [0, 0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.5) == 0  # one token back after 1/rate
    assert bucket.take(110.0) == 0 and bucket.take(110.0) == 0 and bucket.take(110.0) > 0  # never above burst


async def test_oversized_body_is_413_before_it_is_read(gateway: httpx.AsyncClient) -> None:
    big = {"question": "x" * 5000}
    for headers in ({}, {"X-API-Key": KEYS[Scope.ADMIN]}):
        resp = await gateway.post("/v1/ask", json=big, headers=headers)
        assert resp.status_code == 413
        assert resp.json()["detail"] == "request body too large: the limit is 4096 bytes"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    headers = {"X-API-Key": KEYS[Scope.ADMIN], "Content-Type": "application/json"}
    resp = await gateway.post("/v1/ask", content=chunks(), headers=headers)
    assert resp.status_code == 413 and "4096 bytes" in resp.json()["detail"]


CRAWL = {"brand": "krk", "start_urls": ["https://www.krkmusic.com/"]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/ask", {"question": "x" * 2001}, "question"),
        ("/v1/ask", {"question": "ok?", "top_k": 21}, "top_k"),
        ("/v1/ask", {"question": "ok?", "model": "gpt"}, "model"),
        ("/v1/crawls", {**CRAWL, "start_urls": [f"https://krk.test/{i}" for i in range(21)]}, "start_urls"),
        ("/v1/crawls", {**CRAWL, "allowed_domains": ["a" * 300]}, "allowed_domains"),
        ("/v1/crawls", {**CRAWL, "allowed_domains": ["not a host"]}, "allowed_domains"),
        ("/v1/crawls", {**CRAWL, "exclude": ["x" * 501]}, "exclude"),
        ("/v1/crawls", {**CRAWL, "priority": "urgent"}, "priority"),
    ],
)
async def test_field_limits_are_422_naming_the_field(
    gateway: httpx.AsyncClient, path: str, body: dict, field: str
) -> None:
    resp = await gateway.post(path, json=body, headers={"X-API-Key": KEYS[Scope.ADMIN]})
    assert resp.status_code == 422, resp.text
    assert any(field in map(str, err["loc"]) for err in resp.json()["detail"]), resp.json()


async def test_a_non_object_body_is_422_not_500(gateway: httpx.AsyncClient) -> None:
    for body in ([], "text", 3, None):
        resp = await gateway.post("/v1/crawls", json=body, headers={"X-API-Key": KEYS[Scope.ADMIN]})
        assert resp.status_code == 422, (body, resp.text)


def test_keys_new_prints_a_key_then_an_entry_holding_only_its_hash() -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "--scopes", "ask", "--name", "sales", "--burst", "5"])
    assert result.exit_code == 0, result.output
    key, entry_json = result.stdout.splitlines()
    assert key.startswith("sr_") and len(key) > 40 and key not in entry_json
    settings = GatewaySettings(api_keys=[ApiKeyEntry.model_validate_json(entry_json)])
    entry = KeyRing(settings).find(key)
    assert entry is not None and entry.name == "sales" and entry.burst == 5
    assert entry.allows(Scope.ASK) and not entry.allows(Scope.CRAWL)
    assert CliRunner().invoke(cli, ["keys", "new", "--scopes", "root"]).exit_code != 0
