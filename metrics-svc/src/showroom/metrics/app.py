"""metrics-svc: its own durable consumers on every stream, turning events into Prometheus metrics.

It never shares a consumer with the services doing the work, so it cannot
steal their messages; it acks only after counting, so a restart resumes
where it left off.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub
from pydantic import ValidationError

from showroom.common.bus import make_broker
from showroom.common.events import (
    CrawlFinished,
    CrawlRequested,
    PageFailed,
    PageIndexed,
    PageScraped,
    PageUnchanged,
    QuestionAnswered,
)
from showroom.common.service import build_app
from showroom.common.topology import Durables, Streams
from showroom.metrics.metrics import observe
from showroom.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)

settings = MetricsSettings()
broker = make_broker(settings.nats_servers, "metrics-svc")

_BY_PREFIX = {
    "crawl.requested.": CrawlRequested,
    "crawl.finished.": CrawlFinished,
    "page.scraped.": PageScraped,
    "page.unchanged.": PageUnchanged,
    "page.failed.": PageFailed,
    "page.indexed.": PageIndexed,
    "rag.answered": QuestionAnswered,
}


def _count(body: dict[str, object], msg: NatsMessage) -> None:
    subject = msg.raw_message.subject
    for prefix, model in _BY_PREFIX.items():
        if subject.startswith(prefix):
            try:
                observe(model.model_validate(body))
            except ValidationError as exc:  # a malformed event must not stall the metrics
                log.warning("unreadable %s event: %s", subject, exc.errors()[:1])
            return


def _consumer(subject: str, stream: str, durable: str):  # type: ignore[no-untyped-def]
    return broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=100, timeout=5),
        config=ConsumerConfig(max_deliver=3, ack_wait=30),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )


@_consumer("crawl.*.*", Streams.CRAWLS.name, Durables.METRICS_CRAWLS)
async def count_crawl(body: dict[str, object], msg: NatsMessage) -> None:
    _count(body, msg)


@_consumer("page.*.*", Streams.PAGES.name, Durables.METRICS_PAGES)
async def count_page(body: dict[str, object], msg: NatsMessage) -> None:
    _count(body, msg)


@_consumer("page.indexed.*", Streams.INDEX.name, Durables.METRICS_INDEX)
async def count_indexed(body: dict[str, object], msg: NatsMessage) -> None:
    _count(body, msg)


@_consumer("rag.answered", Streams.ANSWERS.name, Durables.METRICS_ANSWERS)
async def count_answer(body: dict[str, object], msg: NatsMessage) -> None:
    _count(body, msg)


app = build_app(broker, settings)
