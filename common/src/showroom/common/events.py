"""Event contracts: every message on the bus is one of these versioned models.

Each event carries the same envelope (``event_id``, ``schema_version``,
``occurred_at``, ``crawl_id``, ``trace_id``) followed by its body fields.  The
envelope lets any consumer deduplicate (``event_id``), follow a crawl through
every service (``trace_id``) and reject or upgrade payloads written by another
version of the code (``schema_version``).

Schema evolution.  A producer always writes its model's current
``SCHEMA_VERSION``; a consumer reads that version and every older one, and
dead-letters a newer one (it cannot know what the new fields mean).  To bump
a model's schema:

1. raise its ``SCHEMA_VERSION`` and the ``schema_version`` field's default with it
   (a subclass whose two disagree fails at import);
2. override :meth:`Event.upgrade_from` to turn a payload of the previous version
   into the new one (add the new field's value for old events, rename, ...).
   Validation applies the steps one by one (v1 → v2 → v3), so every stored
   event stays readable, however old;
3. keep a real stored event of the old version as a test fixture
   (``tests/fixtures/``) and test that the consumers still process it.

Adding an optional field with a default needs no bump: older consumers
ignore unknown fields (``extra="ignore"``).  A bump is for changes whose
meaning an old payload cannot express by omission.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

BRAND_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Brand slugs become NATS subject tokens, so they must not contain dots, spaces or wildcards."""

_BRAND_RE = re.compile(BRAND_PATTERN)

HOST_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$"
"""A host as URLs carry it (IDNs in their ``xn--`` form, IPv6 in brackets), optionally with a port."""


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

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.model_fields["schema_version"].default != cls.SCHEMA_VERSION:
            raise TypeError(f"{cls.__name__}: schema_version's default must be SCHEMA_VERSION ({cls.SCHEMA_VERSION})")

    @model_validator(mode="before")
    @classmethod
    def _read_older_versions(cls, data: Any) -> Any:
        """Upgrade a payload written by an older schema, step by step; refuse a newer one."""
        if not isinstance(data, dict) or "schema_version" not in data:
            return data  # built in code: the current version
        version = data["schema_version"]
        if type(version) is not int:
            return data  # the field's own validation says what is wrong
        if version > cls.SCHEMA_VERSION:
            raise ValueError(
                f"unsupported schema_version {version}: this code reads {cls.__name__} up to {cls.SCHEMA_VERSION}"
            )
        while version < cls.SCHEMA_VERSION:
            data = {**cls.upgrade_from(version, dict(data)), "schema_version": version + 1}
            version += 1
        return data

    @classmethod
    def upgrade_from(cls, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """``data``, written by schema ``version``, as schema ``version + 1``.  Override when bumping."""
        return data


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

    start_urls: list[HttpUrl] = Field(
        min_length=1, max_length=20, description="Where the crawl starts; links and sitemaps find the rest."
    )
    allowed_domains: list[Annotated[str, Field(max_length=260, pattern=HOST_PATTERN)]] = Field(
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
            if not p:
                raise ValueError("an empty pattern matches every URL: leave it out")
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
    """A page fetched with new content.

    Schema 2 added ``html_key``.  Version 1 scrapers always archived the raw HTML
    under its content hash (best effort), so a v1 event reads as ``html_key = content_hash``.
    """

    EVENT_TYPE: ClassVar[str] = "page.scraped"
    SCHEMA_VERSION: ClassVar[int] = 2
    schema_version: int = 2
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
    html_key: str | None = Field(
        default=None,
        description="Key of the raw HTML in the `html` object store; None when it could not be archived.",
    )

    @classmethod
    def upgrade_from(cls, version: int, data: dict[str, Any]) -> dict[str, Any]:
        if version == 1:
            data.setdefault("html_key", data.get("content_hash"))
        return data


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


class PageLineage(BaseModel):
    """Where one indexed page version came from: the exact ``page.scraped`` event and its fetch."""

    url: str
    content_hash: str
    fetched_at: datetime | None = None
    crawl_id: str | None = None
    event_id: str | None = None
    stream: str = "PAGES"
    stream_seq: int | None = Field(default=None, description="The event's sequence in the PAGES stream.")
    fetch_mode: str | None = None
    fetched_by: str | None = None
    indexed_at: datetime | None = None
    collection: str | None = None


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
    lineage: PageLineage | None = None


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
    id: str = Field(default="", description="The product's id (for /v1/products/{id}/history).")
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
    lineage: PageLineage | None = Field(
        default=None, description="The page event this text came from (GET /v1/lineage for its history)."
    )


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
    subject: str = Field(description="The original subject: re-driving publishes the payload there again.")
    reason: str
    deliveries: int
    payload: str = Field(description="The original body, UTF-8 (undecodable bytes replaced).")
    headers: dict[str, Any] = Field(default_factory=dict)
    stream: str | None = Field(default=None, description="The original message's stream.")
    stream_seq: int | None = Field(default=None, description="The original message's sequence in that stream.")
    truncated: bool = Field(default=False, description="Only the payload's head was kept: it cannot be re-driven.")


class ProductChange(BaseModel):
    field: str = Field(description="`price`, `priceCurrency`, `availability`, `name` or `specs.<key>`.")
    before: Any = None
    after: Any = None


class ProductChanged(Event):
    """A re-crawl found a product's price, availability or specs different from its last version."""

    EVENT_TYPE: ClassVar[str] = "product.changed"
    brand: str
    product_id: str = Field(description="Stable id of the product: its page's URL key.")
    url: str
    changes: list[ProductChange]
    before: Product
    after: Product
    content_hash: str
    fetched_at: datetime
    stream_seq: int | None = Field(default=None, description="The page event (PAGES sequence) that showed it.")


class ProductVersion(BaseModel):
    """One entry of a product's history (KV ``product_versions``; ``GET /v1/products/{id}/history``)."""

    product_id: str
    url: str
    brand: str
    product: Product
    content_hash: str
    fetched_at: datetime
    crawl_id: str | None = None
    stream_seq: int | None = None
    changes: list[ProductChange] = Field(default_factory=list, description="What differs from the previous version.")


class ReplayTarget(BaseModel):
    """How the rebuilt collection is made."""

    model_config = ConfigDict(extra="forbid")

    embedder: str = Field(default="minilm", pattern=r"^[a-z0-9-]{1,40}$", description="`minilm`, `gemini`, ...")
    chunk_tokens: int = Field(default=180, ge=32, le=2000, description="Upper bound on a chunk's body, in tokens.")


class ReplaySpec(BaseModel):
    """Which page events to replay, into what."""

    model_config = ConfigDict(extra="forbid")

    from_seq: int | None = Field(default=None, ge=1, description="First PAGES sequence (default: the first).")
    from_time: datetime | None = Field(default=None, description="Or: the first event at or after this time.")
    to_seq: int | None = Field(default=None, ge=1, description="Last sequence; default: follow to the live tail.")
    to_time: datetime | None = None
    brand: str | None = Field(default=None, pattern=BRAND_PATTERN)
    target: ReplayTarget = Field(default_factory=ReplayTarget)
    re_extract: bool = Field(default=False, description="Re-extract each page from its stored raw HTML.")
    swap: bool | None = Field(
        default=None,
        description="Point the alias at the new collection when done. Default: yes for a whole, unbounded replay; "
        "no when filtered by brand or bounded by to_seq/to_time (the result would be partial).",
    )

    @property
    def partial(self) -> bool:
        return bool(self.brand or self.to_seq or self.to_time)

    @property
    def should_swap(self) -> bool:
        return (not self.partial) if self.swap is None else self.swap


class ReplayRequested(Event):
    EVENT_TYPE: ClassVar[str] = "replay.requested"
    replay_id: str
    spec: ReplaySpec


class ReplayCancelled(Event):
    EVENT_TYPE: ClassVar[str] = "replay.cancelled"
    replay_id: str


class ReplayFinished(Event):
    """Published once when a replay reaches a final status."""

    EVENT_TYPE: ClassVar[str] = "replay.finished"
    replay_id: str
    status: str
    target_collection: str | None = None
    swapped: bool = False
    events: int = 0
    error: str | None = None
