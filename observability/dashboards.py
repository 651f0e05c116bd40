"""Showroom's Grafana dashboards, as code (grafana-foundation-sdk, schemaVersion 41).

    uv run python observability/dashboards.py          # rewrite observability/grafana/dashboards/*.json

The JSON it writes is committed: docker-compose mounts it, k8s ships it as
ConfigMaps (observability/kustomization.yaml), ``showroom grafana push``
uploads it.  tests/unit/test_dashboards.py fails when the committed JSON and
this code disagree, and tests/integration/test_observability.py runs every
panel's query against a real Prometheus scraping the stack.

Every query reads the datasource with uid ``prometheus``; ``$brand`` is a
multi-value variable (regex match), ``$__rate_interval`` Grafana's own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as d
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

OUT = Path(__file__).parent / "grafana" / "dashboards"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
RATE = "$__rate_interval"
BRAND = 'brand=~"$brand"'
PENDING = "sum by (stream, consumer) (showroom_jetstream_consumer_pending_messages)"
PER_CONSUMER = "{{stream}}/{{consumer}}"
REDELIVERED = "sum(showroom_jetstream_consumer_redelivered_messages)"


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def series(title: str, unit: str, *queries: prometheus.Dataquery, width: int = 12, desc: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(width)
    panel = panel.fill_opacity(10).line_width(1)
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel.description(desc) if desc else panel


def single(title: str, unit: str, expr: str, width: int = 4, desc: str = "", red_above: float | None = None):  # type: ignore[no-untyped-def]
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE).height(4).span(width).with_target(q(expr))
    if red_above is not None:
        steps = [dm.Threshold(value=None, color="green"), dm.Threshold(value=red_above, color="red")]
        panel = panel.thresholds(d.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
    return panel.description(desc) if desc else panel


def row(title: str) -> d.Row:
    return d.Row(title)


def brand_variable() -> d.QueryVariable:
    return (
        d.QueryVariable("brand")
        .label("Brand")
        .datasource(DATASOURCE)
        .query({"query": "label_values(showroom_crawls_requested_total, brand)", "refId": "brand"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(text="All", value="$__all", selected=True))
    )


def base(uid: str, title: str, description: str, tags: list[str]) -> d.Dashboard:
    return (
        d.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["showroom", *tags])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )


def _quantile(metric: str, q_: float, by: str = "", where: str = "") -> str:
    sel = f"{{{where}}}" if where else ""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q_}, sum by ({group}) (rate({metric}_bucket{sel}[{RATE}])))"


def _error_ratio(route: str) -> str:
    total = f'sum(rate(showroom_http_requests_total{{route="{route}"}}[{RATE}]))'
    errors = f'sum(rate(showroom_http_requests_total{{route="{route}",status=~"5.."}}[{RATE}]))'
    return f"({errors} or vector(0)) / {total}"


# -- dashboards ------------------------------------------------------------------------------


def overview() -> d.Dashboard:
    return (
        base(
            "showroom-overview",
            "Showroom / Overview",
            "Is crawling, indexing and answering healthy, how fresh is the index, where is work piling up?",
            ["overview"],
        )
        .with_row(row("Health"))
        .with_panel(single("Services up", "none", "sum(up)", desc="Scrape targets answering (all jobs)."))
        .with_panel(single("Services down", "none", "count(up == 0) or vector(0)", red_above=1))
        .with_panel(
            single("Freshness p95", "s", _quantile("showroom_freshness_seconds", 0.95), desc="Fetch → searchable.")
        )
        .with_panel(single("Answer p95", "s", _quantile("showroom_answer_duration_seconds", 0.95)))
        .with_panel(single("Dead letters", "none", "sum(showroom_dlq_messages) or vector(0)", red_above=1))
        .with_panel(
            single(
                "Work pending",
                "none",
                "sum(showroom_jetstream_consumer_pending_messages)",
                desc="Messages not yet delivered to their consumer, all streams.",
            )
        )
        .with_row(row("Throughput"))
        .with_panel(
            series(
                "Crawl throughput (pages/s)",
                "reqps",
                q(f"sum by (brand) (rate(showroom_pages_scraped_total[{RATE}]))", "{{brand}} scraped"),
                q(f"sum by (brand) (rate(showroom_pages_indexed_total[{RATE}]))", "{{brand}} indexed"),
            )
        )
        .with_panel(
            series(
                "Freshness: page fetched → searchable",
                "s",
                q(_quantile("showroom_freshness_seconds", 0.5), "p50"),
                q(_quantile("showroom_freshness_seconds", 0.95), "p95"),
                q(_quantile("showroom_freshness_seconds", 0.99), "p99"),
            )
        )
        .with_panel(
            series(
                "Answer latency",
                "s",
                q(_quantile("showroom_answer_duration_seconds", 0.5), "p50"),
                q(_quantile("showroom_answer_duration_seconds", 0.95), "p95"),
            )
        )
        .with_panel(
            series(
                "Error rates",
                "percentunit",
                q(_error_ratio("/v1/ask"), "POST /v1/ask 5xx"),
                q(
                    f"sum(rate(showroom_pages_failed_total[{RATE}])) / (sum(rate(showroom_pages_scraped_total[{RATE}]))"
                    f" + sum(rate(showroom_pages_failed_total[{RATE}])))",
                    "pages failed",
                ),
                q(
                    f'sum(rate(showroom_questions_answered_total{{refused="true"}}[{RATE}]))'
                    f" / sum(rate(showroom_questions_answered_total[{RATE}]))",
                    "questions refused",
                ),
            )
        )
        .with_panel(
            series(
                "Lag: messages pending per consumer",
                "none",
                q(PENDING, PER_CONSUMER),
                width=24,
                desc="Not yet delivered to the consumer. Growing for long = that service cannot keep up.",
            )
        )
    )


def crawler() -> d.Dashboard:
    return (
        base(
            "showroom-crawler",
            "Showroom / Crawler",
            "Per brand and host: what was fetched, how, how fast, what failed.",
            ["crawler"],
        )
        .with_variable(brand_variable())
        .with_row(row("Crawls"))
        .with_panel(single("Crawls requested", "none", f"sum(showroom_crawls_requested_total{{{BRAND}}})"))
        .with_panel(
            single(
                "Crawls completed",
                "none",
                f'sum(showroom_crawls_finished_total{{{BRAND},status="completed"}}) or vector(0)',
            )
        )
        .with_panel(
            single(
                "Crawls failed or cancelled",
                "none",
                f'sum(showroom_crawls_finished_total{{{BRAND},status!="completed"}}) or vector(0)',
                red_above=1,
            )
        )
        .with_panel(single("Pages scraped", "none", f"sum(showroom_pages_scraped_total{{{BRAND}}})"))
        .with_panel(single("Pages failed", "none", f"sum(showroom_pages_failed_total{{{BRAND}}}) or vector(0)"))
        .with_panel(
            single("Frontier queued", "none", 'sum(showroom_jetstream_consumer_pending_messages{stream="FRONTIER"})')
        )
        .with_row(row("Pages"))
        .with_panel(
            series(
                "Pages scraped by brand and host",
                "reqps",
                q(f"sum by (brand, host) (rate(showroom_pages_scraped_total{{{BRAND}}}[{RATE}]))", "{{host}}"),
            )
        )
        .with_panel(
            series(
                "Fetch mode: plain HTTP vs Chromium",
                "reqps",
                q(f"sum by (fetch_mode) (rate(showroom_pages_scraped_total{{{BRAND}}}[{RATE}]))", "{{fetch_mode}}"),
            )
        )
        .with_panel(
            series(
                "Unchanged on re-crawl",
                "reqps",
                q(
                    f"sum by (brand, not_modified) (rate(showroom_pages_unchanged_total{{{BRAND}}}[{RATE}]))",
                    "{{brand}} 304={{not_modified}}",
                ),
                desc="Re-fetched pages whose content had not changed; not_modified=true: the server answered 304.",
            )
        )
        .with_panel(
            series(
                "Failures by reason",
                "reqps",
                q(f"sum by (reason) (rate(showroom_pages_failed_total{{{BRAND}}}[{RATE}]))", "{{reason}}"),
            )
        )
        .with_panel(
            series(
                "Failures by host",
                "reqps",
                q(f"sum by (host) (rate(showroom_pages_failed_total{{{BRAND}}}[{RATE}]))", "{{host}}"),
            )
        )
        .with_panel(
            series(
                "Bytes fetched",
                "Bps",
                q(
                    f"sum by (brand, fetch_mode) (rate(showroom_fetched_bytes_total{{{BRAND}}}[{RATE}]))",
                    "{{brand}} {{fetch_mode}}",
                ),
            )
        )
        .with_row(row("Speed"))
        .with_panel(
            series(
                "Fetch (http) and render (browser) time p50 / p95",
                "s",
                q(_quantile("showroom_fetch_duration_seconds", 0.5, "fetch_mode"), "{{fetch_mode}} p50"),
                q(_quantile("showroom_fetch_duration_seconds", 0.95, "fetch_mode"), "{{fetch_mode}} p95"),
                width=24,
            )
        )
    )


def index_rag() -> d.Dashboard:
    return (
        base(
            "showroom-index-rag",
            "Showroom / Index & answers",
            "Indexing speed, index size and freshness; question volume, latency, cache and citations.",
            ["index", "rag"],
        )
        .with_variable(brand_variable())
        .with_row(row("Index"))
        .with_panel(single("Chunks in the index", "none", "max(showroom_index_chunks)"))
        .with_panel(single("Pages indexed", "none", f"sum(showroom_pages_indexed_total{{{BRAND}}})"))
        .with_panel(single("Freshness p95", "s", _quantile("showroom_freshness_seconds", 0.95, where=BRAND)))
        .with_panel(
            single(
                "Indexer backlog", "none", 'sum(showroom_jetstream_consumer_pending_messages{consumer="indexer-pages"})'
            )
        )
        .with_panel(single("Questions", "none", "sum(showroom_questions_answered_total)"))
        .with_panel(
            single(
                "Cache hit ratio",
                "percentunit",
                'sum(showroom_answer_cache_requests_total{result="hit"}) / sum(showroom_answer_cache_requests_total)',
            )
        )
        .with_panel(
            series(
                "Chunks indexed / s",
                "none",
                q(f"sum by (brand) (rate(showroom_chunks_indexed_total{{{BRAND}}}[{RATE}]))", "{{brand}}"),
            )
        )
        .with_panel(
            series(
                "Index time per page p50 / p95",
                "s",
                q(_quantile("showroom_index_duration_seconds", 0.5, where=BRAND), "p50"),
                q(_quantile("showroom_index_duration_seconds", 0.95, where=BRAND), "p95"),
            )
        )
        .with_panel(
            series(
                "Freshness by brand p95",
                "s",
                q(_quantile("showroom_freshness_seconds", 0.95, "brand", BRAND), "{{brand}}"),
                desc="From a page's fetch to its chunks being searchable.",
            )
        )
        .with_row(row("Answers"))
        .with_panel(
            series(
                "Questions / s by model",
                "reqps",
                q(
                    f"sum by (model, refused) (rate(showroom_questions_answered_total[{RATE}]))",
                    "{{model}} refused={{refused}}",
                ),
            )
        )
        .with_panel(
            series(
                "Answer latency p50 / p95 (cached and not)",
                "s",
                q(_quantile("showroom_answer_duration_seconds", 0.5, "cached"), "p50 cached={{cached}}"),
                q(_quantile("showroom_answer_duration_seconds", 0.95, "cached"), "p95 cached={{cached}}"),
            )
        )
        .with_panel(
            series(
                "Answer cache hits and misses",
                "reqps",
                q(f"sum by (result) (rate(showroom_answer_cache_requests_total[{RATE}]))", "{{result}}"),
            )
        )
        .with_panel(
            series(
                "Citations per answer (mean)",
                "none",
                q(
                    f"sum(rate(showroom_answer_citations_sum[{RATE}]))"
                    f" / sum(rate(showroom_answer_citations_count[{RATE}]))",
                    "citations",
                ),
            )
        )
        .with_panel(
            series(
                "Gateway requests by route and status",
                "reqps",
                q(f"sum by (route, status) (rate(showroom_http_requests_total[{RATE}]))", "{{route}} {{status}}"),
            )
        )
        .with_panel(
            series(
                "Gateway latency p95 by route",
                "s",
                q(_quantile("showroom_http_request_duration_seconds", 0.95, "route"), "{{route}}"),
            )
        )
    )


def bus() -> d.Dashboard:
    return (
        base(
            "showroom-bus",
            "Showroom / Bus",
            "NATS JetStream: streams, consumers' lag, redeliveries, dead letters, the server.",
            ["nats"],
        )
        .with_row(row("State"))
        .with_panel(single("JetStream readable", "bool", "min(showroom_bus_up)", desc="metrics-svc could read it."))
        .with_panel(single("Dead letters kept", "none", "sum(showroom_dlq_messages) or vector(0)", red_above=1))
        .with_panel(single("Redelivering", "none", REDELIVERED, red_above=1))
        .with_panel(single("Connections", "none", "max(showroom_nats_connections)"))
        .with_panel(single("JetStream storage", "bytes", "max(showroom_nats_jetstream_storage_bytes)"))
        .with_panel(
            single("Unreadable events", "none", "sum(showroom_events_unreadable_total) or vector(0)", red_above=1)
        )
        .with_row(row("Streams"))
        .with_panel(
            series(
                "Messages per stream", "none", q("sum by (stream) (showroom_jetstream_stream_messages)", "{{stream}}")
            )
        )
        .with_panel(
            series("Bytes per stream", "bytes", q("sum by (stream) (showroom_jetstream_stream_bytes)", "{{stream}}"))
        )
        .with_panel(
            series(
                "Messages in / s per stream",
                "none",
                q(f"sum by (stream) (rate(showroom_jetstream_stream_last_sequence[{RATE}]))", "{{stream}}"),
                width=24,
            )
        )
        .with_row(row("Consumers"))
        .with_panel(
            series(
                "Pending (lag)",
                "none",
                q(PENDING, PER_CONSUMER),
                width=8,
            )
        )
        .with_panel(
            series(
                "Ack pending (in work)",
                "none",
                q("sum by (stream, consumer) (showroom_jetstream_consumer_ack_pending_messages)", PER_CONSUMER),
                width=8,
            )
        )
        .with_panel(
            series(
                "Redelivered",
                "none",
                q("sum by (stream, consumer) (showroom_jetstream_consumer_redelivered_messages)", PER_CONSUMER),
                width=8,
            )
        )
        .with_row(row("Dead letters"))
        .with_panel(
            series(
                "Dead letters kept, by service", "none", q("sum by (service) (showroom_dlq_messages)", "{{service}}")
            )
        )
        .with_panel(
            series(
                "Dead letters / s, by service",
                "none",
                q(f"sum by (service) (rate(showroom_dead_letters_total[{RATE}]))", "{{service}}"),
            )
        )
        .with_row(row("Server"))
        .with_panel(
            series(
                "Messages / s",
                "none",
                q(f"rate(showroom_nats_in_messages_total[{RATE}])", "in"),
                q(f"rate(showroom_nats_out_messages_total[{RATE}])", "out"),
            )
        )
        .with_panel(
            series(
                "JetStream API errors / s",
                "none",
                q(f"rate(showroom_nats_jetstream_api_errors_total[{RATE}])", "errors"),
                q(f"rate(showroom_nats_slow_consumers_total[{RATE}])", "slow consumers"),
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], d.Dashboard]] = {
    "overview": overview,
    "crawler": crawler,
    "index-rag": index_rag,
    "bus": bus,
}


def render(name: str) -> str:
    """One dashboard as the JSON committed under grafana/dashboards/<name>.json."""
    built = DASHBOARDS[name]().build()
    return json.dumps(json.loads(JSONEncoder(sort_keys=True).encode(built)), indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        (OUT / f"{name}.json").write_text(render(name))
        print(f"wrote {OUT / name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
