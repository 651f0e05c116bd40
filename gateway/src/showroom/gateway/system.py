"""What an operator checks first, and the gateway's own telemetry.

- ``GET /v1/system/status``: every service's health, each stream and
  consumer's lag, the index's size and the DLQ's depth, all read over the
  bus.  Services are found by a scatter-gather request on
  ``showroom.health`` that every instance answers (``common.service``), so
  the gateway needs no one's address, in compose or in k8s.
- :func:`instrument`: ``/metrics`` (process and HTTP request metrics by route
  template and status), a trace id per request (``X-Trace-Id``, taken from
  the request when it sends a sane one) that every log line and the events it
  publishes carry, and ``X-Response-Time-Ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from faststream.nats import NatsBroker
from prometheus_client import Counter, Histogram, make_asgi_app
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from showroom.common.events import new_id, utcnow
from showroom.common.telemetry import trace_id_var
from showroom.common.topology import Streams, Subjects

TRACE_HEADER = "X-Trace-Id"
_TRACE_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")

SERVICES = ("scraper-svc", "indexer-svc", "rag-svc", "metrics-svc")
"""The services behind the bus; the gateway answering is itself the gateway's health."""

HEALTH_WINDOW_S = 0.5
"""How long the status page collects health replies: instances answer in milliseconds."""

HTTP_REQUESTS = Counter(
    "showroom_http_requests_total", "HTTP requests served by the gateway", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "showroom_http_request_duration_seconds",
    "Time to serve an HTTP request at the gateway",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def instrument(app: FastAPI, broker: NatsBroker) -> None:
    """Add /metrics, request metrics and per-request trace ids to the gateway."""
    app.state.broker = broker
    app.mount("/metrics", make_asgi_app())
    app.add_middleware(Telemetry)


class Telemetry:
    """Trace id, ``X-Response-Time-Ms`` and request metrics for every HTTP request.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
    the app in a task of its own and streams the response through a memory channel, a cost paid
    on every request (most visible on the status route polled during a crawl).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(TRACE_HEADER, "")
        trace = sent if _TRACE_RE.match(sent) else new_id()
        token = trace_id_var.set(trace)
        t0 = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[TRACE_HEADER] = trace
                headers["X-Response-Time-Ms"] = f"{(time.perf_counter() - t0) * 1000:.2f}"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The router records the matched route on the scope: label by its template
            # (/v1/crawls/{crawl_id}), never the raw path, so labels stay bounded.
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            if not template.startswith("/metrics"):
                method = scope["method"]
                HTTP_REQUESTS.labels(method, template, str(status)).inc()
                HTTP_SECONDS.labels(method, template).observe(time.perf_counter() - t0)
            trace_id_var.reset(token)


class InstanceHealth(BaseModel):
    instance: str
    ready: bool
    uptime_s: float


class ServiceHealth(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="ok: every instance ready; degraded: some are not; down: none answered or none is ready."
    )
    instances: list[InstanceHealth]


class StreamStatus(BaseModel):
    name: str
    messages: int
    bytes: int
    consumers: int


class ConsumerStatus(BaseModel):
    stream: str
    name: str
    pending: int = Field(description="Not yet delivered: how far behind the stream this consumer is.")
    ack_pending: int = Field(description="Delivered, being worked on, not acknowledged yet.")
    redelivered: int = Field(description="Delivered more than once and not acknowledged yet.")


class IndexStatus(BaseModel):
    collection: str | None = None
    chunks: int | None = None
    error: str | None = None


class DlqStatus(BaseModel):
    depth: int
    by_service: dict[str, int]


class SystemStatus(BaseModel):
    status: Literal["ok", "degraded"]
    problems: list[str] = Field(description="What needs attention, in words; empty when all is well.")
    checked_at: datetime
    services: dict[str, ServiceHealth]
    streams: list[StreamStatus]
    consumers: list[ConsumerStatus]
    index: IndexStatus
    dlq: DlqStatus


router = APIRouter(tags=["system"])


@router.get("/v1/system/status", response_model=SystemStatus)
async def system_status(request: Request) -> SystemStatus:
    """Each service's health, stream and consumer lag, index size and DLQ depth: what an operator checks first."""
    broker: NatsBroker = request.app.state.broker
    health, (streams, consumers, dlq), index = await asyncio.gather(
        _gather_health(broker), _read_jetstream(broker), _index_stats(broker)
    )
    services: dict[str, ServiceHealth] = {}
    problems: list[str] = []
    for name in sorted({*SERVICES, *health}):
        instances = sorted(health.get(name, []), key=lambda i: i.instance)
        ready = sum(i.ready for i in instances)
        status = "ok" if instances and ready == len(instances) else "degraded" if ready else "down"
        services[name] = ServiceHealth(status=status, instances=instances)
        if status != "ok":
            problems.append(f"{name} is {status}: {ready} of {len(instances)} instances ready")
    for c in consumers:
        if c.redelivered:
            problems.append(f"consumer {c.name} on {c.stream} is redelivering {c.redelivered} messages")
    if dlq.depth:
        problems.append(f"the DLQ holds {dlq.depth} dead letters")
    if index.error:
        problems.append(f"index: {index.error}")
    return SystemStatus(
        status="degraded" if problems else "ok",
        problems=problems,
        checked_at=utcnow(),
        services=services,
        streams=streams,
        consumers=consumers,
        index=index,
        dlq=dlq,
    )


async def _gather_health(broker: NatsBroker) -> dict[str, list[InstanceHealth]]:
    nc = broker.config.connection_state.connection
    found: dict[str, list[InstanceHealth]] = {}

    async def on_reply(msg) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(ValueError, KeyError, TypeError):
            body = json.loads(msg.data)
            found.setdefault(str(body["service"]), []).append(InstanceHealth.model_validate(body))

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        await nc.publish(Subjects.HEALTH, b"", reply=inbox)
        # Scatter-gather: how many instances there are is what we are finding out, so wait the window.
        await asyncio.sleep(HEALTH_WINDOW_S)
    finally:
        await sub.unsubscribe()
    return found


async def _read_jetstream(broker: NatsBroker) -> tuple[list[StreamStatus], list[ConsumerStatus], DlqStatus]:
    js = broker.config.connection_state.stream
    streams: list[StreamStatus] = []
    consumers: list[ConsumerStatus] = []
    by_service: dict[str, int] = {}
    for info in await js.streams_info():
        st = info.state
        streams.append(
            StreamStatus(name=info.config.name, messages=st.messages, bytes=st.bytes, consumers=st.consumer_count)
        )
        for c in await js.consumers_info(info.config.name):
            consumers.append(
                ConsumerStatus(
                    stream=info.config.name,
                    name=c.name,
                    pending=c.num_pending or 0,
                    ack_pending=c.num_ack_pending or 0,
                    redelivered=c.num_redelivered or 0,
                )
            )
        if info.config.name == Streams.DLQ.name and st.messages:
            dlq = await js.stream_info(Streams.DLQ.name, subjects_filter="dlq.*")
            by_service = {s.removeprefix("dlq."): n for s, n in (dlq.state.subjects or {}).items()}
    streams.sort(key=lambda s: s.name)
    consumers.sort(key=lambda c: (c.stream, c.name))
    return streams, consumers, DlqStatus(depth=sum(by_service.values()), by_service=by_service)


async def _index_stats(broker: NatsBroker) -> IndexStatus:
    nc = broker.config.connection_state.connection
    try:
        reply = await nc.request(Subjects.INDEX_STATS, b"{}", timeout=3)
        return IndexStatus.model_validate_json(reply.data)
    except Exception as exc:  # indexer-svc down or slow: say so, keep the rest of the page
        return IndexStatus(error=f"indexer-svc did not answer index.stats ({type(exc).__name__})")
