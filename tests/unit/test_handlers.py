"""Service handlers on FastStream's in-memory broker: fast, no server needed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker

from showroom.common.bus import Message
from showroom.common.events import Answer, AskRequest, SearchHit, SearchRequest, SearchResponse


@pytest.fixture(scope="module")
def rag():  # type: ignore[no-untyped-def]
    from showroom.rag import app as rag_app

    # Stand in for indexer-svc: one page that states the spec.
    @rag_app.broker.subscriber("index.search")
    async def fake_search(request: SearchRequest) -> SearchResponse:
        hit = SearchHit(url="http://demo/products/nw-8", title="NW-8", brand="northwind", score=0.8, chunk_index=0,
                        text="Northwind NW-8 Studio Monitor\nSpecifications\nWoofer size: 8 in\nPrice: 449.00 USD",
                        content_hash="abc", fetched_at=datetime.now(UTC))  # fmt: skip
        return SearchResponse(hits=[hit] if "woofer" in request.query.lower() else [])

    return rag_app


async def test_rag_answers_with_a_citation_of_the_retrieved_page(rag) -> None:  # type: ignore[no-untyped-def]
    async with TestNatsBroker(rag.broker) as br:
        reply = await br.request(AskRequest(question="What is the woofer size of the NW-8?"), "rag.ask")
        answer = Answer.model_validate_json(reply.body)
        assert "Woofer size: 8 in" in answer.answer
        assert [c.url for c in answer.citations] == ["http://demo/products/nw-8"]
        assert answer.model == "extractive"
        rag.on_ask.mock.assert_called_once()


async def test_rag_refuses_without_evidence(rag) -> None:  # type: ignore[no-untyped-def]
    async with TestNatsBroker(rag.broker) as br:
        reply = await br.request(AskRequest(question="Does it ship to Mars?"), "rag.ask")
        answer = Answer.model_validate_json(reply.body)
        assert answer.answer.startswith("I don't know")
        assert answer.citations == []


@pytest.mark.parametrize("annotation", ["Message", "NatsMessage"])
async def test_a_handler_gets_its_message_without_a_worker_thread(annotation: str) -> None:
    """FastStream resolves its own ``NatsMessage`` in a worker thread (~170 µs of CPU a message); the services'
    ``Message`` resolves on the event loop, so it is delivered even while no worker thread can be had."""
    broker = NatsBroker()
    received: list[bytes] = []

    if annotation == "Message":

        @broker.subscriber("probe")
        async def probe(msg: Message) -> None:
            received.append(msg.body)

    else:

        @broker.subscriber("probe")
        async def probe(msg: NatsMessage) -> None:  # type: ignore[no-redef]
            received.append(msg.body)

    async with TestNatsBroker(broker) as br:
        delivered = await _delivered_without_threads(br.publish(b"ping", "probe"))
    if annotation == "Message":
        assert delivered and received == [b"ping"]
    else:
        assert not delivered and received == []  # FastStream's own waits for a thread


async def _delivered_without_threads(publish: Coroutine[Any, Any, Any]) -> bool:
    """Whether ``publish`` completes within 2 s while anyio's worker threads are all taken."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    tokens = limiter.total_tokens
    limiter.total_tokens = 1
    try:
        async with limiter:  # holds the only token
            task = asyncio.create_task(publish)
            done, _ = await asyncio.wait([task], timeout=2)
            task.cancel()
            return bool(done)
    finally:
        limiter.total_tokens = tokens
