"""The chaos tests' harness: a fresh stack per scenario, a crawl of a few hundred pages, and the audit.

Each scenario gets its own stack (its own nats-server store and index), so a
crawl's pages are new to it and every one of them must be scraped and indexed
exactly once, whatever was broken on the way.  :meth:`Chaos.audit` is the
proof: it reads the PAGES and INDEX streams, asks indexer-svc what its store
holds (``index.audit``), asks the gateway for the crawl's status, and checks
every durable consumer has nothing pending or unacked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client

from showroom.cli.client import GatewayClient
from showroom.cli.stack import Stack, StackConfig
from showroom.common.topology import Durables, Streams, Subjects
from showroom.demo_site import static_article_paths

STATIC_PAGES = 300
"""Articles in the lab's static section: with its index, the crawl has 301 pages."""

BRAND = "chaos"
ACK_WAIT_S = 8
"""Redelivery delay for every consumer in these stacks: how long a killed process's messages stay held."""

CRAWL_TIMEOUT_S = 90.0
DURABLES = {v for k, v in vars(Durables).items() if not k.startswith("_") and isinstance(v, str)}


def chaos_config(root: Path, **env: str) -> StackConfig:
    config = StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24), embedder="hashing")
    config.demo_args = ["--static-pages", str(STATIC_PAGES)]
    config.extra_env |= {
        "SHOWROOM_TASK_ACK_WAIT_S": str(ACK_WAIT_S),
        "SHOWROOM_INDEX_ACK_WAIT_S": str(ACK_WAIT_S),
        "SHOWROOM_TRACKER_ACK_WAIT_S": str(ACK_WAIT_S),
        "SHOWROOM_RETRY_BASE_S": "0.2",
        **env,
    }
    return config


@dataclass
class Progress:
    """``page.scraped`` events of the crawl as they happen (core NATS: a live view, not the proof).

    Counted by URL: a core subscriber also receives a publish that the stream drops as a duplicate
    (a retried publish), so counting messages could run ahead of what the stream holds.
    """

    urls: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.changed = asyncio.Condition()

    @property
    def scraped(self) -> int:
        return len(self.urls)

    async def on_page(self, msg: Any) -> None:
        async with self.changed:
            self.urls.add(json.loads(msg.data)["url"])
            self.changed.notify_all()

    async def reach(self, n: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: self.scraped >= n)


class Chaos:
    def __init__(self, stack: Stack, nc: Client) -> None:
        self.stack = stack
        self.nc = nc
        self.js = nc.jetstream()
        self.site = stack.config.demo_url
        self.client = GatewayClient(stack.config.gateway_url, stack.config.api_key, timeout=10)
        self.progress = Progress()
        self.expected = {self.site + p for p in ["/lab/static/", *static_article_paths(STATIC_PAGES)]}

    def spec(self, **overrides: Any) -> dict[str, Any]:
        return {
            "brand": BRAND,
            "start_urls": [self.site + "/lab/static/"],
            "include": [f"^{re.escape(self.site)}/lab/static/"],
            "use_sitemaps": False,
            "host_concurrency": 8,
            # Paced so a fault lands mid-crawl: ~15 s for the 301 pages when nothing breaks.
            "host_delay_ms": 40,
            "max_depth": 3,
            "max_pages": 1000,
        } | overrides

    async def start_crawl(self, **overrides: Any) -> str:
        await self.nc.subscribe(f"page.scraped.{BRAND}", cb=self.progress.on_page)
        spec = self.spec(**overrides)
        return await self.client.crawl(**spec)

    async def restart(self, name: str, sig: int) -> None:
        """Kill ``name`` with ``sig`` and start it again on the same port; returns once it is ready."""
        self.stack.kill(name, sig)
        self.stack.start_service(name)
        await self.stack.wait_service_ready(name)

    async def finished(self, crawl_id: str, timeout: float = CRAWL_TIMEOUT_S) -> dict[str, Any]:
        """The crawl's ``crawl.finished`` event, read from the CRAWLS stream (so none is missed across restarts)."""
        sub = await self.js.subscribe(f"crawl.finished.{BRAND}", ordered_consumer=True)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        msg = await sub.next_msg(timeout=timeout)
                    except nats.errors.TimeoutError:
                        continue
                    event = json.loads(msg.data)
                    if event["crawl_id"] == crawl_id:
                        return dict(event)
        except TimeoutError:
            raise AssertionError(
                f"crawl {crawl_id} did not finish in {timeout}s; status {await self.client.status(crawl_id)}"
            ) from None
        finally:
            await sub.unsubscribe()

    async def events(self, stream: str, subject: str, crawl_id: str) -> list[dict[str, Any]]:
        total = (await self.js.stream_info(stream)).state.messages
        sub = await self.js.subscribe(subject, stream=stream, ordered_consumer=True)
        out = []
        try:
            for _ in range(total):
                try:
                    msg = await sub.next_msg(timeout=2)
                except nats.errors.TimeoutError:
                    break  # the rest are on the stream's other subjects
                event = json.loads(msg.data)
                if event.get("crawl_id") == crawl_id:
                    out.append(event | {"subject": msg.subject})
        finally:
            await sub.unsubscribe()
        return out

    async def index_audit(self) -> dict[str, dict[str, Any]]:
        reply = await self.nc.request(Subjects.INDEX_AUDIT, json.dumps({"brand": BRAND}).encode(), timeout=10)
        return dict(json.loads(reply.data)["pages"])

    async def unsettled_consumers(self) -> dict[str, dict[str, int]]:
        """Durable consumers with messages not yet delivered or not yet acked."""
        out = {}
        for stream in Streams.ALL:
            for info in await self.js.consumers_info(stream.name):
                name = info.config.durable_name or info.name
                if name in DURABLES and (info.num_pending or info.num_ack_pending):
                    out[f"{stream.name}/{name}"] = {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
        return out

    async def consumer(self, stream: str, durable: str) -> Any:
        return await self.js.consumer_info(stream, durable)

    async def settled(self, timeout: float = 30) -> None:
        """Every durable consumer caught up and acked (metrics-svc may trail the crawl's end a little)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while unsettled := await self.unsettled_consumers():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"events stuck after {timeout}s: {unsettled}")
            await asyncio.sleep(0.2)

    async def assert_exactly_once(self, crawl_id: str, timeout: float = CRAWL_TIMEOUT_S) -> dict[str, Any]:
        """The crawl completed; every page scraped, indexed and stored exactly once; counts are the truth."""
        finished = await self.finished(crawl_id, timeout)
        assert finished["status"] == "completed", finished
        scraped = await self.events(Streams.PAGES.name, f"page.*.{BRAND}", crawl_id)
        by_url = Counter(e["url"] for e in scraped)
        assert {e["subject"] for e in scraped} == {f"page.scraped.{BRAND}"}, Counter(e["subject"] for e in scraped)
        assert set(by_url) == self.expected, (self.expected - set(by_url), set(by_url) - self.expected)
        assert max(by_url.values()) == 1, [u for u, n in by_url.items() if n > 1]
        indexed = await self.events(Streams.INDEX.name, f"page.indexed.{BRAND}", crawl_id)
        indexed_by_url = Counter(e["url"] for e in indexed)
        assert set(indexed_by_url) == self.expected and max(indexed_by_url.values()) == 1, indexed_by_url

        audit = await self.index_audit()
        assert set(audit) == self.expected, (self.expected - set(audit), set(audit) - self.expected)
        content = {e["url"]: e["content_hash"] for e in scraped}
        broken = {
            url: page
            for url, page in audit.items()
            if page["indexes"] != list(range(page["chunks"])) or page["hashes"] != [content[url]]
        }
        assert not broken, broken  # a duplicate, a missing or a stale chunk
        chunks = {e["url"]: e["chunks"] for e in indexed}
        assert {url: page["chunks"] for url, page in audit.items()} == chunks

        status = await self.client.status(crawl_id)
        n = len(self.expected)
        assert status["status"] == "completed"
        assert status["counts"] == {
            "discovered": n, "scraped": n, "unchanged": 0, "failed": 0, "skipped": 0, "indexed": n,
            "queued": 0, "in_flight": 0,
        }, status  # fmt: skip
        assert finished["counts"]["indexed"] == len(audit) == len(indexed) == n
        await self.settled()
        return status

    def log(self, name: str) -> str:
        return (self.stack.logs / f"{name}.log").read_text(errors="replace")


@contextlib.asynccontextmanager
async def chaos_stack(root: Path, **env: str) -> AsyncIterator[Chaos]:
    stack = Stack(chaos_config(root, **env))
    async with stack:
        nc = await nats.connect(stack.config.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        chaos = Chaos(stack, nc)
        try:
            yield chaos
        finally:
            await chaos.client.__aexit__()
            await nc.close()


async def get_json(url: str) -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(url)).json()
