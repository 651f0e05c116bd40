"""Why a bus handler gave up on a message, split by what the bus should do about it.

Exception (raised by a JetStream handler guarded by :func:`showroom.common.bus.dead_letters`)
├── PermanentError   dead-letter now, with the reason, and ack: redelivering cannot help
│   └── UnknownCrawl  the event names a crawl the ``crawls`` bucket has no record of
└── anything else    transient: NAK with backoff; dead-lettered once the consumer's
                     ``max_deliver`` is reached, so nothing is dropped silently

A pydantic ``ValidationError`` counts as permanent too (the body will not change).
"""

from __future__ import annotations


class PermanentError(Exception):
    """This message can never be processed as it is (malformed, too big, a limit it exceeds...).

    The message is the reason shown in the DLQ, so make it say what to fix.
    """


class UnknownCrawl(PermanentError):
    """An event for a crawl that has no record: it was never requested through the gateway."""

    def __init__(self, crawl_id: str | None) -> None:
        super().__init__(f"unknown crawl {crawl_id!r}: no record in the crawls bucket")
        self.crawl_id = crawl_id
