"""A live in-memory copy of a KV bucket, for readers that ask far more often than writers write.

A mirror is a hop behind the bucket: right for values that are approximate anyway (the gateway's
pages-in-flight counts), wrong where a reader may have heard of a newer value by other means (a
crawl's record after its ``crawl.finished`` event: the gateway reads that from KV).

A ``GET`` on a bucket is a bus round trip, and listing keys (``KeyValue.keys()``) creates a
JetStream consumer that the server keeps for minutes: under polling clients both cost more
than the answer is worth.  :class:`KvMirror` runs one watcher (an ordered push consumer
delivering the last value per key, then every update) and keeps the latest value of each key
in a dict, so a read is a dict lookup.

Freshness: an update reaches the mirror a bus hop after the write.  A watcher can die
silently (the server restarted and forgot the ephemeral consumer; nats-py does not notice), so
the mirror rebuilds itself from a fresh watcher when its connection has reconnected since the
watcher started (checked every second), and as a backstop when no update has arrived for
``resync_after_s``: a quiet bucket costs one short-lived consumer per period, a busy one nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import nats.errors
from nats.aio.client import Client
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

log = logging.getLogger(__name__)


class KvMirror:
    """The latest value of every key of ``kv``, kept current by a watcher; :meth:`start` it first."""

    def __init__(self, kv: KeyValue, *, nc: Client | None = None, resync_after_s: float = 15.0, name: str = "") -> None:
        self.kv = kv
        self.nc = nc
        """The connection ``kv`` uses, if known: a reconnect of it means a new watcher."""
        self.resync_after_s = resync_after_s
        self.name = name or "kv"
        self.values: dict[str, bytes] = {}
        self.ready = asyncio.Event()
        """Set once the first watcher has delivered every key's current value."""
        self.last_update = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait_s: float = 5.0) -> None:
        """Start watching; return once the current values are in (or after ``wait_s``, degraded)."""
        self._task = asyncio.create_task(self._run(), name=f"kv-mirror-{self.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), wait_s)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection, a deleted bucket: start over shortly
                log.warning("kv mirror %s: watcher failed (%s); starting a new one", self.name, exc)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        """One watcher's life: the current values (replacing what we held), then updates until quiet."""
        # Ephemeral consumers of watchers we give up on are removed by the server soon after.
        watcher = await self.kv.watchall(inactive_threshold=max(5.0, 2 * self.resync_after_s))
        fresh: dict[str, bytes] = {}
        loading = True
        reconnects = self._reconnects()
        quiet_since = time.monotonic()
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=min(1.0, self.resync_after_s))
                except nats.errors.TimeoutError:
                    if self._reconnects() != reconnects or time.monotonic() - quiet_since >= self.resync_after_s:
                        return  # a new connection, or quiet for a while: resync from a new watcher
                    continue
                quiet_since = self.last_update = time.monotonic()
                if entry is None:  # the initial values are all in
                    if loading:
                        self.values, loading = fresh, False
                        self.ready.set()
                    continue
                target = fresh if loading else self.values
                if entry.operation in (KV_DEL, KV_PURGE):
                    target.pop(entry.key, None)
                else:
                    target[entry.key] = entry.value or b""
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    def _reconnects(self) -> int:
        return int(self.nc.stats.get("reconnects", 0)) if self.nc is not None else 0
