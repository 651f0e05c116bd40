"""The Prometheus metrics derived from events.  Label values are bounded: brands, modes, reasons, statuses."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from showroom.common.events import (
    CrawlFinished,
    CrawlRequested,
    PageFailed,
    PageIndexed,
    PageScraped,
    PageUnchanged,
    QuestionAnswered,
)

CRAWLS_REQUESTED = Counter("showroom_crawls_requested_total", "Crawl requests accepted", ["brand"])
CRAWLS_FINISHED = Counter("showroom_crawls_finished_total", "Crawls that reached a final status", ["brand", "status"])
PAGES_SCRAPED = Counter("showroom_pages_scraped_total", "Pages fetched and extracted", ["brand", "fetch_mode"])
PAGES_UNCHANGED = Counter(
    "showroom_pages_unchanged_total",
    "Re-fetched pages whose content had not changed",
    ["brand", "not_modified"],
)
PAGES_FAILED = Counter("showroom_pages_failed_total", "Pages given up on", ["brand", "reason"])
PAGES_INDEXED = Counter("showroom_pages_indexed_total", "Pages whose chunks are searchable", ["brand"])
CHUNKS_INDEXED = Counter("showroom_chunks_indexed_total", "Chunks written to the index", ["brand"])
BYTES_FETCHED = Counter("showroom_fetched_bytes_total", "Bytes of HTML fetched", ["brand"])
FETCH_SECONDS = Histogram(
    "showroom_fetch_duration_seconds",
    "Time to fetch (and render) one page",
    ["fetch_mode"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
FRESHNESS_SECONDS = Histogram(
    "showroom_freshness_seconds",
    "From a page's fetch to its chunks being searchable",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
QUESTIONS = Counter("showroom_questions_answered_total", "Questions answered", ["model", "refused"])
ANSWER_SECONDS = Histogram(
    "showroom_answer_duration_seconds",
    "Time to answer a question (retrieval and generation)",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
CITATIONS = Histogram("showroom_answer_citations", "Citations per answer", buckets=(0, 1, 2, 3, 5, 8))


def observe(event: object) -> None:
    match event:
        case CrawlRequested():
            CRAWLS_REQUESTED.labels(event.spec.brand).inc()
        case CrawlFinished():
            CRAWLS_FINISHED.labels(event.brand, event.status.value).inc()
        case PageScraped():
            PAGES_SCRAPED.labels(event.brand, event.fetch_mode).inc()
            BYTES_FETCHED.labels(event.brand).inc(event.bytes)
            FETCH_SECONDS.labels(event.fetch_mode).observe(event.fetch_ms / 1000)
        case PageUnchanged():
            PAGES_UNCHANGED.labels(event.brand, str(event.not_modified).lower()).inc()
            FETCH_SECONDS.labels(event.fetch_mode).observe(event.fetch_ms / 1000)
        case PageFailed():
            PAGES_FAILED.labels(event.brand, event.reason).inc()
        case PageIndexed():
            PAGES_INDEXED.labels(event.brand).inc()
            CHUNKS_INDEXED.labels(event.brand).inc(event.chunks)
            FRESHNESS_SECONDS.observe(max(0.0, (event.occurred_at - event.fetched_at).total_seconds()))
        case QuestionAnswered():
            QUESTIONS.labels(event.model, str(event.refused).lower()).inc()
            ANSWER_SECONDS.labels(event.model).observe(event.latency_ms / 1000)
            CITATIONS.observe(len(event.citation_urls))
