"""The bounded pull subscriber's slot accounting (``showroom.common.pulls``), without a server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from showroom.common.pulls import FULL_POLL_S, _Held


@dataclass
class _Msg:
    is_acked: bool = False


async def test_a_full_subscriber_fetches_again_as_soon_as_a_handler_returns() -> None:
    held = _Held(limit=2)
    first, second = _Msg(), _Msg()
    held.msgs = [first, second]
    slots = asyncio.create_task(held.free_slots(5))
    await asyncio.sleep(0)
    assert not slots.done()  # both slots taken

    first.is_acked = True  # FastStream acks, then the handler's consume returns
    held.handled.set()
    # Woken by the handler's end, well before the fallback poll would look again.
    assert await asyncio.wait_for(slots, FULL_POLL_S / 5) == 1


async def test_a_message_settled_outside_a_handler_is_noticed_by_the_fallback_poll() -> None:
    held = _Held(limit=1)
    msg = _Msg()
    held.msgs = [msg]
    slots = asyncio.create_task(held.free_slots(3))
    await asyncio.sleep(0)
    msg.is_acked = True  # no handler returned: nothing sets ``handled``
    assert await asyncio.wait_for(slots, FULL_POLL_S * 4) == 1
    assert held.msgs == []
