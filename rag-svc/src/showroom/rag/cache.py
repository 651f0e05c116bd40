"""The answer cache every rag-svc replica shares: a JetStream KV bucket with a TTL.

Keys.  ``a.<sha256>`` of the normalised question (lower case, single spaces, no trailing
punctuation), brand, ``top_k`` and the answering model: the same question asked again by anyone,
through any replica, is one KV read.

Invalidation.  An answer is only as fresh as the pages it cites.  Next to each answer the cache
keeps a reverse index ``u.<url key>`` -> the answer keys citing that URL; when indexer-svc
announces ``page.indexed`` for a URL, the answers citing it are deleted (the TTL bounds what a
missed announcement could leave behind).
"""

from __future__ import annotations

import hashlib
import logging
import re

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter
from pydantic import BaseModel

from showroom.common.bus import kv_update
from showroom.common.events import Answer, AskRequest
from showroom.common.topology import url_key

log = logging.getLogger(__name__)

BUCKET = "answer_cache"

HITS = Counter("showroom_rag_answer_cache_hits_total", "Questions answered from the shared answer cache.")
MISSES = Counter("showroom_rag_answer_cache_misses_total", "Questions the answer cache did not hold.")
INVALIDATED = Counter(
    "showroom_rag_answer_cache_invalidations_total", "Cached answers dropped because a page they cite was re-indexed."
)

_SPACES = re.compile(r"\s+")


def normalise(question: str) -> str:
    return _SPACES.sub(" ", question.strip().lower()).rstrip(" ?!.")


class _Citers(BaseModel):
    keys: list[str] = []


class AnswerCache:
    def __init__(self, kv: KeyValue, max_citers: int = 500) -> None:
        self.kv = kv
        self.max_citers = max_citers

    @classmethod
    async def open(cls, js: JetStreamContext, ttl_s: float, replicas: int = 1) -> AnswerCache:
        try:
            kv = await js.key_value(BUCKET)
        except Exception:  # not found; nats-py's error class differs by version
            kv = await js.create_key_value(
                # direct: any replica serves a read itself (a hit is one read), not via the stream leader's API
                KeyValueConfig(bucket=BUCKET, description="Answers by normalised question; u.<url> -> citing keys",
                               ttl=ttl_s, replicas=replicas, storage=StorageType.FILE, direct=True)
            )  # fmt: skip
        return cls(kv)

    @staticmethod
    def key(request: AskRequest, model: str) -> str:
        raw = "\x1f".join((normalise(request.question), request.brand or "", str(request.top_k), model))
        return "a." + hashlib.sha256(raw.encode()).hexdigest()[:40]

    async def get(self, key: str) -> Answer | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            entry = None
        if entry is None or not entry.value:
            MISSES.inc()
            return None
        HITS.inc()
        return Answer.model_validate_json(entry.value)

    async def put(self, key: str, answer: Answer) -> None:
        # The reverse index first: an invalidation that lands between the two writes then still
        # finds the key (and deletes an answer that was never stored, which is harmless).
        for url in {c.url for c in answer.citations}:

            def add(current: _Citers | None) -> _Citers | None:
                keys = (current.keys if current else [])[-self.max_citers + 1 :]
                return None if key in keys else _Citers(keys=[*keys, key])

            await kv_update(self.kv, "u." + url_key(url), _Citers, add)
        await self.kv.put(key, answer.model_dump_json().encode())

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
