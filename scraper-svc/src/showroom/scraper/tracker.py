"""The crawl tracker: applies page and index events to each crawl's record and finishes crawls.

It reads PAGES and INDEX through durable consumers with one message in
flight at a time, so events are applied in stream order; each record keeps
the last sequence it applied from either stream, which makes a redelivered
event a no-op.  An event for a crawl with no record raises :class:`UnknownCrawl`
(dead-lettered by the consumer).  When a change finishes a crawl, ``crawl.finished`` is
published with a message id, so a retry after a crash publishes it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from faststream.nats import NatsBroker
from nats.js.kv import KeyValue

from showroom.common.bus import KvMemory, kv_get, kv_update, publish_event
from showroom.common.crawls import CrawlState
from showroom.common.errors import UnknownCrawl
from showroom.common.events import CrawlFinished, PageFailed, PageIndexed, PageScraped, PageUnchanged
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)


class CrawlTracker:
    def __init__(self, broker: NatsBroker, crawls: KeyValue) -> None:
        self.broker = broker
        self.crawls = crawls
        # Each event updates its crawl's record: start from this tracker's last write, not a read.
        self.memory = KvMemory()

    async def on_page(self, event: PageScraped | PageUnchanged | PageFailed, seq: int) -> CrawlState | None:
        def apply(state: CrawlState) -> None:
            state.last_pages_seq = seq
            if isinstance(event, PageFailed):
                state.counts.failed += 1
                return
            if isinstance(event, PageScraped):
                state.counts.scraped += 1
            else:
                state.counts.unchanged += 1
            state.counts.discovered += len(event.new_links)
            state.counts.skipped += event.skipped_links

        return await self._apply(event.crawl_id, apply, lambda s: s.last_pages_seq >= seq)

    async def on_indexed(self, event: PageIndexed, seq: int) -> CrawlState | None:
        if event.crawl_id is None:  # a replay's event, not part of a crawl
            return None

        def apply(state: CrawlState) -> None:
            state.last_index_seq = seq
            state.counts.indexed += 1

        return await self._apply(event.crawl_id, apply, lambda s: s.last_index_seq >= seq)

    async def _apply(
        self,
        crawl_id: str,
        apply: Callable[[CrawlState], None],
        already_applied: Callable[[CrawlState], bool],
    ) -> CrawlState | None:
        finished_now = False

        def change(state: CrawlState | None) -> CrawlState | None:
            nonlocal finished_now
            if state is None or already_applied(state) or state.status.is_final:
                return None
            apply(state)
            finished_now = state.finish_if_done()
            return state

        written = await kv_update(self.crawls, crawl_id, CrawlState, change, memory=self.memory)
        if written is None:
            # Nothing to apply: a redelivery, a late event, or an unknown crawl.  A redelivery of the
            # event that finished the crawl may have crashed before announcing it: announce again
            # (the message id makes the second copy a no-op).
            current, _ = await kv_get(self.crawls, crawl_id, CrawlState)
            if current is None:
                raise UnknownCrawl(crawl_id)
            if current and current.status.is_final and already_applied(current):
                await self._announce(current)
            return current
        if finished_now:
            await self._announce(written)
        return written

    async def _announce(self, state: CrawlState) -> None:
        event = CrawlFinished(
            crawl_id=state.crawl_id,
            trace_id=state.trace_id,
            brand=state.brand,
            status=state.status,
            counts=state.counts.model_dump(),
        )
        await publish_event(
            self.broker,
            event,
            Subjects.crawl_finished(state.brand),
            stream=Streams.CRAWLS.name,
            msg_id=f"{state.crawl_id}.finished",
        )
        log.info("crawl %s %s: %s", state.crawl_id, state.status.value, state.counts.model_dump())
