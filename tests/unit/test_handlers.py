"""Service handlers on FastStream's in-memory broker: fast, no server needed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from faststream.nats import TestNatsBroker

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
