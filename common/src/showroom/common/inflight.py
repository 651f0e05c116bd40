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

from nats.js.kv import KeyValue

STALE_AFTER_S = 30.0
REFRESH_S = 10.0
FLUSH_S = 0.5
"""Counts are written at most this often: a per-page write would double the bus traffic of a fetch."""


class InflightCounter:
    def __init__(self, kv: KeyValue, instance: str | None = None) -> None:
        self.kv = kv
        self.instance = instance or uuid.uuid4().hex[:12]
        self._counts: dict[str, int] = {}
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
        self._counts[crawl_id] = self._counts.get(crawl_id, 0) + 1
        self._dirty.add(crawl_id)

    async def end(self, crawl_id: str) -> None:
        self._counts[crawl_id] = max(0, self._counts.get(crawl_id, 0) - 1)
        self._dirty.add(crawl_id)

    async def _write(self, crawl_id: str) -> None:
        value = json.dumps({"n": self._counts.get(crawl_id, 0), "at": time.time()}).encode()
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


async def inflight_total(kv: KeyValue, crawl_id: str) -> int:
    """Pages of ``crawl_id`` being fetched right now, over all live scraper processes."""
    total = 0
    now = time.time()
    try:
        keys = await kv.keys(filters=[f"{crawl_id}."])
    except Exception:  # nats-py raises NoKeysError on an empty bucket
        return 0
    for key in keys:
        if not key.startswith(f"{crawl_id}."):
            continue
        with contextlib.suppress(Exception):
            entry = await kv.get(key)
            value = json.loads(entry.value or b"{}")
            if now - float(value.get("at", 0)) < STALE_AFTER_S:
                total += int(value.get("n", 0))
    return total


class InflightTotals:
    """:func:`inflight_total` for readers that ask often (the gateway's status route under polling clients).

    Each lookup lists the crawl's keys (a short-lived JetStream consumer) and reads each one: a
    few milliseconds of bus round trips, which under many pollers dominated ``GET /v1/crawls/{id}``.
    The counts themselves are written at most every ``FLUSH_S``, so a total up to ``max_age_s``
    old says nothing staler; concurrent callers for one crawl share a single lookup.
    """

    def __init__(self, kv: KeyValue, max_age_s: float = FLUSH_S) -> None:
        self.kv = kv
        self.max_age_s = max_age_s
        self._cached: dict[str, tuple[float, asyncio.Task[int]]] = {}

    async def total(self, crawl_id: str) -> int:
        now = time.monotonic()
        hit = self._cached.get(crawl_id)
        if hit is None or now - hit[0] > self.max_age_s or (hit[1].done() and hit[1].exception()):
            if len(self._cached) > 1024:  # many crawls polled once: forget the stale ones
                self._cached = {k: v for k, v in self._cached.items() if now - v[0] <= self.max_age_s}
            hit = self._cached[crawl_id] = (now, asyncio.ensure_future(inflight_total(self.kv, crawl_id)))
        return await asyncio.shield(hit[1])
