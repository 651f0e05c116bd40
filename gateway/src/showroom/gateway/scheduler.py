"""Re-crawls each registered brand on its interval: the old system's "continuous mode".

Every gateway replica may run a scheduler; they coordinate through the ``brands`` bucket only:

- a brand's crawl is reserved on its entry by compare-and-set (``BrandRegistry.start``), so of
  several schedulers finding a brand due at once exactly one starts it;
- a brand whose last crawl is not final is skipped, however overdue;
- two scheduled starts (of any brands) are at least ``brand_delay_s`` apart: the last one is
  recorded under ``_scheduler`` by compare-and-set, and a scheduler takes that slot before starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from showroom.common.brands import SCHEDULER_KEY, Brand, SchedulerClock
from showroom.common.bus import kv_update
from showroom.common.events import utcnow
from showroom.gateway.brands import BrandBusy, BrandDisabled, BrandNotFound, BrandRegistry

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, registry: BrandRegistry, *, tick_s: float, brand_delay_s: float) -> None:
        self.registry = registry
        self.tick_s = tick_s
        self.brand_delay = timedelta(seconds=brand_delay_s)
        self.ticks = 0
        """Ticks completed; lets tests wait for "the schedulers have looked again" instead of sleeping."""
        self._stopping = asyncio.Event()

    async def tick(self) -> list[str]:
        """Start the crawls that are due now (within the delay between brands); returns their ids."""
        started: list[str] = []
        brands = await self.registry.list()
        due = sorted((b for b in brands if b.is_due(utcnow())), key=lambda b: b.state.next_due_at or utcnow())
        for brand in due:
            if brand.crawl_in_progress(await self.registry.last_crawl(brand), utcnow()):
                continue
            if not await self._take_slot(brand):
                break
            with contextlib.suppress(BrandBusy, BrandDisabled, BrandNotFound):  # changed since we looked
                crawl_id = await self.registry.start(brand.brand, "schedule", only_if_due=True)
                if crawl_id:
                    started.append(crawl_id)
        self.ticks += 1
        return started

    async def _take_slot(self, brand: Brand) -> bool:
        """Claim the next scheduled start, unless the last one (any brand's) was under ``brand_delay`` ago."""

        def claim(last: SchedulerClock | None) -> SchedulerClock | None:
            now = utcnow()
            if last is not None and now < last.started_at + self.brand_delay:
                return None
            return SchedulerClock(brand=brand.brand, started_at=now)

        return await kv_update(self.registry.brands, SCHEDULER_KEY, SchedulerClock, claim) is not None

    async def run(self) -> None:
        log.info("scheduler running (tick %.1fs, %s between brands)", self.tick_s, self.brand_delay)
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # NATS restarting, say: log it and look again next tick
                log.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.tick_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Scheduler]:
        """Run in the background for the duration of the block; stopped when it ends."""
        task = asyncio.create_task(self.run(), name="brand-scheduler")
        try:
            yield self
        finally:
            # The flag as well as the cancel: Python 3.11's wait_for (inside nats-py's requests) can
            # swallow a cancellation that arrives as its reply does, and the loop would go on.
            self._stopping.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
