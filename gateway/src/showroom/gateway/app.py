"""Showroom's HTTP API: crawl requests and status, and questions answered with citations.

The gateway keeps no state of its own: a crawl request becomes a
``crawl.requested`` event plus a record in the ``crawls`` KV bucket, status is
read from that bucket and questions are forwarded to rag-svc over
``rag.ask``.  Any number of replicas therefore answer alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from showroom.common.bus import kv_get, kv_update, make_broker, publish_event
from showroom.common.crawls import CrawlCounts, CrawlState
from showroom.common.events import (
    CrawlCancelled,
    CrawlFinished,
    CrawlSpec,
    CrawlStatus,
    utcnow,
)
from showroom.common.inflight import InflightTotals
from showroom.common.topology import Buckets, Streams, Subjects, ensure_topology
from showroom.gateway.answers import router as answers_router
from showroom.gateway.auth import KeyRing, Scope, require_scope
from showroom.gateway.bodylimit import BodySizeLimit
from showroom.gateway.brands import router as brands_router
from showroom.gateway.brands import run_brands
from showroom.gateway.crawls import CrawlAccepted, start_crawl
from showroom.gateway.dlq import router as dlq_router
from showroom.gateway.errors import ERROR_RESPONSES, ErrorBody, install_error_handlers
from showroom.gateway.lineage import router as lineage_router
from showroom.gateway.products import router as products_router
from showroom.gateway.replays import router as replays_router
from showroom.gateway.settings import GatewaySettings
from showroom.gateway.system import instrument
from showroom.gateway.system import router as system_router

log = logging.getLogger(__name__)

_CRAWL_ID = re.compile(r"[A-Za-z0-9]{1,64}")
"""Crawl ids are hex; anything else cannot name one (nor be a valid KV key)."""


class CrawlProgress(CrawlCounts):
    queued: int = Field(0, description="Discovered, not yet being fetched.")
    in_flight: int = Field(0, description="Being fetched right now, over all scrapers.")


class CrawlPublic(BaseModel):
    crawl_id: str
    brand: str
    status: CrawlStatus
    counts: CrawlProgress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    spec: CrawlSpec


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    broker = make_broker(settings.nats_servers, "gateway")
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        js = broker.config.connection_state.stream
        await ensure_topology(js, replicas=settings.stream_replicas)
        nc = broker.config.connection_state.connection
        state["crawls"] = await js.key_value(Buckets.CRAWLS.name)
        inflight = state["inflight"] = InflightTotals(await js.key_value(Buckets.INFLIGHT.name), nc)
        await inflight.start()
        try:
            async with run_brands(app_, broker, settings):
                yield
        finally:
            if (answers := getattr(app_.state, "cached_answers", None)) is not None:
                await answers.close()
            await inflight.stop()
            await broker.stop()

    app = FastAPI(
        title="Showroom",
        version="0.1.0",
        summary="Crawl music-equipment brand sites and answer questions about their products, with citations.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        # Request metrics and trace ids are the gateway's own (system.Telemetry); FastAPI's
        # OpenTelemetry hooks would only re-check on every request that nothing is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )

    def scoped(scope: Scope) -> list[Any]:
        return [Depends(require_scope(scope))]

    authed = scoped(Scope.CRAWL)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)  # inside instrument's: 413s are counted
    instrument(app, broker)
    install_error_handlers(app)
    app.state.settings = settings
    app.state.keys = KeyRing(settings)
    app.include_router(system_router, dependencies=scoped(Scope.ADMIN))
    app.include_router(answers_router, dependencies=scoped(Scope.ASK))
    app.include_router(products_router, dependencies=scoped(Scope.ASK))
    app.include_router(lineage_router, dependencies=scoped(Scope.ASK))
    app.include_router(brands_router, dependencies=scoped(Scope.CRAWL))
    app.include_router(replays_router, dependencies=scoped(Scope.ADMIN))
    app.include_router(dlq_router, dependencies=scoped(Scope.ADMIN))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok = "crawls" in state and await broker.ping(timeout=1)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.post(
        "/v1/crawls",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=authed,
        response_model=CrawlAccepted,
        tags=["crawls"],
    )
    async def create_crawl(spec: CrawlSpec, request: Request) -> CrawlAccepted:
        """Queue a crawl of one brand's site."""
        event = await start_crawl(broker, state["crawls"], spec)
        return CrawlAccepted(
            crawl_id=event.crawl_id,
            status=CrawlStatus.QUEUED,
            status_url=str(request.url_for("get_crawl", crawl_id=event.crawl_id)),
        )

    @app.get(
        "/v1/crawls/{crawl_id}",
        dependencies=authed,
        response_model=CrawlPublic,
        responses={404: {"model": ErrorBody}},
        tags=["crawls"],
    )
    async def get_crawl(crawl_id: str) -> CrawlPublic:
        """A crawl's status and exact counts."""
        record = await _load(crawl_id)
        public = CrawlPublic.model_validate(record, from_attributes=True)
        if not record.status.is_final:
            in_flight = state["inflight"].total(crawl_id)
            public.counts.in_flight = min(in_flight, record.counts.in_progress)
            public.counts.queued = max(0, record.counts.in_progress - public.counts.in_flight)
        return public

    @app.delete(
        "/v1/crawls/{crawl_id}",
        dependencies=authed,
        response_model=CrawlPublic,
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
        tags=["crawls"],
    )
    async def cancel_crawl(crawl_id: str) -> CrawlPublic:
        """Cancel a crawl: scrapers stop taking its pages within seconds; what was indexed stays."""
        await _load(crawl_id)

        def cancel(current: CrawlState | None) -> CrawlState | None:
            if current is None or current.status.is_final:
                return None
            current.status = CrawlStatus.CANCELLED
            current.finished_at = utcnow()
            return current

        record = await kv_update(state["crawls"], crawl_id, CrawlState, cancel)
        if record is None:
            current = await _load(crawl_id)
            raise HTTPException(status.HTTP_409_CONFLICT, f"crawl {crawl_id} is already {current.status.value}")
        brand, trace = record.brand, record.trace_id
        await publish_event(
            broker, CrawlCancelled(crawl_id=crawl_id, brand=brand, trace_id=trace),
            Subjects.crawl_cancelled(brand), stream=Streams.CRAWLS.name, msg_id=f"{crawl_id}.cancelled",
        )  # fmt: skip
        finished = CrawlFinished(
            crawl_id=crawl_id, brand=brand, trace_id=trace, status=record.status, counts=record.counts.model_dump()
        )
        await publish_event(
            broker, finished, Subjects.crawl_finished(brand), stream=Streams.CRAWLS.name, msg_id=f"{crawl_id}.finished"
        )
        log.info("crawl %s cancelled", crawl_id)
        return CrawlPublic.model_validate(record, from_attributes=True)

    async def _load(crawl_id: str) -> CrawlState:
        if not _CRAWL_ID.fullmatch(crawl_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no crawl {crawl_id!r}")
        # Read from KV, not from a mirror of it: whoever just received crawl.finished must not be told
        # "running" by a copy one hop behind.
        record, _ = await kv_get(state["crawls"], crawl_id, CrawlState)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no crawl {crawl_id!r}")
        return record

    return app
