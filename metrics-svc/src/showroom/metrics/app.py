"""metrics-svc: Prometheus metrics from its own durable consumers on every stream, and from the bus's state.

- Event totals (crawls, pages, index, answers, dead letters): counted by
  :class:`~showroom.metrics.consumers.EventCounter` exactly once across
  restarts (snapshot in JetStream KV before each ack).
- Bus state (streams, consumers' lag, DLQ depth, nats-server): polled by
  :class:`~showroom.metrics.busstate.BusPoller`.

Both are rendered on ``/metrics`` beside the process metrics every service has.
Run it as one replica (see ``consumers``).
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from showroom.common.bus import make_broker
from showroom.common.service import build_app
from showroom.metrics.busstate import BusCollector, BusPoller
from showroom.metrics.consumers import EventCounter
from showroom.metrics.metrics import EventCollector, EventTotals
from showroom.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)

settings = MetricsSettings()
broker = make_broker(settings.nats_servers, "metrics-svc")
totals = EventTotals()
event_collector = EventCollector(totals)
bus_collector = BusCollector()
REGISTRY.register(event_collector)
REGISTRY.register(bus_collector)
_parts: dict[str, EventCounter | BusPoller] = {}


async def start_counting() -> None:
    js = broker.config.connection_state.stream
    counter = EventCounter(js, totals, batch=settings.count_batch, replicas=settings.stream_replicas)
    await counter.start()
    _parts["counter"] = counter
    nc = broker.config.connection_state.connection
    poller = BusPoller(js, nc, settings.nats_monitor_url, settings.bus_poll_interval_s)
    await poller.start()
    bus_collector.poller = poller
    _parts["poller"] = poller


async def stop_counting() -> None:
    for part in _parts.values():
        await part.stop()
    _parts.clear()


def _ready() -> bool:
    counter = _parts.get("counter")
    return isinstance(counter, EventCounter) and counter.running


app = build_app(broker, settings, after_startup=[start_counting], on_shutdown=[stop_counting], ready=_ready)
