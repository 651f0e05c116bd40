"""Helpers every service uses to talk to JetStream: publishing, reading with dead letters, KV read-modify-write."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from faststream._internal.context import Context  # the class; faststream.Context() makes one
from faststream.exceptions import HandlerException, NackMessage
from faststream.nats import NatsBroker
from faststream.nats.message import NatsMessage as StreamMessage
from nats.aio.msg import Msg
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from showroom.common.errors import PermanentError
from showroom.common.events import DeadLetter, Event, new_id
from showroom.common.telemetry import trace_id_var
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

TRACE_HEADER = "Showroom-Trace-Id"
MSG_ID_HEADER = "Nats-Msg-Id"


class _OnLoopContext(Context):
    """FastStream's ``Context`` resolves in fast_depends' thread pool, its ``use`` being sync: ~170 µs of CPU
    for every message a handler takes (a thread hop, measured here).  Async, it resolves on the event loop."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


Message = Annotated[StreamMessage, _OnLoopContext("message")]
"""What every handler takes: the message, as FastStream's ``NatsMessage`` is, without the thread hop."""


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
Handler = Callable[[StreamMessage], Awaitable[None]]

REDRIVE_FOR_HEADER = "Showroom-Redrive-For"
"""Set on a re-driven message: only the named service's consumer handles it; the others on the same stream
skip it (they processed the original already)."""

LETTER_PAYLOAD_WHEN_TOO_BIG = 4096
"""A letter whose whole payload nats-server refuses keeps only this much of it (and says it is truncated)."""


def backoff_s(deliveries: int) -> float:
    """Delay before the next delivery after a transient failure: 0.5 s, doubling, at most 30 s."""
    return min(0.5 * 2 ** max(deliveries - 1, 0), 30.0)


def deliveries_of(raw: Msg) -> int:
    try:
        return int(raw.metadata.num_delivered or 1)
    except Exception:  # not a JetStream message (core request/reply)
        return 1


def describe_invalid(exc: ValidationError, model: type[BaseModel]) -> str:
    """A validation error as one line: the first problem and where it is."""
    first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
    where = ".".join(map(str, first.get("loc", ())))
    return f"invalid {model.__name__}: {first.get('msg')}" + (f" at {where}" if where else "")


def decode(msg: StreamMessage, model: type[E]) -> E:
    """The message's body as ``model`` (older schema versions upgraded, see ``events``).

    Raises :class:`PermanentError` with the reason when it can never be read:
    malformed JSON, wrong fields, or a schema version newer than this code.
    """
    try:
        return model.model_validate_json(msg.raw_message.data or b"")
    except ValidationError as exc:
        raise PermanentError(describe_invalid(exc, model)) from exc


async def dead_letter(
    broker: NatsBroker, raw: Msg, service: str, reason: str, *, deliveries: int | None = None
) -> None:
    """Keep ``raw`` in ``dlq.<service>`` with the reason, so it can be inspected and re-driven.

    The letter's message id is the original's stream and sequence: dead-lettering the same
    message twice (a crash before the ack) stores one letter.
    """
    body = raw.data or b""
    headers = dict(raw.headers or {})
    try:
        stream, seq = raw.metadata.stream, raw.metadata.sequence.stream
    except Exception:  # not a JetStream message
        stream, seq = None, None
    letter = DeadLetter(
        service=service,
        subject=raw.subject,
        stream=stream,
        stream_seq=seq,
        reason=reason[:1000],
        deliveries=deliveries or deliveries_of(raw),
        payload=body.decode(errors="replace"),
        headers={k: v for k, v in headers.items() if k != MSG_ID_HEADER},
        trace_id=headers.get(TRACE_HEADER) or new_id(),
    )
    msg_id = f"{service}.{stream}.{seq}" if seq else None
    try:
        await publish_event(broker, letter, Subjects.dlq(service), stream=Streams.DLQ.name, msg_id=msg_id)
    except MaxPayloadError:
        # The payload alone is near the server's limit: keep its head, enough to see what it was.
        head = body[:LETTER_PAYLOAD_WHEN_TOO_BIG].decode(errors="replace")
        letter = letter.model_copy(update={"payload": head, "truncated": True})
        await publish_event(broker, letter, Subjects.dlq(service), stream=Streams.DLQ.name, msg_id=msg_id)
    log.warning("dead-lettered %s (%s #%s): %s", raw.subject, stream, seq, reason)


def dead_letters(broker: NatsBroker, service: str, *, max_deliver: int, max_bytes: int) -> Callable[[Handler], Handler]:
    """Guard a JetStream handler so that no message is dropped silently nor blocks its stream.

    Use it under ``@broker.subscriber(..., ack_policy=AckPolicy.NACK_ON_ERROR,
    config=ConsumerConfig(max_deliver=N))`` with the same ``N`` (``-1``: no limit).
    The handler takes the raw message (:data:`Message`) and reads it with :func:`decode`.

    - bodies over ``max_bytes`` are dead-lettered unread ("oversized");
    - :class:`PermanentError` (and ``ValidationError``): dead-letter at once with the reason, ack;
    - FastStream's own ``NackMessage``/``AckMessage``/``RejectMessage`` pass through: the handler decided;
    - anything else is transient: NAK with backoff; on the last allowed delivery, dead-letter it
      with the reason and the delivery count, then ack.  Without this, JetStream stops
      redelivering after ``max_deliver`` and the message is lost without a word.

    A re-driven message (``Showroom-Redrive-For`` header) is handled only by the service it
    was re-driven for.
    """

    def wrap(handler: Handler) -> Handler:
        async def guarded(msg: Message) -> None:
            raw = msg.raw_message
            redrive_for = (raw.headers or {}).get(REDRIVE_FOR_HEADER)
            if redrive_for and redrive_for != service:
                return
            size = len(raw.data or b"")
            if size > max_bytes:
                reason = f"oversized: {size} bytes (this service reads up to {max_bytes})"
                await dead_letter(broker, raw, service, reason)
                return
            try:
                await handler(msg)
            except HandlerException:
                raise
            except (PermanentError, ValidationError) as exc:
                reason = describe_invalid(exc, BaseModel) if isinstance(exc, ValidationError) else str(exc)
                await dead_letter(broker, raw, service, reason or type(exc).__name__)
            except Exception as exc:
                n = deliveries_of(raw)
                if 0 < max_deliver <= n:
                    reason = f"gave up after {n} deliveries: {type(exc).__name__}: {exc}"
                    await dead_letter(broker, raw, service, reason, deliveries=n)
                    return
                log.warning("%s failed on delivery %d of %s; retrying", raw.subject, n, max_deliver, exc_info=True)
                raise NackMessage(delay=backoff_s(n)) from exc

        # Not functools.wraps: FastStream must see this wrapper's (msg: Message) signature.
        guarded.__name__, guarded.__qualname__ = handler.__name__, handler.__qualname__
        guarded.__doc__, guarded.__module__ = handler.__doc__, handler.__module__
        return guarded

    return wrap


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


class KvMemory:
    """The value and revision a process last wrote per key, for a key's usual writer to update it
    without reading it first (``kv_update(..., memory=...)``).

    Safe however stale: the write is still a compare-and-set, so a key someone else wrote since
    fails once and is read afresh.  Bounded: past ``size`` keys the oldest are forgotten.

    The process's own updates of one key take turns (:meth:`turn`): two handlers updating a key at
    once would otherwise each start from the same remembered value, and one of them would fail its
    compare-and-set and read the key again.  The crawl tracker's page and index handlers did that
    on about a third of their updates.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: dict[str, tuple[bytes, int]] = {}
        self._turns: dict[str, asyncio.Lock] = {}

    def turn(self, key: str) -> asyncio.Lock:
        """The lock this process's updates of ``key`` hold, one at a time."""
        lock = self._turns.get(key)
        if lock is None:
            if len(self._turns) >= self.size:
                self._turns = {k: v for k, v in self._turns.items() if v.locked()}
            lock = self._turns[key] = asyncio.Lock()
        return lock

    def take(self, key: str) -> tuple[bytes, int] | None:
        """The remembered (value, revision), forgotten as it is handed out: a write that fails must not
        leave it behind."""
        return self._entries.pop(key, None)

    def keep(self, key: str, value: bytes, revision: int) -> None:
        if len(self._entries) >= self.size:
            for old in list(self._entries)[: self.size // 4]:
                del self._entries[old]
        self._entries[key] = (value, revision)


async def kv_update(
    kv: KeyValue,
    key: str,
    model: type[M],
    change: Callable[[M | None], M | None] | Callable[[M | None], Awaitable[M | None]],
    *,
    attempts: int = 50,
    memory: KvMemory | None = None,
) -> M | None:
    """Optimistic read-modify-write: apply ``change`` and write with compare-and-set.

    ``change`` receives the current value (or ``None``) and returns the new
    value, or ``None`` to leave the key untouched.  On a concurrent write it
    runs again on the fresh value, so it must be a pure function of its input.
    Returns what was written (or ``None``).

    With ``memory``, the first try starts from the value this process last wrote (no read); only a
    fresh read may decide to leave the key untouched.  This process's updates of the key then take
    turns.
    """
    if memory is None:
        return await _kv_update(kv, key, model, change, attempts, None)
    async with memory.turn(key):
        return await _kv_update(kv, key, model, change, attempts, memory)


async def _kv_update(
    kv: KeyValue,
    key: str,
    model: type[M],
    change: Callable[[M | None], M | None] | Callable[[M | None], Awaitable[M | None]],
    attempts: int,
    memory: KvMemory | None,
) -> M | None:
    remembered = memory.take(key) if memory is not None else None
    for attempt in range(attempts):
        if remembered is not None:
            current, revision = model.model_validate_json(remembered[0]), remembered[1]
        else:
            current, revision = await kv_get(kv, key, model)
        new = change(current)
        if asyncio.iscoroutine(new):
            new = await new
        if new is None:
            if remembered is not None:
                remembered = None  # maybe out of date: decide on what the bucket holds
                continue
            return None
        payload = new.model_dump_json().encode()
        try:
            if revision == 0:
                written = await kv.create(key, payload)
            else:
                written = await kv.update(key, payload, last=revision)
        except KeyWrongLastSequenceError:
            if remembered is not None:
                remembered = None  # someone else wrote since: read it, no need to wait
                continue
            # Someone else wrote first; back off a little more each time.
            await asyncio.sleep(min(0.001 * 2**attempt, 0.05))
            continue
        if memory is not None:
            memory.keep(key, payload, written)
        return new
    raise RuntimeError(f"kv_update({key}) lost the race {attempts} times")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def kv_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """The keys of a KV bucket, sorted, from one stream-info request.

    ``KeyValue.keys()`` opens a watcher: a consumer the server keeps for minutes, and too many of
    them for anything that lists keys often (the scheduler lists brands on every tick).
    """
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    return sorted(subject.removeprefix(prefix) for subject in info.state.subjects or {})
