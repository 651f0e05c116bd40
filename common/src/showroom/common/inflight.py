"""Pages in flight per crawl, without drift (and at most FLUSH_S old): each scraper process owns one key per crawl.

A single writer per key needs no compare-and-set, and a process that dies
simply stops refreshing its keys: readers ignore entries older than
``STALE_AFTER_S``, so a killed scraper's pages stop counting as in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from nats.aio.client import Client
from nats.js.kv import KeyValue

from showroom.common.kvmirror import KvMirror

STALE_AFTER_S = 30.0
REFRESH_S = 10.0
FLUSH_S = 0.5
"""Counts are written at most this often: a per-page write would double the bus traffic of a fetch."""


class InflightCounter:
    def __init__(self, kv: KeyValue, instance: str | None = None) -> None:
        self.kv = kv
        self.instance = instance or uuid.uuid4().hex[:12]
        self._counts: dict[str, int] = {}
        self._peaks: dict[str, int] = {}
        """The most in flight since the last write: a count read every FLUSH_S misses short fetches."""
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="inflight-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def begin(self, crawl_id: str) -> None:
        n = self._counts[crawl_id] = self._counts.get(crawl_id, 0) + 1
        self._peaks[crawl_id] = max(self._peaks.get(crawl_id, 0), n)
        self._dirty.add(crawl_id)

    async def end(self, crawl_id: str) -> None:
        self._counts[crawl_id] = max(0, self._counts.get(crawl_id, 0) - 1)
        self._dirty.add(crawl_id)

    async def _write(self, crawl_id: str) -> None:
        n = self._counts.get(crawl_id, 0)
        peak, self._peaks[crawl_id] = max(self._peaks.get(crawl_id, 0), n), n
        value = json.dumps({"n": n, "peak": peak, "at": time.time()}).encode()
        with contextlib.suppress(Exception):  # a missed update is corrected by the next one or the refresh
            await self.kv.put(f"{crawl_id}.{self.instance}", value)

    async def _refresh_forever(self) -> None:
        """Write changed counts every FLUSH_S, and all live ones every REFRESH_S (the heartbeat)."""
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_S)
            due = set(self._dirty)
            if time.monotonic() - last_refresh >= REFRESH_S:
                due |= set(self._counts)
                last_refresh = time.monotonic()
            self._dirty.clear()
            for crawl_id in due:
                await self._write(crawl_id)
                if self._counts.get(crawl_id) == 0:
                    del self._counts[crawl_id]
                    self._peaks.pop(crawl_id, None)


def inflight_total(entries: dict[str, bytes], crawl_id: str, now: float | None = None) -> int:
    """Pages of ``crawl_id`` being fetched right now, over all live scraper processes.

    ``entries`` are the bucket's keys and values (a :class:`KvMirror`'s, or any subset holding
    the crawl's keys); entries not refreshed for ``STALE_AFTER_S`` belong to dead processes.
    """
    now = time.time() if now is None else now
    total = 0
    for key, raw in entries.items():
        if not key.startswith(f"{crawl_id}."):
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            value = json.loads(raw or b"{}")
            if now - float(value.get("at", 0)) < STALE_AFTER_S:
                total += int(value.get("n", 0))
    return total


class InflightTotals:
    """:func:`inflight_total` for readers that ask often (the gateway's status route under polling clients).

    The bucket is mirrored in memory by one watcher (:class:`KvMirror`), so a lookup costs no
    bus round trip.  Listing a crawl's keys per lookup instead created a JetStream consumer each
    time, which the server kept for five minutes: hundreds of them under polling clients, each
    one slowing every write to the bucket.
    """

    def __init__(self, kv: KeyValue, nc: Client | None = None) -> None:
        self.mirror = KvMirror(kv, nc=nc, name="inflight")

    async def start(self) -> None:
        await self.mirror.start()

    async def stop(self) -> None:
        await self.mirror.stop()

    def total(self, crawl_id: str) -> int:
        return inflight_total(self.mirror.values, crawl_id)
