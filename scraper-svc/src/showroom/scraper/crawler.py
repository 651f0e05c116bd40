"""The crawl: seeding the frontier from a crawl request, and turning each fetch task into a page event.

Exactly-once bookkeeping, without a coordinator:

* Each URL of a crawl has a key in the ``crawl_urls`` bucket, created (an
  atomic, first-writer-wins operation) by whichever page first links to it.
  The value names that parent, so a parent whose task is redelivered after a
  crash recognises the links it claimed and enqueues them again (the
  frontier's message-id dedup drops the copies).
* A page's event lists the links it claimed (``new_links``) and is published
  *before* those links reach the frontier, so the tracker, reading PAGES in
  order, always counts a URL as discovered before it sees its result.
* Event publishes carry a message id, so a retried publish is stored once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from faststream.nats import NatsBroker
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from showroom.common.bus import kv_get, kv_update, publish_event
from showroom.common.crawls import CrawlState
from showroom.common.events import (
    CrawlRequested,
    CrawlStatus,
    FetchTask,
    PageFailed,
    PageScraped,
    RenderMode,
    utcnow,
)
from showroom.common.topology import Streams, Subjects, url_key
from showroom.scraper.browser import BrowserPool
from showroom.scraper.errors import FetchError, PermanentFetchError, TransientFetchError
from showroom.scraper.extract import extract
from showroom.scraper.robots import RobotsCache, read_sitemap_urls
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, host_of, normalize_url

log = logging.getLogger(__name__)

SEED_PARENT = "seed"


@dataclass(frozen=True)
class Outcome:
    """What happened to one fetch task (for logs and tests)."""

    url: str
    status: str  # scraped | failed | duplicate | retry


class Crawler:
    def __init__(
        self,
        *,
        broker: NatsBroker,
        crawls: KeyValue,
        urls: KeyValue,
        browser: BrowserPool | None,
        http: httpx.AsyncClient,
        robots: RobotsCache,
        guard: SsrfGuard,
        max_deliveries: int,
    ) -> None:
        self.broker = broker
        self.crawls = crawls
        self.urls = urls
        self.browser = browser
        self.http = http
        self.robots = robots
        self.guard = guard
        self.max_deliveries = max_deliveries
        self._specs: dict[str, CrawlState] = {}

    # -- seeding -------------------------------------------------------------

    async def seed(self, event: CrawlRequested) -> None:
        """Put a crawl's start URLs (and its sitemaps' URLs) on the frontier and mark it running."""
        spec = event.spec
        scope = Scope.of(spec)
        candidates: list[str] = []
        for raw in spec.start_urls:
            if (url := normalize_url(str(raw))) and scope.admits(url):
                candidates.append(url)
        if spec.use_sitemaps:
            origins = dict.fromkeys(f"{urlsplit(u).scheme}://{host_of(u)}" for u in candidates)
            for origin in origins:
                for sitemap in await self.robots.sitemaps(origin):
                    candidates += await read_sitemap_urls(self.http, self.guard, sitemap, limit=spec.max_pages)
        claimed, skipped = await self._claim(
            event.crawl_id, SEED_PARENT, candidates, depth=0, max_depth=spec.max_depth, scope=scope
        )

        def start(state: CrawlState | None) -> CrawlState | None:
            if state is None or state.seeded or state.status.is_final:
                return None
            state.status = CrawlStatus.RUNNING
            state.seeded = True
            state.started_at = utcnow()
            state.counts.discovered += len(claimed)
            state.counts.skipped += skipped
            if not claimed:
                state.status = CrawlStatus.FAILED
                state.error = "no start URL is in scope and allowed by robots.txt"
                state.finished_at = utcnow()
            return state

        await kv_update(self.crawls, event.crawl_id, CrawlState, start)
        log.info("crawl %s seeded with %d URLs (%d skipped)", event.crawl_id, len(claimed), skipped)
        await self._enqueue(event.crawl_id, spec.brand, claimed, depth=0, parent=None, trace_id=event.trace_id)

    # -- fetching ------------------------------------------------------------

    async def process(self, task: FetchTask, deliveries: int) -> Outcome:
        """Fetch one URL and publish its page event.  Raises TransientFetchError to ask for a retry."""
        key = f"{task.crawl_id}.{url_key(task.url)}"
        url_state = await self._url_state(key)
        if url_state.get("state") == "done":
            return Outcome(task.url, "duplicate")
        crawl = await self._crawl(task.crawl_id)
        if crawl is None:
            log.warning("task for unknown crawl %s dropped: %s", task.crawl_id, task.url)
            return Outcome(task.url, "duplicate")
        spec = crawl.spec
        scope = Scope.of(spec)
        try:
            await self.guard.check(urlsplit(task.url).hostname or "")
            if spec.render is RenderMode.NEVER or self.browser is None:
                page_html, final_url, status, links, fetch_ms, mode = await self._http_fetch(task.url)
            else:
                r = await self.browser.render(task.url, scope)
                page_html, final_url, status, links, fetch_ms, mode = (
                    r.html,
                    r.final_url,
                    r.status_code,
                    r.links,
                    r.fetch_ms,
                    "browser",
                )
        except TransientFetchError as exc:
            if deliveries < self.max_deliveries:
                raise
            return await self._fail(task, exc, deliveries, key)
        except FetchError as exc:
            return await self._fail(task, exc, deliveries, key)

        page = extract(page_html, final_url, links)
        new_links: list[str] = []
        skipped = 0
        if task.depth < spec.max_depth:
            in_scope = [u for u in page.links if scope.admits(u)]
            new_links, skipped = await self._claim(
                task.crawl_id, url_key(task.url), in_scope, task.depth + 1, spec.max_depth, scope
            )
        event = PageScraped(
            crawl_id=task.crawl_id,
            trace_id=task.trace_id,
            brand=task.brand,
            url=task.url,
            final_url=final_url,
            depth=task.depth,
            status_code=status,
            fetch_mode=mode,
            fetch_ms=fetch_ms,
            bytes=len(page_html.encode()),
            content_hash=page.content_hash,
            title=page.title,
            markdown=page.markdown,
            product=page.product,
            new_links=new_links,
            skipped_links=skipped,
        )
        await publish_event(
            self.broker,
            event,
            Subjects.page_scraped(task.brand),
            stream=Streams.PAGES.name,
            msg_id=key,
        )
        await self._enqueue(task.crawl_id, task.brand, new_links, task.depth + 1, task.url, task.trace_id)
        await self.urls.put(key, json.dumps({"state": "done"}).encode())
        return Outcome(task.url, "scraped")

    async def _fail(self, task: FetchTask, exc: FetchError, deliveries: int, key: str) -> Outcome:
        log.info("giving up on %s after %d attempt(s): %s", task.url, deliveries, exc)
        event = PageFailed(
            crawl_id=task.crawl_id,
            trace_id=task.trace_id,
            brand=task.brand,
            url=task.url,
            depth=task.depth,
            reason=exc.reason,
            status_code=exc.status_code,
            attempts=deliveries,
        )
        await publish_event(
            self.broker,
            event,
            Subjects.page_failed(task.brand),
            stream=Streams.PAGES.name,
            msg_id=key,
        )
        await self.urls.put(key, json.dumps({"state": "done"}).encode())
        return Outcome(task.url, "failed")

    async def _http_fetch(self, url: str) -> tuple[str, str, int, list[str] | None, float, str]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            resp = await self.http.get(url, follow_redirects=True)
        except httpx.TimeoutException as exc:
            raise TransientFetchError("timeout", str(exc)) from exc
        except httpx.HTTPError as exc:
            raise TransientFetchError("connect_error", str(exc)) from exc
        for hop in (*resp.history, resp):
            await self.guard.check(hop.url.host)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientFetchError(f"http_{resp.status_code}", status_code=resp.status_code)
        if resp.status_code >= 400:
            raise PermanentFetchError(f"http_{resp.status_code}", status_code=resp.status_code)
        return resp.text, str(resp.url), resp.status_code, None, (loop.time() - t0) * 1000, "http"

    # -- bookkeeping ---------------------------------------------------------

    async def _crawl(self, crawl_id: str) -> CrawlState | None:
        # The spec never changes, so one read per crawl per process is enough.
        if crawl_id not in self._specs:
            state, _ = await kv_get(self.crawls, crawl_id, CrawlState)
            if state is None:
                return None
            if len(self._specs) > 1000:
                self._specs.clear()
            self._specs[crawl_id] = state
        return self._specs[crawl_id]

    async def _url_state(self, key: str) -> dict[str, str]:
        try:
            entry = await self.urls.get(key)
        except KeyNotFoundError:
            return {}
        return json.loads(entry.value or b"{}")

    async def _claim(
        self, crawl_id: str, parent: str, urls: list[str], depth: int, max_depth: int, scope: Scope
    ) -> tuple[list[str], int]:
        """Claim the URLs nobody has claimed yet in this crawl.  Returns (claimed, newly skipped).

        Claimed URLs spend the crawl's page budget (``max_pages``); those past
        the budget are recorded as skipped.
        """
        fresh: list[str] = []
        reclaimed: list[str] = []
        skipped = 0
        for url in dict.fromkeys(urls):
            if not scope.admits(url):
                continue
            reason = None
            if depth > max_depth:
                reason = "depth"
            elif not await self.robots.allowed(url):
                reason = "robots"
            key = f"{crawl_id}.{url_key(url)}"
            value = {"state": "skipped" if reason else "queued", "reason": reason, "parent": parent}
            try:
                await self.urls.create(key, json.dumps(value).encode())
            except KeyWrongLastSequenceError:
                # Already known, unless this very parent claimed it before a crash.
                existing = await self._url_state(key)
                if existing.get("parent") == parent and existing.get("state") == "queued":
                    reclaimed.append(url)
                continue
            if reason:
                skipped += 1
            else:
                fresh.append(url)
        granted = await self._reserve_budget(crawl_id, len(fresh))
        for url in fresh[granted:]:
            value = {"state": "skipped", "reason": "max_pages", "parent": parent}
            await self.urls.put(f"{crawl_id}.{url_key(url)}", json.dumps(value).encode())
        return reclaimed + fresh[:granted], skipped + len(fresh) - granted

    async def _reserve_budget(self, crawl_id: str, want: int) -> int:
        """Atomically take up to ``want`` pages from the crawl's budget; returns how many were granted."""
        crawl = await self._crawl(crawl_id)
        if crawl is None or want <= 0:
            return 0
        key = f"{crawl_id}.budget"
        while True:
            try:
                entry = await self.urls.get(key)
                spent, rev = int(entry.value or b"0"), entry.revision
            except KeyNotFoundError:
                spent, rev = 0, 0
            granted = max(0, min(want, crawl.spec.max_pages - spent))
            if granted == 0:
                return 0
            try:
                if rev:
                    await self.urls.update(key, str(spent + granted).encode(), last=rev)
                else:
                    await self.urls.create(key, str(spent + granted).encode())
                return granted
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0.002)

    async def _enqueue(
        self,
        crawl_id: str,
        brand: str,
        urls: list[str],
        depth: int,
        parent: str | None,
        trace_id: str,
    ) -> None:
        for url in urls:
            task = FetchTask(
                crawl_id=crawl_id,
                trace_id=trace_id,
                brand=brand,
                url=url,
                depth=depth,
                parent_url=parent,
            )
            await publish_event(
                self.broker,
                task,
                Subjects.frontier(host_of(url)),
                stream=Streams.FRONTIER.name,
                msg_id=f"{crawl_id}.{url_key(url)}",
            )
