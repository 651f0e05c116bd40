"""The brand registry over HTTP (``/v1/brands``), and the operations the scheduler shares with it.

Reading the registry and running a brand's crawl now need the ``crawl`` scope; defining and
deleting brands need ``admin``.  A brand has at most one crawl at a time: ``POST
/v1/brands/{brand}/crawl`` answers 409 while its last crawl is not final.  Crawls started through
``POST /v1/crawls`` are ad hoc and are not the brand's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response, status
from faststream.nats import NatsBroker
from nats.js.kv import KeyValue
from pydantic import BaseModel

from showroom.common.brands import Brand, BrandDefinition, BrandState, Trigger, load_registry
from showroom.common.bus import kv_get, kv_keys, kv_update
from showroom.common.crawls import CrawlState
from showroom.common.events import BRAND_PATTERN, CrawlStatus, is_brand_slug, new_id, utcnow
from showroom.common.topology import Buckets
from showroom.gateway.auth import Scope, require_scope
from showroom.gateway.crawls import CrawlAccepted, start_crawl
from showroom.gateway.errors import error_responses
from showroom.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

router = APIRouter(tags=["brands"])
admin = [Depends(require_scope(Scope.ADMIN))]


class BrandNotFound(LookupError):
    pass


class BrandBusy(RuntimeError):
    """The brand's last crawl is not final yet."""

    def __init__(self, brand: str, crawl_id: str | None) -> None:
        super().__init__(f"brand {brand} already has crawl {crawl_id} in progress")
        self.crawl_id = crawl_id


class BrandDisabled(RuntimeError):
    pass


class LastCrawl(BaseModel):
    crawl_id: str
    status: CrawlStatus
    started_at: datetime | None
    finished_at: datetime | None


class BrandPublic(Brand):
    last_crawl: LastCrawl | None = None


class BrandRegistry:
    """Registry entries in the ``brands`` bucket; every change is a compare-and-set."""

    def __init__(self, broker: NatsBroker, brands: KeyValue, crawls: KeyValue) -> None:
        self.broker = broker
        self.brands = brands
        self.crawls = crawls

    async def apply_file(self, definitions: dict[str, BrandDefinition]) -> list[str]:
        """Write the registry file's brands; returns the slugs written.

        An entry is written when the brand is new or its file entry changed since it was last
        applied (``file_digest``), so edits made through the API last until the file changes.
        The schedule state is always kept.
        """
        written = []
        for slug, definition in definitions.items():
            digest = definition.digest()

            def apply(current: Brand | None, slug: str = slug, definition: BrandDefinition = definition,
                      digest: str = digest) -> Brand | None:  # fmt: skip
                if current is not None and current.file_digest == digest:
                    return None
                return Brand.define(slug, definition, utcnow(), previous=current, file_digest=digest)

            if await kv_update(self.brands, slug, Brand, apply):
                written.append(slug)
        return written

    async def list(self) -> list[Brand]:
        keys = await kv_keys(self.broker.config.connection_state.stream, Buckets.BRANDS.name)
        found = [(await kv_get(self.brands, k, Brand))[0] for k in keys if is_brand_slug(k)]
        return [b for b in found if b is not None]  # deleted keys read as None

    async def get(self, slug: str) -> Brand:
        brand = (await kv_get(self.brands, slug, Brand))[0] if is_brand_slug(slug) else None
        if brand is None:
            raise BrandNotFound(slug)
        return brand

    async def put(self, slug: str, definition: BrandDefinition) -> tuple[Brand, bool]:
        """Define (or redefine) a brand, keeping its schedule state; returns it and whether it is new."""
        created = False

        def define(current: Brand | None) -> Brand:
            nonlocal created
            created = current is None
            return Brand.define(slug, definition, utcnow(), previous=current)

        brand = await kv_update(self.brands, slug, Brand, define)
        assert brand is not None
        return brand, created

    async def delete(self, slug: str) -> None:
        await self.get(slug)
        await self.brands.delete(slug)

    async def last_crawl(self, brand: Brand) -> CrawlState | None:
        if brand.state.last_crawl_id is None:
            return None
        return (await kv_get(self.crawls, brand.state.last_crawl_id, CrawlState))[0]

    async def start(self, slug: str, trigger: Trigger, *, only_if_due: bool = False) -> str | None:
        """Start the brand's crawl and return its id; ``None`` when ``only_if_due`` and it is not due.

        The crawl is first reserved on the brand's entry by compare-and-set, then queued: of several
        replicas trying at once, exactly one wins, and the losers then see a crawl in progress.
        Raises :class:`BrandNotFound`, :class:`BrandDisabled` or :class:`BrandBusy`.
        """
        before = BrandState()

        async def reserve(current: Brand | None) -> Brand | None:
            nonlocal before
            now = utcnow()
            if current is None:
                raise BrandNotFound(slug)
            if not current.enabled:
                raise BrandDisabled(slug)
            if only_if_due and not current.is_due(now):
                return None
            if current.crawl_in_progress(await self.last_crawl(current), now):
                raise BrandBusy(slug, current.state.last_crawl_id)
            before = current.state.model_copy()
            current.started(new_id(), trigger, now)
            return current

        brand = await kv_update(self.brands, slug, Brand, reserve)
        if brand is None:
            return None
        crawl_id = brand.state.last_crawl_id
        assert crawl_id is not None
        try:
            await start_crawl(self.broker, self.crawls, brand.crawl_spec(), crawl_id=crawl_id)
        except Exception:
            await self._release(slug, crawl_id, before)
            raise
        log.info("%s crawl %s of brand %s", trigger, crawl_id, slug)
        return crawl_id

    async def _release(self, slug: str, crawl_id: str, before: BrandState) -> None:
        """Undo a reservation whose crawl could not be queued, so the brand is due again at once
        (not one interval later).  Best effort: if this fails too, the reservation expires."""

        def undo(current: Brand | None) -> Brand | None:
            if current is None or current.state.last_crawl_id != crawl_id:
                return None
            current.state = before
            return current

        try:
            await kv_update(self.brands, slug, Brand, undo)
        except Exception:
            log.warning("could not release brand %s after its crawl %s failed to start", slug, crawl_id)

    async def public(self, brand: Brand) -> BrandPublic:
        last = await self.last_crawl(brand)
        summary = None
        if last is not None:
            summary = LastCrawl(crawl_id=last.crawl_id, status=last.status, started_at=last.started_at,
                                finished_at=last.finished_at)  # fmt: skip
        return BrandPublic(**brand.model_dump(), last_crawl=summary)


@contextlib.asynccontextmanager
async def run_brands(app: FastAPI, broker: NatsBroker, settings: GatewaySettings) -> AsyncIterator[BrandRegistry]:
    """For the gateway's lifespan: the registry (loaded from ``brands_file``) and, if enabled, its scheduler."""
    from showroom.gateway.scheduler import Scheduler  # which imports this module

    js = broker.config.connection_state.stream
    registry = BrandRegistry(broker, await js.key_value(Buckets.BRANDS.name), await js.key_value(Buckets.CRAWLS.name))
    if settings.brands_file is not None:
        written = await registry.apply_file(load_registry(settings.brands_file))
        log.info("brand registry %s applied (%d written)", settings.brands_file, len(written))
    app.state.brands = registry
    if not settings.scheduler_enabled:
        yield registry
        return
    scheduler = Scheduler(registry, tick_s=settings.scheduler_tick_s, brand_delay_s=settings.scheduler_brand_delay_s)
    app.state.scheduler = scheduler
    async with scheduler.running():
        yield registry


def _registry(request: Request) -> BrandRegistry:
    return request.app.state.brands  # type: ignore[no-any-return]


Registry = Annotated[BrandRegistry, Depends(_registry)]
Slug = Annotated[str, Path(description="Brand slug, e.g. `northwind`.")]


def _not_found(slug: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no brand {slug!r}")


@router.get("/v1/brands", response_model=list[BrandPublic])
async def list_brands(registry: Registry) -> list[BrandPublic]:
    """Every registered brand, with its schedule and last crawl."""
    return [await registry.public(b) for b in await registry.list()]


@router.get("/v1/brands/{brand}", response_model=BrandPublic, responses=error_responses(404))
async def get_brand(brand: Slug, registry: Registry) -> BrandPublic:
    """One brand's definition, schedule and last crawl."""
    try:
        return await registry.public(await registry.get(brand))
    except BrandNotFound:
        raise _not_found(brand) from None


@router.put(
    "/v1/brands/{brand}",
    response_model=BrandPublic,
    dependencies=admin,
    responses={201: {"model": BrandPublic, "description": "A new brand, defined"}},
)
async def put_brand(
    brand: Annotated[str, Path(pattern=BRAND_PATTERN, description="Brand slug, e.g. `northwind`.")],
    definition: BrandDefinition,
    registry: Registry,
    response: Response,
) -> BrandPublic:
    """Define a brand or replace its definition (201 when new); its schedule state is kept."""
    entry, created = await registry.put(brand, definition)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return await registry.public(entry)


@router.delete(
    "/v1/brands/{brand}", status_code=status.HTTP_204_NO_CONTENT, dependencies=admin, responses=error_responses(404)
)
async def delete_brand(brand: Slug, registry: Registry) -> Response:
    """Remove a brand from the registry (a crawl in progress goes on).  A brand still in the registry
    file comes back at the next gateway start."""
    try:
        await registry.delete(brand)
    except BrandNotFound:
        raise _not_found(brand) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/brands/{brand}/crawl",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CrawlAccepted,
    responses=error_responses(404, 409),
)
async def crawl_brand(brand: Slug, registry: Registry, request: Request) -> CrawlAccepted:
    """Crawl a registered brand now, with its registry definition."""
    try:
        crawl_id = await registry.start(brand, "manual")
    except BrandNotFound:
        raise _not_found(brand) from None
    except BrandBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except BrandDisabled:
        raise HTTPException(status.HTTP_409_CONFLICT, f"brand {brand} is disabled") from None
    assert crawl_id is not None
    return CrawlAccepted(
        crawl_id=crawl_id,
        status=CrawlStatus.QUEUED,
        status_url=str(request.url_for("get_crawl", crawl_id=crawl_id)),
    )
