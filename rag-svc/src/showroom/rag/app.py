"""rag-svc: answers ``rag.ask`` (and, streamed, ``rag.ask.stream``) from ``index.search`` results,
with citations; caches answers in a KV bucket every replica shares; audits to ANSWERS.

Streaming transport.  The gateway subscribes to a fresh inbox first, then publishes an
:class:`AskStreamRequest` naming it on ``rag.ask.stream`` (queue group: one replica answers).
rag-svc publishes JSON frames to the inbox in order: ``{"type": "delta", "text": ...}`` as the
answer is generated, then ``{"type": "answer", "answer": {...}}`` with the repaired text and the
citations (or ``{"type": "error", "detail": ...}``).
"""

from __future__ import annotations

import asyncio
import json
import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, PullSub

from showroom.common.answercache import IndexGeneration, answer_key, question_answered
from showroom.common.bus import Message, dead_letters, decode, make_broker, publish_event
from showroom.common.events import (
    Answer,
    AskRequest,
    PageIndexed,
    ProductSearchRequest,
    ProductSearchResponse,
    ProductSummary,
    SearchRequest,
    SearchResponse,
)
from showroom.common.service import build_app
from showroom.common.topology import QueueGroups, Streams, Subjects
from showroom.rag.answerers import Answerer, ExtractiveAnswerer, GeminiAnswerer
from showroom.rag.cache import AnswerCache
from showroom.rag.pipeline import answer_question, stream_answer
from showroom.rag.settings import RagSettings

log = logging.getLogger(__name__)

settings = RagSettings()
broker = make_broker(settings.nats_servers, "rag-svc")
CACHE_DURABLE = "rag-cache-invalidation"
INVALIDATION_DELIVERIES = 5
_deps: dict[str, AnswerCache] = {}
_generation: dict[str, IndexGeneration] = {}


class AskStreamRequest(AskRequest):
    inbox: str
    """Where to publish the answer's frames (the caller subscribed to it before asking)."""


def make_answerer(s: RagSettings) -> Answerer:
    if s.gemini_api_key is not None:
        return GeminiAnswerer(s.gemini_api_key.get_secret_value(), s.gemini_model, s.gemini_base_url)
    return ExtractiveAnswerer()


answerer = make_answerer(settings)


async def search(request: SearchRequest) -> list:  # type: ignore[type-arg]
    reply = await broker.request(request, Subjects.SEARCH, timeout=settings.search_timeout_s)
    response = SearchResponse.model_validate_json(reply.body)
    if response.error:
        raise RuntimeError(f"index.search failed: {response.error}")
    return response.hits


async def products(request: ProductSearchRequest) -> list[ProductSummary]:
    reply = await broker.request(request, Subjects.PRODUCTS, timeout=settings.search_timeout_s)
    response = ProductSearchResponse.model_validate_json(reply.body)
    if response.error:
        raise RuntimeError(f"index.products failed: {response.error}")
    return response.products


async def cached_answer(request: AskRequest) -> tuple[str | None, Answer | None]:
    cache = _deps.get("cache")
    if cache is None:
        return None, None
    try:
        # The generation is read before searching: see showroom.common.answercache.
        key = answer_key(request, answerer.model, await _generation["index"].of(request.brand))
        return key, await cache.get(key)
    except Exception:  # a cache that is down must not take answering down with it
        log.exception("answer cache read failed")
        return None, None


async def remember(key: str | None, answer: Answer) -> None:
    cache = _deps.get("cache")
    if cache is None or key is None or not answer.citations:  # refusals are cheap, and may change soon
        return
    try:
        await cache.put(key, answer)
    except Exception:
        log.exception("answer cache write failed")


_audits: set[asyncio.Task[None]] = set()


def audit_later(request: AskRequest, answer: Answer) -> None:
    """Record the answer once the caller has it: the audit trail is not part of what a question waits for."""
    task = asyncio.create_task(audit(request, answer))
    _audits.add(task)
    task.add_done_callback(_audits.discard)


async def drain_audits() -> None:
    await asyncio.gather(*_audits, return_exceptions=True)


async def audit(request: AskRequest, answer: Answer) -> None:
    try:
        await publish_event(broker, question_answered(request, answer), Subjects.ANSWERED, stream=Streams.ANSWERS.name)
    except Exception:  # the caller already has its answer; the record is what is lost
        log.exception("audit of an answer failed")


async def answer_with_cache(request: AskRequest) -> Answer:
    key, hit = await cached_answer(request)
    if hit is not None:
        return hit
    answer = await answer_question(
        request,
        search,
        answerer,
        search_top_k=settings.search_top_k,
        min_score=settings.min_score,
        products=products,
    )
    await remember(key, answer)
    return answer


@broker.subscriber(Subjects.ASK, queue=QueueGroups.RAG, max_workers=settings.ask_concurrency)
async def on_ask(request: AskRequest) -> Answer:
    try:
        answer = await answer_with_cache(request)
    except Exception as exc:  # the caller gets a reason, never a hang
        log.exception("answering failed")
        return Answer(question=request.question, answer="", model=answerer.model, citations=[], error=str(exc)[:300])
    audit_later(request, answer)
    return answer


# The gateway sets the inbox as the reply subject too (for nats-server's no-responders status);
# the frames are the answer, so FastStream must not send a reply of its own.
@broker.subscriber(Subjects.ASK_STREAM, queue=QueueGroups.RAG, max_workers=settings.ask_concurrency, no_reply=True)
async def on_ask_stream(request: AskStreamRequest) -> None:
    async def send(frame: dict) -> None:  # type: ignore[type-arg]
        await broker.publish(json.dumps(frame).encode(), request.inbox)

    ask = AskRequest(question=request.question, brand=request.brand, top_k=request.top_k)
    try:
        key, hit = await cached_answer(ask)
        if hit is not None:
            answer = hit
            await send({"type": "delta", "text": answer.answer})
        else:
            answer = None
            async for item in stream_answer(
                ask,
                search,
                answerer,
                search_top_k=settings.search_top_k,
                min_score=settings.min_score,
                products=products,
            ):
                if isinstance(item, Answer):
                    answer = item
                else:
                    await send({"type": "delta", "text": item})
            assert answer is not None
            await remember(key, answer)
        await send({"type": "answer", "answer": answer.model_dump(mode="json")})
    except Exception as exc:
        log.exception("streamed answering failed")
        await send({"type": "error", "detail": str(exc)[:300]})
        return
    audit_later(ask, answer)


@broker.subscriber(
    "page.indexed.*",
    stream=JStream(Streams.INDEX.name, declare=False),
    durable=CACHE_DURABLE,
    deliver_policy=DeliverPolicy.NEW,
    pull_sub=PullSub(batch_size=32, timeout=5),
    config=ConsumerConfig(max_deliver=INVALIDATION_DELIVERIES, ack_wait=30),
    ack_policy=AckPolicy.NACK_ON_ERROR,
)
@dead_letters(broker, "rag-svc", max_deliver=INVALIDATION_DELIVERIES, max_bytes=settings.max_event_bytes)
async def on_page_indexed(msg: Message) -> None:
    """A re-indexed page makes every cached answer citing it stale."""
    event = decode(msg, PageIndexed)
    if event.unchanged or (cache := _deps.get("cache")) is None:
        return
    dropped = await cache.invalidate(event.url)
    if dropped:
        log.info("dropped %d cached answers citing %s", dropped, event.url)


async def open_cache() -> None:
    if settings.answer_cache_ttl_s <= 0:
        return
    js = broker.config.connection_state.stream
    _generation["index"] = await IndexGeneration.start(js, broker.config.connection_state.connection)
    _deps["cache"] = await AnswerCache.open(js, settings.answer_cache_ttl_s, settings.stream_replicas)


async def close_cache() -> None:
    if (generation := _generation.pop("index", None)) is not None:
        await generation.stop()


app = build_app(broker, settings, on_startup=[open_cache], on_shutdown=[drain_audits, close_cache])
