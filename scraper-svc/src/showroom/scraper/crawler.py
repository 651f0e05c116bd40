"""The crawl: seeding the frontier from a crawl request, and turning each fetch task into a page event.

Exactly-once bookkeeping, without a coordinator:

* Each URL of a crawl has a key in the ``crawl_urls`` bucket, created (an
  atomic, first-writer-wins operation) by whichever page first links to it.
  The value names that parent, so a parent whose task is redelivered after a
  crash recognises the links it claimed and enqueues them again (the
  frontier's message-id dedup drops the copies).  The same key counts the
  URL's fetch attempts, so retries are bounded however often the task is
  redelivered (politeness deferrals are redeliveries too, and don't count).
* A page's event lists the links it claimed (``new_links``) and is published
  *before* those links reach the frontier, so the tracker, reading PAGES in
  order, always counts a URL as discovered before it sees its result.
* Event publishes carry a message id, so a retried publish is stored once.
* The ``pages`` record (hash, validators, links) is written *after* the page
  event: a crash in between re-publishes the event rather than losing it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from faststream.nats import NatsBroker
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from showroom.common.bus import kv_get, kv_update, publish_event
from showroom.common.crawls import CrawlState
from showroom.common.errors import UnknownCrawl
from showroom.common.events import (
    CrawlRequested,
    CrawlSpec,
    CrawlStatus,
    DeadLetter,
    FetchTask,
    PageFailed,
    PageScraped,
    PageUnchanged,
    Priority,
    utcnow,
)
from showroom.common.inflight import InflightCounter
from showroom.common.memory import return_freed_memory
from showroom.common.topology import Streams, Subjects, url_key
from showroom.scraper.errors import FetchError, PermanentFetchError, RetryLater, TransientFetchError
from showroom.scraper.extract import ExtractedPage, extract
from showroom.scraper.fetching import Fetched, Fetcher, PageRecord
from showroom.scraper.politeness import HostGate
from showroom.scraper.robots import RobotsCache, read_sitemap_urls
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, host_of, normalize_url

log = logging.getLogger(__name__)
T = TypeVar("T")

SEED_PARENT = "seed"
SERVICE = "scraper-svc"
MAX_URL_LENGTH = 2048
MAX_QUERY_PARAMS = 12
MAX_QUERY_VARIANTS = 50
"""Distinct query strings one path may have in a crawl: bounds calendars and ever-growing filters."""
TRIM_EVERY_PAGES = 100
LARGE_PAGE_CHARS = 1 << 20
"""Freed heap goes back to the OS after a page this large and every TRIM_EVERY_PAGES pages: parsing a large
page leaves glibc holding memory Python no longer uses (~9 MB after a 5,000-link index page)."""
OFF_LOOP_CHARS = 100_000
"""Pages at least this long are extracted in a thread (tens of ms and up); shorter ones on the loop, where
a thread hop would cost more than it frees."""
ARCHIVED_MEMORY = 50_000
"""Content hashes remembered as archived by this process: a page whose content came back skips the store."""


LINKS_IN_FLIGHT = 64
"""A page's link claims (KV creates) and new tasks (publishes) in flight at once.  One at a time, an index
page's 200 links cost a round trip each: 200 creates took 54-83 ms here, 11-17 ms in flight together."""


async def _bounded(calls: list[Coroutine[Any, Any, T]], limit: int = LINKS_IN_FLIGHT) -> list[T]:
    """Await ``calls`` with at most ``limit`` of them in flight; their results in order.  The first failure
    cancels the rest and is raised."""
    if len(calls) == 1:
        return [await calls[0]]
    slots = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with slots:
            return await call

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(call)) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


@dataclass(frozen=True)
class Outcome:
    """What happened to one fetch task (for logs and tests)."""

    url: str
    status: str  # scraped | unchanged | failed | duplicate | dropped


@dataclass
class _CachedCrawl:
    state: CrawlState
    at: float


class Crawler:
    def __init__(
        self,
        *,
        broker: NatsBroker,
        crawls: KeyValue,
        urls: KeyValue,
        pages: KeyValue,
        html_store: ObjectStore | None,
        fetcher: Fetcher,
        gate: HostGate,
        inflight: InflightCounter,
        http: httpx.AsyncClient,
        robots: RobotsCache,
        guard: SsrfGuard,
        max_attempts: int,
        retry_base_s: float = 1.0,
        status_ttl_s: float = 2.0,
    ) -> None:
        self.broker = broker
        self.crawls = crawls
        self.urls = urls
        self.pages = pages
        self.html_store = html_store
        self.fetcher = fetcher
        self.gate = gate
        self.inflight = inflight
        self.http = http
        self.robots = robots
        self.guard = guard
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.status_ttl_s = status_ttl_s
        self._crawls: dict[str, _CachedCrawl] = {}
        # crawl_urls key -> the parent that claimed it, as far as this process has seen (bounded).
        self._claimed_by: dict[str, str] = {}
        self._pages_since_trim = 0
        self._archived: set[str] = set()
        """Content hashes this process put in the HTML store (bounded by ARCHIVED_MEMORY)."""

    # -- seeding -------------------------------------------------------------

    async def seed(self, event: CrawlRequested) -> None:
        """Put a crawl's start URLs (and its sitemaps' URLs) on the frontier and mark it running."""
        if (await kv_get(self.crawls, event.crawl_id, CrawlState))[0] is None:
            raise UnknownCrawl(event.crawl_id)  # the gateway writes the record before the request
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
        claimed, skipped = await self._claim(event.crawl_id, SEED_PARENT, candidates, 0, spec.max_depth, scope)

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
        await self._enqueue(event.crawl_id, spec.brand, claimed, 0, None, event.trace_id, spec.priority)

    # -- fetching ------------------------------------------------------------

    async def process(self, task: FetchTask, first_delivery: bool = False) -> Outcome:
        """Fetch one URL and publish its page event.

        Raises RetryLater when the task should come back later: the host is
        busy, or the fetch failed in a way worth retrying.

        A URL's attempts are counted in ``crawl_urls``.  A redelivered task may follow a scraper
        that died fetching it, so its attempt is written before the fetch: a page that kills its
        scraper is not fetched forever.  On a task's ``first_delivery`` nothing can have died yet,
        and the count is written only if the attempt fails and is retried: one KV write less for
        nearly every page.  A scraper killed during a first attempt leaves that attempt uncounted,
        so such a page gets one attempt more than ``max_attempts``.
        """
        key = f"{task.crawl_id}.{url_key(task.url)}"
        url_state = await self._url_state(key)
        if url_state.get("state") == "done":
            return Outcome(task.url, "duplicate")
        crawl = await self._crawl(task.crawl_id)
        if crawl is None:
            raise UnknownCrawl(task.crawl_id)
        if crawl.status.is_final:  # cancelled: drain the task without fetching
            return Outcome(task.url, "dropped")
        spec = crawl.spec
        host = host_of(task.url)
        delay = max(spec.host_delay_ms / 1000, await self.robots.crawl_delay(task.url))
        lease = await self.gate.acquire(host, spec.host_concurrency, delay)
        attempts = int(url_state.get("attempts", 0)) + 1
        counted = url_state | {"attempts": attempts}
        if not first_delivery:
            await self.urls.put(key, json.dumps(counted).encode())
        await self.inflight.begin(task.crawl_id)
        try:
            prev = await self._page_record(task.url)
            fetched = await self.fetcher.fetch(task.url, spec, Scope.of(spec), prev)
        except TransientFetchError as exc:
            if attempts < self.max_attempts:
                wait = exc.retry_after or self.retry_base_s * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
                await self._count_attempt(key, counted, first_delivery)
                raise RetryLater(min(wait, 300), f"{exc} (attempt {attempts})") from exc
            return await self._fail(task, exc, attempts, key)
        except FetchError as exc:
            return await self._fail(task, exc, attempts, key)
        except Exception as exc:  # a bug or an infrastructure fault: bounded by attempts like any other
            log.exception("unexpected error fetching %s", task.url)
            if attempts < self.max_attempts:
                await self._count_attempt(key, counted, first_delivery)
                raise RetryLater(self.retry_base_s * 2 ** (attempts - 1), repr(exc)) from exc
            return await self._fail(task, PermanentFetchError("internal_error", repr(exc)[:300]), attempts, key)
        finally:
            await self.gate.release(host, lease)
            await self.inflight.end(task.crawl_id)
        return await self._publish_page(task, spec, fetched, prev, key)

    async def _count_attempt(self, key: str, counted: dict[str, object], first_delivery: bool) -> None:
        """Record a failed attempt that will be retried (a redelivery recorded it before fetching)."""
        if first_delivery:
            await self.urls.put(key, json.dumps(counted).encode())

    async def _publish_page(
        self, task: FetchTask, spec: CrawlSpec, fetched: Fetched, prev: PageRecord | None, key: str
    ) -> Outcome:
        scope = Scope.of(spec)
        if fetched.not_modified:
            assert prev is not None
            links, content_hash, record = prev.links, prev.content_hash, None
            page = None
        else:
            page = await self._extract(fetched)
            links, content_hash = page.links, page.content_hash
            record = PageRecord(
                url=task.url, content_hash=content_hash, etag=fetched.etag, last_modified=fetched.last_modified,
                links=links, title=page.title,
            )  # fmt: skip
        new_links: list[str] = []
        skipped = 0
        if task.depth < spec.max_depth:
            in_scope = [u for u in links if scope.admits(u)]
            new_links, skipped = await self._claim(
                task.crawl_id, url_key(task.url), in_scope, task.depth + 1, spec.max_depth, scope
            )
        unchanged = page is None or (prev is not None and prev.content_hash == content_hash)
        common = {
            "crawl_id": task.crawl_id, "trace_id": task.trace_id, "brand": task.brand, "url": task.url,
            "fetched_by": self.inflight.instance,
        }  # fmt: skip
        if unchanged:
            event: PageScraped | PageUnchanged = PageUnchanged(
                **common, depth=task.depth, content_hash=content_hash, fetch_mode=fetched.mode,
                fetch_ms=fetched.fetch_ms, not_modified=fetched.not_modified, new_links=new_links,
                skipped_links=skipped,
            )  # fmt: skip
            subject = Subjects.page_unchanged(task.brand)
        else:
            assert page is not None
            archived = await self._keep_html(content_hash, fetched.html)
            event = PageScraped(
                **common, html_key=content_hash if archived else None, final_url=fetched.final_url,
                depth=task.depth, status_code=fetched.status,
                fetch_mode=fetched.mode, fetch_ms=fetched.fetch_ms, bytes=len(fetched.html.encode()),
                content_hash=content_hash, title=page.title, markdown=page.markdown, product=page.product,
                new_links=new_links, skipped_links=skipped,
            )  # fmt: skip
            subject = Subjects.page_scraped(task.brand)
        await publish_event(self.broker, event, subject, stream=Streams.PAGES.name, msg_id=key)
        await self._enqueue(
            task.crawl_id, task.brand, new_links, task.depth + 1, task.url, task.trace_id, spec.priority
        )
        if record is not None:
            await self.pages.put(url_key(task.url), record.model_dump_json().encode())
        await self.urls.put(key, json.dumps({"state": "done"}).encode())
        return Outcome(task.url, "unchanged" if unchanged else "scraped")

    async def _extract(self, fetched: Fetched) -> ExtractedPage:
        """Extract a large page in a thread: the event loop keeps serving the other workers' renders, acks
        and heartbeats meanwhile (a 5,000-link index page takes seconds), sharing the GIL with it."""
        args = (fetched.html, fetched.final_url, fetched.links)
        page = await asyncio.to_thread(extract, *args) if len(fetched.html) >= OFF_LOOP_CHARS else extract(*args)
        self._after_extract(len(fetched.html))
        return page

    def _after_extract(self, html_chars: int) -> None:
        self._pages_since_trim += 1
        if html_chars >= LARGE_PAGE_CHARS or self._pages_since_trim >= TRIM_EVERY_PAGES:
            self._pages_since_trim = 0
            return_freed_memory()

    async def _fail(self, task: FetchTask, exc: FetchError, attempts: int, key: str) -> Outcome:
        log.info("giving up on %s after %d attempt(s): %s", task.url, attempts, exc)
        event = PageFailed(
            crawl_id=task.crawl_id, trace_id=task.trace_id, brand=task.brand, url=task.url, depth=task.depth,
            reason=exc.reason, status_code=exc.status_code, attempts=attempts, fetched_by=self.inflight.instance,
        )  # fmt: skip
        await publish_event(self.broker, event, Subjects.page_failed(task.brand), stream=Streams.PAGES.name, msg_id=key)
        letter = DeadLetter(
            crawl_id=task.crawl_id, trace_id=task.trace_id, service=SERVICE,
            subject=Subjects.frontier(task.priority, host_of(task.url)), reason=f"{exc.reason}: {exc.detail}"[:500],
            deliveries=attempts, payload=task.model_dump_json(),
        )  # fmt: skip
        await publish_event(self.broker, letter, Subjects.dlq(SERVICE), stream=Streams.DLQ.name, msg_id=f"{key}.dlq")
        await self.urls.put(key, json.dumps({"state": "done"}).encode())
        return Outcome(task.url, "failed")

    async def _keep_html(self, content_hash: str, html: str) -> bool:
        """Raw HTML by content hash, so a page can be re-extracted later without re-crawling it.

        Returns whether it is in the store (the page event's ``html_key`` says so).
        """
        if self.html_store is None:
            return False
        if content_hash in self._archived:
            return True
        # No lookup first: nats-py's put makes its own (and a copy stored by another process is simply
        # replaced by the same bytes), and nearly every page reaching here has new content.
        try:
            await self.html_store.put(content_hash, html.encode())
        except Exception as exc:  # the page event matters more than its archive copy
            log.warning("could not archive HTML %s: %s", content_hash[:12], exc)
            return False
        if len(self._archived) >= ARCHIVED_MEMORY:
            self._archived.clear()
        self._archived.add(content_hash)
        return True

    # -- bookkeeping ---------------------------------------------------------

    async def _crawl(self, crawl_id: str) -> CrawlState | None:
        # Re-read every few seconds, so a cancellation reaches every scraper quickly.
        cached = self._crawls.get(crawl_id)
        if cached is None or time.monotonic() - cached.at > self.status_ttl_s:
            state, _ = await kv_get(self.crawls, crawl_id, CrawlState)
            if state is None:
                return None
            if len(self._crawls) > 1000:
                self._crawls.clear()
            cached = self._crawls[crawl_id] = _CachedCrawl(state, time.monotonic())
        return cached.state

    async def _url_state(self, key: str) -> dict[str, object]:
        try:
            entry = await self.urls.get(key)
        except KeyNotFoundError:
            return {}
        return dict(json.loads(entry.value or b"{}"))

    async def _page_record(self, url: str) -> PageRecord | None:
        record, _ = await kv_get(self.pages, url_key(url), PageRecord)
        return record

    async def _claim(
        self, crawl_id: str, parent: str, urls: list[str], depth: int, max_depth: int, scope: Scope
    ) -> tuple[list[str], int]:
        """Claim the URLs nobody has claimed yet in this crawl.  Returns (claimed, newly skipped).

        Claimed URLs spend the crawl's page budget (``max_pages``); those past
        the budget, too deep, disallowed by robots.txt or looking like a crawl
        trap are recorded as skipped.  The claims go to the bucket together
        (``LINKS_IN_FLIGHT``); the trap counters, which several URLs of one
        path share, one at a time.
        """
        candidates = [u for u in dict.fromkeys(urls) if scope.admits(u)]
        claims = await _bounded([self._claim_one(crawl_id, parent, u, depth, max_depth) for u in candidates])
        fresh: list[str] = []
        reclaimed: list[str] = []
        skipped = 0
        for url, claim in zip(candidates, claims, strict=True):
            if claim == "reclaimed":
                reclaimed.append(url)
            elif claim == "skipped":
                skipped += 1
            elif claim == "queued":
                # Only the first claimer counts a URL towards its path's query variants.
                if await self._looks_like_trap(crawl_id, url):
                    value = {"state": "skipped", "reason": "trap", "parent": parent}
                    await self.urls.put(f"{crawl_id}.{url_key(url)}", json.dumps(value).encode())
                    skipped += 1
                else:
                    fresh.append(url)
        granted = await self._reserve_budget(crawl_id, len(fresh))
        value = json.dumps({"state": "skipped", "reason": "max_pages", "parent": parent}).encode()
        await _bounded([self.urls.put(f"{crawl_id}.{url_key(url)}", value) for url in fresh[granted:]])
        return reclaimed + fresh[:granted], skipped + len(fresh) - granted

    async def _claim_one(self, crawl_id: str, parent: str, url: str, depth: int, max_depth: int) -> str | None:
        """Claim one URL: ``queued`` (ours now), ``skipped`` (ours, recorded as skipped: too deep or
        disallowed), ``reclaimed`` (this very parent claimed it before a crash and it was never
        fetched) or None (another page's)."""
        key = f"{crawl_id}.{url_key(url)}"
        if self._claimed_by.get(key, parent) != parent:
            return None  # another page's claim: it can never become ours, no need to ask the bucket
        reason = None
        if depth > max_depth:
            reason = "depth"
        elif not await self.robots.allowed(url):
            reason = "robots"
        value = {"state": "skipped" if reason else "queued", "reason": reason, "parent": parent}
        try:
            await self.urls.create(key, json.dumps(value).encode())
        except KeyWrongLastSequenceError:
            # Already known, unless this very parent claimed it before a crash.
            existing = await self._url_state(key)
            self._remember_claim(key, str(existing.get("parent")))
            if existing.get("parent") == parent and existing.get("state") == "queued":
                return "reclaimed"
            return None
        self._remember_claim(key, parent)
        return "skipped" if reason else "queued"

    def _remember_claim(self, key: str, parent: str) -> None:
        self._claimed_by[key] = parent
        if len(self._claimed_by) > 200_000:
            for old in list(self._claimed_by)[:50_000]:
                del self._claimed_by[old]

    async def _looks_like_trap(self, crawl_id: str, url: str) -> bool:
        """Over-long URLs, too many query parameters, repeating path segments, or a path whose query keeps
        changing (calendars, faceted filters) beyond MAX_QUERY_VARIANTS distinct values in this crawl."""
        parts = urlsplit(url)
        if len(url) > MAX_URL_LENGTH or parts.query.count("&") + 1 > MAX_QUERY_PARAMS:
            return True
        segments = [s for s in parts.path.split("/") if s]
        if segments and max(segments.count(s) for s in segments) > 3:
            return True
        if not parts.query:
            return False
        # Count distinct query variants per path; only a URL that is new to this crawl gets here.
        counter = f"{crawl_id}.q.{url_key(parts.netloc + parts.path)}"
        seen = await self._increment(counter)
        return seen > MAX_QUERY_VARIANTS

    async def _increment(self, key: str) -> int:
        """Add one to the counter at ``key``; returns the new value."""
        return (await self._add(key, lambda _: 1))[1]

    async def _reserve_budget(self, crawl_id: str, want: int) -> int:
        """Atomically take up to ``want`` pages from the crawl's budget; returns how many were granted."""
        crawl = await self._crawl(crawl_id)
        if crawl is None or want <= 0:
            return 0
        max_pages = crawl.spec.max_pages
        return (await self._add(f"{crawl_id}.budget", lambda spent: max(0, min(want, max_pages - spent))))[0]

    async def _add(self, key: str, amount: Callable[[int], int]) -> tuple[int, int]:
        """Compare-and-set an integer counter in ``crawl_urls``: add ``amount(current)``.

        Returns (what was added, the new value); adding 0 writes nothing.
        """
        while True:
            try:
                entry = await self.urls.get(key)
                current, rev = int(entry.value or b"0"), entry.revision
            except KeyNotFoundError:
                current, rev = 0, 0
            add = amount(current)
            if add == 0:
                return 0, current
            try:
                if rev:
                    await self.urls.update(key, str(current + add).encode(), last=rev)
                else:
                    await self.urls.create(key, str(current + add).encode())
                return add, current + add
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
        priority: Priority,
    ) -> None:
        tasks = [
            FetchTask(
                crawl_id=crawl_id,
                trace_id=trace_id,
                brand=brand,
                url=url,
                depth=depth,
                parent_url=parent,
                priority=priority,
            )
            for url in urls
        ]
        publishes = [
            publish_event(
                self.broker,
                task,
                Subjects.frontier(priority, host_of(task.url)),
                stream=Streams.FRONTIER.name,
                msg_id=f"{crawl_id}.{url_key(task.url)}",
            )
            for task in tasks
        ]
        await _bounded(publishes)
