"""metrics-svc's event counter on real JetStream: exact totals across restarts and redeliveries."""

from __future__ import annotations

import pytest
from faststream.nats import NatsBroker

from showroom.common.bus import publish_event
from showroom.common.events import PageScraped, new_id
from showroom.common.topology import Streams, Subjects, ensure_topology
from showroom.metrics.consumers import EventCounter
from showroom.metrics.metrics import EventTotals
from tests.conftest import wait_for


def _page(brand: str, n: int) -> PageScraped:
    url = f"http://{brand}.example/{n}"
    return PageScraped(crawl_id="c", brand=brand, url=url, final_url=url, depth=0, status_code=200,
                       fetch_mode="http", content_hash=str(n), bytes=100)  # fmt: skip


class _NakFirstBatch(EventCounter):
    """Counts and snapshots its first batch but naks instead of acking: as if it died before the ack."""

    naked = 0

    async def apply_batch(self, stream: str, msgs: list) -> None:  # type: ignore[type-arg]
        if self.naked or stream != Streams.PAGES.name:
            return await super().apply_batch(stream, msgs)

        class Nak:
            def __init__(self, msg) -> None:  # type: ignore[no-untyped-def]
                self.msg = msg

            def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                return getattr(self.msg, name)

            async def ack(self) -> None:
                await self.msg.nak()

        self.naked = len(msgs)
        await super().apply_batch(stream, [Nak(m) for m in msgs])


@pytest.fixture
async def broker(nats_url: str):  # type: ignore[no-untyped-def]
    b = NatsBroker(nats_url)
    await b.start()
    await ensure_topology(b.config.connection_state.stream)
    yield b
    await b.stop()


async def test_totals_survive_a_restart_and_redeliveries_count_once(broker: NatsBroker) -> None:
    js = broker.config.connection_state.stream
    brand = f"m{new_id()[:8]}"

    async def publish(first: int, last: int) -> None:
        for n in range(first, last):
            await publish_event(broker, _page(brand, n), Subjects.page_scraped(brand), stream=Streams.PAGES.name)

    def scraped(totals: EventTotals) -> float:
        return totals.value("showroom_pages_scraped_total", brand=brand)

    await publish(0, 30)
    first = _NakFirstBatch(js, EventTotals(), batch=10)
    await first.start()
    try:
        await wait_for(lambda: _async(scraped(first.totals) == 30), what="30 pages counted")
        # The naked batch came back and was skipped: nothing counted twice.
        await wait_for(lambda: _pending_acked(js), what="every message acked")
        assert first.naked and scraped(first.totals) == 30
    finally:
        await first.stop()

    await publish(30, 45)
    second = EventCounter(js, EventTotals(), batch=10)  # a new process: empty memory, snapshot in KV
    await second.start()
    try:
        await wait_for(lambda: _async(scraped(second.totals) == 45), what="45 pages counted after the restart")
        await wait_for(lambda: _pending_acked(js), what="every message acked")
        assert scraped(second.totals) == 45
        assert second.totals.value("showroom_fetched_bytes_total", brand=brand) == 4500
    finally:
        await second.stop()


async def _async(value: bool) -> bool:
    return value


async def _pending_acked(js) -> bool:  # type: ignore[no-untyped-def]
    info = await js.consumer_info(Streams.PAGES.name, "metrics-pages")
    return info.num_pending == 0 and info.num_ack_pending == 0
