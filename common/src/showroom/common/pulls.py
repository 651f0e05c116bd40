"""Graceful shutdown for JetStream pull subscribers: what this process fetched but did not finish goes back at once.

On SIGTERM FastStream waits (up to its graceful timeout) for the handlers in
progress, then cancels its fetch loop and worker queue.  Messages it had
fetched but not yet handed to a handler -- a batch larger than the free
workers, the worker queue's buffer, one that arrived after stopping began --
are dropped without an ack or a nak.  JetStream would redeliver them only
after the consumer's ``ack_wait`` (a minute or two for fetch tasks and page
events), so a rolling restart would stall crawls for that long.

:func:`hand_back_on_stop` records every message a pull subscriber fetches and,
once the subscriber has stopped (its handlers finished, the connection still
open), NAKs each one nobody acked: the message goes straight back to the
consumer for another instance.  Nothing is lost, and nothing waits out
``ack_wait``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

log = logging.getLogger(__name__)


class _Held:
    """Messages one subscriber fetched and has not yet acked, nak'd or terminated."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []

    def add(self, msgs: list[Msg]) -> None:
        self.msgs = [m for m in self.msgs if not m.is_acked]
        self.msgs.extend(msgs)

    async def hand_back(self) -> int:
        left = [m for m in self.msgs if not m.is_acked]
        for msg in left:
            with contextlib.suppress(Exception):  # the connection may be gone (then ack_wait brings it back)
                await msg.nak()
        self.msgs = []
        return len(left)


def hand_back_on_stop(broker: NatsBroker) -> None:
    """Wrap the broker's started pull subscribers (call it after the broker has started)."""
    for sub in broker.subscribers:
        subscription = getattr(sub, "subscription", None)
        if subscription is None or not hasattr(subscription, "fetch") or getattr(sub, "_showroom_held", None):
            continue  # core or push subscribers hold nothing between deliveries
        held = _Held()
        sub._showroom_held = held  # type: ignore[attr-defined]
        fetch, stop = subscription.fetch, sub.stop
        name = getattr(getattr(sub, "config", None), "durable_name", None) or str(getattr(sub, "subject", "?"))

        async def fetch_and_record(*args: Any, _fetch: Any = fetch, _held: _Held = held, **kw: Any) -> list[Msg]:
            msgs = await _fetch(*args, **kw)
            _held.add(msgs)
            return msgs

        async def stop_and_hand_back(_stop: Any = stop, _held: _Held = held, _name: str = name) -> None:
            await _stop()
            handed = await _held.hand_back()
            log.info("drained %s: in-flight messages finished, %d unstarted handed back", _name, handed)

        subscription.fetch = fetch_and_record
        sub.stop = stop_and_hand_back  # type: ignore[method-assign]
