"""Rebuild an index from the event log: no page is fetched again.

A replay reads ``page.scraped`` events from the PAGES stream through a consumer of its own (an
ephemeral one positioned at the requested sequence or time: the indexer's durable consumer cannot
be moved), and indexes them into a new collection version built with the requested chunk size and
embedder.  Queries keep being served from the version the alias points at meanwhile.

Not losing live pages.  The replay does not stop at the stream's end as it was when it started: it
follows the stream until it has caught up, swaps the alias, then reads once more to the end.  A
page event that the live path wrote into the old version just before the swap is in the stream,
so that last pass writes it into the new one; after the swap the live path writes there itself.
Each chunk records its event's stream sequence, and an event older than what a version holds for
its URL is skipped, so the order in which the two writers get to a page does not matter.

Throughput.  While one batch is written, the next is read and prepared: decoded, chunked,
BM25-encoded and its payloads put in the store's form (``Indexer.index_events``), for a replay of
more than ``POOL_MIN_EVENTS`` events in a worker process (``Indexer.pool``).  Writing points into
Qdrant Edge holds this process's GIL, so this process keeps only what the write needs: reading the
bus, building the points and the write.  Progress only counts batches whose write finished.

Progress (events done/total, rate, ETA, the last sequence read) is written to the ``replays`` KV
record about once a second.  A replay whose indexer died resumes after that sequence when the
indexer starts again; a cancelled one stops at its next batch and keeps its partial version
(``DELETE /v1/collections/{version}`` removes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from showroom.common.bus import MSG_ID_HEADER, kv_get, kv_update
from showroom.common.events import PageScraped, ReplayFinished, ReplaySpec, utcnow
from showroom.common.replays import ReplayProgress, ReplayState, ReplayStatus
from showroom.common.service import INSTANCE
from showroom.common.topology import Streams, Subjects
from showroom.indexer.embedding import Embedder
from showroom.indexer.indexing import EmbedderFactory, IndexedCounts, Indexer
from showroom.indexer.preparing import RawEvent, decode_events, prepare_events

log = logging.getLogger(__name__)

ReExtract = Callable[[PageScraped], Awaitable[PageScraped]]
"""Re-runs extraction on a page's stored raw HTML (``re_extract``)."""

PROGRESS_EVERY_S = 1.0
ORPHANED_AFTER_S = 15.0
"""A running replay whose runner has not written progress for this long is taken over."""
PIPELINE_DEPTH = 3
"""Batches under way at once (see ``_drain``)."""
POOL_MIN_EVENTS = 5_000
"""A replay with more events than this to go prepares them in a worker process (starting one
costs ~1 s)."""


def orphaned(state: ReplayState) -> bool:
    """A replay nobody is running: never started, or its runner stopped writing progress."""
    if state.status == ReplayStatus.QUEUED:
        return True
    if state.status != ReplayStatus.RUNNING:
        return False
    return state.heartbeat_at is None or (utcnow() - state.heartbeat_at).total_seconds() > ORPHANED_AFTER_S


class ReplayCancelledError(Exception):
    pass


class _Reader:
    """Batches from the replay's consumer, one always on its way while the last is indexed.

    The consumer does not ack (a replay is not a work queue), so a batch the server has sent is
    never sent again: the fetch in flight is kept across drains, never thrown away.
    """

    def __init__(self, sub: JetStreamContext.PullSubscription, batch_size: int) -> None:
        self.sub, self.batch_size = sub, batch_size
        self._ahead: asyncio.Task[list[Msg]] | None = None

    async def _fetch(self) -> list[Msg]:
        try:
            return await self.sub.fetch(self.batch_size, timeout=0.5)
        except TimeoutError:
            return []

    async def next(self) -> list[Msg]:
        """The next batch (empty when the stream has nothing more for now)."""
        ahead = self._ahead or asyncio.create_task(self._fetch())
        msgs = await ahead
        self._ahead = asyncio.create_task(self._fetch())
        return msgs

    async def pending(self) -> int:
        try:
            return (await self.sub.consumer_info()).num_pending or 0
        except Exception:  # progress is best effort; the replay goes on
            return 0

    async def close(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            with contextlib.suppress(BaseException):
                await self._ahead
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()


@dataclass
class _Batch:
    """One fetched batch: what it counts for progress, and its indexing (``task``) once started."""

    done: int = 0
    position: int = 0
    events: list[RawEvent] = field(default_factory=list)
    task: asyncio.Task[IndexedCounts] | None = None


class ReplayRunner:
    """Runs replays in this indexer.  ``embedder_factory`` should return one shared instance per
    name, so a replay with the live embedder does not load the model twice."""

    def __init__(
        self,
        js: JetStreamContext,
        replays: KeyValue,
        live: Indexer,
        embedder_factory: EmbedderFactory,
        *,
        batch_size: int = 1024,
        re_extract: ReExtract | None = None,
        workers: int | None = None,
    ) -> None:
        """``workers``: chunking processes for a replay (``None``: one for a replay of more than
        ``POOL_MIN_EVENTS`` events where there is a spare core; 0: none)."""
        self.js = js
        self.replays = replays
        self.live = live
        self.embedder_factory = embedder_factory
        self.batch_size = batch_size
        self.re_extract = re_extract
        self.workers = workers
        self._cancelled: set[str] = set()

    def cancel(self, replay_id: str) -> None:
        self._cancelled.add(replay_id)

    async def run(self, replay_id: str) -> ReplayState | None:
        """Run (or resume) a replay to its end; failures are recorded on the replay, not raised."""
        state, _ = await kv_get(self.replays, replay_id, ReplayState)
        if state is None or not orphaned(state):
            return state  # finished, or another indexer is running it
        try:
            return await self._run(state)
        except ReplayCancelledError:
            return await self._finish(replay_id, ReplayStatus.CANCELLED)
        except Exception as exc:
            log.exception("replay %s failed", replay_id)
            return await self._finish(replay_id, ReplayStatus.FAILED, f"{type(exc).__name__}: {exc}"[:500])

    async def _run(self, state: ReplayState) -> ReplayState | None:
        spec = state.spec
        if spec.re_extract and self.re_extract is None:
            raise RuntimeError("re-extraction is not available in this indexer")
        target = await self._target(state)
        state = await self._progress(state.replay_id, status=ReplayStatus.RUNNING)
        assert state is not None and state.target_collection is not None
        log.info("replay %s into %s (alias on %s)", state.replay_id, state.target_collection, state.source_collection)
        reader = _Reader(await self._subscribe(spec, state.progress.position), self.batch_size)
        started, done_at_start = time.monotonic(), state.progress.done
        try:
            target.pool = await self._pool(reader, spec, state.progress.position)
            if target.pool is not None:  # the worker starts (imports, BM25 model) while the first batch is read
                encode = type(target.store).encode_payload
                target.pool.submit(prepare_events, [], target.chunk_words, target.sparse.avg_len, encode)
            state = await self._drain(state, reader, target, started, done_at_start)
            if spec.should_swap:
                await self.live.store.swap_alias(state.target_collection)
                await self._progress(state.replay_id, swapped=True)
                log.info("replay %s: %s now serves %s", state.replay_id, self.live.store.collection,
                         state.target_collection)  # fmt: skip
                # Events the live path wrote into the old version just before the swap.
                state = await self._drain(state, reader, target, started, done_at_start)
        finally:
            await reader.close()
            if target.pool is not None:
                target.pool.shutdown(wait=False, cancel_futures=True)
        return await self._finish(state.replay_id, ReplayStatus.COMPLETED)

    async def _pool(self, reader: _Reader, spec: ReplaySpec, position: int) -> ProcessPoolExecutor | None:
        workers = self.workers
        if workers is None:
            events = await reader.pending()
            if spec.to_seq:
                events = min(events, spec.to_seq - position)
            workers = 1 if (os.cpu_count() or 1) > 1 and events > POOL_MIN_EVENTS else 0
        if not workers:
            return None
        # spawn: this process runs threads (the NATS client's loop, the embedder's), which fork
        # would copy mid-flight.
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    async def _target(self, state: ReplayState) -> Indexer:
        """The indexer that writes the new version (created now, or found again on resume)."""
        spec, store = state.spec, self.live.store
        key = spec.target.embedder
        embedder: Embedder = await asyncio.to_thread(self.embedder_factory, key)
        version = state.target_collection
        if version is None or version not in await store.versions():
            meta = {"chunk_tokens": spec.target.chunk_tokens, "embedder_key": key, "replay_id": state.replay_id}
            version = await store.create_version(embedder.name, embedder.dim, **meta)
            source = await store.current_version()
            await self._progress(state.replay_id, target_collection=version, source_collection=source)
        target = Indexer(
            store.pinned(version),
            embedder,
            spec.target.chunk_tokens,
            sparse=self.live.sparse,
            embedder_factory=self.embedder_factory,
        )
        target.store.model, target.store.dim = embedder.name, embedder.dim
        return target

    async def _subscribe(self, spec: ReplaySpec, position: int) -> JetStreamContext.PullSubscription:
        subject = f"page.scraped.{spec.brand or '*'}"
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            inactive_threshold=300.0,
            max_waiting=1,
            description="index replay",
        )
        if position:
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, position + 1
        elif spec.from_seq:
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, spec.from_seq
        elif spec.from_time:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = spec.from_time.isoformat()
        return await self.js.pull_subscribe(subject, durable=None, stream=Streams.PAGES.name, config=config)

    @staticmethod
    def _past_end(spec: ReplaySpec, seq: int, stored_at: datetime) -> bool:
        return bool((spec.to_seq and seq > spec.to_seq) or (spec.to_time and stored_at > spec.to_time))

    async def _drain(
        self,
        state: ReplayState,
        reader: _Reader,
        target: Indexer,
        started: float,
        done_at_start: int,
    ) -> ReplayState:
        """Read and index events until the stream (or the spec's end) is reached.

        Up to ``PIPELINE_DEPTH`` batches are under way at once: one being written while the next
        ones are prepared, so neither this process nor the worker waits for the other.  Progress,
        the resume position included, moves only when a batch's write has finished, in order.
        """
        spec, progress = state.spec, state.progress.model_copy()
        last_report = time.monotonic()
        under_way: deque[_Batch] = deque()
        try:
            while True:
                if state.replay_id in self._cancelled:
                    raise ReplayCancelledError
                batch, stop = self._collect(spec, await reader.next())
                if batch.events:
                    batch.task = asyncio.create_task(self._index(spec, target, batch))
                under_way.append(batch)
                while under_way and (stop or len(under_way) >= PIPELINE_DEPTH):
                    await self._settle(under_way.popleft(), progress)
                now = time.monotonic()
                if stop or now - last_report >= PROGRESS_EVERY_S:
                    last_report = now
                    pending = await reader.pending()
                    # What is read but not yet written counts as pending.
                    pending += sum(b.done for b in under_way)
                    progress.total = progress.done + pending
                    elapsed = max(now - started, 1e-6)
                    progress.rate = round((progress.done - done_at_start) / elapsed, 1)
                    progress.eta_s = round(pending / progress.rate, 1) if progress.rate else None
                    current = await self._progress(state.replay_id, progress=progress)
                    if current is not None and current.status == ReplayStatus.CANCELLED:
                        raise ReplayCancelledError
                if stop:
                    state.progress = progress
                    return state
        finally:
            for batch in under_way:
                if batch.task is not None:
                    batch.task.cancel()
                    with contextlib.suppress(BaseException):
                        await batch.task

    def _collect(self, spec: ReplaySpec, msgs: list[Msg]) -> tuple[_Batch, bool]:
        """The batch's events up to the replay's end; ``True`` when that end is reached."""
        batch, stop = _Batch(), not msgs
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if self._past_end(spec, seq, msg.metadata.timestamp):
                stop = True
                break
            batch.done += 1
            batch.position = seq
            batch.events.append((seq, msg.data))
        return batch, stop

    async def _index(self, spec: ReplaySpec, target: Indexer, batch: _Batch) -> IndexedCounts:
        if not (spec.re_extract and self.re_extract is not None):
            return await target.index_events(batch.events)
        # Re-extraction reads the archive from this process: the events are decoded here.
        pages, seqs, skipped = decode_events(batch.events)
        pages = list(await asyncio.gather(*(self.re_extract(p) for p in pages)))
        results = await target.index_pages(pages, seqs)
        unchanged = sum(r.unchanged for r in results)
        return IndexedCounts(len(results) - unchanged, unchanged, skipped)

    @staticmethod
    async def _settle(batch: _Batch, progress: ReplayProgress) -> None:
        """Wait for ``batch``'s write, then count it."""
        counts = await batch.task if batch.task is not None else IndexedCounts(0, 0, 0)
        progress.done += batch.done
        progress.skipped += counts.skipped + counts.unchanged
        progress.indexed += counts.indexed
        if batch.position:
            progress.position = batch.position

    async def _progress(self, replay_id: str, **changes: object) -> ReplayState | None:
        def apply(current: ReplayState | None) -> ReplayState | None:
            if current is None or current.status.is_final:
                return None
            for name, value in changes.items():
                setattr(current, name, value)
            current.runner, current.heartbeat_at = INSTANCE, utcnow()
            if changes.get("status") == ReplayStatus.RUNNING and current.started_at is None:
                current.started_at = utcnow()
            return current

        updated = await kv_update(self.replays, replay_id, ReplayState, apply)
        if updated is None:
            updated, _ = await kv_get(self.replays, replay_id, ReplayState)
        return updated

    async def _finish(self, replay_id: str, status: ReplayStatus, error: str | None = None) -> ReplayState | None:
        self._cancelled.discard(replay_id)

        def apply(current: ReplayState | None) -> ReplayState | None:
            if current is None or current.status.is_final:
                return None
            current.status, current.error, current.finished_at = status, error, utcnow()
            if status == ReplayStatus.COMPLETED:
                current.progress.eta_s = 0.0
            return current

        await kv_update(self.replays, replay_id, ReplayState, apply)
        final, _ = await kv_get(self.replays, replay_id, ReplayState)
        if final is not None:
            log.info("replay %s %s: %s", replay_id, final.status.value, final.progress.model_dump())
            event = ReplayFinished(
                replay_id=replay_id,
                trace_id=final.trace_id or replay_id,
                status=final.status.value,
                target_collection=final.target_collection,
                swapped=final.swapped,
                events=final.progress.done,
                error=final.error,
            )
            await self.js.publish(
                Subjects.REPLAY_FINISHED,
                event.model_dump_json().encode(),
                stream=Streams.REPLAYS.name,
                headers={MSG_ID_HEADER: f"{replay_id}.finished"},
            )
        return final
