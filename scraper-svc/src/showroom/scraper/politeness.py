"""Per-host politeness that holds across every scraper process: at most N fetches in flight per host,
and at least D seconds between fetch starts on it.

The state of a host lives in one KV key (bucket ``hosts``): the leases in
flight (each with an expiry, so a scraper killed mid-fetch cannot hold a
host forever) and the earliest time the next fetch may start.  Taking a
lease is a compare-and-set, so two scrapers cannot both take the last slot.
A scraper that finds the host busy does not wait holding a worker: it hands
the task back to the frontier with a delay (see ``HostBusy``).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from showroom.common.topology import host_token
from showroom.scraper.errors import RetryLater


class HostBusy(RetryLater):
    """The host's limits are reached; retry the task after ``wait`` seconds."""

    def __init__(self, host: str, wait: float) -> None:
        super().__init__(wait, f"{host} busy")
        self.host = host


class HostState(BaseModel):
    leases: dict[str, float] = Field(default_factory=dict, description="lease id -> expiry (unix time)")
    next_start: float = 0.0


class HostGate:
    def __init__(self, kv: KeyValue, lease_ttl_s: float = 120.0) -> None:
        self.kv = kv
        self.lease_ttl_s = lease_ttl_s

    async def acquire(self, host: str, concurrency: int, delay_s: float) -> str:
        """Take a fetch lease on ``host`` or raise HostBusy with how long to wait."""
        key = host_token(host)
        for attempt in range(20):
            now = time.time()
            state, revision = await self._get(key)
            state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
            if len(state.leases) >= concurrency:
                soonest = min(state.leases.values()) - now
                raise HostBusy(host, max(0.2, min(soonest, max(delay_s, 0.5))))
            if now < state.next_start:
                raise HostBusy(host, state.next_start - now)
            lease = uuid.uuid4().hex[:12]
            state.leases[lease] = now + self.lease_ttl_s
            state.next_start = now + delay_s
            if await self._put(key, state, revision):
                return lease
            await asyncio.sleep(0.001 * (attempt + 1))
        raise HostBusy(host, 0.5)

    async def release(self, host: str, lease: str) -> None:
        key = host_token(host)
        for _ in range(20):
            state, revision = await self._get(key)
            if lease not in state.leases:
                return
            del state.leases[lease]
            if await self._put(key, state, revision):
                return

    async def _get(self, key: str) -> tuple[HostState, int]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return HostState(), 0
        return HostState.model_validate_json(entry.value or b"{}"), entry.revision or 0

    async def _put(self, key: str, state: HostState, revision: int) -> bool:
        try:
            if revision:
                await self.kv.update(key, state.model_dump_json().encode(), last=revision)
            else:
                await self.kv.create(key, state.model_dump_json().encode())
            return True
        except KeyWrongLastSequenceError:
            return False
