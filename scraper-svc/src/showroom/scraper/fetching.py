"""How a page is fetched: plain HTTP, Chromium, or ``auto`` (HTTP first, Chromium when needed).

Re-fetches of a known page are conditional (``If-None-Match`` /
``If-Modified-Since``) over plain HTTP first, whatever the render mode: a
304 costs one cheap request and no browser at all.

Plain-HTTP redirects are followed one hop at a time, each hop checked by the
SSRF guard and the crawl's scope *before* connecting.  Every limit is a
setting: bodies are capped in bytes (``too_large``), a whole fetch in time
(``timeout``, even for a body that trickles in), redirects in number
(``redirect_loop``); bytes that are not text are refused (``binary_content``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from showroom.common.events import CrawlSpec, RenderMode, utcnow
from showroom.common.topology import url_key
from showroom.scraper.adaptive import needs_rendering, url_pattern
from showroom.scraper.browser import BrowserPool
from showroom.scraper.errors import PermanentFetchError, TransientFetchError
from showroom.scraper.sniff import looks_binary, read_capped
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, normalize_url

log = logging.getLogger(__name__)

Mode = Literal["http", "browser"]
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class PageRecord(BaseModel):
    """What we know about a URL from its last fetch (bucket ``pages``): for change detection."""

    url: str
    content_hash: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str = Field(default_factory=lambda: utcnow().isoformat())
    links: list[str] = Field(default_factory=list)
    title: str = ""


@dataclass
class Fetched:
    url: str
    final_url: str
    status: int
    html: str
    links: list[str] | None
    fetch_ms: float
    mode: Mode
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        browser: BrowserPool | None,
        guard: SsrfGuard,
        hints: KeyValue,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 10,
        fetch_timeout_s: float = 30.0,
    ) -> None:
        self.http = http
        self.browser = browser
        self.guard = guard
        self.hints = hints
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.fetch_timeout_s = fetch_timeout_s
        self._hint_cache: dict[str, Mode] = {}

    async def fetch(self, url: str, spec: CrawlSpec, scope: Scope, prev: PageRecord | None) -> Fetched:
        render = spec.render if self.browser is not None else RenderMode.NEVER
        pattern = url_pattern(url)
        hint = await self._hint(pattern) if render is RenderMode.AUTO else None
        # Plain HTTP first when it can settle the matter: a conditional re-fetch (304 = done), an HTTP-only
        # crawl, or an auto crawl that does not yet know this section needs a browser.
        conditional = prev is not None and bool(prev.etag or prev.last_modified)
        if conditional or render is RenderMode.NEVER or (render is RenderMode.AUTO and hint != "browser"):
            fetched = await self.http_get(url, scope, prev)
            if fetched.not_modified or render is RenderMode.NEVER:
                return fetched
            if render is RenderMode.AUTO and hint != "browser":
                if not needs_rendering(fetched.html):
                    if hint is None:
                        await self._remember(pattern, "http")
                    return fetched
                await self._remember(pattern, "browser")
        assert self.browser is not None
        r = await self.browser.render(url, scope, frozenset(spec.block_resources))
        return Fetched(url, r.final_url, r.status_code, r.html, r.links, r.fetch_ms, "browser", r.etag, r.last_modified)

    async def http_get(self, url: str, scope: Scope, prev: PageRecord | None = None) -> Fetched:
        """GET ``url`` over plain HTTP within ``fetch_timeout_s``, following redirects hop by hop."""
        try:
            async with asyncio.timeout(self.fetch_timeout_s):
                return await self._http_get(url, scope, prev)
        except TimeoutError as exc:
            raise TransientFetchError("timeout", f"response not complete within {self.fetch_timeout_s:g} s") from exc

    async def _http_get(self, url: str, scope: Scope, prev: PageRecord | None) -> Fetched:
        headers = {}
        if prev is not None:
            if prev.etag:
                headers["If-None-Match"] = prev.etag
            if prev.last_modified:
                headers["If-Modified-Since"] = prev.last_modified
        t0 = time.perf_counter()
        current = url
        for _hop in range(self.max_redirects + 1):
            parts = urlsplit(current)
            if not scope.allows(current):
                raise PermanentFetchError("redirect_out_of_scope", current)
            await self.guard.check(parts.hostname or "")
            try:
                async with self.http.stream("GET", current, headers=headers, follow_redirects=False) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        location = urljoin(current, resp.headers["location"])
                        # Normalised like any link, so the next hop's checks see the host a browser would.
                        if (hop := normalize_url(location)) is None:
                            raise PermanentFetchError("redirect_refused", f"not an http(s) URL: {location[:200]}")
                        current = hop
                        continue
                    _raise_for_status(resp)
                    if resp.status_code == 304:
                        return Fetched(url, current, 304, "", None, _ms(t0), "http", prev.etag if prev else None)
                    ctype = resp.headers.get("content-type", "text/html").split(";")[0].strip().lower()
                    if ctype not in _HTML_TYPES:
                        raise PermanentFetchError("not_html", ctype)
                    body = await read_capped(resp, self.max_bytes)
                    html = body.decode(resp.encoding or "utf-8", errors="replace")
                    if looks_binary(html):
                        raise PermanentFetchError("binary_content", f"{ctype} body is not text")
                    return Fetched(
                        url, current, resp.status_code, html, None, _ms(t0), "http",
                        resp.headers.get("etag"), resp.headers.get("last-modified"),
                    )  # fmt: skip
            except httpx.TimeoutException as exc:
                raise TransientFetchError("timeout", str(exc) or type(exc).__name__) from exc
            except httpx.TransportError as exc:
                raise TransientFetchError("connect_error", str(exc) or type(exc).__name__) from exc
        raise PermanentFetchError("redirect_loop", f"more than {self.max_redirects} redirects")

    async def _hint(self, pattern: str) -> Mode | None:
        if pattern in self._hint_cache:
            return self._hint_cache[pattern]
        try:
            entry = await self.hints.get(url_key(pattern))
        except KeyNotFoundError:
            return None
        mode: Mode = "browser" if entry.value == b"browser" else "http"
        self._hint_cache[pattern] = mode
        return mode

    async def _remember(self, pattern: str, mode: Mode) -> None:
        self._hint_cache[pattern] = mode
        await self.hints.put(url_key(pattern), mode.encode())
        log.info("render hint for %s: %s", pattern, mode)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _raise_for_status(resp: httpx.Response) -> None:
    code = resp.status_code
    if code == 429 or code >= 500:
        retry_after = None
        try:
            retry_after = float(resp.headers.get("retry-after", ""))
        except ValueError:
            pass
        raise TransientFetchError(f"http_{code}", status_code=code, retry_after=retry_after)
    if code >= 400:
        raise PermanentFetchError(f"http_{code}", status_code=code)
