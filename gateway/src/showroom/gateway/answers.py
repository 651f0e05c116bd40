"""Questions answered from the crawled pages, with citations: whole (``POST /v1/ask``) or streamed
as server-sent events (``POST /v1/ask/stream``).

Streaming rides on core NATS: the gateway subscribes to a fresh inbox, then publishes the question
with that inbox (in the body and as the reply subject) on ``rag.ask.stream``; rag-svc publishes
``delta`` frames and a final ``answer`` frame (with the repaired text and citations) there.  Each
frame becomes one SSE event of the same name.

``/v1/ask`` serves answer-cache hits itself (:mod:`showroom.gateway.cachedanswers`); the streamed
route leaves them to rag-svc, which sends a hit as one ``delta``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response, StreamingResponse
from faststream.nats import NatsBroker
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from starlette.background import BackgroundTask

from showroom.common.events import Answer, AskRequest
from showroom.common.topology import Subjects
from showroom.gateway.cachedanswers import CachedAnswers, CachedAnswersOpener, Lookup
from showroom.gateway.errors import ErrorBody

log = logging.getLogger(__name__)

router = APIRouter(tags=["answers"])


async def cached_answers(request: Request) -> CachedAnswers | None:
    """The app's reader of the answer cache, opened on the first question."""
    state = request.app.state
    if (opener := getattr(state, "cached_answers", None)) is None:
        opener = state.cached_answers = CachedAnswersOpener()
    return await opener.get(state.broker)


@router.post(
    "/v1/ask",
    response_model=Answer,
    responses={503: {"model": ErrorBody}, 504: {"model": ErrorBody}},
)
async def ask(question: AskRequest, request: Request) -> Response:
    """Answer a question from the crawled pages, citing them."""
    broker: NatsBroker = request.app.state.broker
    timeout = request.app.state.settings.ask_timeout_s
    cache = await cached_answers(request)
    lookup = Lookup()
    if cache is not None:
        try:
            lookup = await cache.lookup(question)
        except Exception:  # a cache read that fails is a miss: rag-svc still answers
            log.exception("answer cache read failed")
        if (hit := lookup.hit) is not None:
            audit = BackgroundTask(cache.audit, question, hit.answer)  # after the response is sent
            return Response(hit.body, media_type="application/json", background=audit)
    try:
        reply = await broker.request(question, Subjects.ASK, timeout=timeout)
    except NoRespondersError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rag-svc is not running") from exc
    except (NatsTimeout, TimeoutError) as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "rag-svc did not answer in time") from exc
    answer = Answer.model_validate_json(reply.body)
    if answer.error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, answer.error)
    if cache is not None:
        cache.learn(lookup, answer)
    # rag-svc's JSON, checked above, as it came: re-serialising the model would only cost time.
    return Response(reply.body, media_type="application/json")


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@router.post(
    "/v1/ask/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`delta` events, then one `answer`"},
        503: {"model": ErrorBody},
        504: {"model": ErrorBody},
    },
)
async def ask_stream(question: AskRequest, request: Request) -> StreamingResponse:
    """The answer as server-sent events: ``delta`` (``{"text": ...}``) as it is generated, then
    ``answer`` (the whole :class:`Answer`, citations included) or ``error`` (``{"detail": ...}``).

    The response starts with rag-svc's first frame, so a rag-svc that is not running is a 503
    (and one that never answers a 504) like ``/v1/ask``, not an event stream that says so late.
    The question is published with the inbox as its reply subject: when nobody subscribes to
    ``rag.ask.stream`` nats-server answers that inbox at once with a no-responders status."""
    broker: NatsBroker = request.app.state.broker
    timeout = request.app.state.settings.ask_timeout_s
    nc = broker.config.connection_state.connection
    inbox = nc.new_inbox()
    frames: asyncio.Queue[dict] = asyncio.Queue()  # type: ignore[type-arg]

    async def on_frame(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS_STATUS:
            await frames.put({"type": "no-responders"})
        elif msg.data:
            await frames.put(json.loads(msg.data))

    sub = await nc.subscribe(inbox, cb=on_frame)
    body = {**question.model_dump(), "inbox": inbox}
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        await nc.publish(Subjects.ASK_STREAM, json.dumps(body).encode(), reply=inbox)
        async with asyncio.timeout_at(deadline):
            first = await frames.get()
    except TimeoutError as exc:
        await sub.unsubscribe()
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "rag-svc did not answer in time") from exc
    except BaseException:
        await sub.unsubscribe()
        raise
    if first.get("type") == "no-responders":
        await sub.unsubscribe()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rag-svc is not running")

    async def events() -> AsyncIterator[bytes]:
        frame = first
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    kind = frame.get("type")
                    if kind == "delta":
                        yield _sse("delta", {"text": frame.get("text", "")})
                    elif kind == "answer":
                        yield _sse("answer", frame["answer"])
                        return
                    else:
                        yield _sse("error", {"detail": frame.get("detail", "answering failed")})
                        return
                    frame = await frames.get()
        except TimeoutError:
            yield _sse("error", {"detail": "rag-svc did not answer in time"})
        finally:
            await sub.unsubscribe()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
