"""The gateway's answer-cache reader: what it serves from memory, and what it must not."""

from __future__ import annotations

import json
from typing import Any

from nats.js.errors import KeyNotFoundError

from showroom.common.events import Answer, AskRequest, Citation
from showroom.gateway.cachedanswers import CachedAnswers, Lookup


class CountingKv:
    """A KV bucket that holds nothing and counts the reads that reach it."""

    def __init__(self) -> None:
        self.reads = 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        raise KeyNotFoundError


class Generation:
    def __init__(self) -> None:
        self.value = "7:0"

    async def of(self, brand: str | None) -> str:
        return self.value


def answer(model: str = "extractive", *, cited: bool = True, error: str | None = None) -> Answer:
    citations = [Citation(n=1, url="http://127.0.0.1/nw-5", title="NW-5", snippet="Weight: 4.6 kg", score=0.9,
                          content_hash="h1")] if cited else []  # fmt: skip
    return Answer(question="weight of the NW-5?", answer="4.6 kg [1]", model=model, citations=citations,
                  latency_ms=21.5, error=error)  # fmt: skip


def make() -> tuple[CachedAnswers, CountingKv, Generation]:
    kv, generation = CountingKv(), Generation()
    return CachedAnswers(broker=None, kv=kv, generation=generation), kv, generation  # type: ignore[arg-type]


QUESTION = AskRequest(question="Weight of the NW-5?", brand="northwind")


async def test_an_answer_rag_svc_made_is_served_from_memory_until_the_generation_moves() -> None:
    cache, kv, generation = make()
    first = await cache.lookup(QUESTION)
    assert first == Lookup() and kv.reads == 0  # no model learned yet: no key to look under
    cache.learn(first, answer())
    assert cache.model == "extractive"

    miss = await cache.lookup(QUESTION)
    assert miss.key and miss.hit is None and kv.reads == 1
    cache.learn(miss, answer())
    again = await cache.lookup(AskRequest(question="  weight of the nw-5 ", brand="northwind"))
    assert again.hit is not None and kv.reads == 1  # from memory: no bus round trip
    body = json.loads(again.hit.body)
    assert body["cached"] is True and body["latency_ms"] == 0.0 and body["answer"] == "4.6 kg [1]"

    generation.value = "8:0"  # a page of the brand was indexed
    assert (await cache.lookup(QUESTION)).hit is None and kv.reads == 2


async def test_refusals_errors_and_other_models_answers_are_not_kept() -> None:
    cache, kv, _ = make()
    cache.learn(Lookup(), answer())
    for made in (answer(cited=False), answer(error="rag failed"), answer(model="gemini-2.5-flash")):
        lookup = await cache.lookup(QUESTION)
        cache.learn(lookup, made)
        cache.model = "extractive"  # the other model's answer taught the cache that model
        assert (await cache.lookup(QUESTION)).hit is None
    assert kv.reads == 6
