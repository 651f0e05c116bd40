"""Helpers every service uses to talk to JetStream: publishing events and KV read-modify-write."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from showroom.common.events import Event
from showroom.common.telemetry import trace_id_var

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

TRACE_HEADER = "Showroom-Trace-Id"
MSG_ID_HEADER = "Nats-Msg-Id"


def make_broker(servers: list[str], name: str) -> NatsBroker:
    """A broker that keeps reconnecting (with backoff) instead of giving up on a restarting server."""
    return NatsBroker(
        servers,
        name=name,
        # Through the root logger, so FastStream's lines are JSON with trace ids like ours.
        logger=logging.getLogger(f"faststream.{name}"),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
    )


async def publish_event(
    broker: NatsBroker,
    event: Event,
    subject: str,
    *,
    stream: str,
    msg_id: str | None = None,
) -> None:
    """Publish to JetStream and wait for the store's ack.

    ``msg_id`` makes the publish idempotent within the stream's duplicate
    window: a retried publish of the same logical event is stored once.
    """
    headers = {TRACE_HEADER: event.trace_id}
    if msg_id:
        headers[MSG_ID_HEADER] = msg_id
    await broker.publish(event, subject, stream=stream, headers=headers, timeout=10)


def bind_trace(event: Event) -> None:
    trace_id_var.set(event.trace_id)


async def kv_get(kv: KeyValue, key: str, model: type[M]) -> tuple[M | None, int]:
    """The value at ``key`` and its revision (``0`` when absent)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    if entry.value is None:
        return None, 0
    return model.model_validate_json(entry.value), entry.revision or 0


async def kv_update(
    kv: KeyValue,
    key: str,
    model: type[M],
    change: Callable[[M | None], M | None] | Callable[[M | None], Awaitable[M | None]],
    *,
    attempts: int = 50,
) -> M | None:
    """Optimistic read-modify-write: apply ``change`` and write with compare-and-set.

    ``change`` receives the current value (or ``None``) and returns the new
    value, or ``None`` to leave the key untouched.  On a concurrent write it
    runs again on the fresh value, so it must be a pure function of its input.
    Returns what was written (or ``None``).
    """
    for attempt in range(attempts):
        current, revision = await kv_get(kv, key, model)
        new = change(current)
        if asyncio.iscoroutine(new):
            new = await new
        if new is None:
            return None
        payload = new.model_dump_json().encode()
        try:
            if revision == 0:
                await kv.create(key, payload)
            else:
                await kv.update(key, payload, last=revision)
            return new
        except KeyWrongLastSequenceError:
            # Someone else wrote first; back off a little more each time.
            await asyncio.sleep(min(0.001 * 2**attempt, 0.05))
    raise RuntimeError(f"kv_update({key}) lost the race {attempts} times")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
