"""Event contracts: every message on the bus is one of these versioned models.

Each event carries the same envelope (``event_id``, ``schema_version``,
``occurred_at``, ``crawl_id``, ``trace_id``) followed by its body fields.  The
envelope lets any consumer deduplicate (``event_id``), follow a crawl through
every service (``trace_id``) and reject or upgrade payloads written by another
version of the code (``schema_version``).

Bumping a model's schema means: add a new ``SCHEMA_VERSION`` and teach the
model to read the previous one (see ``Event.model_validate_event``).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

BRAND_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Brand slugs become NATS subject tokens, so they must not contain dots, spaces or wildcards."""

_BRAND_RE = re.compile(BRAND_PATTERN)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def is_brand_slug(value: str) -> bool:
    return bool(_BRAND_RE.match(value))


class Event(BaseModel):
    """The envelope every event starts with."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    EVENT_TYPE: ClassVar[str] = "event"

    event_id: str = Field(default_factory=new_id)
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    crawl_id: str | None = None
    trace_id: str = Field(default_factory=new_id, description="Follows one crawl or question end to end.")


class RenderMode(StrEnum):
    AUTO = "auto"
    """Plain HTTP first; Chromium only when the page needs it (remembered per URL pattern)."""
    ALWAYS = "always"
    NEVER = "never"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


class CrawlStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (CrawlStatus.COMPLETED, CrawlStatus.FAILED, CrawlStatus.CANCELLED)


class CrawlOptions(BaseModel):
    """How to crawl a site: a :class:`CrawlSpec` without its brand (the brand registry keeps these per brand)."""

    model_config = ConfigDict(extra="forbid")

    start_urls: list[HttpUrl] = Field(min_length=1, max_length=100)
    allowed_domains: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Hosts (optionally host:port) the crawl may visit; defaults to the start URLs' hosts.",
    )
    include: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Regexes; when given, only URLs matching one of them are crawled.",
    )
    exclude: list[str] = Field(default_factory=list, max_length=20, description="Regexes of URLs never to crawl.")
    max_pages: int = Field(default=500, ge=1, le=100_000)
    max_depth: int = Field(default=5, ge=0, le=50)
    render: RenderMode = RenderMode.AUTO
    use_sitemaps: bool = Field(default=True, description="Seed the frontier from robots.txt sitemaps.")
    priority: Priority = Field(default=Priority.NORMAL, description="High-priority crawls have their own capacity.")
    host_concurrency: int = Field(
        default=2, ge=1, le=32, description="Fetches in flight per host, all scrapers together."
    )
    host_delay_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="Minimum time between fetch starts on one host (robots.txt crawl-delay wins if longer).",
    )
    block_resources: list[Literal["image", "font", "media", "stylesheet"]] = Field(
        default_factory=lambda: ["image", "font", "media"],
        description="Resource types the browser does not load for this crawl.",
    )

    @field_validator("include", "exclude")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            if len(p) > 500:
                raise ValueError("pattern longer than 500 characters")
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid regex {p!r}: {exc}") from exc
        return patterns


class CrawlSpec(CrawlOptions):
    """What a user asks to crawl."""

    brand: str = Field(pattern=BRAND_PATTERN, description="Brand slug, e.g. `krk`.")


class CrawlRequested(Event):
    EVENT_TYPE: ClassVar[str] = "crawl.requested"
    crawl_id: str
    spec: CrawlSpec


class CrawlCancelled(Event):
    EVENT_TYPE: ClassVar[str] = "crawl.cancelled"
    crawl_id: str
    brand: str


class CrawlFinished(Event):
    """Published once when a crawl reaches a final status."""

    EVENT_TYPE: ClassVar[str] = "crawl.finished"
    crawl_id: str
    brand: str
    status: CrawlStatus
    counts: dict[str, int]


class FetchTask(Event):
    """One URL on the frontier."""

    EVENT_TYPE: ClassVar[str] = "frontier.task"
    crawl_id: str
    brand: str
    url: str
    depth: int
    parent_url: str | None = None
    priority: Priority = Priority.NORMAL


class Product(BaseModel):
    """Structured product fields, keyed by schema.org names."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    brand: str | None = None
    category: str | None = None
    price: float | None = None
    priceCurrency: str | None = None
    availability: str | None = None
    sku: str | None = None
    mpn: str | None = None
    gtin: str | None = None
    description: str | None = None
    image: str | None = None
    specs: dict[str, str] = Field(default_factory=dict)


class PageScraped(Event):
    EVENT_TYPE: ClassVar[str] = "page.scraped"
    crawl_id: str
    brand: str
    url: str
    final_url: str
    depth: int
    status_code: int
    fetch_mode: Literal["browser", "http"]
    fetched_at: datetime = Field(default_factory=utcnow)
    fetch_ms: float = 0.0
    bytes: int = 0
    content_hash: str
    title: str = ""
    markdown: str = ""
    product: Product | None = None
    new_links: list[str] = Field(
        default_factory=list,
        description="URLs this page added to the frontier (the crawl's `discovered` grows by these).",
    )
    fetched_by: str | None = Field(default=None, description="The scraper instance that fetched it.")
    skipped_links: int = Field(default=0, description="Links first seen here and skipped (robots, depth, budget).")


class PageUnchanged(Event):
    """A re-fetched page whose content is what the index already has: nothing to re-embed."""

    EVENT_TYPE: ClassVar[str] = "page.unchanged"
    crawl_id: str
    brand: str
    url: str
    depth: int
    content_hash: str
    fetch_mode: Literal["browser", "http"]
    fetched_at: datetime = Field(default_factory=utcnow)
    fetch_ms: float = 0.0
    not_modified: bool = Field(description="True when the server answered 304 to a conditional request.")
    fetched_by: str | None = None
    new_links: list[str] = Field(default_factory=list)
    skipped_links: int = 0


class PageFailed(Event):
    EVENT_TYPE: ClassVar[str] = "page.failed"
    crawl_id: str
    brand: str
    url: str
    depth: int
    reason: str
    status_code: int | None = None
    attempts: int = 1
    fetched_by: str | None = None


class PageIndexed(Event):
    EVENT_TYPE: ClassVar[str] = "page.indexed"
    crawl_id: str | None = None
    brand: str
    url: str
    content_hash: str
    chunks: int
    collection: str
    fetched_at: datetime
    index_ms: float = 0.0
    unchanged: bool = Field(default=False, description="The index already held this content: nothing re-embedded.")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    brand: str | None = Field(default=None, pattern=BRAND_PATTERN)
    top_k: int = Field(default=5, ge=1, le=50)
    category: str | None = Field(default=None, max_length=200, description="Only chunks of this product category.")
    url: str | None = Field(default=None, max_length=2000, description="Only chunks of this page.")


class SearchHit(BaseModel):
    url: str
    title: str
    brand: str
    text: str
    score: float
    chunk_index: int
    content_hash: str
    fetched_at: datetime | None = None
    section: str = ""


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    error: str | None = None
    model: str | None = Field(default=None, description="The embedding model of the searched collection.")


class ProductSearchRequest(BaseModel):
    """Structured search over extracted products (``index.products``): no LLM involved."""

    model_config = ConfigDict(extra="forbid")

    brand: str | None = Field(default=None, pattern=BRAND_PATTERN)
    category: str | None = Field(default=None, max_length=200, description="Exact category, case-insensitive.")
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    in_stock: bool | None = Field(default=None, description="True: only products in stock; False: only those not.")
    q: str | None = Field(default=None, max_length=200, description="Words that must all appear in the product.")
    limit: int = Field(default=50, ge=1, le=500)


class ProductSummary(BaseModel):
    url: str
    name: str
    brand: str
    category: str | None = None
    sku: str | None = None
    price: float | None = None
    currency: str | None = None
    availability: str | None = None
    in_stock: bool = False
    specs: dict[str, str] = Field(default_factory=dict)
    content_hash: str
    fetched_at: datetime | None = None


class ProductSearchResponse(BaseModel):
    products: list[ProductSummary]
    error: str | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=3, max_length=2000)
    brand: str | None = Field(default=None, pattern=BRAND_PATTERN)
    top_k: int = Field(default=5, ge=1, le=20)


class Citation(BaseModel):
    n: int = Field(description="The `[n]` marker used in the answer.")
    url: str
    title: str
    snippet: str
    score: float
    content_hash: str
    fetched_at: datetime | None = None


class Answer(BaseModel):
    question: str
    answer: str
    model: str = Field(description='"extractive" when no LLM was used, else the Gemini model name.')
    citations: list[Citation]
    latency_ms: float = 0.0
    error: str | None = None
    cached: bool = Field(default=False, description="Served from the shared answer cache.")


class QuestionAnswered(Event):
    EVENT_TYPE: ClassVar[str] = "rag.answered"
    question: str
    brand: str | None
    model: str
    answer: str
    citation_urls: list[str]
    latency_ms: float
    refused: bool = False
    cached: bool = False


class DeadLetter(Event):
    """A message a service gave up on, kept with the reason so it can be re-driven."""

    EVENT_TYPE: ClassVar[str] = "dlq"
    service: str
    subject: str
    reason: str
    deliveries: int
    payload: str = Field(description="The original body, UTF-8 (undecodable bytes replaced).")
    headers: dict[str, Any] = Field(default_factory=dict)
