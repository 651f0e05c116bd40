"""metrics-svc's event totals: what each event counts, and that a snapshot restores them exactly."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from showroom.common.events import (
    CrawlFinished,
    CrawlStatus,
    DeadLetter,
    PageFailed,
    PageIndexed,
    PageScraped,
    QuestionAnswered,
    utcnow,
)
from showroom.metrics.metrics import EventCollector, EventTotals, bounded_reason


def scraped(url: str = "http://shop.example:8080/a", mode: str = "browser") -> PageScraped:
    return PageScraped(crawl_id="c", brand="cobalt", url=url, final_url=url, depth=0, status_code=200,
                       fetch_mode=mode, content_hash="h", fetch_ms=120.0, bytes=2048)  # fmt: skip


def samples(totals: EventTotals) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(EventCollector(totals))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_page_events_count_by_brand_host_and_mode() -> None:
    totals = EventTotals()
    totals.apply("PAGES", 1, scraped())
    totals.apply("PAGES", 2, scraped(mode="http"))
    totals.apply("PAGES", 3, PageFailed(crawl_id="c", brand="cobalt", url="http://shop.example:8080/b", depth=1,
                                        reason="http_404"))  # fmt: skip
    s = samples(totals)
    key = (("brand", "cobalt"), ("fetch_mode", "browser"), ("host", "shop.example:8080"))
    assert s[("showroom_pages_scraped_total", key)] == 1
    assert s[("showroom_fetched_bytes_total", (("brand", "cobalt"), ("fetch_mode", "http")))] == 2048
    assert s[("showroom_pages_failed_total", (("brand", "cobalt"), ("host", "shop.example:8080"),
                                              ("reason", "http_404")))] == 1  # fmt: skip
    assert s[("showroom_fetch_duration_seconds_count", (("fetch_mode", "browser"),))] == 1
    assert s[("showroom_fetch_duration_seconds_bucket", (("fetch_mode", "browser"), ("le", "0.25")))] == 1
    assert s[("showroom_fetch_duration_seconds_bucket", (("fetch_mode", "browser"), ("le", "0.1")))] == 0


def test_a_sequence_already_applied_is_never_counted_again() -> None:
    totals = EventTotals()
    assert totals.apply("PAGES", 5, scraped())
    assert not totals.apply("PAGES", 5, scraped())  # redelivered
    # A killed process's unacked message comes back after newer ones: it still counts, once.
    assert totals.apply("PAGES", 4, scraped())
    assert not totals.apply("PAGES", 4, scraped())
    assert totals.apply("INDEX", 1, None)  # another stream has its own sequences
    assert totals.value("showroom_pages_scraped_total", brand="cobalt") == 2


def test_the_ack_floor_bounds_what_is_remembered() -> None:
    totals = EventTotals()
    for seq in (1, 2, 3, 7):
        totals.apply("PAGES", seq, scraped())
    totals.raise_floor("PAGES", 3)
    assert totals.applied == {"PAGES": 3} and totals.recent["PAGES"] == {7}
    assert not totals.apply("PAGES", 2, scraped()) and not totals.apply("PAGES", 7, scraped())
    assert totals.apply("PAGES", 5, scraped())


def test_free_text_failure_reasons_do_not_become_labels() -> None:
    assert bounded_reason("timeout") == "timeout"
    assert bounded_reason("http_503") == "http_503"
    assert bounded_reason("Connection reset by peer at 10.0.0.1") == "other"


def test_freshness_index_answers_and_dead_letters() -> None:
    totals = EventTotals()
    now = utcnow()
    fetched = now - timedelta(seconds=3)
    totals.apply("INDEX", 1, PageIndexed(brand="cobalt", url="u", content_hash="h", chunks=7, collection="c",
                                         fetched_at=fetched, occurred_at=now, index_ms=40))  # fmt: skip
    totals.apply("ANSWERS", 1, QuestionAnswered(question="q?", brand=None, model="extractive", answer="a [1]",
                                                citation_urls=["u"], latency_ms=30, cached=True))  # fmt: skip
    totals.apply("ANSWERS", 2, QuestionAnswered(question="q?", brand=None, model="extractive", answer="",
                                                citation_urls=[], latency_ms=10, refused=True))  # fmt: skip
    totals.apply("DLQ", 1, DeadLetter(service="indexer-svc", subject="page.scraped.x", reason="r", deliveries=1,
                                      payload="{}"))  # fmt: skip
    totals.apply("CRAWLS", 1, CrawlFinished(crawl_id="c", brand="cobalt", status=CrawlStatus.COMPLETED, counts={}))
    s = samples(totals)
    assert s[("showroom_chunks_indexed_total", (("brand", "cobalt"),))] == 7
    assert s[("showroom_freshness_seconds_bucket", (("brand", "cobalt"), ("le", "2.0")))] == 0
    assert s[("showroom_freshness_seconds_bucket", (("brand", "cobalt"), ("le", "5.0")))] == 1
    assert s[("showroom_freshness_seconds_sum", (("brand", "cobalt"),))] == 3
    assert s[("showroom_answer_cache_requests_total", (("result", "hit"),))] == 1
    assert s[("showroom_answer_cache_requests_total", (("result", "miss"),))] == 1
    assert s[("showroom_questions_answered_total", (("model", "extractive"), ("refused", "true")))] == 1
    assert s[("showroom_answer_citations_bucket", (("le", "0.0"),))] == 1
    assert s[("showroom_dead_letters_total", (("service", "indexer-svc"),))] == 1
    assert s[("showroom_crawls_finished_total", (("brand", "cobalt"), ("status", "completed")))] == 1


def test_a_snapshot_restores_every_series_and_the_sequences() -> None:
    totals = EventTotals()
    for seq in range(1, 6):
        totals.apply("PAGES", seq, scraped(url=f"http://h/{seq}"))
    totals.apply("PAGES", 6, None, unreadable=True)
    restored = EventTotals.loads(totals.dumps())
    assert samples(restored) == samples(totals)
    assert restored.recent == {"PAGES": {1, 2, 3, 4, 5, 6}}
    assert not restored.apply("PAGES", 6, scraped())
