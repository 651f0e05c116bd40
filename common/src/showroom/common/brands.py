"""The brand registry: which brands Showroom crawls, how, and how often.

An entry lives in the ``brands`` KV bucket under its slug.  It holds the brand's *definition* (what an
operator writes in the registry file or PUTs to ``/v1/brands/{brand}``: a :class:`CrawlOptions`, a
display name and a re-crawl interval) and its schedule's *state* (the crawl it last started and when
the next one is due).  The key ``_scheduler`` (never a slug: slugs start with a letter or digit)
remembers the last scheduled start, so the delay between brands holds across gateway replicas.

The rules here are pure; the gateway applies them with compare-and-set (``bus.kv_update``), so any
number of replicas start each due crawl exactly once.

The registry file is TOML, one table per brand::

    [brands.northwind]
    name = "Northwind Audio"
    start_urls = ["${DEMO_URL}/northwind/"]
    recrawl_interval = "PT6H"     # ISO 8601 duration or seconds; leave out for manual crawls only

``${NAME}`` in any string value is replaced by the environment variable ``NAME`` (after TOML
parsing, so the value needs no quoting); any other ``$`` is left alone, so regex anchors are safe.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from showroom.common.crawls import CrawlState
from showroom.common.events import BRAND_PATTERN, CrawlOptions, CrawlSpec, is_brand_slug

SCHEDULER_KEY = "_scheduler"

RESERVATION_GRACE = timedelta(seconds=60)
"""A brand's crawl is reserved (compare-and-set on the brand) before its record is created.  A record
still missing this long after the reservation means the starter died in between: the brand is free."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Trigger = Literal["schedule", "manual"]


class RegistryError(ValueError):
    """The registry file cannot be used; the message names the file, the brand and the field."""


class BrandDefinition(CrawlOptions):
    """What an operator defines for a brand: how to crawl it, and how often."""

    name: str = Field(min_length=1, max_length=200, description="Display name, e.g. `KRK Systems`.")
    recrawl_interval: timedelta | None = Field(
        default=None,
        le=timedelta(days=365),
        description="How often the scheduler re-crawls the brand, counted from the last start: an ISO 8601 "
        "duration (`PT6H`) or seconds, at most a year. Null: only when asked (POST /v1/brands/{brand}/crawl).",
    )
    enabled: bool = Field(default=True, description="A disabled brand is never crawled, on schedule or on request.")

    @field_validator("recrawl_interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    def crawl_options(self) -> dict[str, Any]:
        """The crawl fields that were given (JSON-ready), e.g. as the body of POST /v1/crawls without the brand."""
        return self.model_dump(mode="json", include=set(CrawlOptions.model_fields), exclude_unset=True)

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class BrandState(BaseModel):
    """What the schedule knows about a brand; changed only by compare-and-set."""

    last_crawl_id: str | None = None
    last_trigger: Trigger | None = None
    last_started_at: datetime | None = None
    next_due_at: datetime | None = Field(
        default=None, description="When the scheduler starts the next crawl; null when disabled or manual only."
    )


class Brand(BrandDefinition):
    """A registry entry, as stored in the ``brands`` bucket."""

    brand: str = Field(pattern=BRAND_PATTERN, description="Brand slug, e.g. `krk`.")
    state: BrandState = Field(default_factory=BrandState)
    defined_by: Literal["file", "api"] = Field(description="Where the current definition came from.")
    file_digest: str | None = Field(
        default=None,
        description="Digest of the registry-file entry last applied: the file is applied again only when it differs.",
    )

    @classmethod
    def define(
        cls, slug: str, definition: BrandDefinition, now: datetime, *, previous: Brand | None = None,
        file_digest: str | None = None,
    ) -> Brand:  # fmt: skip
        """A new definition for ``slug`` (from the registry file when ``file_digest`` is given, else
        from the API), keeping ``previous``'s schedule state and the digest of the file entry last applied."""
        brand = cls(
            **definition.model_dump(exclude_unset=True),
            brand=slug,
            state=previous.state.model_copy() if previous else BrandState(),
            defined_by="file" if file_digest else "api",
            file_digest=file_digest or (previous.file_digest if previous else None),
        )
        brand.reschedule(now)
        return brand

    def definition(self) -> BrandDefinition:
        return BrandDefinition.model_validate(self.model_dump(include=set(BrandDefinition.model_fields)))

    def crawl_spec(self) -> CrawlSpec:
        return CrawlSpec(brand=self.brand, **self.model_dump(include=set(CrawlOptions.model_fields)))

    def reschedule(self, now: datetime) -> None:
        """Recompute ``next_due_at``: a never-crawled brand is due now, else one interval after its last start."""
        s = self.state
        if not self.enabled or self.recrawl_interval is None:
            s.next_due_at = None
        elif s.last_started_at is None:
            s.next_due_at = now
        else:
            s.next_due_at = s.last_started_at + self.recrawl_interval

    def is_due(self, now: datetime) -> bool:
        return self.state.next_due_at is not None and self.state.next_due_at <= now

    def crawl_in_progress(self, last: CrawlState | None, now: datetime) -> bool:
        """Is the brand's last crawl (``last``, read from the ``crawls`` bucket) still going?"""
        s = self.state
        if s.last_crawl_id is None:
            return False
        if last is None:  # reserved, its record not written yet (or never: see RESERVATION_GRACE)
            return s.last_started_at is not None and now - s.last_started_at < RESERVATION_GRACE
        return not last.status.is_final

    def started(self, crawl_id: str, trigger: Trigger, now: datetime) -> None:
        self.state.last_crawl_id = crawl_id
        self.state.last_trigger = trigger
        self.state.last_started_at = now
        self.reschedule(now)


class SchedulerClock(BaseModel):
    """The last scheduled start over all brands (key ``_scheduler``), for the delay between brands."""

    brand: str
    started_at: datetime


def expand(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """``value`` with ``${NAME}`` replaced from ``env`` in every string inside it."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise RegistryError(f"{where}: ${{{m.group(1)}}} is not set in the environment")
            return env[m.group(1)]

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, env, where) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, env, f"{where}.{k}") for k, v in value.items()}
    return value


def load_registry(path: Path, env: Mapping[str, str] | None = None) -> dict[str, BrandDefinition]:
    """The brands a registry file defines, by slug; :class:`RegistryError` says what is wrong."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    unknown = set(data) - {"brands"}
    if unknown:
        raise RegistryError(f"{path}: unknown top-level keys {sorted(unknown)} (brands go in [brands.<slug>] tables)")
    brands: dict[str, BrandDefinition] = {}
    for slug, body in data.get("brands", {}).items():
        where = f"{path}: brands.{slug}"
        if not is_brand_slug(slug):
            raise RegistryError(f"{where}: a slug is lowercase letters, digits and dashes ({BRAND_PATTERN})")
        if not isinstance(body, dict):
            raise RegistryError(f"{where}: expected a table")
        try:
            brands[slug] = BrandDefinition.model_validate(expand(body, env, where))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RegistryError(f"{where}: {problems}") from exc
    return brands
