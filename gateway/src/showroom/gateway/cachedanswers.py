"""Answer-cache hits served by the gateway itself, without the ``rag.ask`` round trip.

rag-svc fills the shared ``answer_cache`` bucket; the gateway computes the same key
(:mod:`showroom.common.answercache`: question, brand, ``top_k``, answering model, index
generation) and reads it: one KV read instead of a request to rag-svc, its KV read and its
reply.  A hit costs ~1 ms of CPU less over all processes and one bus hop less of latency.

Answers are also kept in memory for ``MEMORY_TTL_S`` (at most ``MEMORY_ENTRIES``), with their
response body ready: those read from KV, and those rag-svc has just made for this gateway (their
key is the one the gateway's lookup computed, the generation read before rag-svc searched -- the
same rule rag-svc follows).  A question asked again soon through this replica then costs no bus
round trip at all (hit p95 6.1 -> 2.9 ms at 20 staff-paced clients, ``bench/query_latency.py``).
That cannot serve a stale answer either: the key changes with the index generation, and an
entry lives a minute (the bucket keeps answers an hour by default).

The answering model is learned from rag-svc's replies (``Answer.model``): until the gateway has
seen one, every question goes to rag-svc; after rag-svc changes model, the gateway serves the
old model's answers only until rag-svc next answers a question (its first miss).

Hits are audited on ANSWERS like rag-svc's (metrics-svc counts cache hits from there), once the
response is sent.  The bucket belongs to rag-svc: when it does not exist (yet), the
gateway asks rag-svc and looks again a few seconds later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.js.kv import KeyValue

from showroom.common.answercache import BUCKET, IndexGeneration, answer_key, question_answered, read_answer
from showroom.common.bus import publish_event
from showroom.common.events import Answer, AskRequest
from showroom.common.topology import Streams, Subjects

log = logging.getLogger(__name__)

RETRY_S = 5.0
"""How long the gateway asks rag-svc for everything after failing to open the cache."""
MEMORY_ENTRIES = 2048
MEMORY_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Hit:
    answer: Answer  # marked as served from the cache
    body: bytes  # its JSON, as the response sends it


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup found: ``hit``, or the key (and model) rag-svc's answer will be stored under;
    ``key`` is None until the gateway knows rag-svc's model."""

    key: str | None = None
    model: str | None = None
    hit: Hit | None = None


class CachedAnswers:
    def __init__(self, broker: NatsBroker, kv: KeyValue, generation: IndexGeneration) -> None:
        self.broker = broker
        self.kv = kv
        self.generation = generation
        self.model: str | None = None
        self._recent: OrderedDict[str, tuple[float, Hit]] = OrderedDict()

    def learn(self, lookup: Lookup, answer: Answer) -> None:
        """Note the model rag-svc answers with, and keep the answer it made for ``lookup`` in
        memory when rag-svc caches it too (an answer with citations, made by the looked-up model)."""
        if answer.error:
            return
        self.model = answer.model
        if lookup.key is not None and lookup.model == answer.model and answer.citations:
            self._remember(lookup.key, answer.model_copy(update={"cached": True, "latency_ms": 0.0}))

    async def lookup(self, request: AskRequest) -> Lookup:
        """The cached answer to ``request`` if there is one; the caller audits a hit (:meth:`audit`)."""
        if (model := self.model) is None:
            return Lookup()
        key = answer_key(request, model, await self.generation.of(request.brand))
        hit = await self._read(key)
        return Lookup(key, model, hit if hit is not None and hit.answer.model == model else None)

    async def _read(self, key: str) -> Hit | None:
        if (recent := self._recent.get(key)) is not None and recent[0] > time.monotonic():
            return recent[1]
        answer = await read_answer(self.kv, key)
        return None if answer is None else self._remember(key, answer)

    def _remember(self, key: str, answer: Answer) -> Hit:
        hit = Hit(answer, answer.model_dump_json().encode())
        self._recent[key] = (time.monotonic() + MEMORY_TTL_S, hit)
        self._recent.move_to_end(key)
        while len(self._recent) > MEMORY_ENTRIES:
            self._recent.popitem(last=False)
        return hit

    async def audit(self, request: AskRequest, answer: Answer) -> None:
        """Record a hit on ANSWERS; the route runs this after the response is sent."""
        try:
            await publish_event(self.broker, question_answered(request, answer), Subjects.ANSWERED,
                                stream=Streams.ANSWERS.name)  # fmt: skip
        except Exception:  # the caller has its answer; the record is what is lost
            log.exception("audit of a cached answer failed")


class CachedAnswersOpener:
    """Opens :class:`CachedAnswers` on first use (the bucket may appear after the gateway starts)."""

    def __init__(self) -> None:
        self.cache: CachedAnswers | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.generation.stop()
            self.cache = None

    async def get(self, broker: NatsBroker) -> CachedAnswers | None:
        if self.cache is not None or time.monotonic() < self._retry_at:
            return self.cache
        async with self._lock:
            if self.cache is None and time.monotonic() >= self._retry_at:
                js = broker.config.connection_state.stream
                try:
                    kv = await js.key_value(BUCKET)
                    nc = broker.config.connection_state.connection
                    self.cache = CachedAnswers(broker, kv, await IndexGeneration.start(js, nc))
                except Exception as exc:  # no bucket yet, or the bus is down: rag-svc answers
                    log.info("answer cache not readable from the gateway yet: %s", exc)
                    self._retry_at = time.monotonic() + RETRY_S
        return self.cache
