"""The bus's own state as Prometheus gauges: JetStream streams and consumers, and nats-server's /varz and /jsz.

A background task polls every few seconds and keeps the last reading; the
collector renders that reading at scrape time (a scrape never waits on NATS).
Series vanish with the thing they describe (a deleted consumer is not
reported as stuck forever), and ``showroom_bus_up`` / ``showroom_nats_monitor_up``
say whether the last poll worked, so "no data" and "zero" stay distinct.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)


@dataclass
class StreamReading:
    messages: int
    bytes: int
    consumers: int
    first_seq: int
    last_seq: int


@dataclass
class ConsumerReading:
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    delivered_seq: int


@dataclass
class BusReading:
    at: float = 0.0
    up: bool = False
    streams: dict[str, StreamReading] = field(default_factory=dict)
    consumers: dict[tuple[str, str], ConsumerReading] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    """DLQ messages kept, per service (the ``dlq.<service>`` subject)."""
    monitor_up: bool = False
    varz: dict[str, float] = field(default_factory=dict)
    jsz: dict[str, float] = field(default_factory=dict)
    index_chunks: float | None = None
    """Chunks in the search index, as indexer-svc answers ``index.stats`` (None: it did not answer)."""


async def read_jetstream(js: JetStreamContext, reading: BusReading) -> None:
    for info in await js.streams_info():
        name, st = info.config.name, info.state
        reading.streams[name] = StreamReading(
            st.messages, st.bytes, st.consumer_count, st.first_seq, st.last_seq
        )  # fmt: skip
        for c in await js.consumers_info(name):
            reading.consumers[(name, c.name)] = ConsumerReading(
                pending=c.num_pending or 0,
                ack_pending=c.num_ack_pending or 0,
                redelivered=c.num_redelivered or 0,
                waiting=c.num_waiting or 0,
                delivered_seq=(c.delivered.stream_seq or 0) if c.delivered else 0,
            )
    if reading.streams.get(Streams.DLQ.name, StreamReading(0, 0, 0, 0, 0)).messages:
        info = await js.stream_info(Streams.DLQ.name, subjects_filter="dlq.*")
        for subject, n in (info.state.subjects or {}).items():
            reading.dlq[subject.removeprefix("dlq.")] = n


_VARZ = ("connections", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "slow_consumers", "mem", "cpu", "subscriptions")
_JSZ = ("memory", "storage", "streams", "consumers", "messages", "bytes")


async def read_monitor(session: aiohttp.ClientSession, url: str, reading: BusReading) -> None:
    async with session.get(f"{url.rstrip('/')}/varz") as resp:
        varz = await resp.json()
    async with session.get(f"{url.rstrip('/')}/jsz") as resp:
        jsz = await resp.json()
    reading.varz = {k: float(varz.get(k, 0) or 0) for k in _VARZ}
    reading.jsz = {k: float(jsz.get(k, 0) or 0) for k in _JSZ}
    api = jsz.get("api") or {}
    reading.jsz["api_total"] = float(api.get("total", 0) or 0)
    reading.jsz["api_errors"] = float(api.get("errors", 0) or 0)
    reading.monitor_up = True


async def read_index_size(nc: NatsClient, reading: BusReading) -> None:
    reply = await nc.request(Subjects.INDEX_STATS, b"{}", timeout=2)
    reading.index_chunks = float(json.loads(reply.data)["chunks"])


class BusPoller:
    def __init__(self, js: JetStreamContext, nc: NatsClient, monitor_url: str | None, interval: float = 5.0) -> None:
        self.js = js
        self.nc = nc
        self.monitor_url = monitor_url
        self.interval = interval
        self.reading = BusReading()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        await self.poll()
        self._task = asyncio.create_task(self._forever(), name="bus-poll")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session:
            await self._session.close()

    async def poll(self) -> BusReading:
        reading = BusReading(at=time.time())
        try:
            await asyncio.wait_for(read_jetstream(self.js, reading), timeout=5)
            reading.up = True
        except Exception as exc:  # NATS down or restarting: report it as down, keep polling
            log.warning("reading JetStream state failed: %s", exc or type(exc).__name__)
        if self.monitor_url and self._session is not None:
            try:
                await read_monitor(self._session, self.monitor_url, reading)
            except Exception as exc:
                log.warning("reading %s failed: %s", self.monitor_url, exc or type(exc).__name__)
        try:
            await read_index_size(self.nc, reading)
        except Exception as exc:  # indexer-svc down: the gauge disappears rather than lies
            log.debug("index.stats failed: %s", exc or type(exc).__name__)
        self.reading = reading
        return reading

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.poll()


class BusCollector(Collector):
    def __init__(self, poller: BusPoller | None = None) -> None:
        self.poller = poller

    def collect(self) -> Iterator[Metric]:
        r = self.poller.reading if self.poller else BusReading()
        yield _gauge("showroom_bus_up", "1 when the last read of JetStream's state worked", [([], float(r.up))])
        yield _gauge("showroom_bus_last_read_timestamp_seconds", "When JetStream's state was last read", [([], r.at)])
        s = sorted(r.streams.items())
        yield _gauge(
            "showroom_jetstream_stream_messages",
            "Messages kept in a stream",
            [([n], x.messages) for n, x in s],
            ["stream"],
        )
        yield _gauge(
            "showroom_jetstream_stream_bytes", "Bytes kept in a stream", [([n], x.bytes) for n, x in s], ["stream"]
        )
        yield _gauge(
            "showroom_jetstream_stream_consumers",
            "Consumers on a stream",
            [([n], x.consumers) for n, x in s],
            ["stream"],
        )
        yield _gauge(
            "showroom_jetstream_stream_last_sequence",
            "A stream's last sequence",
            [([n], x.last_seq) for n, x in s],
            ["stream"],
        )
        c = sorted(r.consumers.items())
        labels = ["stream", "consumer"]
        yield _gauge(
            "showroom_jetstream_consumer_pending_messages",
            "Messages a consumer has not been delivered yet (its lag)",
            [([st, n], x.pending) for (st, n), x in c], labels,
        )  # fmt: skip
        yield _gauge(
            "showroom_jetstream_consumer_ack_pending_messages",
            "Messages delivered to a consumer and not acknowledged yet",
            [([st, n], x.ack_pending) for (st, n), x in c], labels,
        )  # fmt: skip
        yield _gauge(
            "showroom_jetstream_consumer_redelivered_messages",
            "Messages being redelivered to a consumer (delivered more than once, not yet acked)",
            [([st, n], x.redelivered) for (st, n), x in c], labels,
        )  # fmt: skip
        yield _gauge(
            "showroom_jetstream_consumer_waiting_pulls",
            "Pull requests waiting on a consumer (idle workers)",
            [([st, n], x.waiting) for (st, n), x in c], labels,
        )  # fmt: skip
        yield _gauge(
            "showroom_dlq_messages",
            "Dead letters kept in the DLQ stream, per service that gave up on them",
            [([svc], n) for svc, n in sorted(r.dlq.items())], ["service"],
        )  # fmt: skip
        index = [([], r.index_chunks)] if r.index_chunks is not None else []
        yield _gauge("showroom_index_chunks", "Chunks in the search index (indexer-svc's index.stats)", index)
        monitor = [([], float(r.monitor_up))]
        yield _gauge("showroom_nats_monitor_up", "1 when nats-server's monitoring endpoint answered", monitor)
        if r.monitor_up:
            v, j = r.varz, r.jsz
            yield _gauge("showroom_nats_connections", "Client connections", [([], v["connections"])])
            yield _gauge("showroom_nats_subscriptions", "Subscriptions", [([], v["subscriptions"])])
            yield _gauge("showroom_nats_memory_bytes", "nats-server resident memory", [([], v["mem"])])
            yield _gauge("showroom_nats_cpu_percent", "nats-server CPU use", [([], v["cpu"])])
            yield _counter("showroom_nats_in_messages", "Messages received by nats-server", v["in_msgs"])
            yield _counter("showroom_nats_out_messages", "Messages sent by nats-server", v["out_msgs"])
            yield _counter("showroom_nats_in_bytes", "Bytes received by nats-server", v["in_bytes"])
            yield _counter("showroom_nats_out_bytes", "Bytes sent by nats-server", v["out_bytes"])
            yield _counter("showroom_nats_slow_consumers", "Clients cut off as too slow", v["slow_consumers"])
            yield _gauge("showroom_nats_jetstream_storage_bytes", "JetStream file storage used", [([], j["storage"])])
            yield _gauge("showroom_nats_jetstream_memory_bytes", "JetStream memory storage used", [([], j["memory"])])
            yield _counter("showroom_nats_jetstream_api_requests", "JetStream API requests", j["api_total"])
            yield _counter("showroom_nats_jetstream_api_errors", "JetStream API requests that failed", j["api_errors"])


def _gauge(name: str, doc: str, samples: list[tuple[list[str], float]], labels: list[str] | None = None) -> Metric:
    g = GaugeMetricFamily(name, doc, labels=labels or [])
    for values, value in samples:
        g.add_metric(values, float(value))
    return g


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)
