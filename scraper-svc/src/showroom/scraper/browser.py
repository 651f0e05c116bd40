"""Rendering pages with Debian's Chromium through Playwright.

One browser per scraper process, a fixed pool of reused pages (reusing a
page renders ~50% faster than opening one per URL here), each page replaced
after ``recycle_after`` navigations because a reused renderer grows (~2.5 MB
a navigation here).  Each pooled page gets a renderer of its own, but
Chromium may put pages of one site in one renderer process, which lives as
long as any of them.  So pages also belong to a browser context that is
retired after ``context_recycle_after`` navigations; contexts never share
renderers, so when a retired context's last page is replaced the context is
closed and its renderers exit.

Every request a page makes — its document, sub-resources, XHR, workers'
requests, iframes and every redirect hop — passes the crawl's scope check
and the SSRF guard before Chromium sends it: each pooled page has a DevTools
session that pauses requests (``Fetch`` at the request stage, where a
redirect's next hop is paused as a request of its own).  That session sees
the page's own target only, so nothing a page starts may run elsewhere:
cross-site iframes stay in the page's process (site isolation is off, see
``CHROMIUM_ARGS``), Chromium's pop-up blocker stays on (a crawl never
clicks, so no script may open a window), and shared workers are not
offered.  WebSockets, which ``Fetch`` does not see, are refused outright.
Plain-HTTP requests to names are not sent by Chromium at all, which resolves
names itself (DNS rebinding): the scraper fetches them from the addresses the
guard checked and fulfils the paused request (``showroom.scraper.pinned``).
Playwright's own routes would do the checking too, but at twice the cost:
they cannot see redirects, so a second pause per response was needed, and
in a busy scraper each pause waits its turn on the event loop (a render
took ~90 ms longer).

Hostile pages are bounded by settings: the document's size (refused as soon
as its headers declare too much, else once loaded), its redirects, the
navigation time, and how long its scripts may hold the renderer (a page
whose ``load`` handler never returns, or whose DOM cannot be read, fails
with ``script_timeout`` and its page is replaced).  Windows a page opens
are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Request,
    Response,
    WebSocketRoute,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from prometheus_client import Counter

from showroom.scraper.errors import FetchError, PermanentFetchError, TransientFetchError
from showroom.scraper.pinned import PinnedFetcher
from showroom.scraper.sniff import looks_binary
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope

log = logging.getLogger(__name__)

BLOCKED_REQUESTS = Counter(
    "showroom_browser_blocked_requests_total",
    "Browser requests aborted: out_of_scope, ssrf_refused, dns_error, redirect_loop, websocket, or a blocked "
    "resource type",
    ["reason"],
)
POPUPS_CLOSED = Counter("showroom_browser_popups_closed_total", "Windows opened by crawled pages, closed at once")
_HTML_TYPES = ("text/html", "application/xhtml+xml")

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
    # Memory: the GPU process (software compositing only, with --disable-gpu) and the network service run
    # inside the browser process instead of two processes of their own (~40 MB PSS less at concurrency 4).
    "--in-process-gpu",
    # Nothing is drawn to be looked at, so no SwiftShader GL either: compositing falls back to plain
    # software (~12 MB PSS less in the browser process, 300-page crawls at concurrency 4).
    "--disable-software-rasterizer",
    # The request guard is one DevTools session per page, which sees the page's own process only: cross-site
    # iframes must render there too rather than in a process (and target) of their own.
    "--disable-site-isolation-trials",
]
#: Playwright's defaults that the request guard cannot have: with the pop-up blocker off, a script could open
#: a window (a target of its own, unguarded) before it is closed.
IGNORED_DEFAULT_ARGS = ["--disable-popup-blocking"]
#: Scripts every page and frame runs first: no shared workers (a target of their own, unguarded).
GUARD_INIT_SCRIPT = "delete globalThis.SharedWorker;"
#: A rendered page's DOM in one call: its HTML as ``Page.content()`` serialises it (doctype, then the root
#: element) and its links' absolute URLs.  ``content()`` and ``eval_on_selector_all()`` took 75 ms a page
#: together with four pages rendering on two cores; this takes 14 (timed in the scraper over the lab's 200
#: JS pages; docs/architecture.md).  It runs in the page's own world, so it leans on as few globals as it
#: can: old sites still replace ``Array.from`` (Prototype.js).
READ_DOM_SCRIPT = """() => {
  const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "";
  const root = document.documentElement ? document.documentElement.outerHTML : "";
  const anchors = document.querySelectorAll("a[href]");
  const links = new Array(anchors.length);
  for (let i = 0; i < anchors.length; i++) links[i] = anchors[i].href;
  return [doctype + root, links];
}"""
#: The profile the browser starts with (its contexts inherit it): no preloading.  Speculation rules'
#: prefetches and prerenders are fetched by the browser process, outside any page's guard, and no switch
#: turns them off; this preference (Chromium's "Preload pages": off) does.
PROFILE_PREFERENCES = {"net": {"network_prediction_options": 2}}
PROFILE_PREFIX = "showroom-chromium-"
"""Profiles live in the temp directory as ``showroom-chromium-<pid>-*``: one whose process is gone is removed."""
#: Playwright 1.65's own feature switches.  Chromium keeps only the last ``--disable-features`` and
#: ``--enable-features`` it is given, so any feature of ours must travel with Playwright's in one switch
#: (``tests/integration/test_browser_args.py`` checks these lists against what Playwright passes).
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "TcpPortRandomizationWin", "OptimizationHints",
    "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch", "msForceBrowserSignIn",
    "msEdgeUpdateLaunchServicesPreferredVersion",
)  # fmt: skip
PLAYWRIGHT_ENABLED_FEATURES = ("CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies")
#: Memory, measured over a 300-page crawl at concurrency 4 (bench/crawler.py): headless Chromium 156 keeps the
#: omnibox popups' WebUI loaded in a renderer of its own (~65 MB PSS, never shown), and a spare renderer warm
#: for the next site (~15 MB; a pooled page reuses its own renderer anyway).
DISABLED_FEATURES = (
    "WebUIOmniboxPopup", "WebUIOmniboxAimPopup", "SpareRendererForSitePerProcess",
    # With --disable-site-isolation-trials: no origin or site gets a process of its own (see the request guard).
    "IsolateOrigins", "site-per-process",
)  # fmt: skip
ENABLED_FEATURES = ("NetworkServiceInProcess2",)


def chromium_switches(extra: Sequence[str] = ()) -> list[str]:
    """The switches the browser is launched with: ours, then ``extra``; feature lists are merged, not replaced."""
    features = {
        "--disable-features=": [*PLAYWRIGHT_DISABLED_FEATURES, *DISABLED_FEATURES],
        "--enable-features=": [*PLAYWRIGHT_ENABLED_FEATURES, *ENABLED_FEATURES],
    }
    switches = list(CHROMIUM_ARGS)
    for arg in extra:
        prefix = next((p for p in features if arg.startswith(p)), None)
        if prefix is None:
            switches.append(arg)
        else:
            features[prefix] += [f for f in arg.removeprefix(prefix).split(",") if f]
    return switches + [prefix + ",".join(dict.fromkeys(names)) for prefix, names in features.items()]


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
    cdp: CDPSession | None
    """Attached when the page is made (one attached later cannot reach a renderer busy in a script); it pauses
    every request until the guard has checked it."""
    main_frame_id: str = ""
    documents: int = 0
    """Requests for the page's own document in this render: the navigation, then one per redirect hop."""
    navigations: int = 0
    scope: Scope | None = None
    block: frozenset[str] = frozenset()
    refusal: asyncio.Future[FetchError] | None = None
    """While a render is in progress: resolved by the request or response handler when the page's own document
    must not load (out of scope, SSRF, too many redirects, too large, not HTML), so the render fails with that
    reason instead of a generic navigation error."""


class BrowserPool:
    def __init__(
        self,
        *,
        executable_path: str,
        chromium_args: Sequence[str] = (),
        size: int,
        user_agent: str,
        guard: SsrfGuard,
        nav_timeout_ms: int = 20_000,
        settle_timeout_ms: int = 1_500,
        recycle_after: int = 6,
        context_recycle_after: int = 2000,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 10,
        script_timeout_ms: int = 5_000,
    ) -> None:
        self.executable_path = executable_path
        self.chromium_args = chromium_switches(chromium_args)
        self.size = size
        self.user_agent = user_agent
        self.guard = guard
        self.nav_timeout_ms = nav_timeout_ms
        self.settle_timeout_ms = settle_timeout_ms
        self.recycle_after = recycle_after
        self.context_recycle_after = context_recycle_after
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.script_timeout_ms = script_timeout_ms
        self._context_navigations = 0
        self._live_pages: dict[BrowserContext, int] = {}
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._profile: BrowserContext | None = None
        """The profile's own context, which owns the browser; never used for pages."""
        self._profile_dir: str | None = None
        self._context: BrowserContext | None = None
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        self._restart_lock = asyncio.Lock()
        self._pinned = PinnedFetcher(guard, max_bytes, timeout_s=nav_timeout_ms / 1000)

    async def start(self) -> None:
        self._pw = await async_playwright().start()
        await self._launch()
        for _ in range(self.size):
            await self._slots.put(await self._new_slot())

    async def _launch(self) -> None:
        """Start the browser on a fresh profile of ours (Playwright's ``launch`` takes no preferences)."""
        assert self._pw is not None
        _remove_orphaned_profiles()
        self._profile_dir = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
        (Path(self._profile_dir) / "Default").mkdir()
        (Path(self._profile_dir) / "Default" / "Preferences").write_text(json.dumps(PROFILE_PREFERENCES))
        self._profile = await self._pw.chromium.launch_persistent_context(
            self._profile_dir,
            executable_path=self.executable_path,
            args=self.chromium_args,
            ignore_default_args=IGNORED_DEFAULT_ARGS,
            headless=True,
        )
        for page in self._profile.pages:  # the blank window it opens with would hold a renderer
            await page.close()
        self._browser = self._profile.browser
        assert self._browser is not None
        await self._new_context()
        # Pages of a dead browser still sit in the pool; each fails once and is replaced (see render()).
        self._live_pages.clear()

    async def _new_context(self) -> None:
        assert self._browser is not None
        self._context = await self._browser.new_context(
            user_agent=self.user_agent, service_workers="block", java_script_enabled=True
        )
        await self._context.add_init_script(GUARD_INIT_SCRIPT)
        await self._context.route_web_socket("**/*", _refuse_web_socket)
        self._context_navigations = 0
        self._live_pages[self._context] = 0

    async def _new_slot(self) -> _Slot:
        if self._context is None or self._context_navigations >= self.context_recycle_after:
            await self._new_context()
        assert self._context is not None
        page = await self._context.new_page()
        page.set_default_navigation_timeout(self.nav_timeout_ms)
        cdp = await self._context.new_cdp_session(page)
        slot = _Slot(page, self._context, cdp)
        slot.main_frame_id = (await cdp.send("Page.getFrameTree"))["frameTree"]["frame"]["id"]
        cdp.on("Fetch.requestPaused", lambda event: self._guard_request(slot, event))
        await cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})
        page.on("popup", _close_popup)
        page.on("response", lambda response: self._check_document(slot, response))
        self._live_pages[self._context] = self._live_pages.get(self._context, 0) + 1
        return slot

    async def stop(self) -> None:
        await self._close_browser()
        await self._pinned.close()
        with contextlib.suppress(Exception):
            if self._pw:
                await self._pw.stop()

    async def _close_browser(self) -> None:
        with contextlib.suppress(Exception):
            if self._profile:
                async with asyncio.timeout(10):
                    await self._profile.close()  # the profile's context owns the browser: this closes it
        if self._profile_dir:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None

    async def _refusal(self, slot: _Slot | None, url: str) -> FetchError | None:
        """Why ``url`` must not be requested for ``slot``'s page (scope, then the SSRF guard), or None."""
        if slot is None or slot.scope is None or not slot.scope.allows(url):
            return PermanentFetchError("out_of_scope", url[:300])
        if url.startswith(("http://", "https://")):
            try:
                await self.guard.check(urlsplit(url).hostname or "")
            except FetchError as exc:
                return exc
        return None

    async def _guard_request(self, slot: _Slot, event: dict[str, Any]) -> None:
        """A paused request: sent on only if the crawl's scope, the SSRF guard, the page's blocked resource types
        and (for the page's own document) the redirect limit let it through.  A plain-HTTP request to a name is
        not sent by the browser but fetched here, pinned to the addresses the guard checked (``pinned``)."""
        refusal: FetchError | None = None
        fulfilment: dict[str, Any] | None = None
        try:
            refusal = await self._request_refusal(slot, event)
            if refusal is None and self._pinned.applies_to(event["request"]["url"]):
                try:
                    fulfilment = await self._pinned.fulfilment(event["requestId"], event["request"])
                except FetchError as exc:  # the page's own document fails the render with it; a sub-resource
                    refusal = exc  # just does not load
                    if _is_document_event(slot, event):
                        _resolve(slot.refusal, exc)
        except Exception as exc:  # whatever went wrong, the request is refused rather than left paused
            log.exception("the request guard failed on %s", event.get("request", {}).get("url", "?")[:300])
            refusal = PermanentFetchError("guard_error", repr(exc)[:300])
        finally:  # whatever happens, the paused request must be released
            if slot.cdp is not None:
                with contextlib.suppress(PlaywrightError):
                    if fulfilment is not None:
                        await slot.cdp.send("Fetch.fulfillRequest", fulfilment)
                    elif refusal is None:
                        await slot.cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})
                    else:
                        params = {"requestId": event["requestId"], "errorReason": "BlockedByClient"}
                        await slot.cdp.send("Fetch.failRequest", params)

    async def _request_refusal(self, slot: _Slot, event: dict[str, Any]) -> FetchError | None:
        url = event["request"]["url"]
        resource = str(event.get("resourceType", "")).lower()
        document = _is_document_event(slot, event)
        hop = False
        if document:
            slot.documents += 1
            hop = slot.documents > 1  # a redirect's next hop (or the page's script navigating it away)
        if resource == "other" and urlsplit(url).path == "/favicon.ico":
            # Chromium's own request for the tab's icon (Playwright's routes used to swallow it): not content,
            # and one more request per page to the crawled site.
            return PermanentFetchError("blocked_resource", "favicon")
        if not document and resource in slot.block and slot.scope is not None and slot.scope.allows(url):
            BLOCKED_REQUESTS.labels(resource).inc()
            return PermanentFetchError("blocked_resource", resource)
        refusal = await self._refusal(slot, url)
        if refusal is not None and hop and refusal.reason == "out_of_scope":
            refusal = PermanentFetchError("redirect_out_of_scope", url[:300])
        if refusal is None and hop and slot.documents - 1 > self.max_redirects:
            refusal = PermanentFetchError("redirect_loop", f"more than {self.max_redirects} redirects")
        if refusal is not None:
            BLOCKED_REQUESTS.labels(refusal.reason).inc()
            log.debug("blocked %s: %s", url, refusal)
            if document:
                _resolve(slot.refusal, refusal)
        return refusal

    def _check_document(self, slot: _Slot, response: Response) -> None:
        """Refuse the page's own document from its headers: a declared size over the limit, or not HTML."""
        if slot.refusal is None or slot.refusal.done() or not 200 <= response.status < 300:
            return
        if not _is_document(slot, response.request):
            return
        headers = response.headers
        declared = headers.get("content-length", "")
        ctype = headers.get("content-type", "text/html").split(";")[0].strip().lower()
        if declared.isdigit() and int(declared) > self.max_bytes:
            _resolve(slot.refusal, PermanentFetchError("too_large", f"{declared} bytes > {self.max_bytes}"))
        elif ctype not in _HTML_TYPES:
            _resolve(slot.refusal, PermanentFetchError("not_html", ctype))

    async def render(self, url: str, scope: Scope, block: frozenset[str] = frozenset()) -> Rendered:
        """Load ``url`` in a pooled page and return its rendered DOM and links.

        ``block`` names resource types (image, font, media, stylesheet) not to load.
        """
        slot = await self._slots.get()
        slot.block = block
        try:
            return await self._render_watched(slot, url, scope)
        except FetchError as exc:
            if exc.reason == "script_timeout":
                await _stop_scripts(slot)
            if exc.status_code is None:
                # The page may still be loading, or running a script that never returns: give the pool a fresh one.
                slot = await self._replace(slot)
            raise
        finally:
            slot.scope = None
            slot.refusal = None
            slot.navigations += 1
            if slot.context is self._context:
                self._context_navigations += 1
            retired = slot.context is not self._context or self._context_navigations >= self.context_recycle_after
            try:
                if slot.navigations >= self.recycle_after or retired:
                    slot = await self._replace(slot)
            finally:  # the pool never shrinks: a lost slot would leave a worker waiting for ever
                self._slots.put_nowait(slot)

    async def _render_watched(self, slot: _Slot, url: str, scope: Scope) -> Rendered:
        """``_render_in`` within the sum of its own limits: whatever goes wrong in the browser or the driver, a
        render never holds its worker longer."""
        budget_s = (self.nav_timeout_ms + self.settle_timeout_ms + 2 * self.script_timeout_ms) / 1000 + 5
        try:
            async with asyncio.timeout(budget_s):
                return await self._render_in(slot, url, scope)
        except TimeoutError as exc:
            log.error("rendering %s overran %.0f s; replacing its page", url, budget_s)
            raise TransientFetchError("timeout", f"render overran {budget_s:.0f} s") from exc

    async def _render_in(self, slot: _Slot, url: str, scope: Scope) -> Rendered:
        slot.scope = scope
        slot.documents = 0
        slot.refusal = refusal = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        response = await self._navigate(slot, url, refusal)
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
            # A script that never yields blocks these reads; they are bounded like navigation is.
            async with asyncio.timeout(self.script_timeout_ms / 1000):
                html, links = _dom_read(await slot.page.evaluate(READ_DOM_SCRIPT))
        except TimeoutError as exc:
            raise TransientFetchError("script_timeout", f"DOM not readable within {self.script_timeout_ms} ms") from exc
        except PlaywrightError as exc:
            raise TransientFetchError("browser_error", str(exc).splitlines()[0][:300]) from exc
        if refusal.done():
            raise refusal.result()
        if (size := len(html.encode())) > self.max_bytes:
            raise PermanentFetchError("too_large", f"{size} bytes rendered > {self.max_bytes}")
        if looks_binary(html):
            raise PermanentFetchError("binary_content", "the document is not text")
        headers = response.headers if response is not None else {}
        return Rendered(
            url, final_url, status, html, links, (time.perf_counter() - t0) * 1000,
            headers.get("etag"), headers.get("last-modified"),
        )  # fmt: skip

    async def _navigate(self, slot: _Slot, url: str, refusal: asyncio.Future[FetchError]) -> Response | None:
        """``goto`` until ``load``, unless the request or response handler refuses the document first."""
        goto = asyncio.ensure_future(slot.page.goto(url, wait_until="load"))
        await asyncio.wait((goto, refusal), return_when=asyncio.FIRST_COMPLETED)
        if refusal.done():
            goto.cancel()
            await asyncio.gather(goto, return_exceptions=True)
            raise refusal.result()
        try:
            return goto.result()
        except PlaywrightTimeout as exc:
            if not await self._responsive(slot.page):
                raise TransientFetchError(
                    "script_timeout", f"no load within {self.nav_timeout_ms} ms and scripts hold the renderer"
                ) from exc
            raise TransientFetchError("timeout", f"navigation exceeded {self.nav_timeout_ms} ms") from exc
        except PlaywrightError as exc:
            msg = str(exc)
            if "ERR_TOO_MANY_REDIRECTS" in msg:
                raise PermanentFetchError("redirect_loop", "the browser's own redirect limit") from exc
            if "ERR_BLOCKED_BY_CLIENT" in msg:
                raise PermanentFetchError("out_of_scope", "navigation left the crawl's scope") from exc
            if not (self._browser and self._browser.is_connected()):
                await self._restart()
            raise TransientFetchError("browser_error", msg.splitlines()[0][:300]) from exc

    async def _responsive(self, page: Page) -> bool:
        """Does the page's main thread answer within the script timeout?  (It doesn't while a script loops.)"""
        try:
            async with asyncio.timeout(self.script_timeout_ms / 1000):
                await page.evaluate("0")
        except TimeoutError:
            return False
        except PlaywrightError:  # navigating or closed: not a script's fault
            pass
        return True

    async def _replace(self, slot: _Slot) -> _Slot:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
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
            async with asyncio.timeout(10):
                return await self._new_slot()
        except (PlaywrightError, TimeoutError):
            log.warning("could not open a browser page; restarting the browser")
            await self._restart(force=True)
            return await self._new_slot()

    async def _restart(self, force: bool = False) -> None:
        async with self._restart_lock:
            if not force and self._browser and self._browser.is_connected():
                return
            log.warning("browser disconnected or stuck; restarting it")
            await self._close_browser()
            await self._launch()


def _remove_orphaned_profiles() -> None:
    """Profiles left behind by scrapers that were killed (a stopped pool removes its own)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*"):
        pid = path.name.removeprefix(PROFILE_PREFIX).split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def _dom_read(result: Any) -> tuple[str, list[str]]:
    """``READ_DOM_SCRIPT``'s answer, checked: it runs in the page's own world, whose scripts may have replaced
    what it calls.  Links that are not strings (an SVG link's ``href`` is an object) are left out."""
    if not (isinstance(result, list) and len(result) == 2 and isinstance(result[0], str)):
        raise TransientFetchError("browser_error", "the page's DOM could not be read")
    links = result[1] if isinstance(result[1], list) else []
    return result[0], [link for link in links if isinstance(link, str)]


def _is_document_event(slot: _Slot, event: dict[str, Any]) -> bool:
    """Is the paused request of ``event`` the slot's own page's document (not an iframe's)?"""
    return str(event.get("resourceType", "")).lower() == "document" and event.get("frameId") == slot.main_frame_id


def _is_document(slot: _Slot, request: Request) -> bool:
    """Is ``request`` the navigation of the slot's own page (not an iframe's, not a sub-resource)?"""
    try:
        return request.is_navigation_request() and request.frame == slot.page.main_frame
    except PlaywrightError:
        return False


async def _stop_scripts(slot: _Slot) -> None:
    """Interrupt the script that holds the renderer (V8's TerminateExecution, which DevTools delivers even to a
    busy main thread).  Closing the page is not always enough: Chromium may put pages of one site in one
    renderer, which would stay stuck in the loop, and every page rendered there after it would time out."""
    if slot.cdp is None:
        return
    with contextlib.suppress(PlaywrightError, TimeoutError):
        async with asyncio.timeout(2):
            await slot.cdp.send("Runtime.terminateExecution")
            log.warning("stopped a script that held the renderer on %s", slot.page.url)


def _resolve(refusal: asyncio.Future[FetchError] | None, error: FetchError) -> None:
    if refusal is not None and not refusal.done():
        refusal.set_result(error)


async def _close_popup(popup: Page) -> None:
    """``window.open`` gives nothing worth crawling and would hold a renderer until the context is retired."""
    POPUPS_CLOSED.inc()
    with contextlib.suppress(PlaywrightError):
        await popup.close()


async def _refuse_web_socket(ws: WebSocketRoute) -> None:
    """A crawl reads documents; a page's WebSocket could reach any host, and routes never see it."""
    BLOCKED_REQUESTS.labels("websocket").inc()
    with contextlib.suppress(PlaywrightError):
        await ws.close(code=1008, reason="blocked by the crawler")
