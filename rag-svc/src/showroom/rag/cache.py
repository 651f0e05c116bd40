"""The answer cache every rag-svc replica shares: a JetStream KV bucket with a TTL.

Keys.  ``a.<sha256>`` of the normalised question, brand, ``top_k``, the answering model and
the index generation (:mod:`showroom.common.answercache`): the same question asked again by
anyone, through any replica, is one KV read, and the gateway serves it without asking rag-svc.

Invalidation.  A key is only found while its generation is current: indexing any page of the
brand, or finishing a replay, moves the generation on.  Next to each answer the cache also keeps
a reverse index ``u.<url key>`` -> the answer keys citing that URL, and deletes them when
indexer-svc announces ``page.indexed`` for the URL, so a re-indexed page's answers go at once
from the bucket too (the TTL removes the rest).
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter
from pydantic import BaseModel

from showroom.common.answercache import BUCKET, read_answer
from showroom.common.bus import kv_update
from showroom.common.events import Answer
from showroom.common.topology import open_bucket, url_key

log = logging.getLogger(__name__)

HITS = Counter("showroom_rag_answer_cache_hits_total", "Questions answered from the shared answer cache.")
MISSES = Counter("showroom_rag_answer_cache_misses_total", "Questions the answer cache did not hold.")
INVALIDATED = Counter(
    "showroom_rag_answer_cache_invalidations_total", "Cached answers dropped because a page they cite was re-indexed."
)


class _Citers(BaseModel):
    keys: list[str] = []


class AnswerCache:
    def __init__(self, kv: KeyValue, max_citers: int = 500) -> None:
        self.kv = kv
        self.max_citers = max_citers

    @classmethod
    async def open(cls, js: JetStreamContext, ttl_s: float, replicas: int = 1) -> AnswerCache:
        config = KeyValueConfig(
            bucket=BUCKET, description="Answers by normalised question; u.<url> -> citing keys", ttl=ttl_s,
            replicas=replicas, storage=StorageType.FILE,
        )  # fmt: skip
        return cls((await open_bucket(js, config))[0])

    async def get(self, key: str) -> Answer | None:
        """The answer at ``key``, marked ``cached``; None on a miss."""
        answer = await read_answer(self.kv, key)
        (MISSES if answer is None else HITS).inc()
        return answer

    async def put(self, key: str, answer: Answer) -> None:
        """Store the answer and add it to its pages' reverse index, all writes at once: the caller
        replies after them (asking again then finds the answer).  Their order does not matter: a
        page re-indexed meanwhile has moved the generation on, so the key is already unreachable."""

        def add(current: _Citers | None) -> _Citers | None:
            keys = (current.keys if current else [])[-self.max_citers + 1 :]
            return None if key in keys else _Citers(keys=[*keys, key])

        await asyncio.gather(
            self.kv.put(key, answer.model_dump_json().encode()),
            *(kv_update(self.kv, "u." + url_key(url), _Citers, add) for url in {c.url for c in answer.citations}),
        )

    async def invalidate(self, url: str) -> int:
        ukey = "u." + url_key(url)
        try:
            entry = await self.kv.get(ukey)
        except KeyNotFoundError:
            return 0
        if entry is None or not entry.value:
            return 0
        citers = _Citers.model_validate_json(entry.value)
        for key in citers.keys:
            await self.kv.delete(key)
        await self.kv.delete(ukey)
        INVALIDATED.inc(len(citers.keys))
        return len(citers.keys)
