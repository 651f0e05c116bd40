"""Per-host limits hold across scraper processes: two gates on one KV bucket stand in for two scrapers."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.client import Client

from showroom.common.topology import ensure_topology
from showroom.scraper.politeness import HostBusy, HostGate
from tests.conftest import CountingKv


@pytest.fixture
async def hosts_kv(nc: Client):  # type: ignore[no-untyped-def]
    js = nc.jetstream()
    await ensure_topology(js)
    return await js.key_value("hosts")


async def test_concurrency_limit_holds_across_scrapers(hosts_kv) -> None:  # type: ignore[no-untyped-def]
    a, b = HostGate(hosts_kv), HostGate(hosts_kv)
    host = f"shop-{time.time_ns()}.example"
    first = await a.acquire(host, concurrency=2, delay_s=0)
    await b.acquire(host, concurrency=2, delay_s=0)
    with pytest.raises(HostBusy) as busy:
        await a.acquire(host, concurrency=2, delay_s=0)
    assert 0 < busy.value.wait <= 0.5
    await a.release(host, first)
    await b.acquire(host, concurrency=2, delay_s=0)  # the freed slot is usable by the other scraper


async def test_min_delay_between_fetch_starts(hosts_kv) -> None:  # type: ignore[no-untyped-def]
    a, b = HostGate(hosts_kv), HostGate(hosts_kv)
    host = f"shop-{time.time_ns()}.example"
    lease = await a.acquire(host, concurrency=8, delay_s=2.0)
    await a.release(host, lease)
    with pytest.raises(HostBusy) as busy:
        await b.acquire(host, concurrency=8, delay_s=2.0)
    assert 1.5 < busy.value.wait <= 2.0


async def test_a_dead_scrapers_lease_expires(hosts_kv) -> None:  # type: ignore[no-untyped-def]
    host = f"shop-{time.time_ns()}.example"
    await HostGate(hosts_kv, lease_ttl_s=0.2).acquire(host, concurrency=1, delay_s=0)  # never released
    with pytest.raises(HostBusy):
        await HostGate(hosts_kv).acquire(host, concurrency=1, delay_s=0)
    deadline = time.monotonic() + 3
    while True:  # the lease's own expiry is the event here; nothing is published when it lapses
        try:
            await HostGate(hosts_kv).acquire(host, concurrency=1, delay_s=0)
            break
        except HostBusy as busy:
            assert time.monotonic() < deadline, "lease never expired"
            await asyncio.sleep(min(busy.wait, 0.1))


async def test_a_scraper_alone_on_a_host_writes_without_reading(hosts_kv) -> None:  # type: ignore[no-untyped-def]
    counting = CountingKv(hosts_kv)
    gate = HostGate(counting)  # type: ignore[arg-type]
    host = f"shop-{time.time_ns()}.example"
    for _ in range(5):
        await gate.release(host, await gate.acquire(host, concurrency=2, delay_s=0))
    assert counting.reads == 1  # the first acquire reads the host; every later step uses its own last write
    leases = await asyncio.gather(*(gate.acquire(host, concurrency=4, delay_s=0) for _ in range(4)))
    assert len(set(leases)) == 4 and counting.reads == 1  # concurrent fetches take turns, not races


async def test_a_remembered_full_host_is_read_again_before_saying_busy(hosts_kv) -> None:  # type: ignore[no-untyped-def]
    a, b = HostGate(hosts_kv), HostGate(hosts_kv)
    host = f"shop-{time.time_ns()}.example"
    await a.acquire(host, concurrency=2, delay_s=0)
    theirs = await b.acquire(host, concurrency=2, delay_s=0)
    with pytest.raises(HostBusy):
        await a.acquire(host, concurrency=2, delay_s=0)  # a now remembers the host as full
    await b.release(host, theirs)
    await a.acquire(host, concurrency=2, delay_s=0)  # not busy: a re-reads rather than trusting its memory
