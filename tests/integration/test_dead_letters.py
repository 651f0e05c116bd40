"""The dead-letter guard every JetStream handler wears (``common.bus.dead_letters``), on a real nats-server.

A FastStream subscriber with the production settings (NACK on error, ``max_deliver``) is fed good
messages, permanent failures, transient ones (failing for good, and failing once), an oversized body
and a re-drive meant for another service; each outcome is read back from the DLQ stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from showroom.common.bus import REDRIVE_FOR_HEADER, dead_letters, decode
from showroom.common.errors import PermanentError
from showroom.common.events import DeadLetter, FetchTask, new_id
from showroom.common.topology import Streams, ensure_topology

MAX_DELIVER = 3
MAX_BYTES = 4096


async def letters(nc: Client, service: str) -> list[DeadLetter]:
    js = nc.jetstream()
    found, seq = [], 1
    while True:
        try:
            raw = await js.get_msg(Streams.DLQ.name, seq=seq, subject=f"dlq.{service}", next=True)
        except NotFoundError:
            return found
        found.append(DeadLetter.model_validate_json(raw.data or b""))
        seq = (raw.seq or seq) + 1


@pytest.fixture
async def guarded(nats_url: str, nc: Client) -> AsyncIterator[tuple[str, str, dict[str, list[str]]]]:
    """A stream ``GUARD_<id>`` on ``guard.<id>.*``, consumed by a guarded handler; returns (service, subject prefix,
    what the handler saw)."""
    run = new_id()[:8]
    service, prefix, stream = f"guard-{run}", f"guard.{run}", f"GUARD_{run}"
    js = nc.jetstream()
    await ensure_topology(js)
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{prefix}.*"]))
    seen: dict[str, list[str]] = {"processed": [], "attempts": []}
    broker = NatsBroker(nats_url)

    @broker.subscriber(
        f"{prefix}.*",
        stream=JStream(stream, declare=False),
        durable=f"guard-{run}",
        pull_sub=PullSub(batch_size=4, timeout=1),
        config=ConsumerConfig(max_deliver=MAX_DELIVER, ack_wait=30),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    @dead_letters(broker, service, max_deliver=MAX_DELIVER, max_bytes=MAX_BYTES)
    async def handle(msg: NatsMessage) -> None:
        task = decode(msg, FetchTask)
        seen["attempts"].append(task.url)
        if task.url.endswith("/permanent"):
            raise PermanentError("this page breaks a rule")
        if task.url.endswith("/always-fails"):
            raise ConnectionError("store unreachable")
        if task.url.endswith("/fails-once") and seen["attempts"].count(task.url) == 1:
            raise ConnectionError("blip")
        seen["processed"].append(task.url)

    await broker.start()
    yield service, prefix, seen
    await broker.stop()
    await js.delete_stream(stream)


def _task(url: str) -> bytes:
    return FetchTask(crawl_id="c", brand="b", url=url, depth=0).model_dump_json().encode()


async def test_each_failure_ends_in_the_dlq_with_its_reason_and_good_messages_are_processed(
    guarded: tuple[str, str, dict[str, list[str]]], nc: Client
) -> None:
    service, prefix, seen = guarded
    js = nc.jetstream()
    subject = f"{prefix}.x"
    await js.publish(subject, _task("https://a.example/permanent"))
    await js.publish(subject, b'{"crawl_id": "c", "url": 42')  # truncated JSON
    await js.publish(subject, _task("https://a.example/always-fails"))
    await js.publish(subject, b"x" * (MAX_BYTES + 1))
    await js.publish(subject, _task("https://a.example/fails-once"))
    await js.publish(subject, _task("https://a.example/other"), headers={REDRIVE_FOR_HEADER: "someone-else"})
    await js.publish(subject, _task("https://a.example/good"))

    async def settled() -> list[DeadLetter]:
        found = await letters(nc, service)
        return found if len(found) == 4 and len(seen["processed"]) == 2 else []

    async with asyncio.timeout(20):
        while not (found := await settled()):
            await asyncio.sleep(0.05)

    by_reason = {letter.reason.split(":")[0]: letter for letter in found}
    assert set(by_reason) == {"this page breaks a rule", "invalid FetchTask", "gave up after 3 deliveries", "oversized"}
    assert by_reason["this page breaks a rule"].deliveries == 1  # permanent: at once, no retries
    assert "Invalid JSON" in by_reason["invalid FetchTask"].reason
    gave_up = by_reason["gave up after 3 deliveries"]
    assert gave_up.deliveries == MAX_DELIVER and "ConnectionError: store unreachable" in gave_up.reason
    assert seen["attempts"].count("https://a.example/always-fails") == MAX_DELIVER
    assert by_reason["oversized"].reason == f"oversized: {MAX_BYTES + 1} bytes (this service reads up to {MAX_BYTES})"
    for letter in found:  # everything needed to re-drive it
        assert letter.subject == subject and letter.stream == f"GUARD_{prefix.split('.')[1]}" and letter.stream_seq
    assert json.loads(by_reason["this page breaks a rule"].payload)["url"] == "https://a.example/permanent"
    # A transient failure that clears is retried, not dead-lettered; a re-drive for another service is skipped.
    assert sorted(seen["processed"]) == ["https://a.example/fails-once", "https://a.example/good"]
    assert "https://a.example/other" not in seen["attempts"]
