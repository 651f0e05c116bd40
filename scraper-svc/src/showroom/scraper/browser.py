"""Rendering pages with Debian's Chromium through Playwright.

One browser per scraper process, a fixed pool of reused pages (reusing a
page renders ~50% faster than opening one per URL here), each page recycled
after ``recycle_after`` navigations because a reused renderer grows without
bound.  Closing a page is not enough on its own: pages of one site share a
renderer process, which lives as long as any of them.  So pages also belong
to a browser context that is retired after ``context_recycle_after``
navigations; contexts never share renderers, so when a retired context's
last page is replaced the context is closed and its renderers exit.

Every request a page makes — sub-resources, XHR, redirects — passes the
crawl's scope check and the SSRF guard in the browser itself, so a page
cannot make the browser fetch hosts outside the crawl.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from prometheus_client import Counter

from showroom.scraper.errors import FetchError, PermanentFetchError, TransientFetchError
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope

log = logging.getLogger(__name__)

BLOCKED_REQUESTS = Counter(
    "showroom_browser_blocked_requests_total",
    "Browser requests aborted: out of the crawl's scope (or refused by the SSRF guard), or a blocked resource type",
    ["reason"],
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium keeps dialling Google's services, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
]


@dataclass
class Rendered:
    url: str
    final_url: str
    status_code: int
    html: str
    links: list[str]
    fetch_ms: float
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class _Slot:
    page: Page
    context: BrowserContext
    navigations: int = 0
    scope: Scope | None = None
    block: frozenset[str] = frozenset()


class BrowserPool:
    def __init__(
        self,
        *,
        executable_path: str,
        size: int,
        user_agent: str,
        guard: SsrfGuard,
        nav_timeout_ms: int = 20_000,
        settle_timeout_ms: int = 1_500,
        recycle_after: int = 50,
        context_recycle_after: int = 100,
    ) -> None:
        self.executable_path = executable_path
        self.size = size
        self.user_agent = user_agent
        self.guard = guard
        self.nav_timeout_ms = nav_timeout_ms
        self.settle_timeout_ms = settle_timeout_ms
        self.recycle_after = recycle_after
        self.context_recycle_after = context_recycle_after
        self._context_navigations = 0
        self._live_pages: dict[BrowserContext, int] = {}
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        self._by_page: dict[Page, _Slot] = {}
        self._restart_lock = asyncio.Lock()

    async def start(self) -> None:
        self._pw = await async_playwright().start()
        await self._launch()
        for _ in range(self.size):
            await self._slots.put(await self._new_slot())

    async def _launch(self) -> None:
        assert self._pw is not None
        self._browser = await self._pw.chromium.launch(
            executable_path=self.executable_path, args=CHROMIUM_ARGS, headless=True
        )
        await self._new_context()
        # Pages of a dead browser still sit in the pool; each fails once and is replaced (see render()).
        self._by_page.clear()
        self._live_pages.clear()

    async def _new_context(self) -> None:
        assert self._browser is not None
        self._context = await self._browser.new_context(
            user_agent=self.user_agent, service_workers="block", java_script_enabled=True
        )
        await self._context.route("**/*", self._guard_request)
        self._context_navigations = 0
        self._live_pages[self._context] = 0

    async def _new_slot(self) -> _Slot:
        if self._context is None or self._context_navigations >= self.context_recycle_after:
            await self._new_context()
        assert self._context is not None
        page = await self._context.new_page()
        page.set_default_navigation_timeout(self.nav_timeout_ms)
        slot = _Slot(page, self._context)
        self._by_page[page] = slot
        self._live_pages[self._context] = self._live_pages.get(self._context, 0) + 1
        return slot

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self._browser:
                await self._browser.close()
        with contextlib.suppress(Exception):
            if self._pw:
                await self._pw.stop()

    async def _guard_request(self, route: Route) -> None:
        request = route.request
        slot = None
        with contextlib.suppress(PlaywrightError):
            slot = self._by_page.get(request.frame.page)
        url = request.url
        allowed = slot is not None and slot.scope is not None and slot.scope.allows(url)
        if allowed and slot is not None and request.resource_type in slot.block:
            BLOCKED_REQUESTS.labels(request.resource_type).inc()
            await route.abort("blockedbyclient")
            return
        if allowed and url.startswith(("http://", "https://")):
            try:
                await self.guard.check(urlsplit(url).hostname or "")
            except FetchError:
                allowed = False
        if not allowed:
            BLOCKED_REQUESTS.labels("out_of_scope").inc()
            log.debug("blocked out-of-scope request %s", url)
            await route.abort("blockedbyclient")
            return
        await route.continue_()

    async def render(self, url: str, scope: Scope, block: frozenset[str] = frozenset()) -> Rendered:
        """Load ``url`` in a pooled page and return its rendered DOM and links.

        ``block`` names resource types (image, font, media, stylesheet) not to load.
        """
        slot = await self._slots.get()
        slot.block = block
        try:
            return await self._render_in(slot, url, scope)
        except TransientFetchError:
            # A page that timed out may still be busy; give the pool a fresh one.
            slot = await self._replace(slot)
            raise
        finally:
            slot.scope = None
            slot.navigations += 1
            if slot.context is self._context:
                self._context_navigations += 1
            retired = slot.context is not self._context or self._context_navigations >= self.context_recycle_after
            if slot.navigations >= self.recycle_after or retired:
                slot = await self._replace(slot)
            self._slots.put_nowait(slot)

    async def _render_in(self, slot: _Slot, url: str, scope: Scope) -> Rendered:
        slot.scope = scope
        t0 = time.perf_counter()
        try:
            response = await slot.page.goto(url, wait_until="load")
        except PlaywrightTimeout as exc:
            raise TransientFetchError("timeout", f"navigation exceeded {self.nav_timeout_ms} ms") from exc
        except PlaywrightError as exc:
            msg = str(exc)
            if "ERR_BLOCKED_BY_CLIENT" in msg:
                raise PermanentFetchError("out_of_scope", "navigation left the crawl's scope") from exc
            if not (self._browser and self._browser.is_connected()):
                await self._restart()
            raise TransientFetchError("browser_error", msg.splitlines()[0][:300]) from exc
        # Let scripts that render after `load` (XHR, hydration) finish; don't wait forever on chatty pages.
        with contextlib.suppress(PlaywrightTimeout, PlaywrightError):
            await slot.page.wait_for_load_state("networkidle", timeout=self.settle_timeout_ms)
        status = response.status if response else 200
        final_url = slot.page.url
        if status == 429 or status >= 500:
            retry_after = None
            if response is not None:
                with contextlib.suppress(ValueError, TypeError):
                    retry_after = float(await response.header_value("retry-after") or "")
            raise TransientFetchError(f"http_{status}", status_code=status, retry_after=retry_after)
        if status >= 400:
            raise PermanentFetchError(f"http_{status}", status_code=status)
        try:
            html = await slot.page.content()
            links = await slot.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        except PlaywrightError as exc:
            raise TransientFetchError("browser_error", str(exc).splitlines()[0][:300]) from exc
        headers = response.headers if response is not None else {}
        return Rendered(
            url, final_url, status, html, links, (time.perf_counter() - t0) * 1000,
            headers.get("etag"), headers.get("last-modified"),
        )  # fmt: skip

    async def _replace(self, slot: _Slot) -> _Slot:
        self._by_page.pop(slot.page, None)
        with contextlib.suppress(Exception):
            await slot.page.close()
        left = self._live_pages.get(slot.context, 1) - 1
        if left <= 0 and slot.context is not self._context:
            # A retired context's last page is gone: closing it lets its renderer processes exit.
            self._live_pages.pop(slot.context, None)
            with contextlib.suppress(Exception):
                await slot.context.close()
        else:
            self._live_pages[slot.context] = left
        try:
            return await self._new_slot()
        except PlaywrightError:
            await self._restart()
            return await self._new_slot()

    async def _restart(self) -> None:
        async with self._restart_lock:
            if self._browser and self._browser.is_connected():
                return
            log.warning("browser disconnected; restarting it")
            with contextlib.suppress(Exception):
                if self._browser:
                    await self._browser.close()
            await self._launch()
