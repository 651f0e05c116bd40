"""What the indexer remembers about each page version it indexes: lineage and product history.

Lineage.  Each new version of a page (new content hash) that reaches the index is appended to the
``lineage`` KV key of its URL: content hash, fetch time, crawl, the ``page.scraped`` event's id and
PAGES sequence, fetch mode and scraper.  KV history is the page's timeline; ``GET /v1/lineage``
reads it, and ``GET /v1/lineage/events/{seq}`` returns the exact event.

Product history.  A product page's structured fields (price, availability, specs...) are kept per
product in ``product_versions`` (KV history, newest last).  When a re-crawl shows them changed,
the indexer publishes ``product.changed.<brand>`` with the field-by-field diff, then appends the
new version.  Publishing first, with a message id derived from the page event, makes a crash in
between harmless: the redelivered page event diffs again and the stream drops the duplicate.

Only the live path records; a replay re-indexes events whose history is already recorded.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from showroom.common.bus import publish_event
from showroom.common.events import (
    PageIndexed,
    PageLineage,
    PageScraped,
    Product,
    ProductChange,
    ProductChanged,
    ProductVersion,
)
from showroom.common.topology import Buckets, Streams, Subjects, url_key

log = logging.getLogger(__name__)

TRACKED_FIELDS = ("name", "price", "priceCurrency", "availability", "sku")
"""Product fields whose change is news to a salesperson (specs are compared key by key)."""


def product_diff(before: Product, after: Product) -> list[ProductChange]:
    """The tracked fields and spec rows that differ, in a stable order."""
    changes = [
        ProductChange(field=name, before=getattr(before, name), after=getattr(after, name))
        for name in TRACKED_FIELDS
        if getattr(before, name) != getattr(after, name)
    ]
    for key in sorted(set(before.specs) | set(after.specs)):
        old, new = before.specs.get(key), after.specs.get(key)
        if old != new:
            changes.append(ProductChange(field=f"specs.{key}", before=old, after=new))
    return changes


async def _latest(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    return entry.value, entry.revision or 0


class Provenance:
    def __init__(self, broker: NatsBroker, lineage: KeyValue, products: KeyValue) -> None:
        self.broker = broker
        self.lineage = lineage
        self.products = products

    @classmethod
    async def open(cls, broker: NatsBroker, js: JetStreamContext) -> Provenance:
        return cls(broker, await js.key_value(Buckets.LINEAGE.name), await js.key_value(Buckets.PRODUCT_VERSIONS.name))

    async def record(self, page: PageScraped, seq: int, indexed: PageIndexed) -> ProductChanged | None:
        """Remember where this version came from and what changed in its product, if anything."""
        if not indexed.unchanged:
            await self._record_lineage(page, seq, indexed)
        if page.product is not None and page.product.name:
            return await self._record_product(page, seq)
        return None

    async def _record_lineage(self, page: PageScraped, seq: int, indexed: PageIndexed) -> None:
        key = url_key(page.url)
        raw, _ = await _latest(self.lineage, key)
        if raw and PageLineage.model_validate_json(raw).stream_seq == seq:
            return  # a redelivered page event: already recorded
        entry = PageLineage(
            url=page.url,
            content_hash=page.content_hash,
            fetched_at=page.fetched_at,
            crawl_id=page.crawl_id,
            event_id=page.event_id,
            stream_seq=seq,
            fetch_mode=page.fetch_mode,
            fetched_by=page.fetched_by,
            indexed_at=indexed.occurred_at,
            collection=indexed.collection,
        )
        await self.lineage.put(key, entry.model_dump_json().encode())

    async def _record_product(self, page: PageScraped, seq: int) -> ProductChanged | None:
        assert page.product is not None
        key = url_key(page.url)
        raw, revision = await _latest(self.products, key)
        version = ProductVersion(
            product_id=key,
            url=page.url,
            brand=page.brand,
            product=page.product,
            content_hash=page.content_hash,
            fetched_at=page.fetched_at,
            crawl_id=page.crawl_id,
            stream_seq=seq,
        )
        changed: ProductChanged | None = None
        if raw:
            previous = ProductVersion.model_validate_json(raw)
            if previous.stream_seq is not None and previous.stream_seq >= seq:
                return None  # this event, or a newer one, is already in the history
            version.changes = product_diff(previous.product, page.product)
            if not version.changes:
                return None
            changed = ProductChanged(
                crawl_id=page.crawl_id,
                trace_id=page.trace_id,
                brand=page.brand,
                product_id=key,
                url=page.url,
                changes=version.changes,
                before=previous.product,
                after=page.product,
                content_hash=page.content_hash,
                fetched_at=page.fetched_at,
                stream_seq=seq,
            )
            await publish_event(
                self.broker,
                changed,
                Subjects.product_changed(page.brand),
                stream=Streams.PRODUCTS.name,
                msg_id=f"product.{key}.{seq}",
            )
            log.info("product %s changed: %s", page.url, ", ".join(c.field for c in version.changes))
        payload = version.model_dump_json().encode()
        if revision:
            await self.products.update(key, payload, last=revision)
        else:
            await self.products.create(key, payload)
        return changed
