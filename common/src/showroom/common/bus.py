"""Helpers every service uses to talk to JetStream: publishing events and KV read-modify-write."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker, NatsMessage
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from showroom.common.events import DeadLetter, Event
from showroom.common.telemetry import trace_id_var
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

TRACE_HEADER = "Showroom-Trace-Id"
MSG_ID_HEADER = "Nats-Msg-Id"


RECONNECT_WAIT_S = 0.5
"""Pause between reconnect attempts (nats-py adds up to 100 ms of jitter, so replicas do not stampede)."""


def make_broker(servers: list[str], name: str) -> NatsBroker:
    """A broker that keeps reconnecting (with backoff) instead of giving up on a restarting server.

    Losing and regaining the server is logged (``NATS connection lost`` / ``NATS connection
    restored``): an operator reading a service's log after a bus restart sees it happened and
    that the service came back on its own.
    """

    async def disconnected() -> None:
        log.warning("NATS connection lost (%s); reconnecting every %.1fs", name, RECONNECT_WAIT_S)

    async def reconnected() -> None:
        log.warning("NATS connection restored (%s)", name)

    async def error(exc: Exception) -> None:
        log.info("NATS client error (%s): %r", name, exc)

    return NatsBroker(
        servers,
        name=name,
        # Through the root logger, so FastStream's lines are JSON with trace ids like ours.
        logger=logging.getLogger(f"faststream.{name}"),
        # "Received"/"Processed" for every message is debugging detail, not an operator's log.
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_S,
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
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


E = TypeVar("E", bound=Event)


async def decode_or_dead_letter(broker: NatsBroker, msg: NatsMessage, model: type[E], service: str) -> E | None:
    """The message as ``model``; or, when it can never be processed, a dead letter with the reason and ``None``.

    Poison messages (unparseable, invalid, or written by a newer schema than
    this code reads) must not be redelivered forever nor silently dropped:
    they go to ``dlq.<service>`` where they can be inspected and re-driven.
    """
    raw = msg.raw_message
    body = raw.data or b""
    reason = None
    try:
        event = model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        reason = f"invalid {model.__name__}: {first.get('msg')} at {'.'.join(map(str, first.get('loc', ())))}"
    else:
        if event.schema_version <= model.SCHEMA_VERSION:
            return event
        reason = f"unsupported schema_version {event.schema_version} (reads up to {model.SCHEMA_VERSION})"
    try:
        deliveries = raw.metadata.num_delivered
    except Exception:  # not a JetStream message (core request/reply)
        deliveries = 1
    letter = DeadLetter(
        service=service,
        subject=raw.subject,
        reason=reason[:500],
        deliveries=deliveries or 1,
        payload=body[:64_000].decode(errors="replace"),
        headers={k: v for k, v in (raw.headers or {}).items() if k != MSG_ID_HEADER},
    )
    await publish_event(broker, letter, Subjects.dlq(service), stream=Streams.DLQ.name)
    log.warning("dead-lettered a message on %s: %s", raw.subject, reason)
    return None


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
