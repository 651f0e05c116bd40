"""rag-svc: answers ``rag.ask`` from ``index.search`` results, with citations; audits to ANSWERS."""

from __future__ import annotations

import logging
import time

from showroom.common.bus import make_broker, publish_event
from showroom.common.events import Answer, AskRequest, QuestionAnswered, SearchRequest, SearchResponse
from showroom.common.service import build_app
from showroom.common.topology import QueueGroups, Streams, Subjects
from showroom.rag.answerers import REFUSAL, Answerer, ExtractiveAnswerer, GeminiAnswerer
from showroom.rag.settings import RagSettings
from showroom.rag.sources import citations_for, group_sources, repair_citations

log = logging.getLogger(__name__)

settings = RagSettings()
broker = make_broker(settings.nats_servers, "rag-svc")


def make_answerer(s: RagSettings) -> Answerer:
    if s.gemini_api_key is not None:
        return GeminiAnswerer(s.gemini_api_key.get_secret_value(), s.gemini_model, s.gemini_base_url)
    return ExtractiveAnswerer()


answerer = make_answerer(settings)


async def answer_question(request: AskRequest) -> Answer:
    t0 = time.perf_counter()
    search = SearchRequest(query=request.question, brand=request.brand, top_k=max(settings.search_top_k, request.top_k))
    reply = await broker.request(search, Subjects.SEARCH, timeout=settings.search_timeout_s)
    hits = SearchResponse.model_validate_json(reply.body).hits
    sources = [s for s in group_sources(hits, limit=request.top_k) if s.score >= settings.min_score]
    text, snippets = await answerer.answer(request.question, sources)
    text, cited = repair_citations(text, sources)
    if not cited:
        text = REFUSAL if not text or text == REFUSAL else text
    return Answer(
        question=request.question,
        answer=text,
        model=answerer.model,
        citations=citations_for(cited, sources, snippets),
        latency_ms=(time.perf_counter() - t0) * 1000,
    )


@broker.subscriber(Subjects.ASK, queue=QueueGroups.RAG, max_workers=8)
async def on_ask(request: AskRequest) -> Answer:
    try:
        answer = await answer_question(request)
    except Exception as exc:  # the caller gets a reason, never a hang
        log.exception("answering failed")
        return Answer(question=request.question, answer="", model=answerer.model, citations=[], error=str(exc)[:300])
    audit = QuestionAnswered(
        question=request.question,
        brand=request.brand,
        model=answer.model,
        answer=answer.answer,
        citation_urls=[c.url for c in answer.citations],
        latency_ms=answer.latency_ms,
        refused=not answer.citations,
    )
    await publish_event(broker, audit, Subjects.ANSWERED, stream=Streams.ANSWERS.name)
    return answer


app = build_app(broker, settings)
