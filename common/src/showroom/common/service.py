"""What every bus-driven service shares: an ASGI app with /healthz and /metrics, and topology on start.

A service module builds its ``NatsBroker`` and subscribers, then calls
:func:`build_app`; ``python -m showroom.<service>`` calls :func:`serve`, which
runs it under uvicorn.  uvicorn turns SIGTERM/SIGINT into a graceful
shutdown: the broker stops fetching, finishes the messages in hand, hands
back (NAKs) those it fetched but had not started (:mod:`showroom.common.pulls`),
then closes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.nats import NatsBroker
from prometheus_client import make_asgi_app

from showroom.common.pulls import bound_pull_subscribers
from showroom.common.settings import ServiceSettings
from showroom.common.telemetry import setup_logging
from showroom.common.topology import Subjects, ensure_topology

log = logging.getLogger(__name__)

INSTANCE = f"{socket.gethostname()}-{os.getpid()}"
"""This process, as health replies name it (the pod name in k8s, the container id in compose)."""


async def answer_health(broker: NatsBroker, ready: Callable[[], bool]) -> None:
    """Answer ``showroom.health`` requests with this instance's health, over the bus.

    No queue group: every instance of every service answers, so one request
    (scatter-gather, as the gateway's ``/v1/system/status`` does) finds them
    all without knowing any address.  The service name is the broker's
    connection name (``make_broker(..., name)``).
    """
    nc = broker.config.connection_state.connection
    service = nc.options.get("name") or "unknown"
    started = time.time()

    async def reply(msg) -> None:  # type: ignore[no-untyped-def]
        try:
            ok = bool(ready())
        except Exception:  # a readiness check that raises means not ready
            ok = False
        body = {"service": service, "instance": INSTANCE, "ready": ok, "uptime_s": round(time.time() - started, 1)}
        if msg.reply:
            await nc.publish(msg.reply, json.dumps(body).encode())

    await nc.subscribe(Subjects.HEALTH, cb=reply)


def build_app(
    broker: NatsBroker,
    settings: ServiceSettings,
    *,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    after_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    after_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    ready: Callable[[], bool] = lambda: True,
) -> AsgiFastStream:
    """The service as an ASGI app: the broker's subscribers plus /healthz, /readyz and /metrics.

    ``on_startup`` hooks run after the connection is up and the topology is
    declared, but before any subscriber starts, so they can open KV buckets
    and browsers that handlers need.
    """

    async def connect_and_declare() -> None:
        await broker.connect()
        await ensure_topology(broker.config.connection_state.stream, replicas=settings.stream_replicas)
        for hook in on_startup:
            await hook()
        await answer_health(broker, ready)

    async def bound_pulls() -> None:
        bound_pull_subscribers(broker)

    @get(include_in_schema=False)
    async def readyz(scope: object) -> AsgiResponse:
        ok = ready() and await broker.ping(timeout=1)
        return AsgiResponse(b"ready" if ok else b"not ready", 200 if ok else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", make_ping_asgi(broker, timeout=2, include_in_schema=False)),
            ("/readyz", readyz),
            ("/metrics", make_asgi_app()),
        ],
        on_startup=[connect_and_declare],
        after_startup=[bound_pulls, *after_startup],
        on_shutdown=list(on_shutdown),
        after_shutdown=list(after_shutdown),
    )


def serve(app: AsgiFastStream, settings: ServiceSettings, service: str) -> None:
    setup_logging(service, settings.log_level, settings.log_json)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        loop=settings.event_loop,
    )
