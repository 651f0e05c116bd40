"""Counting events exactly, across restarts: durable consumers plus a snapshot in JetStream KV.

metrics-svc has its own durable pull consumer on every stream (``metrics-*``),
so it never takes work from the services that do it.  For each batch it:

1. applies the messages whose stream sequence it has not applied yet (the
   consumer's ack floor, plus the set of sequences applied above it);
2. writes the whole :class:`EventTotals` — counters, histograms and the
   applied sequences per stream — to the ``metrics_state`` KV bucket;
3. only then acks the batch, and reads the consumer's ack floor to forget
   the sequences below it (acked messages are never redelivered).

A crash between 2 and 3 redelivers messages the snapshot already holds, and
they are skipped; a crash before 2 redelivers messages the snapshot does not
hold, and they are counted — even though they come back after newer ones
the restarted process has already counted.  Each event counts once.  On start the
snapshot is restored; when there is none (a fresh install, or a wiped bucket)
the ``metrics-*`` consumers are deleted first so they re-read every stream
from its first message.

The snapshot is one key written by one process, so metrics-svc runs as
**one replica** (two would overwrite each other's totals).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from showroom.common.bus import REDRIVE_FOR_HEADER
from showroom.common.events import (
    CrawlFinished,
    CrawlRequested,
    DeadLetter,
    Event,
    PageFailed,
    PageIndexed,
    PageScraped,
    PageUnchanged,
    QuestionAnswered,
)
from showroom.common.topology import Durables, Streams, open_bucket
from showroom.metrics.metrics import EventTotals

log = logging.getLogger(__name__)

STATE_BUCKET = "metrics_state"
SNAPSHOT_KEY = "event_totals"
ACK_WAIT_S = 15.0
"""A batch is counted in milliseconds; what a killed process held comes back after this."""
FLOOR_EVERY_S = 1.0
"""How often a feed asks for its consumer's ack floor (to forget sequences below it), rather than after
every batch: while events trickle in, batches are one event each."""
GATHER_S = 0.5
"""After a batch that did not fill, a feed waits this long before pulling again, so that a trickle of events
(a browser crawl's few pages a second) is counted a handful at a time: one pull and one snapshot write per
batch instead of per event.  Counters lag by at most this; Prometheus scrapes every 15 s."""


@dataclass(frozen=True)
class Feed:
    stream: str
    subject: str
    durable: str


FEEDS = (
    Feed(Streams.CRAWLS.name, "crawl.*.*", Durables.METRICS_CRAWLS),
    Feed(Streams.PAGES.name, "page.*.*", Durables.METRICS_PAGES),
    Feed(Streams.INDEX.name, "page.indexed.*", Durables.METRICS_INDEX),
    Feed(Streams.ANSWERS.name, "rag.answered", Durables.METRICS_ANSWERS),
    Feed(Streams.DLQ.name, "dlq.*", Durables.METRICS_DLQ),
)

_BY_PREFIX: dict[str, type[Event]] = {
    "crawl.requested.": CrawlRequested,
    "crawl.finished.": CrawlFinished,
    "page.scraped.": PageScraped,
    "page.unchanged.": PageUnchanged,
    "page.failed.": PageFailed,
    "page.indexed.": PageIndexed,
    "rag.answered": QuestionAnswered,
    "dlq.": DeadLetter,
}


def model_for(subject: str) -> type[Event] | None:
    return next((m for prefix, m in _BY_PREFIX.items() if subject.startswith(prefix)), None)


class EventCounter:
    """Runs one consumer loop per stream feeding one :class:`EventTotals`, snapshotted before each ack."""

    def __init__(self, js: JetStreamContext, totals: EventTotals, *, batch: int = 200, replicas: int = 1) -> None:
        self.js = js
        self.totals = totals
        self.batch = batch
        self.replicas = replicas
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._kv = await self._bucket()
        restored = await self._restore()
        if not restored:
            for feed in FEEDS:
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(feed.stream, feed.durable)
                    log.info("no snapshot: consumer %s starts over from the first message", feed.durable)
        await self._forget_recreated_streams()
        self._tasks = [asyncio.create_task(self._consume(feed), name=f"count-{feed.stream}") for feed in FEEDS]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def _bucket(self) -> KeyValue:
        config = KeyValueConfig(
            bucket=STATE_BUCKET, description="metrics-svc: event totals and the last stream sequence counted",
            history=1, replicas=self.replicas, storage=StorageType.FILE,
        )  # fmt: skip
        return (await open_bucket(self.js, config))[0]

    async def _restore(self) -> bool:
        assert self._kv is not None
        try:
            entry = await self._kv.get(SNAPSHOT_KEY)
        except KeyNotFoundError:
            return False
        if not entry.value:
            return False
        restored = EventTotals.loads(entry.value)
        # Fill the object the collector already renders, in place.
        self.totals.counters, self.totals.histograms = restored.counters, restored.histograms
        self.totals.applied, self.totals.recent = restored.applied, restored.recent
        log.info("restored event totals up to %s", restored.applied)
        return True

    async def _forget_recreated_streams(self) -> None:
        """A stream deleted and made again restarts its sequences: its high-water mark must too."""
        for feed in FEEDS:
            try:
                info = await self.js.stream_info(feed.stream)
            except NotFoundError:
                continue
            if info.state.last_seq < self.totals.applied.get(feed.stream, 0):
                log.warning("stream %s was recreated; counting it from its start", feed.stream)
                self.totals.applied[feed.stream] = 0
                self.totals.recent.pop(feed.stream, None)
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(feed.stream, feed.durable)

    async def _consume(self, feed: Feed) -> None:
        sub = None
        floor_read_at = 0.0
        while True:
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe(
                        feed.subject,
                        durable=feed.durable,
                        stream=feed.stream,
                        config=ConsumerConfig(ack_wait=ACK_WAIT_S, max_ack_pending=10 * self.batch),
                    )
                try:
                    msgs = await sub.fetch(self.batch, timeout=2)
                except (NatsTimeout, TimeoutError):
                    continue
                await self.apply_batch(feed.stream, msgs)
                if time.monotonic() - floor_read_at >= FLOOR_EVERY_S:
                    floor_read_at = time.monotonic()
                    info = await self.js.consumer_info(feed.stream, feed.durable)
                    async with self._lock:
                        self.totals.raise_floor(feed.stream, info.ack_floor.stream_seq or 0)
                if len(msgs) < self.batch:
                    await asyncio.sleep(GATHER_S)
            except asyncio.CancelledError:
                if sub is not None:  # no pull request left behind to swallow messages meant for the next run
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                raise
            except Exception:  # NATS restarting, the stream not made yet...: retry, never die
                log.warning("counting %s failed; retrying", feed.stream, exc_info=True)
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                    sub = None
                await asyncio.sleep(1)

    async def apply_batch(self, stream: str, msgs: list) -> None:  # type: ignore[type-arg]
        async with self._lock:
            changed = False
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                model = model_for(msg.subject)
                event, unreadable = None, False
                if REDRIVE_FOR_HEADER in (msg.headers or {}):
                    model = None  # a re-driven copy of an event already counted
                if model is not None:
                    try:
                        event = model.model_validate_json(msg.data)
                    except ValidationError as exc:  # a malformed event must not stall the metrics
                        log.warning("unreadable %s event: %s", msg.subject, exc.errors()[:1])
                        unreadable = True
                changed |= self.totals.apply(stream, seq, event, unreadable=unreadable)
            if changed:
                assert self._kv is not None
                await self._kv.put(SNAPSHOT_KEY, self.totals.dumps())
        for msg in msgs:
            await msg.ack()
