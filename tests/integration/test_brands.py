"""The brand registry and its scheduler against a real nats-server: the registry file, /v1/brands,
crawl-now, and schedulers in two gateway replicas racing for the same due brands.

No scraper runs here: a test finishes a crawl by writing its final status to the ``crawls`` bucket,
which is all the registry reads.  Every test uses brands of its own (the server is shared) and
deletes them, so schedulers in later tests find nothing of theirs due.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from typer.testing import CliRunner

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.main import app as cli
from showroom.cli.main import crawl_registered
from showroom.cli.stack import DEMO_REGISTRY, Stack, StackConfig, free_port
from showroom.common.apikeys import ApiKeyEntry
from showroom.common.brands import load_registry
from showroom.common.bus import kv_update
from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlStatus
from showroom.gateway import brands as brands_module
from showroom.gateway.app import create_app
from showroom.gateway.settings import GatewaySettings
from tests.conftest import wait_for

ADMIN = "brands-admin-key-0123456789"
CRAWLER = "brands-crawl-key-0123456789"
ASKER = "brands-ask-key-01234567890"
UNLIMITED = {"rate_per_s": 1e4, "burst": 10_000}


def settings(nats_url: str, **kw: Any) -> GatewaySettings:
    keys = [
        ApiKeyEntry.for_key(ADMIN, ["admin"], name="admin", **UNLIMITED),
        ApiKeyEntry.for_key(CRAWLER, ["crawl"], name="crawler", **UNLIMITED),
        ApiKeyEntry.for_key(ASKER, ["ask"], name="asker", **UNLIMITED),
    ]
    return GatewaySettings(nats_url=nats_url, api_keys=keys, **{"scheduler_enabled": False, **kw})


@contextlib.asynccontextmanager
async def gateway(config: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield app, client


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def definition(**kw: Any) -> dict[str, Any]:
    return {"name": "Test Brand", "start_urls": ["http://127.0.0.1:9/"], **kw}


@pytest.fixture
def slugs() -> Callable[[], str]:
    return lambda: f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(settings(nats_url)) as (_, client):
        yield client


@pytest.fixture
async def cleanup(nc: Client) -> AsyncIterator[list[str]]:
    """Brands to delete after the test, so no later scheduler finds them due."""
    made: list[str] = []
    yield made
    kv = await nc.jetstream().key_value("brands")
    for slug in made:
        with contextlib.suppress(Exception):
            await kv.delete(slug)


class Requested:
    """``crawl.requested.<brand>`` events as they are stored on the CRAWLS stream, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def on_msg(self, msg: Msg) -> None:
        async with self._arrived:
            self.events.append(json.loads(msg.data))
            self._arrived.notify_all()

    async def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.events) >= count)
        return self.events[:count]


@contextlib.asynccontextmanager
async def requested(nc: Client, *brands: str) -> AsyncIterator[Requested]:
    seen = Requested()
    js = nc.jetstream()
    subs = [
        await js.subscribe(f"crawl.requested.{b}", cb=seen.on_msg, ordered_consumer=True, deliver_policy="new")
        for b in brands
    ]
    try:
        yield seen
    finally:
        for sub in subs:
            await sub.unsubscribe()


async def finish(nc: Client, crawl_id: str, final: CrawlStatus = CrawlStatus.COMPLETED) -> None:
    """What the crawl tracker does when a crawl ends, as far as the registry can tell."""
    kv = await nc.jetstream().key_value("crawls")

    def done(current: CrawlState | None) -> CrawlState | None:
        assert current is not None, f"no record for crawl {crawl_id}"
        return current.model_copy(update={"status": final})

    await kv_update(kv, crawl_id, CrawlState, done)


# -- the registry file --------------------------------------------------------------------------


async def test_registry_file_is_applied_at_start_and_api_edits_last_until_it_changes(
    nats_url: str, nc: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slugs: Callable[[], str],
    cleanup: list[str],
) -> None:  # fmt: skip
    slug = slugs()
    cleanup.append(slug)
    monkeypatch.setenv("TEST_SITE", "http://127.0.0.1:9")
    registry = tmp_path / "brands.toml"

    def write(max_pages: int) -> None:
        registry.write_text(
            textwrap.dedent(f"""
            [brands.{slug}]
            name = "File Brand"
            start_urls = ["${{TEST_SITE}}/{slug}/"]
            include = ["^${{TEST_SITE}}/{slug}/.*$"]
            max_pages = {max_pages}
            recrawl_interval = "PT6H"
        """)
        )

    write(max_pages=50)
    async with gateway(settings(nats_url, brands_file=registry)) as (_, client):
        entry = (await client.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()
        assert entry["name"] == "File Brand"
        assert entry["start_urls"] == [f"http://127.0.0.1:9/{slug}/"]
        assert entry["include"] == [f"^http://127.0.0.1:9/{slug}/.*$"]  # `$` anchors untouched
        assert entry["recrawl_interval"] == "PT6H" and entry["max_pages"] == 50
        assert entry["state"]["next_due_at"] is not None  # never crawled: due now
        # An edit through the API, and a crawl, so there is schedule state to keep.
        edited = {**{k: entry[k] for k in ("name", "start_urls", "recrawl_interval")}, "max_pages": 7}
        assert (await client.put(f"/v1/brands/{slug}", json=edited, headers=as_(ADMIN))).status_code == 200
        crawl_id = (await client.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))).json()["crawl_id"]

    # A restart with the same file keeps the API's edit.
    async with gateway(settings(nats_url, brands_file=registry)) as (_, client):
        entry = (await client.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()
        assert entry["max_pages"] == 7 and entry["defined_by"] == "api"

    # A changed file entry wins, and the schedule state survives it.
    write(max_pages=60)
    async with gateway(settings(nats_url, brands_file=registry)) as (_, client):
        entry = (await client.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()
        assert entry["max_pages"] == 60 and entry["defined_by"] == "file"
        assert entry["state"]["last_crawl_id"] == crawl_id
        assert entry["last_crawl"]["crawl_id"] == crawl_id and entry["last_crawl"]["status"] == "queued"


async def test_a_broken_registry_file_stops_the_gateway_naming_the_brand_and_field(
    nats_url: str, tmp_path: Path
) -> None:
    registry = tmp_path / "brands.toml"
    registry.write_text('[brands.oops]\nname = "Oops"\nstart_urls = ["${NOT_SET_ANYWHERE}/"]\n')
    app = create_app(settings(nats_url, brands_file=registry))
    with pytest.raises(ValueError, match=r"brands\.oops\.start_urls: \$\{NOT_SET_ANYWHERE\} is not set"):
        async with app.router.lifespan_context(app):
            pass


# -- /v1/brands -------------------------------------------------------------------------------------


async def test_define_read_list_and_delete_a_brand(
    api: httpx.AsyncClient, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    body = definition(max_pages=20, recrawl_interval=3600, host_delay_ms=1500, exclude=["/cart"])
    created = await api.put(f"/v1/brands/{slug}", json=body, headers=as_(ADMIN))
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["brand"] == slug and entry["recrawl_interval"] == "PT1H" and entry["host_delay_ms"] == 1500
    assert entry["enabled"] is True and entry["last_crawl"] is None

    replaced = await api.put(f"/v1/brands/{slug}", json={**body, "name": "Renamed"}, headers=as_(ADMIN))
    assert replaced.status_code == 200 and replaced.json()["name"] == "Renamed"
    assert (await api.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()["name"] == "Renamed"
    listed = (await api.get("/v1/brands", headers=as_(CRAWLER))).json()
    assert slug in [b["brand"] for b in listed]
    assert "_scheduler" not in [b["brand"] for b in listed]

    assert (await api.delete(f"/v1/brands/{slug}", headers=as_(ADMIN))).status_code == 204
    assert (await api.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).status_code == 404
    assert slug not in [b["brand"] for b in (await api.get("/v1/brands", headers=as_(CRAWLER))).json()]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/brands/Not_A_Slug", definition(), "brand"),
        ("/v1/brands/{slug}", definition(start_urls=[]), "start_urls"),
        ("/v1/brands/{slug}", definition(start_urls=["not a url"]), "start_urls"),
        ("/v1/brands/{slug}", definition(recrawl_interval=-5), "recrawl_interval"),
        ("/v1/brands/{slug}", definition(recrawl_interval="often"), "recrawl_interval"),
        ("/v1/brands/{slug}", definition(recrawl_interval="P2Y"), "recrawl_interval"),
        ("/v1/brands/{slug}", definition(include=["(unclosed"]), "include"),
        ("/v1/brands/{slug}", definition(host_concurrency=0), "host_concurrency"),
        ("/v1/brands/{slug}", definition(surprise=1), "surprise"),
        ("/v1/brands/{slug}", {"start_urls": ["http://127.0.0.1:9/"]}, "name"),
    ],
)
async def test_a_bad_definition_is_422_naming_the_field(
    api: httpx.AsyncClient, slugs: Callable[[], str], path: str, body: dict[str, Any], field: str
) -> None:
    slug = slugs()
    resp = await api.put(path.format(slug=slug), json=body, headers=as_(ADMIN))
    assert resp.status_code == 422
    assert any(field in map(str, err["loc"]) for err in resp.json()["detail"]), resp.json()
    assert (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/brands/{slug}"), ("DELETE", "/v1/brands/{slug}"), ("POST", "/v1/brands/{slug}/crawl")],
)
async def test_an_unknown_brand_is_404(
    api: httpx.AsyncClient, slugs: Callable[[], str], method: str, path: str
) -> None:
    resp = await api.request(method, path.format(slug=slugs()), headers=as_(ADMIN))
    assert resp.status_code == 404 and "no brand" in resp.json()["detail"]


async def test_editing_the_registry_needs_the_admin_scope(
    api: httpx.AsyncClient, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    assert (await api.put(f"/v1/brands/{slug}", json=definition(), headers=as_(ADMIN))).status_code == 201
    for key in (CRAWLER, ASKER):
        put = await api.put(f"/v1/brands/{slug}", json=definition(name="Hijacked"), headers=as_(key))
        assert put.status_code == 403, put.text
        assert (await api.delete(f"/v1/brands/{slug}", headers=as_(key))).status_code == 403
    put = await api.put(f"/v1/brands/{slug}", json=definition(name="Hijacked"), headers=as_(CRAWLER))
    assert "'admin'" in put.json()["detail"]
    # Reading and crawling need only `crawl`; an `ask` key gets neither.
    assert (await api.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()["name"] == "Test Brand"
    assert (await api.get("/v1/brands", headers=as_(ASKER))).status_code == 403
    assert (await api.post(f"/v1/brands/{slug}/crawl", headers=as_(ASKER))).status_code == 403
    assert (await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))).status_code == 202


async def test_crawl_now_queues_the_registry_spec_and_is_409_until_that_crawl_is_final(
    api: httpx.AsyncClient, nc: Client, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    body = definition(start_urls=["http://127.0.0.1:9/shop/"], max_pages=42, render="never", host_concurrency=3)
    await api.put(f"/v1/brands/{slug}", json=body, headers=as_(ADMIN))
    async with requested(nc, slug) as seen:
        resp = await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))
        assert resp.status_code == 202, resp.text
        first = resp.json()["crawl_id"]
        assert resp.json()["status_url"].endswith(f"/v1/crawls/{first}")
        [event] = await seen.wait(1)
        assert event["crawl_id"] == first
        spec = event["spec"]
        assert spec["brand"] == slug and spec["max_pages"] == 42 and spec["render"] == "never"
        assert spec["host_concurrency"] == 3 and spec["allowed_domains"] == ["127.0.0.1"]
        assert (await api.get(f"/v1/crawls/{first}", headers=as_(CRAWLER))).json()["status"] == "queued"

        busy = await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))
        assert busy.status_code == 409 and first in busy.json()["detail"]

        await finish(nc, first, CrawlStatus.FAILED)
        again = await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))
        assert again.status_code == 202
        second = again.json()["crawl_id"]
        assert [e["crawl_id"] for e in await seen.wait(2)] == [first, second]
    entry = (await api.get(f"/v1/brands/{slug}", headers=as_(CRAWLER))).json()
    assert entry["state"]["last_crawl_id"] == second and entry["state"]["last_trigger"] == "manual"
    assert entry["last_crawl"]["status"] == "queued"
    assert len(seen.events) == 2


async def test_a_crawl_that_cannot_be_queued_leaves_the_brand_free(
    api: httpx.AsyncClient, slugs: Callable[[], str], cleanup: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = slugs()
    cleanup.append(slug)
    await api.put(f"/v1/brands/{slug}", json=definition(recrawl_interval=3600), headers=as_(ADMIN))
    before = (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()["state"]

    async def bus_times_out(*args: object, **kw: object) -> None:  # the bus failing right after the reservation
        raise NatsTimeoutError

    with monkeypatch.context() as patch:
        patch.setattr(brands_module, "start_crawl", bus_times_out)
        assert (await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))).status_code == 504
    # Not reserved for a minute, nor pushed an interval away: due as before, and free to crawl now.
    assert (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()["state"] == before
    assert (await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))).status_code == 202


async def test_a_disabled_brand_is_not_crawled_on_request(
    api: httpx.AsyncClient, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    await api.put(f"/v1/brands/{slug}", json=definition(enabled=False, recrawl_interval=60), headers=as_(ADMIN))
    entry = (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()
    assert entry["state"]["next_due_at"] is None
    resp = await api.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER))
    assert resp.status_code == 409 and "disabled" in resp.json()["detail"]


async def test_concurrent_crawl_now_requests_start_one_crawl(
    nats_url: str, nc: Client, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    async with gateway(settings(nats_url)) as (_, one), gateway(settings(nats_url)) as (_, two):
        await one.put(f"/v1/brands/{slug}", json=definition(), headers=as_(ADMIN))
        async with requested(nc, slug) as seen:
            replies = await asyncio.gather(
                *(c.post(f"/v1/brands/{slug}/crawl", headers=as_(CRAWLER)) for c in (one, two) * 4)
            )
            codes = sorted(r.status_code for r in replies)
            assert codes == [202] + [409] * 7, codes
            [event] = await seen.wait(1)
            [accepted] = [r.json()["crawl_id"] for r in replies if r.status_code == 202]
            assert event["crawl_id"] == accepted


# -- the scheduler ----------------------------------------------------------------------------------


async def ticks_after(apps: list[FastAPI], n: int = 3) -> None:
    """Wait until every replica's scheduler has looked ``n`` more times."""
    targets = [(a.state.scheduler, a.state.scheduler.ticks + n) for a in apps]

    async def looked() -> bool:
        return all(s.ticks >= t for s, t in targets)

    await wait_for(looked, what="scheduler ticks")


async def test_two_schedulers_start_one_crawl_per_period_and_none_while_the_last_is_running(
    nats_url: str, nc: Client, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug = slugs()
    cleanup.append(slug)
    interval = 0.5
    replica = settings(nats_url, scheduler_enabled=True, scheduler_tick_s=0.01, scheduler_brand_delay_s=0)
    async with gateway(replica) as (app1, api), gateway(replica) as (app2, _), requested(nc, slug) as seen:
        await api.put(f"/v1/brands/{slug}", json=definition(recrawl_interval=interval), headers=as_(ADMIN))
        # Three periods in which each crawl ends at once: one start per period, never two.  While a
        # crawl runs nothing else can start, so the entry's last start is that crawl's reservation.
        starts: list[datetime] = []
        for n in range(1, 5):
            event = (await seen.wait(n))[-1]
            state = (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()["state"]
            assert state["last_crawl_id"] == event["crawl_id"]
            starts.append(datetime.fromisoformat(state["last_started_at"]))
            if n < 4:
                await finish(nc, event["crawl_id"])
        events = await seen.wait(4)
        assert len({e["crawl_id"] for e in events}) == 4
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(gap >= interval for gap in gaps), gaps

        # The fourth crawl runs on: well past its due time, both schedulers keep looking and start nothing.
        entry = (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()
        due = datetime.fromisoformat(entry["state"]["next_due_at"])

        async def overdue() -> bool:
            return datetime.now(due.tzinfo) > due

        await wait_for(overdue, what="the next due time")
        await ticks_after([app1, app2], n=5)
        assert len(seen.events) == 4

        # Once it ends, the overdue brand starts again (once).
        await finish(nc, events[-1]["crawl_id"])
        fifth = (await seen.wait(5))[-1]
        await ticks_after([app1, app2], n=5)
        assert len(seen.events) == 5
        entry = (await api.get(f"/v1/brands/{slug}", headers=as_(ADMIN))).json()
        assert entry["state"]["last_crawl_id"] == fifth["crawl_id"] and entry["state"]["last_trigger"] == "schedule"


async def test_scheduled_starts_keep_the_delay_between_brands_across_replicas(
    nats_url: str, nc: Client, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    brands = [slugs() for _ in range(3)]
    cleanup.extend(brands)
    delay = 0.4
    replica = settings(nats_url, scheduler_enabled=True, scheduler_tick_s=0.01, scheduler_brand_delay_s=delay)
    async with gateway(replica) as (_, api), gateway(replica), requested(nc, *brands) as seen:
        for slug in brands:
            await api.put(f"/v1/brands/{slug}", json=definition(recrawl_interval=3600), headers=as_(ADMIN))
        events = await seen.wait(3)
        assert sorted(e["spec"]["brand"] for e in events) == sorted(brands)  # each brand once
        # The slot is claimed just before the brand's reservation: allow for the moment in between.
        entries = [(await api.get(f"/v1/brands/{b}", headers=as_(ADMIN))).json()["state"] for b in brands]
        starts = sorted(datetime.fromisoformat(e["last_started_at"]) for e in entries)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(gap >= delay * 0.75 for gap in gaps), gaps


async def test_a_manual_only_brand_is_never_scheduled(
    nats_url: str, nc: Client, slugs: Callable[[], str], cleanup: list[str]
) -> None:
    slug, control = slugs(), slugs()
    cleanup.extend([slug, control])
    replica = settings(nats_url, scheduler_enabled=True, scheduler_tick_s=0.01, scheduler_brand_delay_s=0)
    async with gateway(replica) as (app, api), requested(nc, slug, control) as seen:
        await api.put(f"/v1/brands/{slug}", json=definition(), headers=as_(ADMIN))
        await api.put(f"/v1/brands/{control}", json=definition(recrawl_interval=3600), headers=as_(ADMIN))
        [event] = await seen.wait(1)
        assert event["spec"]["brand"] == control
        await ticks_after([app], n=5)
        assert [e["spec"]["brand"] for e in seen.events] == [control]


# -- the CLI, against a gateway process serving the demo registry --------------------------------------


@pytest.fixture
def demo_gateway(nats_url: str, tmp_path: Path, cleanup: list[str]) -> Iterator[str]:
    """A gateway process that loaded the demo's registry; its URL."""
    config = StackConfig.ephemeral(tmp_path, api_key=ADMIN)
    port = free_port()
    entry = ApiKeyEntry.for_key(ADMIN, ["admin"], name="admin", **UNLIMITED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOWROOM_")} | config.registry_env() | {
        "SHOWROOM_NATS_URL": nats_url, "SHOWROOM_HTTP_PORT": str(port), "SHOWROOM_API_KEYS": f"[{entry.config_json()}]",
        "SHOWROOM_BRANDS_FILE": str(DEMO_REGISTRY), "SHOWROOM_SCHEDULER_ENABLED": "false",
    }  # fmt: skip
    cleanup.extend(load_registry(DEMO_REGISTRY, config.registry_env()))
    log = open(tmp_path / "gateway.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "showroom.gateway"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_cli_lists_the_demo_registry_and_crawls_a_brand_now(demo_gateway: str) -> None:
    runner = CliRunner()
    env = {"SHOWROOM_URL": demo_gateway, "SHOWROOM_API_KEY": ADMIN, "COLUMNS": "200"}
    listed = runner.invoke(cli, ["brands"], env=env)
    assert listed.exit_code == 0, listed.output
    for slug, name in (("northwind", "Northwind Audio"), ("cobalt", "Cobalt Instruments"), ("portal", "Demo portal")):
        assert re.search(rf"{slug}\s+│\s+{name}\s+│\s+PT1H", listed.output), listed.output

    crawled = runner.invoke(cli, ["brands", "crawl", "portal", "--no-wait"], env=env)
    assert crawled.exit_code == 0, crawled.output
    crawl_id = re.search(r"crawl ([0-9a-f]{32}) queued", crawled.output)
    assert crawl_id, crawled.output
    again = runner.invoke(cli, ["brands", "crawl", "portal", "--no-wait"], env=env)
    assert again.exit_code == 1 and "HTTP 409" in again.output and crawl_id.group(1) in again.output
    assert crawl_id.group(1) in runner.invoke(cli, ["brands"], env=env).output


@pytest.mark.e2e
async def test_the_demo_stack_crawls_its_registry_on_schedule_and_on_request(tmp_path: Path) -> None:
    """What ``showroom up`` does: the scheduler starts the first due brand at once (the next wait for
    the delay between brands), the CLI crawls the others now and joins the one already running."""
    config = StackConfig.ephemeral(tmp_path, api_key=ADMIN, scheduler=True, embedder="hashing")
    async with (
        Stack(config),
        FinishedCrawls(config.nats_url) as finished,
        GatewayClient(config.gateway_url, config.api_key) as client,
    ):
        registered = await client.brands()
        assert sorted(b["brand"] for b in registered) == ["cobalt", "northwind", "portal"]
        crawls = {b["brand"]: await crawl_registered(client, b["brand"]) for b in registered}
        ends = {brand: await finished.wait(crawl_id, 300) for brand, crawl_id in crawls.items()}
        assert {brand: e["status"] for brand, e in ends.items()} == dict.fromkeys(crawls, "completed")
        assert ends["portal"]["counts"]["indexed"] == 1
        entries = {b["brand"]: b for b in await client.brands()}
    triggers = sorted(e["state"]["last_trigger"] for e in entries.values())
    assert triggers == ["manual", "manual", "schedule"], entries  # one scheduled start; 60 s before the next
    for brand, entry in entries.items():
        assert entry["last_crawl"]["crawl_id"] == crawls[brand] and entry["last_crawl"]["status"] == "completed"
        due = datetime.fromisoformat(entry["state"]["next_due_at"])
        assert due == datetime.fromisoformat(entry["state"]["last_started_at"]) + timedelta(hours=1)
