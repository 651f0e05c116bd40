"""Gateway latency while a crawl runs at full rate: status calls, health checks and questions at once.

    uv run python bench/load.py [--clients 8] [--pages 300] [--seconds 90] [--think-ms 50] [--embedder minilm]

1. The embedded stack (:class:`showroom.cli.stack.Stack`: nats-server, demo site, the five
   services), everything on 127.0.0.1, the extractive answerer (no LLM, so nothing leaves the
   machine and the figures are the gateway's, rag-svc's and the index's own).
2. A crawl of the lab's static section (``--pages`` articles, plain HTTP) with no politeness
   delay: the scraper and the indexer run flat out, as in a full-rate crawl.
3. ``--clients`` concurrent clients, each in a loop until the crawl ends or ``--seconds`` pass
   (bounded in count too: ``--max-requests`` per client): ``GET /healthz``, ``GET
   /v1/crawls/{id}``, ``POST /v1/ask`` (questions about the articles being indexed), with
   about ``--think-ms`` between calls.

Prints p50/p99/max per route as the client saw them, requests and errors (any status >= 400 or
transport error), the gateway's own time (``X-Response-Time-Ms``: inside the app, without the
outer middleware, uvicorn, the OS's scheduling or the client), and the goals: p99 < 25 ms for
the status calls, 0 errors.  Run it under
``flock /tmp/showroom-heavy.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack, StackConfig
from showroom.demo_site.lab_pages import lab_article

STATUS_GOAL_MS = 25.0
ROUTES = ("/healthz", "/v1/crawls/{id}", "/v1/ask")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


class Recorder:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.server_ms: dict[str, list[float]] = defaultdict(list)
        """The gateway's own X-Response-Time-Ms: inside its app, without the client's or the OS's queueing."""
        self.errors: dict[str, list[str]] = defaultdict(list)

    async def call(self, route: str, request) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            resp = await request()
        except httpx.HTTPError as exc:
            self.errors[route].append(repr(exc))
            return
        self.ms[route].append((time.perf_counter() - t0) * 1000)
        if server := resp.headers.get("X-Response-Time-Ms"):
            self.server_ms[route].append(float(server))
        if resp.status_code >= 400:
            self.errors[route].append(f"HTTP {resp.status_code}: {resp.text[:200]}")


async def probe_lag(lags: list[float], stop: asyncio.Event, every_s: float = 0.005) -> None:
    """How late this process's own event loop wakes up: the share of each client-side figure that is
    the load generator's queueing, not the gateway's."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(every_s)
        lags.append((time.perf_counter() - t0 - every_s) * 1000)


async def client(http: httpx.AsyncClient, crawl_id: str, rec: Recorder, stop: asyncio.Event, args) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random()
    for _ in range(args.max_requests // 3):
        if stop.is_set():
            return
        article = lab_article(rng.randint(1, args.pages))
        topic = article.title.removeprefix("Buying guide: ")
        steps = [
            ("/healthz", lambda: http.get("/healthz")),
            ("/v1/crawls/{id}", lambda: http.get(f"/v1/crawls/{crawl_id}")),
            ("/v1/ask", lambda topic=topic: http.post("/v1/ask", json={"question": f"How much to spend on {topic}?"})),
        ]  # fmt: skip
        for route, request in steps:
            await rec.call(route, request)
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.think_ms / 1000)


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="showroom-load-"))
    config = StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24), embedder=args.embedder)
    config.demo_args = ["--static-pages", str(args.pages)]
    async with Stack(config) as stack:
        site = stack.config.demo_url
        spec = {
            "start_urls": [f"{site}/lab/static/"],
            "include": [f"^{site.replace('.', '[.]')}/lab/static/"],
            "use_sitemaps": False,
            "host_concurrency": 16,
            "host_delay_ms": 0,
            "max_depth": 3,
            "max_pages": args.pages + 10,
        }
        rec = Recorder()
        stop = asyncio.Event()
        headers = {"X-API-Key": config.api_key}
        limits = httpx.Limits(max_connections=args.clients * 2)
        async with (
            FinishedCrawls(config.nats_url) as finished,
            GatewayClient(config.gateway_url, config.api_key) as gw,
            httpx.AsyncClient(base_url=config.gateway_url, headers=headers, timeout=30, limits=limits) as http,
        ):
            t0 = time.perf_counter()
            crawl_id = await gw.crawl("loadlab", **spec)
            clients = [asyncio.create_task(client(http, crawl_id, rec, stop, args)) for _ in range(args.clients)]
            lags: list[float] = []
            clients.append(asyncio.create_task(probe_lag(lags, stop)))
            try:
                event = await finished.wait(crawl_id, timeout=args.seconds)
                crawl_s = time.perf_counter() - t0
            except TimeoutError:
                event, crawl_s = None, float("nan")
            stop.set()
            await asyncio.gather(*clients)
            status = await gw.status(crawl_id)

    print(
        f"crawl: {status['status']} in {crawl_s:.1f}s ({'finished' if event else 'timed out'}),"
        f" counts {status['counts']}"
    )
    print(f"clients: {args.clients}, think ~{args.think_ms} ms, embedder {args.embedder}")
    print(f"{'route':<18}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'app p50':>9}{'app p99':>9}")
    total = errors = 0
    for route in ROUTES:
        xs = rec.ms[route]
        total += len(xs) + sum(1 for e in rec.errors[route] if not e.startswith("HTTP"))
        errors += len(rec.errors[route])
        app = rec.server_ms[route]
        print(f"{route:<18}{len(xs):>7}{pct(xs, 50):>9.1f}{pct(xs, 99):>9.1f}{max(xs, default=0):>9.1f}"
              f"{len(rec.errors[route]):>8}{pct(app, 50):>9.1f}{pct(app, 99):>9.1f}")  # fmt: skip
    for route in ROUTES:
        for e in rec.errors[route][:3]:
            print(f"  {route}: {e}")
    print(f"load generator's loop lag: p50 {pct(lags, 50):.1f} ms, p99 {pct(lags, 99):.1f} ms")
    status_p99 = max(pct(rec.ms[r], 99) for r in ROUTES[:2])
    print(f"error rate: {errors}/{total} = {errors / max(total, 1):.2%} (goal 0)")
    verdict = "met" if status_p99 < STATUS_GOAL_MS else "MISSED"
    print(f"status-call p99: {status_p99:.1f} ms (goal < {STATUS_GOAL_MS:.0f} ms: {verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pages", type=int, default=300, help="lab articles in the crawl")
    parser.add_argument("--seconds", type=float, default=90, help="upper bound on the crawl (and the run)")
    parser.add_argument("--max-requests", type=int, default=3000, help="per client, upper bound")
    parser.add_argument("--think-ms", type=float, default=50)
    parser.add_argument("--embedder", default="minilm", help="minilm (the default service config) or hashing")
    asyncio.run(main(parser.parse_args()))
