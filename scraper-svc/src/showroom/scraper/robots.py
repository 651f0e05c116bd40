"""robots.txt (parsed by Protego) and sitemaps, fetched once per host and kept for a while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import httpx
from lxml import etree
from protego import Protego

from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import normalize_url

log = logging.getLogger(__name__)

_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class RobotsCache:
    """Per-origin robots.txt rules.  A missing robots.txt allows everything; an unreachable one too,
    except on a 5xx, which (as Google does) is read as "disallow all for now"."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        guard: SsrfGuard,
        user_agent: str,
        ttl_s: float = 3600,
        size: int = 1024,
    ) -> None:
        self.client = client
        self.guard = guard
        self.user_agent = user_agent
        self.ttl_s = ttl_s
        self.size = size
        self._rules: OrderedDict[str, tuple[float, Protego]] = OrderedDict()
        self._fetching: dict[str, asyncio.Future[Protego]] = {}
        """Origins whose robots.txt is being fetched: a page's links are claimed together, and a host
        must not get one request for its robots.txt per link."""

    async def rules_for(self, origin: str) -> Protego:
        hit = self._rules.get(origin)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            self._rules.move_to_end(origin)
            return hit[1]
        pending = self._fetching.get(origin)
        if pending is None:
            pending = self._fetching[origin] = asyncio.ensure_future(self._fetch_and_keep(origin))
        # Shielded: one waiter cancelled does not cancel the fetch the others wait for.
        return await asyncio.shield(pending)

    async def _fetch_and_keep(self, origin: str) -> Protego:
        try:
            rules = await self._fetch(origin)
        finally:
            del self._fetching[origin]
        self._rules[origin] = (time.monotonic(), rules)
        while len(self._rules) > self.size:
            self._rules.popitem(last=False)
        return rules

    async def _fetch(self, origin: str) -> Protego:
        url = f"{origin}/robots.txt"
        try:
            await self.guard.check(httpx.URL(url).host)
            resp = await self.client.get(url, follow_redirects=True)
        except Exception as exc:  # unreachable robots.txt: crawl as if there were none
            log.warning("robots.txt of %s unreachable (%s); allowing all", origin, exc)
            return Protego.parse("")
        if resp.status_code >= 500:
            return Protego.parse("User-agent: *\nDisallow: /")
        if resp.status_code >= 400:
            return Protego.parse("")
        return Protego.parse(resp.text)

    async def allowed(self, url: str) -> bool:
        u = httpx.URL(url)
        origin = f"{u.scheme}://{u.netloc.decode()}"
        return (await self.rules_for(origin)).can_fetch(url, self.user_agent)

    async def crawl_delay(self, url: str) -> float:
        u = httpx.URL(url)
        delay = (await self.rules_for(f"{u.scheme}://{u.netloc.decode()}")).crawl_delay(self.user_agent)
        return float(delay or 0.0)

    async def sitemaps(self, origin: str) -> list[str]:
        return list((await self.rules_for(origin)).sitemaps)


async def read_sitemap_urls(
    client: httpx.AsyncClient, guard: SsrfGuard, sitemap_url: str, limit: int, max_depth: int = 3
) -> list[str]:
    """Page URLs listed by a sitemap, following nested sitemap indexes (breadth-first, bounded)."""
    urls: list[str] = []
    queue = [(sitemap_url, 0)]
    seen: set[str] = set()
    while queue and len(urls) < limit:
        url, depth = queue.pop(0)
        if url in seen or depth > max_depth:
            continue
        seen.add(url)
        try:
            await guard.check(httpx.URL(url).host)
            resp = await client.get(url, follow_redirects=True)
            resp.raise_for_status()
            root = etree.fromstring(resp.content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        except Exception as exc:
            log.warning("sitemap %s unreadable: %s", url, exc)
            continue
        locs = [(el.text or "").strip() for el in root.iter(f"{_SITEMAP_NS}loc", "loc")]
        if etree.QName(root).localname == "sitemapindex":
            queue.extend((loc, depth + 1) for loc in locs if loc)
        else:
            urls.extend(n for loc in locs if (n := normalize_url(loc)))
    return urls[:limit]
