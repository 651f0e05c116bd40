"""Read-modify-write from a remembered revision (``kv_update(..., memory=...)``) on real JetStream KV."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.client import Client
from pydantic import BaseModel

from showroom.common.bus import KvMemory, kv_get, kv_update
from tests.conftest import CountingKv


class Tally(BaseModel):
    n: int = 0
    by: list[str] = []


@pytest.fixture
async def kv(nc: Client):  # type: ignore[no-untyped-def]
    js = nc.jetstream()
    return await js.create_key_value(bucket=f"memory_{time.time_ns()}", history=1)


def add(who: str):  # type: ignore[no-untyped-def]
    def change(t: Tally | None) -> Tally:
        t = t or Tally()
        t.n += 1
        t.by.append(who)
        return t

    return change


async def test_the_usual_writer_updates_without_reading(kv) -> None:  # type: ignore[no-untyped-def]
    counting, memory = CountingKv(kv), KvMemory()
    for _ in range(5):
        await kv_update(counting, "k", Tally, add("a"), memory=memory)  # type: ignore[arg-type]
    assert counting.reads == 1  # only the first, which had nothing remembered
    stored, _ = await kv_get(kv, "k", Tally)
    assert stored is not None and stored.n == 5


async def test_concurrent_updates_in_one_process_take_turns_without_reading(kv) -> None:  # type: ignore[no-untyped-def]
    counting, memory = CountingKv(kv), KvMemory()
    await kv_update(counting, "k", Tally, add("first"), memory=memory)
    # Two handlers of one process (the tracker's page and index events) update the key at once.
    await asyncio.gather(
        *(kv_update(counting, "k", Tally, add(f"w{i}"), memory=memory) for i in range(6))  # type: ignore[arg-type]
    )
    assert counting.reads == 1  # each started from the value the one before it wrote: no conflict, no read
    stored, _ = await kv_get(kv, "k", Tally)
    assert stored is not None and stored.n == 7 and sorted(stored.by[1:]) == [f"w{i}" for i in range(6)]


async def test_another_writer_in_between_is_read_not_overwritten(kv) -> None:  # type: ignore[no-untyped-def]
    memory = KvMemory()
    await kv_update(kv, "k", Tally, add("a"), memory=memory)
    await kv_update(kv, "k", Tally, add("b"))  # a second process: the remembered revision is now stale
    written = await kv_update(kv, "k", Tally, add("a"), memory=memory)
    assert written is not None and written.by == ["a", "b", "a"]
    stored, _ = await kv_get(kv, "k", Tally)
    assert stored == written


async def test_leaving_the_key_alone_is_decided_on_a_fresh_read(kv) -> None:  # type: ignore[no-untyped-def]
    memory = KvMemory()
    await kv_update(kv, "k", Tally, add("a"), memory=memory)  # remembered: n == 1
    await kv_update(kv, "k", Tally, add("b"))  # stored: n == 2

    def only_below_two(t: Tally | None) -> Tally | None:
        return None if t is None or t.n >= 2 else add("a")(t)

    assert await kv_update(kv, "k", Tally, only_below_two, memory=memory) is None  # memory said 1; the bucket 2
    stored, _ = await kv_get(kv, "k", Tally)
    assert stored is not None and stored.by == ["a", "b"]


def test_memory_is_bounded() -> None:
    memory = KvMemory(size=8)
    for i in range(100):
        memory.keep(f"k{i}", b"{}", i)
    assert len(memory._entries) <= 8 and memory.take("k99") == (b"{}", 99)
    for i in range(100):
        memory.turn(f"k{i}")
    assert len(memory._turns) <= 8
