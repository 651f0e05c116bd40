"""A large page is extracted off the event loop: the scraper's other workers keep going meanwhile."""

from __future__ import annotations

import asyncio
import time

from showroom.scraper.crawler import OFF_LOOP_CHARS, Crawler
from showroom.scraper.fetching import Fetched


def _index_page(links: int) -> str:
    items = "".join(f'<li><a href="/lab/static/articles/{i}">Guide {i}: monitors</a></li>' for i in range(links))
    body = f"<main><h1>Guides</h1><ul>{items}</ul></main>"
    return f"<html><head><title>All guides</title></head><body>{body}</body></html>"


def _crawler() -> Crawler:
    deps = dict.fromkeys(
        ("broker", "crawls", "urls", "pages", "html_store", "fetcher", "gate", "inflight", "http", "robots", "guard")
    )
    return Crawler(**deps, max_attempts=3)  # type: ignore[arg-type]


async def test_the_loop_keeps_ticking_while_a_large_page_is_extracted() -> None:
    html = _index_page(5_000)
    assert len(html) >= OFF_LOOP_CHARS
    fetched = Fetched("http://127.0.0.1/lab/static/", "http://127.0.0.1/lab/static/", 200, html, None, 1.0, "http")
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker is running before extraction starts
    t0 = time.perf_counter()
    page = await _crawler()._extract(fetched)
    took = time.perf_counter() - t0
    ticker.cancel()
    assert len(page.links) == 5_000 and page.title == "All guides"
    # On the loop, one gap would span the whole extraction.  In a thread the loop gets its turns, except while
    # one C call holds the GIL throughout: lxml parsing the whole document (~30% of the time in one CI run).
    assert len(gaps) >= 10 and max(gaps) < took / 2, (max(gaps), took, len(gaps))
