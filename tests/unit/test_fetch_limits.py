"""Plain-HTTP fetching against the lab's hostile pages: every limit is enforced, with a clear reason.

The lab runs in this process on 127.0.0.1 (no browser, so this runs with the unit tests); the same pages
through the scraper process and Chromium are in tests/integration/test_hostile_pages.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from showroom.demo_site.server import serve
from showroom.scraper.errors import FetchError, PermanentFetchError, TransientFetchError
from showroom.scraper.fetching import Fetcher
from showroom.scraper.sniff import looks_binary
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, normalize_url

MAX_BYTES = 256 * 1024


@pytest_asyncio.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    async with serve(static_pages=3) as url:
        yield url


@pytest_asyncio.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with httpx.AsyncClient(timeout=1.0) as http:
        guard = SsrfGuard(["127.0.0.1"])
        yield Fetcher(http=http, browser=None, guard=guard, hints=None, max_bytes=MAX_BYTES, max_redirects=5,
                      fetch_timeout_s=1.5)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "error", "reason"),
    [("/lab/huge?mb=1", PermanentFetchError, "too_large"),
     ("/lab/huge?mb=1&chunked=1", PermanentFetchError, "too_large"),
     ("/lab/binary", PermanentFetchError, "binary_content"),
     ("/lab/redirect/loop-a", PermanentFetchError, "redirect_loop"),
     ("/lab/never-finishes?s=20", TransientFetchError, "timeout"),  # one read waits past http_timeout_s
     ("/lab/slow-drip?s=20", TransientFetchError, "timeout")],  # every read is quick; the whole is not
)  # fmt: skip
async def test_hostile_pages_hit_their_limit(
    site: str, fetcher: Fetcher, path: str, error: type[FetchError], reason: str
) -> None:
    t0 = time.perf_counter()
    with pytest.raises(error) as err:
        await fetcher.http_get(normalize_url(site + path) or "", Scope(("127.0.0.1",)))
    assert err.value.reason == reason
    assert time.perf_counter() - t0 < 3  # bounded by the limits, not by the 20 s the page would take


async def test_malformed_markup_is_fetched_like_any_page(site: str, fetcher: Fetcher) -> None:
    fetched = await fetcher.http_get(normalize_url(site + "/lab/malformed") or "", Scope(("127.0.0.1",)))
    assert fetched.status == 200 and "The end of the readable text." in fetched.html


@pytest.mark.parametrize(
    "text",
    ["<p>Plain English text.</p>" * 50, "<p>Ünïcödé, 日本語のテキスト, русский текст, emoji 🎛️🎚️</p>" * 40,
     "line one\r\n\tindented\fform feed\n" * 30, ""],
)  # fmt: skip
def test_text_in_any_language_is_not_binary(text: str) -> None:
    assert not looks_binary(text)


def test_random_bytes_are_binary_however_they_were_decoded() -> None:
    noise = bytes(range(256)) * 40
    assert looks_binary(noise.decode("utf-8", errors="replace"))
    assert looks_binary(noise.decode("latin-1"))  # what a browser shows for undeclared bytes
    assert looks_binary("<html><body>" + "\x00" * 400 + "x" * 8000)
