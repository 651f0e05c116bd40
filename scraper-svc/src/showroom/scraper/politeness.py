"""Per-host politeness that holds across every scraper process: at most N fetches in flight per host,
and at least D seconds between fetch starts on it.

The state of a host lives in one KV key (bucket ``hosts``): the leases in
flight (each with an expiry, so a scraper killed mid-fetch cannot hold a
host forever) and the earliest time the next fetch may start.  Taking a
lease is a compare-and-set, so two scrapers cannot both take the last slot.
A scraper that finds the host busy does not wait holding a worker: it hands
the task back to the frontier with a delay (see ``HostBusy``).

Each process remembers the state and revision it last wrote or read per host
and takes its turns on a host one at a time, so a fetch usually costs two
writes (acquire, release) and no reads: the compare-and-set still checks
every write, and a write that finds a newer revision reads the host again.  A
host is only ever called busy on a fresh read, never on what was remembered.
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
        self._known: dict[str, tuple[HostState, int]] = {}
        """Host key -> its state and revision as this process last wrote or read them."""
        self._turns: dict[str, asyncio.Lock] = {}

    async def acquire(self, host: str, concurrency: int, delay_s: float) -> str:
        """Take a fetch lease on ``host`` or raise HostBusy with how long to wait."""
        key = host_token(host)
        async with self._turn(key):
            fresh = False
            for attempt in range(20):
                now = time.time()
                state, revision = await self._state(key, fresh)
                state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
                full = len(state.leases) >= concurrency
                if (full or now < state.next_start) and not fresh:
                    fresh = True  # what this process remembers may be out of date: ask the bucket
                    continue
                if full:
                    soonest = min(state.leases.values()) - now
                    raise HostBusy(host, max(0.2, min(soonest, max(delay_s, 0.5))))
                if now < state.next_start:
                    raise HostBusy(host, state.next_start - now)
                lease = uuid.uuid4().hex[:12]
                state.leases[lease] = now + self.lease_ttl_s
                state.next_start = now + delay_s
                if await self._put(key, state, revision):
                    return lease
                if fresh:  # another scraper wrote in between: back off before reading again
                    await asyncio.sleep(0.001 * (attempt + 1))
                fresh = True
            raise HostBusy(host, 0.5)

    async def release(self, host: str, lease: str) -> None:
        key = host_token(host)
        async with self._turn(key):
            fresh = False
            for _ in range(20):
                state, revision = await self._state(key, fresh)
                if lease not in state.leases:
                    if fresh:
                        return
                    fresh = True
                    continue
                del state.leases[lease]
                if await self._put(key, state, revision):
                    return
                fresh = True

    def _turn(self, key: str) -> asyncio.Lock:
        """This process's operations on one host go one at a time, so they never race each other."""
        lock = self._turns.get(key)
        if lock is None:
            if len(self._turns) > 10_000:
                self._turns = {k: v for k, v in self._turns.items() if v.locked()}
                self._known = {k: v for k, v in self._known.items() if k in self._turns}
            lock = self._turns[key] = asyncio.Lock()
        return lock

    async def _state(self, key: str, fresh: bool) -> tuple[HostState, int]:
        """The host's state and revision: remembered (taken out, so a failed write leaves nothing stale
        behind) unless ``fresh`` or unknown, else read from the bucket."""
        known = None if fresh else self._known.pop(key, None)
        if known is not None:
            return known
        self._known.pop(key, None)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return HostState(), 0
        state = HostState.model_validate_json(entry.value or b"{}")
        revision = entry.revision or 0
        self._known[key] = (state.model_copy(deep=True), revision)
        return state, revision

    async def _put(self, key: str, state: HostState, revision: int) -> bool:
        self._known.pop(key, None)
        value = state.model_dump_json().encode()
        try:
            if revision:
                written = await self.kv.update(key, value, last=revision)
            else:
                written = await self.kv.create(key, value)
        except KeyWrongLastSequenceError:
            return False
        self._known[key] = (state.model_copy(deep=True), written)
        return True
