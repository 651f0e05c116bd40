"""KvMirror against a real nats-server, and the in-flight counts the gateway's status route reads from one."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx
from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from showroom.common.apikeys import ApiKeyEntry
from showroom.common.bus import kv_update
from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlStatus, new_id
from showroom.common.inflight import STALE_AFTER_S, InflightCounter, inflight_total
from showroom.common.kvmirror import KvMirror
from showroom.common.topology import Buckets
from showroom.gateway.app import create_app
from showroom.gateway.settings import GatewaySettings
from tests.conftest import RestartableNats, wait_for

KEY = "test-key-0123456789abcdef"


async def test_mirror_holds_current_values_then_follows_puts_and_deletes(nc: Client) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket=f"mirror_{new_id()[:8]}", history=5))
    await kv.put("a", b"1")
    await kv.put("a", b"2")  # only the latest value counts
    await kv.put("b", b"x")
    await kv.put("gone", b"y")
    await kv.delete("gone")

    mirror = KvMirror(kv, name="test")
    await mirror.start()
    try:
        assert mirror.ready.is_set()
        assert mirror.values == {"a": b"2", "b": b"x"}

        await kv.put("c", b"3")
        await kv.delete("a")
        await kv.purge("b")

        async def caught_up() -> bool:
            return mirror.values == {"c": b"3"}

        await wait_for(caught_up, what="the mirror to see the put, the delete and the purge")
        assert mirror.get("c") == b"3" and mirror.get("a") is None
    finally:
        await mirror.stop()


async def test_mirror_of_an_empty_bucket_is_ready_and_resyncs_when_quiet(nc: Client) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket=f"mirror_{new_id()[:8]}"))
    mirror = KvMirror(kv, name="quiet", resync_after_s=0.3)
    await mirror.start()
    try:
        assert mirror.ready.is_set() and mirror.values == {}
        await kv.put("k", b"v")

        async def seen() -> bool:
            return mirror.get("k") == b"v"

        await wait_for(seen, what="the put")
        first = mirror.last_update

        # Quiet for longer than resync_after_s: the mirror starts a fresh watcher, which delivers
        # the current value again (a later last_update) and keeps it.
        async def resynced() -> bool:
            return mirror.last_update > first and mirror.get("k") == b"v"

        await wait_for(resynced, what="a resync from a fresh watcher")
    finally:
        await mirror.stop()


def test_inflight_total_sums_live_instances_of_one_crawl_only() -> None:
    now = time.time()

    def entry(n: int, age: float) -> bytes:
        return json.dumps({"n": n, "at": now - age}).encode()

    entries = {
        "c1.scraper-a": entry(3, 1),
        "c1.scraper-b": entry(2, 5),
        "c1.dead": entry(7, STALE_AFTER_S + 1),  # a killed process's count no longer counts
        "c10.scraper-a": entry(9, 1),  # another crawl whose id starts with c1
        "c1.garbled": b"not json",
    }
    assert inflight_total(entries, "c1", now) == 5
    assert inflight_total(entries, "c10", now) == 9
    assert inflight_total(entries, "c2", now) == 0


async def test_status_route_reports_pages_in_flight_from_the_mirror(nc: Client, nats_url: str) -> None:
    settings = GatewaySettings(nats_url=nats_url, api_keys=[ApiKeyEntry.for_key(KEY)])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            spec = {"brand": "krk", "start_urls": ["https://www.krkmusic.com/"], "max_pages": 10}
            crawl_id = (await client.post("/v1/crawls", json=spec, headers={"X-API-Key": KEY})).json()["crawl_id"]
            js = nc.jetstream()

            def running(state: CrawlState | None) -> CrawlState | None:
                assert state is not None
                state.status = CrawlStatus.RUNNING
                state.counts.discovered = 6
                return state

            await kv_update(await js.key_value(Buckets.CRAWLS.name), crawl_id, CrawlState, running)
            inflight = await js.key_value(Buckets.INFLIGHT.name)
            await inflight.put(f"{crawl_id}.scraper-a", json.dumps({"n": 2, "at": time.time()}).encode())

            async def counts() -> dict | None:
                body = (await client.get(f"/v1/crawls/{crawl_id}", headers={"X-API-Key": KEY})).json()
                return body["counts"] if body["counts"]["in_flight"] == 2 else None

            seen = await wait_for(counts, what="the in-flight count to reach the status route")
            assert seen["queued"] == 4 and seen["discovered"] == 6


async def test_mirror_follows_writes_made_after_nats_server_restarts(tmp_path: Path) -> None:
    # The server forgets the watcher's ephemeral consumer when it restarts, and nats-py does not notice;
    # the mirror must, long before its quiet-period backstop (60 s here).
    async with RestartableNats(tmp_path) as bus:
        kv = await bus.nc.jetstream().create_key_value(KeyValueConfig(bucket="restart"))
        await kv.put("before", b"1")
        mirror = KvMirror(kv, nc=bus.nc, resync_after_s=60, name="restart")
        await mirror.start()
        try:
            assert mirror.get("before") == b"1"
            await bus.restart()

            async def put_after() -> bool:
                with contextlib.suppress(Exception):  # JetStream may still be recovering its streams
                    await kv.put("after", b"2")
                    return True
                return False

            await wait_for(put_after, what="JetStream back after the restart")

            async def seen() -> bool:
                return mirror.get("after") == b"2"

            await wait_for(seen, timeout=10, what="the mirror to see a write made after the restart")
            assert mirror.get("before") == b"1"
        finally:
            await mirror.stop()


async def test_the_counter_writes_the_peak_since_its_last_write_not_only_the_count_now(nc: Client) -> None:
    # Fetches shorter than the flush period would otherwise never be seen in flight.
    inflight = await nc.jetstream().key_value(Buckets.INFLIGHT.name)
    counter = InflightCounter(inflight, instance="peaktest")
    crawl_id = new_id()
    for _ in range(3):
        await counter.begin(crawl_id)
    for _ in range(3):
        await counter.end(crawl_id)
    counter.start()
    try:

        async def written() -> dict | None:
            with contextlib.suppress(Exception):  # not written yet
                return json.loads((await inflight.get(f"{crawl_id}.peaktest")).value or b"{}")
            return None

        value = await wait_for(written, what="the counter's flush")
        assert value["n"] == 0 and value["peak"] == 3, value
    finally:
        await counter.stop()
