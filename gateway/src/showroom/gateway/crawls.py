"""Starting a crawl: the one way the gateway does it, for ``POST /v1/crawls`` and for the brand registry."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from nats.js.kv import KeyValue
from pydantic import BaseModel

from showroom.common.bus import bind_trace, publish_event
from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlRequested, CrawlSpec, CrawlStatus, new_id
from showroom.common.telemetry import trace_id_var
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)


class CrawlAccepted(BaseModel):
    crawl_id: str
    status: CrawlStatus
    status_url: str


async def start_crawl(
    broker: NatsBroker, crawls: KeyValue, spec: CrawlSpec, *, crawl_id: str | None = None
) -> CrawlRequested:
    """Queue a crawl: its ``queued`` record in the ``crawls`` bucket, then ``crawl.requested``.

    The record comes first so that status is readable as soon as anyone sees the event.  The
    current request's trace id (see ``system.instrument``), if any, follows the crawl through
    every event.
    """
    if not spec.allowed_domains:
        spec = spec.model_copy(update={"allowed_domains": sorted({u.host for u in spec.start_urls if u.host})})
    event = CrawlRequested(crawl_id=crawl_id or new_id(), spec=spec, trace_id=trace_id_var.get() or new_id())
    bind_trace(event)
    record = CrawlState(crawl_id=event.crawl_id, brand=spec.brand, spec=spec, trace_id=event.trace_id)
    await crawls.create(event.crawl_id, record.model_dump_json().encode())
    await publish_event(
        broker, event, Subjects.crawl_requested(spec.brand), stream=Streams.CRAWLS.name, msg_id=event.event_id
    )
    log.info("crawl %s queued for %s", event.crawl_id, spec.brand)
    return event
