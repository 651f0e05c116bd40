"""Observability end to end: Debian's real Prometheus scraping the stack during a demo crawl and questions.

The stack (hashing embedder, for speed) crawls the demo brands, a page that
is always 404 and, twice, the portal page (the second time it is
unchanged); metrics-svc is SIGKILLed and restarted mid-crawl; a poison
message goes to the DLQ; questions are asked.  Then:

- metrics-svc's counts equal each crawl's exact counts, restart or not;
- every panel's query of every committed dashboard returns data from a real
  ``/usr/bin/prometheus`` configured from the committed prometheus.yml (its
  jobs, pointed at loopback), and the committed alert rules load and evaluate;
- ``/v1/system/status`` shows every service, consumer, the index and the DLQ;
- one trace id follows a crawl from the gateway's response through every event
  and the services' JSON logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from showroom.cli.client import GatewayClient
from showroom.cli.stack import Stack, StackConfig, free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "observability/prometheus"
DASHBOARD_DIR = ROOT / "observability/grafana/dashboards"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

JOB_SERVICES = {
    "gateway": "gateway",
    "scraper-svc": "scraper",
    "indexer-svc": "indexer",
    "rag-svc": "rag",
    "metrics-svc": "metrics",
}
"""The committed scrape jobs and the embedded stack's process serving each."""

NOT_EMBEDDED = {"nats"}
"""Jobs for components the embedded stack does not run (prometheus-nats-exporter): metrics-svc reads /varz itself."""

CRAWL_TIMEOUT_S = 150
BRAND_PAGES = 24


def loopback_prometheus_config(stack: Stack, own_port: int) -> dict[str, Any]:
    """The committed prometheus.yml with each job pointed at the stack on 127.0.0.1: one list of jobs."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / rule) for rule in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name == "prometheus":
            targets = [f"127.0.0.1:{own_port}"]
        elif name in JOB_SERVICES:
            targets = [f"127.0.0.1:{stack.config.ports[JOB_SERVICES[name]]}"]
        else:
            assert name in NOT_EMBEDDED, f"job {name} has no embedded counterpart"
            continue
        jobs.append({"job_name": name, "static_configs": [{"targets": targets}]})
    assert {j["job_name"] for j in jobs} == {*JOB_SERVICES, "prometheus"}
    config["scrape_configs"] = jobs
    return config


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        body = (await self.http.get("/api/v1/query", params={"query": expr})).json()
        assert body["status"] == "success", (expr, body)
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    async def value(self, expr: str) -> float:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    root: Path = tmp_path_factory.mktemp("obs-stack")
    s = Stack(StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24), embedder="hashing"))
    try:
        await s.start(timeout=120)
    except BaseException:
        for name in list(s.procs):
            print(f"--- {name}\n{s.tail(name)}")
        await s.stop()
        raise
    yield s
    await s.stop()


def start_prometheus(root: Path, port: int) -> subprocess.Popen[bytes]:
    with open(root / "prometheus.log", "wb") as log:
        return subprocess.Popen(
            [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
async def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prometheus]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("Debian's prometheus is missing: apt-get install -y prometheus (make setup does)")
    root: Path = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (root / "prometheus.yml").write_text(yaml.safe_dump(loopback_prometheus_config(stack, port)))
    proc = start_prometheus(root, port)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:

        async def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await prom.http.get("/-/ready")).status_code == 200
            return False

        await wait_for(ready, timeout=20, what="prometheus ready")
        yield prom
    finally:
        await prom.http.aclose()
        proc.terminate()
        proc.wait(timeout=10)


async def scrape(stack: Stack, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{stack.config.ports[service]}/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, w) in ls for k, w in labels.items()))


@pytest.fixture(scope="module")
async def run(stack: Stack, prometheus: Prometheus) -> dict[str, Any]:
    """The demo crawl and questions, with metrics-svc killed and restarted mid-crawl."""
    t0 = time.monotonic()
    config = stack.config
    site = re.escape(config.demo_url)
    nc = await nats.connect(config.nats_url)
    finished: dict[str, dict] = {}
    scraped = 0
    got_finished = asyncio.Event()
    some_scraped = asyncio.Event()

    async def on_finished(msg) -> None:  # type: ignore[no-untyped-def]
        event = json.loads(msg.data)
        finished[event["crawl_id"]] = event
        got_finished.set()

    async def on_scraped(msg) -> None:  # type: ignore[no-untyped-def]
        nonlocal scraped
        scraped += 1
        if scraped >= 10:
            some_scraped.set()

    await nc.subscribe("crawl.finished.*", cb=on_finished)
    await nc.subscribe("page.scraped.*", cb=on_scraped)

    async def until_finished(ids: set[str]) -> None:
        async with asyncio.timeout(CRAWL_TIMEOUT_S):
            while not ids <= set(finished):
                got_finished.clear()
                await got_finished.wait()

    specs = config.demo_crawl_specs()
    for brand in ("northwind", "cobalt"):
        specs[brand]["max_pages"] = BRAND_PAGES
    local = {"host_concurrency": config.scraper_concurrency, "host_delay_ms": 0, "use_sitemaps": False}
    specs["lab"] = {"start_urls": [f"{config.demo_url}/lab/missing"], "include": [f"^{site}/lab/missing$"], **local}
    crawls: dict[str, str] = {}
    async with GatewayClient(config.gateway_url, config.api_key) as client:
        # The first crawl by hand: its response headers carry the trace id.
        response = await client.http.post("/v1/crawls", json={"brand": "northwind", **specs.pop("northwind")})
        assert response.status_code == 202, response.text
        crawls[response.json()["crawl_id"]] = "northwind"
        trace_id = response.headers["X-Trace-Id"]
        assert float(response.headers["X-Response-Time-Ms"]) >= 0
        for brand, spec in specs.items():
            crawls[await client.crawl(brand, **spec)] = brand

        # Mid-crawl: metrics-svc dies without a chance to save anything, and comes back.
        async with asyncio.timeout(CRAWL_TIMEOUT_S):
            await some_scraped.wait()
        stack.kill("metrics")
        stack.start_service("metrics")
        await stack.wait_service_ready("metrics", timeout=60)
        killed_after = scraped

        await until_finished(set(crawls))
        # The portal again: its page has not changed since.
        again = await client.crawl("portal", **config.demo_crawl_specs()["portal"])
        await until_finished({again})
        crawls[again] = "portal-again"
        statuses = {cid: await client.status(cid) for cid in crawls}

        # A poison message: whoever reads it dead-letters it.
        js = nc.jetstream()
        await js.publish("page.scraped.northwind", b"{not json", stream="PAGES")

        questions = ["What is the warranty on Cobalt products?", "How much does the NW-8 cost?", "Who makes mixers?"]
        answers = [await client.ask(q) for q in questions]
    await nc.drain()
    return {
        "crawls": crawls,
        "statuses": statuses,
        "trace_id": trace_id,
        "killed_after": killed_after,
        "answers": answers,
        "elapsed": time.monotonic() - t0,
    }


async def test_metrics_svc_counts_equal_the_crawls_exact_counts_after_a_restart(stack: Stack, run: dict) -> None:
    assert 0 < run["killed_after"], "metrics-svc was restarted mid-crawl"
    statuses = run["statuses"]
    # The crawl whose only page is a 404 fails; every other one completes.
    assert {s["brand"]: s["status"] for s in statuses.values() if s["status"] != "completed"} == {"lab": "failed"}
    by_brand: dict[str, dict[str, int]] = {}
    for s in statuses.values():
        counts = by_brand.setdefault(s["brand"], {"scraped": 0, "unchanged": 0, "failed": 0, "indexed": 0})
        for key in counts:
            counts[key] += s["counts"][key]
    assert by_brand["portal"]["unchanged"] == 1
    assert by_brand["lab"]["failed"] == 1

    async def matches() -> bool:
        samples = await scrape(stack, "metrics")
        for brand, counts in by_brand.items():
            got = {
                "scraped": total(samples, "showroom_pages_scraped_total", brand=brand),
                "unchanged": total(samples, "showroom_pages_unchanged_total", brand=brand),
                "failed": total(samples, "showroom_pages_failed_total", brand=brand),
                "indexed": total(samples, "showroom_pages_indexed_total", brand=brand),
            }
            if got != counts:
                print(brand, "metrics", got, "crawl", counts)
                return False
        return (
            total(samples, "showroom_crawls_requested_total") == len(statuses)
            and total(samples, "showroom_crawls_finished_total", status="completed") == len(statuses) - 1
            and total(samples, "showroom_crawls_finished_total", status="failed") == 1
            and total(samples, "showroom_questions_answered_total") == len(run["answers"])
            and total(samples, "showroom_pages_failed_total", reason="http_404") == 1
        )

    # Messages the killed process held come back after the consumer's ack wait (15 s).
    await wait_for(matches, timeout=60, what="metrics-svc's counts to equal the crawls'")
    await asyncio.sleep(2)  # and they stay equal: nothing is counted a second time later
    assert await matches()


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        stack = list(dashboard["panels"])
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                out.append((dashboard["title"], panel["title"], target["expr"]))
    return out


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends for our variables: every brand, and a rate window that spans the run."""
    return expr.replace("$brand", ".*").replace("$__rate_interval", "3m").replace("$__range", "1h")


async def test_every_panel_query_of_every_dashboard_returns_data(
    stack: Stack, prometheus: Prometheus, run: dict
) -> None:
    questions = len(run["answers"])

    async def caught_up() -> bool:
        # Prometheus has scraped what happened last (the questions, the dead letter, the index size).
        return (
            await prometheus.value("sum(showroom_questions_answered_total)") >= questions
            and await prometheus.value("sum(showroom_dlq_messages)") >= 1
            and await prometheus.value("max(showroom_index_chunks)") > 0
            and await prometheus.value('sum(showroom_http_requests_total{route="/v1/ask"})') >= questions
        )

    await wait_for(caught_up, timeout=60, what="prometheus to scrape the run's metrics")
    queries = dashboard_queries()
    assert len(queries) >= 40
    empty = []
    for dashboard, panel, expr in queries:
        if not await prometheus.query(grafana_to_promql(expr)):
            empty.append(f"{dashboard} / {panel}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # Every job of the committed config was scraped, each target up.
    up = {r["metric"]["job"]: r["value"][1] for r in await prometheus.query("up")}
    assert up == {job: "1" for job in (*JOB_SERVICES, "prometheus")}


async def test_the_alert_rules_load_and_evaluate(prometheus: Prometheus, run: dict) -> None:
    committed = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    names = {r.get("alert") or r.get("record") for g in committed["groups"] for r in g["rules"]}
    body = (await prometheus.http.get("/api/v1/rules")).json()
    rules = [r for g in body["data"]["groups"] for r in g["rules"]]

    async def evaluated() -> bool:
        body = (await prometheus.http.get("/api/v1/rules")).json()
        return all(r.get("lastEvaluation", "").startswith("20") for g in body["data"]["groups"] for r in g["rules"])

    assert {r["name"] for r in rules} == names
    await wait_for(evaluated, timeout=15, what="every rule evaluated once")
    body = (await prometheus.http.get("/api/v1/rules")).json()
    unhealthy = [
        (r["name"], r.get("lastError")) for g in body["data"]["groups"] for r in g["rules"] if r["health"] != "ok"
    ]
    assert not unhealthy
    # The poison message is in the DLQ: its alert is pending (it fires after its `for`).
    alerts = (await prometheus.http.get("/api/v1/alerts")).json()["data"]["alerts"]
    assert any(a["labels"]["alertname"] == "DeadLettersPresent" for a in alerts), alerts


async def test_system_status_shows_services_lag_index_and_dlq(stack: Stack, run: dict) -> None:
    async with GatewayClient(stack.config.gateway_url, stack.config.api_key) as client:
        response = await client.http.get("/v1/system/status")
    assert response.status_code == 200, response.text
    status = response.json()
    for service in ("scraper-svc", "indexer-svc", "rag-svc", "metrics-svc"):
        assert status["services"][service]["status"] == "ok", status["services"]
        assert status["services"][service]["instances"][0]["ready"]
    consumers = {(c["stream"], c["name"]) for c in status["consumers"]}
    assert {("PAGES", "indexer-pages"), ("PAGES", "metrics-pages"), ("DLQ", "metrics-dlq")} <= consumers
    assert {s["name"] for s in status["streams"]} >= {"CRAWLS", "FRONTIER", "PAGES", "INDEX", "ANSWERS", "DLQ"}
    assert status["index"]["chunks"] > 0, status["index"]
    assert status["dlq"]["depth"] >= 1 and status["status"] == "degraded"
    assert any("DLQ" in p for p in status["problems"])
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(f"{stack.config.gateway_url}/v1/system/status")).status_code == 401


async def test_one_trace_id_follows_a_crawl_through_every_event_and_log(stack: Stack, run: dict) -> None:
    trace = run["trace_id"]
    crawl_id = next(cid for cid, brand in run["crawls"].items() if brand == "northwind")
    nc = await nats.connect(stack.config.nats_url)
    try:
        js = nc.jetstream()
        seen: dict[str, set[str]] = {}
        for stream, subject in (("CRAWLS", "crawl.*.northwind"), ("PAGES", "page.*.northwind"),
                                ("INDEX", "page.indexed.northwind")):  # fmt: skip
            sub = await js.pull_subscribe(subject, stream=stream)  # ephemeral: reads the stream from its start
            while True:
                try:
                    msgs = await sub.fetch(500, timeout=2)
                except nats.errors.TimeoutError:
                    break
                for msg in msgs:
                    with contextlib.suppress(ValueError):
                        event = json.loads(msg.data)
                        if event.get("crawl_id") == crawl_id:
                            seen.setdefault(msg.subject.rsplit(".", 1)[0], set()).add(event["trace_id"])
            await sub.unsubscribe()
    finally:
        await nc.drain()
    assert set(seen) >= {"crawl.requested", "crawl.finished", "page.scraped", "page.indexed"}, seen
    assert all(ids == {trace} for ids in seen.values()), seen
    # indexer-svc logs nothing per page at INFO; its page.indexed events carry the trace (above).
    for service in ("gateway", "scraper"):
        lines = [json.loads(line) for line in stack.tail(service, 100_000).splitlines() if line.startswith("{")]
        assert any(line.get("trace_id") == trace for line in lines), f"no {service} log line carries the trace id"


def test_the_run_is_quick_enough(run: dict) -> None:
    print(f"crawl + restart + questions took {run['elapsed']:.1f}s")
    assert run["elapsed"] < 150
