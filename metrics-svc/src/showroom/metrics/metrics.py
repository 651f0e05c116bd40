"""The Prometheus metrics derived from events, kept as plain data so they survive a restart exactly.

:class:`EventTotals` holds every counter and histogram as numbers keyed by
label values, plus which stream sequences have been applied.  It is what
metrics-svc snapshots to JetStream KV before acking a batch, and what it
restores on start (see ``showroom.metrics.consumers``), so a restart neither
loses nor double counts.  :class:`EventCollector` renders it for
``prometheus_client`` at scrape time.

Label values are bounded: brands (one per configured brand), hosts the
brands' crawls visit, fetch modes (``http``/``browser``), failure reasons
(short machine labels such as ``timeout`` or ``http_404``; anything else
becomes ``other``), crawl statuses, answer models and DLQ services.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from showroom.common.events import (
    CrawlFinished,
    CrawlRequested,
    DeadLetter,
    Event,
    PageFailed,
    PageIndexed,
    PageScraped,
    PageUnchanged,
    QuestionAnswered,
)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    """Full Prometheus name; counters end in ``_total`` (the exposition adds it back)."""
    help: str
    labels: tuple[str, ...] = ()
    kind: Literal["counter", "histogram"] = "counter"
    buckets: tuple[float, ...] = ()


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("showroom_crawls_requested_total", "Crawl requests accepted", ("brand",)),
    MetricSpec("showroom_crawls_finished_total", "Crawls that reached a final status", ("brand", "status")),
    MetricSpec("showroom_pages_scraped_total", "Pages fetched and extracted", ("brand", "host", "fetch_mode")),
    MetricSpec(
        "showroom_pages_unchanged_total",
        "Re-fetched pages whose content had not changed (not_modified: the server answered 304)",
        ("brand", "fetch_mode", "not_modified"),
    ),
    MetricSpec("showroom_pages_failed_total", "Pages given up on, by failure reason", ("brand", "host", "reason")),
    MetricSpec("showroom_fetched_bytes_total", "Bytes of HTML fetched", ("brand", "fetch_mode")),
    MetricSpec(
        "showroom_fetch_duration_seconds",
        "Time to fetch one page: plain HTTP (fetch_mode=http) or load and render in Chromium (fetch_mode=browser)",
        ("fetch_mode",),
        "histogram",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    ),
    MetricSpec("showroom_pages_indexed_total", "Pages whose chunks are searchable", ("brand",)),
    MetricSpec("showroom_chunks_indexed_total", "Chunks written to the index", ("brand",)),
    MetricSpec(
        "showroom_index_duration_seconds", "Time to chunk, embed and upsert one page", ("brand",), "histogram", _LATENCY
    ),
    MetricSpec(
        "showroom_freshness_seconds",
        "From a page's fetch to its chunks being searchable",
        ("brand",),
        "histogram",
        (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    ),
    MetricSpec("showroom_questions_answered_total", "Questions answered (refused: none cited)", ("model", "refused")),
    MetricSpec("showroom_answer_cache_requests_total", "Answer-cache lookups by result (hit/miss)", ("result",)),
    MetricSpec(
        "showroom_answer_duration_seconds",
        "Time to answer a question (retrieval and generation)",
        ("model", "cached"),
        "histogram",
        _LATENCY,
    ),
    MetricSpec("showroom_answer_citations", "Citations per answer", (), "histogram", (0, 1, 2, 3, 4, 5, 8, 12)),
    MetricSpec("showroom_dead_letters_total", "Messages a service gave up on (sent to the DLQ)", ("service",)),
    MetricSpec("showroom_events_unreadable_total", "Events metrics-svc could not read, by stream", ("stream",)),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}

_REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def bounded_reason(reason: str) -> str:
    """Failure reasons are short labels (``timeout``, ``http_404``); free text would explode cardinality."""
    return reason if _REASON_RE.match(reason) else "other"


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower() or "unknown"


@dataclass
class _Histogram:
    buckets: list[float]
    sum: float = 0.0

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        # buckets[i] counts observations in (bounds[i-1], bounds[i]]; the last one is +Inf.
        self.buckets[bisect.bisect_left(bounds, value)] += 1
        self.sum += value


@dataclass
class EventTotals:
    """Every event-derived metric as numbers, and how far each stream has been applied."""

    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)
    histograms: dict[str, dict[tuple[str, ...], _Histogram]] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    """Stream name -> a floor: every message at or below it was counted (and acked, so never comes back)."""
    recent: dict[str, set[int]] = field(default_factory=dict)
    """Stream name -> sequences above the floor that were counted.  Redeliveries can arrive out of
    order (a killed process's unacked messages come back after newer ones), so a plain
    high-water mark would drop them; this set is pruned as the consumer's ack floor rises."""

    def __post_init__(self) -> None:
        # Both cache results exist from the start, so a hit ratio reads 0 rather than "no data".
        for result in ("hit", "miss"):
            self.counters.setdefault("showroom_answer_cache_requests_total", {}).setdefault((result,), 0.0)

    # -- recording -------------------------------------------------------------

    def inc(self, name: str, *labels: str, by: float = 1.0) -> None:
        series = self.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + by

    def observe(self, name: str, value: float, *labels: str) -> None:
        bounds = SPEC_BY_NAME[name].buckets
        series = self.histograms.setdefault(name, {})
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = _Histogram([0.0] * (len(bounds) + 1))
        hist.observe(bounds, value)

    def apply(self, stream: str, seq: int, event: Event | None, *, unreadable: bool = False) -> bool:
        """Count ``event`` found at ``seq`` in ``stream`` unless that sequence was already applied.

        ``event`` is ``None`` for a message with nothing to count (e.g. a
        cancellation), or, with ``unreadable``, one that could not be read —
        counted as unreadable, once.  Returns whether the sequence was new.
        """
        recent = self.recent.setdefault(stream, set())
        if seq <= self.applied.get(stream, 0) or seq in recent:
            return False
        recent.add(seq)
        if unreadable:
            self.inc("showroom_events_unreadable_total", stream)
        elif event is not None:
            self._count(event)
        return True

    def _count(self, event: Event) -> None:
        match event:
            case CrawlRequested():
                self.inc("showroom_crawls_requested_total", event.spec.brand)
            case CrawlFinished():
                self.inc("showroom_crawls_finished_total", event.brand, event.status.value)
            case PageScraped():
                self.inc("showroom_pages_scraped_total", event.brand, host_of(event.url), event.fetch_mode)
                self.inc("showroom_fetched_bytes_total", event.brand, event.fetch_mode, by=event.bytes)
                self.observe("showroom_fetch_duration_seconds", event.fetch_ms / 1000, event.fetch_mode)
            case PageUnchanged():
                self.inc("showroom_pages_unchanged_total", event.brand, event.fetch_mode, _b(event.not_modified))
                self.observe("showroom_fetch_duration_seconds", event.fetch_ms / 1000, event.fetch_mode)
            case PageFailed():
                self.inc("showroom_pages_failed_total", event.brand, host_of(event.url), bounded_reason(event.reason))
            case PageIndexed():
                self.inc("showroom_pages_indexed_total", event.brand)
                self.inc("showroom_chunks_indexed_total", event.brand, by=event.chunks)
                self.observe("showroom_index_duration_seconds", event.index_ms / 1000, event.brand)
                freshness = max(0.0, (event.occurred_at - event.fetched_at).total_seconds())
                self.observe("showroom_freshness_seconds", freshness, event.brand)
            case QuestionAnswered():
                cached = event.cached
                self.inc("showroom_questions_answered_total", event.model, _b(event.refused))
                self.inc("showroom_answer_cache_requests_total", "hit" if cached else "miss")
                self.observe("showroom_answer_duration_seconds", event.latency_ms / 1000, event.model, _b(cached))
                self.observe("showroom_answer_citations", len(event.citation_urls))
            case DeadLetter():
                self.inc("showroom_dead_letters_total", event.service)

    def raise_floor(self, stream: str, ack_floor: int) -> None:
        """The consumer acked everything up to ``ack_floor``: those sequences need no remembering."""
        floor = max(self.applied.get(stream, 0), ack_floor)
        self.applied[stream] = floor
        self.recent[stream] = {s for s in self.recent.get(stream, set()) if s > floor}

    # -- reading ---------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        """The sum of a counter's series matching ``labels`` (for tests and the status page)."""
        spec = SPEC_BY_NAME[name]
        return sum(
            v
            for key, v in self.counters.get(name, {}).items()
            if all(key[spec.labels.index(k)] == want for k, want in labels.items())
        )

    # -- snapshot --------------------------------------------------------------

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "applied": self.applied,
                "recent": {k: sorted(v) for k, v in self.recent.items()},
                "counters": {n: [[list(k), v] for k, v in s.items()] for n, s in self.counters.items()},
                "histograms": {
                    n: [[list(k), h.buckets, h.sum] for k, h in s.items()] for n, s in self.histograms.items()
                },
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def loads(cls, data: bytes) -> EventTotals:
        raw = json.loads(data)
        totals = cls(
            applied={k: int(v) for k, v in raw.get("applied", {}).items()},
            recent={k: {int(s) for s in v} for k, v in raw.get("recent", {}).items()},
        )
        for name, series in raw.get("counters", {}).items():
            if name in SPEC_BY_NAME:
                totals.counters[name] = {tuple(k): float(v) for k, v in series}
        for name, series in raw.get("histograms", {}).items():
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                continue
            for k, buckets, total in series:
                if len(buckets) != len(spec.buckets) + 1:
                    continue  # bucket bounds changed since the snapshot: that series starts over
                totals.histograms.setdefault(name, {})[tuple(k)] = _Histogram([float(b) for b in buckets], float(total))
        return totals


def _b(flag: bool) -> str:
    return "true" if flag else "false"


class EventCollector(Collector):
    """Renders an :class:`EventTotals` (read at each scrape) in the Prometheus format."""

    def __init__(self, totals: EventTotals | None = None) -> None:
        self.totals = totals or EventTotals()

    def collect(self) -> Iterator[Metric]:
        totals = self.totals
        for spec in SPECS:
            if spec.kind == "counter":
                counter = CounterMetricFamily(spec.name.removesuffix("_total"), spec.help, labels=spec.labels)
                for key, value in sorted(totals.counters.get(spec.name, {}).items()):
                    counter.add_metric(list(key), value)
                yield counter
            else:
                hist = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
                for key, h in sorted(totals.histograms.get(spec.name, {}).items()):
                    cumulative, running = [], 0.0
                    for bound, n in zip([*spec.buckets, float("inf")], h.buckets, strict=True):
                        running += n
                        cumulative.append((_le(bound), running))
                    hist.add_metric(list(key), cumulative, h.sum)
                yield hist


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
