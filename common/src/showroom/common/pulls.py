"""JetStream pull subscribers that hold no more than they work on, and give back what they never started.

FastStream's concurrent pull subscriber (``max_workers=N``) fetches a batch,
queues it in memory for its workers and fetches again as soon as the queue
takes it: a scraper with 4 workers was measured holding 8-11 fetch tasks
(delivered, unacked) at once.  Messages waiting in that queue are invisible to
other instances, and their ``ack_wait`` runs down while they wait.

And on SIGTERM FastStream waits for the handlers in progress, then cancels its
fetch loop and queue: messages fetched but not yet handled are dropped without
an ack or a nak, so JetStream redelivers them only after ``ack_wait`` (a minute
or two for fetch tasks and page events) -- a rolling restart stalled crawls.

:func:`bound_pull_subscribers` wraps each started pull subscriber's fetch:

* a subscriber with ``N`` workers fetches only while it holds fewer than ``N``
  unacked messages, and never more than the free slots, so an instance holds
  at most what it is working on and the rest stay in the stream for others;
* on stop it fetches no more and lets the fetch on its way land (a cancelled
  fetch would drop what the server already sent); once the subscriber has
  stopped (handlers finished, connection still open), every message it fetched
  and nobody acked is NAK'd: straight back to the consumer for another
  instance, nothing lost and nothing waiting out ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

log = logging.getLogger(__name__)

FULL_POLL_S = 0.25
"""While full, how often to look for a settled message besides each handler's end (which wakes the fetch
at once): a message a handler settled some other way is noticed within this.  Polling every 5 ms instead
kept a full subscriber's event loop ~4% of a core busy."""

SETTLE_S = 10.0
"""On stop, the longest to wait for a fetch on its way (a pull waits at most its own timeout)."""


class _Held:
    """Messages one subscriber fetched and has not yet acked, nak'd or terminated."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.msgs: list[Msg] = []
        self.stopping = False
        self.handled = asyncio.Event()
        """Set when a handler returns (FastStream has acked or nak'd its message by then)."""
        self.fetching: asyncio.Task[list[Msg]] | None = None
        """The fetch on its way.  It is never cancelled: the server may already have sent its
        messages, and a cancelled fetch would drop them (they would wait out ``ack_wait``)."""

    async def fetch(self, fetch: Any, batch: int, *args: Any, **kw: Any) -> list[Msg]:
        if not self.stopping:
            batch = await self.free_slots(batch)
        if self.stopping:
            await asyncio.Event().wait()  # no new fetch once stopping; the stop cancels this wait
        self.fetching = asyncio.ensure_future(fetch(batch, *args, **kw))
        self.fetching.add_done_callback(self._keep)
        return await asyncio.shield(self.fetching)

    def _keep(self, task: asyncio.Task[list[Msg]]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.msgs.extend(task.result())

    async def settle(self, timeout: float) -> None:
        """Stop fetching and wait for the fetch on its way to land (before unsubscribing)."""
        self.stopping = True
        if self.fetching is not None and not self.fetching.done():
            await asyncio.wait([self.fetching], timeout=timeout)

    def unacked(self) -> int:
        self.msgs = [m for m in self.msgs if not m.is_acked]
        return len(self.msgs)

    async def free_slots(self, batch: int) -> int:
        """How many to fetch now: waits until at least one slot is free."""
        if self.limit is None:
            return batch
        while (held := self.unacked()) >= self.limit:
            self.handled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.handled.wait(), FULL_POLL_S)
        return min(batch, self.limit - held)

    async def hand_back(self, pending: asyncio.Queue[Msg] | None = None) -> int:
        """NAK what is held, and what arrived for a fetch that stopping cancelled (``pending``:
        the subscription's queue, where the server's answer to that fetch lands)."""
        while pending is not None and not pending.empty():
            msg = pending.get_nowait()
            if msg.reply and "Status" not in (msg.headers or {}):
                self.msgs.append(msg)  # status messages (no messages, timeouts) carry no task
        left = [m for m in self.msgs if not m.is_acked]
        for msg in left:
            with contextlib.suppress(Exception):  # the connection may be gone (then ack_wait brings it back)
                await msg.nak()
        self.msgs = []
        return len(left)


def bound_pull_subscribers(broker: NatsBroker) -> None:
    """Wrap the broker's started pull subscribers (call it once the broker has started)."""
    for sub in broker.subscribers:
        subscription = getattr(sub, "subscription", None)
        if subscription is None or not hasattr(subscription, "fetch") or getattr(sub, "_showroom_held", None):
            continue  # core or push subscribers hold nothing between deliveries
        held = _Held(getattr(sub, "max_workers", None))
        sub._showroom_held = held  # type: ignore[attr-defined]
        fetch, stop, consume = subscription.fetch, sub.stop, sub.consume
        name = getattr(getattr(sub, "config", None), "durable_name", None) or str(getattr(sub, "subject", "?"))

        async def bounded_fetch(batch: int = 1, *args: Any, _fetch: Any = fetch, _held: _Held = held,
                                **kw: Any) -> list[Msg]:  # fmt: skip
            return await _held.fetch(_fetch, batch, *args, **kw)

        pending = getattr(getattr(subscription, "_sub", None), "_pending_queue", None)

        async def stop_and_hand_back(_stop: Any = stop, _held: _Held = held, _name: str = name,
                                     _pending: Any = pending) -> None:  # fmt: skip
            await _held.settle(SETTLE_S)
            await _stop()
            handed = await _held.hand_back(_pending)
            log.info("drained %s: in-flight messages finished, %d unstarted handed back", _name, handed)

        async def consume_and_free(msg: Any, _consume: Any = consume, _held: _Held = held) -> Any:
            try:
                return await _consume(msg)
            finally:
                _held.handled.set()

        subscription.fetch = bounded_fetch
        sub.stop = stop_and_hand_back  # type: ignore[method-assign]
        sub.consume = consume_and_free  # type: ignore[method-assign]
