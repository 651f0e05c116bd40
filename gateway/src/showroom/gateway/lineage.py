"""Where an indexed page version came from, and a product's timeline.

- ``GET /v1/lineage?url=...``: every version of a page that reached the index (newest first):
  content hash, fetch time, crawl, fetch mode, scraper, and the ``page.scraped`` event's id and
  PAGES sequence.  Citations carry the same record for the version they quote.
- ``GET /v1/lineage/events/{seq}``: that exact event, as stored in the PAGES stream.
- ``GET /v1/products/{id}/history``: a product's versions with what changed at each one.

All of it is read from JetStream (KV history, the stream itself); the indexer writes it as it
indexes (``showroom.indexer.provenance``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from showroom.common.events import PageLineage, ProductVersion
from showroom.common.topology import Buckets, Streams, url_key
from showroom.gateway.replays import jetstream

router = APIRouter(tags=["lineage"])

M = type[BaseModel]


class StoredEvent(BaseModel):
    stream: str
    seq: int
    subject: str
    event: dict[str, Any]


async def _history(kv: KeyValue, key: str, model: M) -> list[Any]:
    """A KV key's history as models, oldest first (an unknown key: an empty list)."""
    entries = await _entries(kv, key)
    out = []
    for entry in entries:
        if entry.value:
            try:
                out.append(model.model_validate_json(entry.value))
            except ValidationError:
                continue  # written by a newer version of the indexer; not ours to show
    return out


async def _entries(kv: KeyValue, key: str, attempts: int = 3) -> list[KeyValue.Entry]:
    """``kv.history(key)``, asked again when it misses a key that exists.

    nats-py's history watcher decides it has seen everything from the consumer's pending count
    just after subscribing; entries already on their way then count as neither, and a key with
    history comes back as ``NoKeysError`` (seen once under CI load, right after the key's update).
    """
    for _ in range(attempts):
        try:
            return await kv.history(key)
        except (KeyNotFoundError, NotFoundError):
            return []
        except NoKeysError:
            try:
                await kv.get(key)
            except (KeyNotFoundError, NotFoundError):
                return []  # no such key (or deleted): the answer is right
    return await kv.history(key)


@router.get("/v1/lineage", response_model=list[PageLineage], responses={404: {"description": "Never indexed"}})
async def lineage(
    request: Request, url: Annotated[str, Query(min_length=1, max_length=2000, description="The page's URL.")]
) -> list[PageLineage]:
    """The indexed versions of a page, newest first, each with the page event that produced it."""
    kv = await jetstream(request).key_value(Buckets.LINEAGE.name)
    versions = await _history(kv, url_key(url), PageLineage)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no indexed version of {url!r}")
    return versions[::-1]


@router.get("/v1/lineage/events/{seq}", response_model=StoredEvent, responses={404: {"description": "No such event"}})
async def page_event(request: Request, seq: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> StoredEvent:
    """The page event at ``seq`` in the PAGES stream, exactly as stored."""
    try:
        msg = await jetstream(request).get_msg(Streams.PAGES.name, seq)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {seq} in {Streams.PAGES.name}") from exc
    return StoredEvent(
        stream=Streams.PAGES.name, seq=seq, subject=msg.subject or "", event=json.loads(msg.data or b"{}")
    )


@router.get(
    "/v1/products/{product_id}/history",
    response_model=list[ProductVersion],
    responses={404: {"description": "No such product"}},
    tags=["products"],
)
async def product_history(
    request: Request,
    product_id: Annotated[str, Path(pattern=r"^[a-f0-9]{40}$", description="`id` from GET /v1/products.")],
) -> list[ProductVersion]:
    """A product's versions, oldest first: each with its price, availability and specs, and what changed."""
    kv = await jetstream(request).key_value(Buckets.PRODUCT_VERSIONS.name)
    versions = await _history(kv, product_id, ProductVersion)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {product_id!r}")
    return versions
