"""A crawl's state as kept in the ``crawls`` KV bucket, and the pure rules that change it.

The gateway creates the record (``queued``); the scraper that seeds the
frontier moves it to ``running``; the crawl tracker applies page and index
events to it, in stream order, and decides when the crawl is finished.

Counts are exact because every change is idempotent: each record remembers
the last stream sequence it applied from PAGES and from INDEX, so an event
redelivered after a crash is recognised and not counted twice.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from showroom.common.events import CrawlSpec, CrawlStatus, utcnow


class CrawlCounts(BaseModel):
    discovered: int = Field(0, description="Unique in-scope URLs put on the frontier.")
    scraped: int = 0
    unchanged: int = Field(0, description="Re-fetched pages whose content had not changed (not re-indexed).")
    failed: int = 0
    skipped: int = Field(0, description="Unique links not fetched: robots.txt, depth or page budget.")
    indexed: int = Field(0, description="Scraped pages whose chunks are searchable.")

    @property
    def fetched(self) -> int:
        return self.scraped + self.unchanged + self.failed

    @property
    def in_progress(self) -> int:
        return self.discovered - self.fetched


class CrawlState(BaseModel):
    crawl_id: str
    brand: str
    status: CrawlStatus = CrawlStatus.QUEUED
    spec: CrawlSpec
    trace_id: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: CrawlCounts = Field(default_factory=CrawlCounts)
    error: str | None = None
    seeded: bool = False
    last_pages_seq: int = 0
    last_index_seq: int = 0

    def finish_if_done(self) -> bool:
        """Move to a final status once every discovered URL is fetched and every scraped page indexed.

        Returns True when this call made the transition.
        """
        c = self.counts
        if self.status is not CrawlStatus.RUNNING or not self.seeded:
            return False
        if c.fetched < c.discovered or c.indexed < c.scraped:
            return False
        self.status = CrawlStatus.COMPLETED if c.scraped + c.unchanged > 0 else CrawlStatus.FAILED
        if self.status is CrawlStatus.FAILED:
            self.error = self.error or "no page could be fetched"
        self.finished_at = utcnow()
        return True
