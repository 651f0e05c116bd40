"""The answer cache's index generation on a real nats-server: what makes a cached answer stale."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from nats.aio.client import Client

from showroom.common.answercache import IndexGeneration, answer_key, normalise
from showroom.common.events import AskRequest, PageIndexed, ReplayFinished, utcnow
from showroom.common.topology import Streams, Subjects, ensure_topology
from tests.conftest import RestartableNats, wait_for


async def indexed(nc: Client, brand: str) -> int:
    event = PageIndexed(crawl_id="c", brand=brand, url=f"http://{brand}.test/p", content_hash="h", chunks=1,
                        collection="showroom_pages__v1", fetched_at=utcnow())  # fmt: skip
    ack = await nc.jetstream().publish(Subjects.page_indexed(brand), event.model_dump_json().encode(),
                                       stream=Streams.INDEX.name)  # fmt: skip
    return ack.seq


async def test_a_brands_generation_moves_with_its_pages_and_every_replay(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_topology(js)
    before = await indexed(nc, "alpha")  # indexed before the tracker started: found by lookup
    generation = await IndexGeneration.start(js)
    try:
        alpha, beta, everything = await generation.of("alpha"), await generation.of("beta"), await generation.of(None)
        assert alpha.startswith(f"{before}.")

        seq = await indexed(nc, "alpha")
        await wait_for(lambda: _moved(generation, "alpha", alpha), what="alpha's generation to move")
        assert await generation.of("alpha") == f"{seq}.{alpha.split('.')[1]}"
        assert await generation.of("beta") == beta  # another brand's page leaves beta's answers alone
        assert await generation.of(None) != everything  # a question over every brand depends on it

        beta_now, alpha_now = beta, await generation.of("alpha")
        done = ReplayFinished(replay_id="r1", status="completed", swapped=True)
        await js.publish(Subjects.REPLAY_FINISHED, done.model_dump_json().encode(), stream=Streams.REPLAYS.name)
        await wait_for(lambda: _moved(generation, "beta", beta_now), what="a replay to move every generation")
        assert await generation.of("alpha") != alpha_now
    finally:
        await generation.stop()

    # Another process computes the same generations from the streams alone.
    again = await IndexGeneration.start(js)
    try:
        assert await again.of("alpha") == await generation.of("alpha")
        assert await again.of("beta") == await generation.of("beta")
    finally:
        await again.stop()


async def test_a_brand_without_pages_is_looked_up_once_and_moves_with_its_first_page(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_topology(js)
    generation = await IndexGeneration.start(js)
    lookups: list[str] = []
    last_msg = js.get_last_msg

    async def counted(stream: str, subject: str):  # type: ignore[no-untyped-def]
        lookups.append(subject)
        return await last_msg(stream, subject)

    js.get_last_msg = counted  # type: ignore[method-assign]
    try:
        first = await generation.of("gamma")
        assert first.startswith("0.")
        assert [await generation.of("gamma") for _ in range(5)] == [first] * 5
        assert lookups == [Subjects.page_indexed("gamma")]  # one lookup, not one per question

        seq = await indexed(nc, "gamma")
        await wait_for(lambda: _moved(generation, "gamma", first), what="gamma's first page to move its generation")
        assert (await generation.of("gamma")).startswith(f"{seq}.")
        assert len(lookups) == 1
    finally:
        await generation.stop()


async def _moved(generation: IndexGeneration, brand: str, old: str) -> bool:
    return await generation.of(brand) != old


def test_the_key_names_the_normalised_question_and_the_generation() -> None:
    ask = AskRequest(question="What is the weight of the NW-5?", brand="northwind")
    same = AskRequest(question="  what is the WEIGHT of the nw-5 ", brand="northwind")
    assert normalise(same.question) == normalise(ask.question)
    assert answer_key(ask, "extractive", "7.0") == answer_key(same, "extractive", "7.0")
    assert answer_key(ask, "extractive", "7.0") != answer_key(ask, "extractive", "8.0")
    assert answer_key(ask, "extractive", "7.0") != answer_key(ask, "gemini-2.5-flash", "7.0")


async def test_the_generation_keeps_moving_after_nats_server_restarts(tmp_path: Path) -> None:
    # The server forgets the ordered consumers when it restarts; a frozen generation would serve
    # answers made before every later re-index.
    async with RestartableNats(tmp_path) as bus:
        await ensure_topology(bus.nc.jetstream())
        await indexed(bus.nc, "alpha")
        generation = await IndexGeneration.start(bus.nc.jetstream(), bus.nc)
        try:
            before = await generation.of("alpha")
            await bus.restart()

            async def indexed_again() -> int:
                with contextlib.suppress(Exception):  # JetStream may still be recovering its streams
                    return await indexed(bus.nc, "alpha")
                return 0

            seq = await wait_for(indexed_again, what="JetStream back after the restart")

            async def caught_up() -> bool:
                return await generation.of("alpha") == f"{seq}.{before.split('.')[1]}"

            await wait_for(caught_up, what="the generation to follow an event published after the restart")
        finally:
            async with asyncio.timeout(10):
                await generation.stop()
