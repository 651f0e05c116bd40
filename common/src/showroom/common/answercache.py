"""The shared answer cache's keys, read by rag-svc (which fills it) and the gateway (which serves
hits from it without asking rag-svc).

A key names what an answer depends on: the normalised question (lower case, single spaces, no
trailing punctuation), brand, ``top_k``, the answering model, and the *index generation* the
answer was made from.  The generation is read from the bus, so every replica of either service
computes the same key:

* a brand's question: the stream sequence of the last ``page.indexed.<brand>`` event on INDEX
  (a question over every brand: the INDEX stream's last sequence);
* and the sequence of the last ``replay.finished`` on REPLAYS (a replay may swap the alias to a
  rebuilt collection).

Any page of a brand indexed, or any replay finished, changes the key, so answers made before it
are not found again (the bucket's TTL removes them).  Answerers read the generation *before*
they search: an answer made while a page was being indexed is stored under the older generation,
which is already stale, so it is never served.  What a reader can still see is an answer made
before a page event it has not yet received (the few milliseconds the event takes to arrive).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import OrderedDict

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from showroom.common.events import Answer, AskRequest, QuestionAnswered
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)

BUCKET = "answer_cache"
UNINDEXED_BRANDS = 1024
"""How many brands without indexed pages :class:`IndexGeneration` remembers as such."""

_SPACES = re.compile(r"\s+")


def normalise(question: str) -> str:
    return _SPACES.sub(" ", question.strip().lower()).rstrip(" ?!.")


def answer_key(request: AskRequest, model: str, generation: str) -> str:
    raw = "\x1f".join((normalise(request.question), request.brand or "", str(request.top_k), model, generation))
    return "a." + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def read_answer(kv: KeyValue, key: str) -> Answer | None:
    """The answer stored at ``key``, marked as served from the cache; None when there is none."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # also raised for a deleted or purged key
        return None
    if entry is None or not entry.value:
        return None
    return Answer.model_validate_json(entry.value).model_copy(update={"cached": True, "latency_ms": 0.0})


def question_answered(request: AskRequest, answer: Answer) -> QuestionAnswered:
    """The audit record of an answer (on ANSWERS; metrics-svc counts cache hits from it)."""
    return QuestionAnswered(
        question=request.question,
        brand=request.brand,
        model=answer.model,
        answer=answer.answer,
        citation_urls=[c.url for c in answer.citations],
        latency_ms=answer.latency_ms,
        refused=not answer.citations,
        cached=answer.cached,
    )


class IndexGeneration:
    """The index generation per brand (see the module docstring), kept current by two ordered
    consumers (headers only) that start at the streams' ends; a brand's starting point is its
    last ``page.indexed`` event, looked up once.

    A restarted nats-server forgets those consumers and nats-py does not notice, which would freeze
    every generation (and serve answers from before a re-index).  Given the connection, the
    generation follows anew after each reconnect: new consumers, the streams' ends read again, and
    every brand looked up again.
    """

    def __init__(self, js: JetStreamContext, nc: Client | None = None) -> None:
        self.js = js
        self.nc = nc
        self._last = 0
        self._brands: dict[str, int] = {}
        # Brands with no page.indexed event on INDEX (never crawled, or their events aged out),
        # so they are not looked up on every question; bounded, as any brand name can be asked.
        self._unindexed: OrderedDict[str, None] = OrderedDict()
        self._swaps = 0
        self._subs: list = []  # type: ignore[type-arg]
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, js: JetStreamContext, nc: Client | None = None) -> IndexGeneration:
        self = cls(js, nc)
        await self._follow()
        if nc is not None:
            self._watchdog = asyncio.create_task(self._follow_after_reconnects(), name="index-generation")
        return self

    async def _follow_after_reconnects(self, every_s: float = 1.0) -> None:
        assert self.nc is not None
        seen = self.nc.stats["reconnects"]
        while True:
            await asyncio.sleep(every_s)
            now = self.nc.stats["reconnects"]
            if now == seen or not self.nc.is_connected:
                continue
            try:
                await self._follow()
                seen = now
                log.info("index generation follows the streams again after a reconnect")
            except Exception as exc:  # JetStream still recovering: try again on the next tick
                log.warning("index generation could not follow the streams yet: %s", exc)

    async def _follow(self) -> None:
        await self._unsubscribe()
        self._brands.clear()  # events may have been missed: look each brand up again
        self._unindexed.clear()
        # Subscribe first, then read where the streams end: nothing published in between is missed.
        for subject, stream, cb in (
            (Subjects.page_indexed("*"), Streams.INDEX.name, self._on_indexed),
            (Subjects.REPLAY_FINISHED, Streams.REPLAYS.name, self._on_replayed),
        ):
            sub = await self.js.subscribe(subject, stream=stream, cb=cb, ordered_consumer=True,
                                     deliver_policy=DeliverPolicy.NEW, headers_only=True)  # fmt: skip
            self._subs.append(sub)
        self._last = max(self._last, (await self.js.stream_info(Streams.INDEX.name)).state.last_seq)
        self._swaps = max(self._swaps, await self._last_seq(Streams.REPLAYS.name, Subjects.REPLAY_FINISHED))

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be closing already
                pass
        self._subs.clear()

    async def of(self, brand: str | None) -> str:
        """The generation an answer to a question about ``brand`` (None: any brand) depends on."""
        if brand is None:
            return f"{self._last}.{self._swaps}"
        if (seq := self._brands.get(brand)) is None:
            if brand in self._unindexed:
                self._unindexed.move_to_end(brand)
                return f"0.{self._swaps}"
            looked_up = await self._last_seq(Streams.INDEX.name, Subjects.page_indexed(brand))
            seq = max(looked_up, self._brands.get(brand, 0))  # an event may have arrived meanwhile
            if seq:
                self._brands[brand] = seq
            else:  # the consumer hears of its first page: _on_indexed moves it to _brands
                self._unindexed[brand] = None
                while len(self._unindexed) > UNINDEXED_BRANDS:
                    self._unindexed.popitem(last=False)
        return f"{seq}.{self._swaps}"

    async def _last_seq(self, stream: str, subject: str) -> int:
        try:
            return (await self.js.get_last_msg(stream, subject)).seq or 0
        except NotFoundError:
            return 0

    async def _on_indexed(self, msg) -> None:  # type: ignore[no-untyped-def]
        seq = msg.metadata.sequence.stream
        brand = msg.subject.rsplit(".", 1)[-1]
        self._last = max(self._last, seq)
        self._brands[brand] = max(self._brands.get(brand, 0), seq)
        self._unindexed.pop(brand, None)

    async def _on_replayed(self, msg) -> None:  # type: ignore[no-untyped-def]
        self._swaps = max(self._swaps, msg.metadata.sequence.stream)
