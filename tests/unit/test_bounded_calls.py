"""``crawler._bounded``: a page's link claims and task publishes go out together, within a bound."""

from __future__ import annotations

import asyncio

import pytest

from showroom.scraper.crawler import _bounded


async def test_results_come_back_in_order_with_at_most_the_limit_in_flight() -> None:
    in_flight = peak = 0
    release = asyncio.Event()

    async def call(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak == 3:
            release.set()  # the bound is reached: let every call finish
        await release.wait()
        await asyncio.sleep(0.001 * (10 - i))  # later calls finish first
        in_flight -= 1
        return i

    assert await _bounded([call(i) for i in range(10)], limit=3) == list(range(10))
    assert peak == 3


async def test_the_first_failure_is_raised_and_cancels_the_rest() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def call(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("claim refused")
        try:
            await asyncio.Event().wait()  # never finishes on its own
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    with pytest.raises(ValueError, match="claim refused"):
        await _bounded([call(i) for i in range(4)], limit=8)
    assert sorted(started) == [0, 1, 2, 3]
    assert sorted(cancelled) == [0, 2, 3]
