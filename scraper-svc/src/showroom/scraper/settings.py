"""scraper-svc settings (env prefix ``SHOWROOM_``)."""

from __future__ import annotations

from pydantic import Field

from showroom.common.settings import ServiceSettings


class ScraperSettings(ServiceSettings):
    http_port: int = 9101

    concurrency: int = Field(default=4, ge=1, le=64)
    """Pages in flight in this process (each one a reused browser page)."""

    chromium_path: str = "/usr/bin/chromium"
    """Debian's Chromium; Playwright's own browser download is not used."""
    chromium_args: list[str] = Field(default_factory=list)
    """Extra Chromium switches, after the scraper's own (``browser.chromium_switches``: feature lists given in
    ``--disable-features``/``--enable-features`` join the scraper's and Playwright's rather than replace them).
    E.g. ``["--process-per-site"]`` puts a context's pages of one site in one renderer: less memory, fewer
    pages/min (docs/architecture.md)."""

    user_agent: str = "ShowroomBot/0.1 (+https://showroom.invalid/bot)"

    nav_timeout_ms: int = 20_000
    settle_timeout_ms: int = 1_500
    """After `load`, how long to wait for the network to go idle (scripts rendering content)."""

    recycle_after: int = 6
    """Navigations before a browser page is replaced.  A reused renderer grows ~2.5 MB a navigation here (~55 MB
    after one, ~80 after 10, ~95 after 20, ~120 MB from 30 on) and a new page costs ~70 ms, so a short life is
    cheap memory.  A 300-page crawl at concurrency 4 peaked at 759 MB with 6, 815 with 12 and 933 with 50, at the
    same pages/min (1,500 pages with 6: 765 MB)."""
    context_recycle_after: int = 2000
    """Navigations before the browser context (and with it every renderer process) is replaced."""

    script_timeout_ms: int = Field(default=5_000, ge=100)
    """How long page scripts may keep the renderer busy: reading the DOM after ``load``, or probing a page whose
    ``load`` never came.  Longer gives ``script_timeout``: the script is stopped and the page retried like a timeout
    (a page that shares its renderer with a looping neighbour stalls too, through no fault of its own)."""

    http_timeout_s: float = 15.0
    """Per network operation (connect, each read) of a plain-HTTP fetch."""
    fetch_timeout_s: float = Field(default=30.0, gt=0)
    """A whole plain-HTTP fetch, redirects included: a body trickling in, each read in time, still ends here."""

    max_redirects: int = Field(default=10, ge=0, le=20)
    """Redirects followed for one page, over plain HTTP and in the browser, before it fails with ``redirect_loop``."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    """Fetch attempts per URL before it is recorded as failed (and dead-lettered)."""

    max_page_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Larger documents are refused (``too_large``) instead of filling memory: over plain HTTP as the body is read;
    in the browser when the response declares a larger size, else once loaded."""

    task_ack_wait_s: float = 60.0
    """A task not acked within this time (its scraper died) goes to another scraper; must exceed the slowest page."""

    tracker_ack_wait_s: float = 10.0
    """The crawl tracker reads PAGES and INDEX one event at a time; an event held by a scraper that died
    blocks every crawl's tracking until it is redelivered, so this is short (applying one is a KV write)."""

    retry_base_s: float = 1.0
    """First retry delay; doubles each attempt, with jitter."""

    ssrf_allow_hosts: list[str] = Field(default_factory=list)
    """Hosts or IPs exempt from the private-network guard (the embedded demo and tests use 127.0.0.1)."""

    browser: bool = True
    """Start Chromium; without it every page is fetched over plain HTTP."""
