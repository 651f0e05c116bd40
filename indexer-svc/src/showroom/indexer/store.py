"""The chunk store: one Qdrant collection, embedded (``path=``) or a server (``url=``), same client.

Point ids are derived from (url, chunk index), so re-indexing a page
overwrites its points instead of adding copies, and a page that shrank has
its surplus chunks deleted: no stale chunk survives.  The collection records
which embedding model filled it; opening it with another model is refused,
because vectors of two models in one space make every search wrong.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, models


class ModelMismatchError(RuntimeError):
    """The collection was built by a different embedding model."""


def point_id(url: str, chunk_index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{chunk_index}"))


class ChunkStore:
    def __init__(self, client: AsyncQdrantClient, collection: str, payload_indexes: bool = True) -> None:
        self.client = client
        self.collection = collection
        self.payload_indexes = payload_indexes
        # Embedded Qdrant is not safe for concurrent writers within one process.
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, collection: str, *, url: str | None = None, path: str | None = None) -> ChunkStore:
        if url:
            return cls(AsyncQdrantClient(url=url), collection)
        # Embedded Qdrant searches by brute force and ignores payload indexes (it warns if asked).
        return cls(AsyncQdrantClient(path=path or ":memory:"), collection, payload_indexes=False)

    async def ensure_collection(self, model: str, dim: int) -> None:
        meta = {"embedder": model, "dim": dim}
        if not await self.client.collection_exists(self.collection):
            await self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                metadata=meta,
            )
            for field in ("url", "brand") if self.payload_indexes else ():
                await self.client.create_payload_index(self.collection, field, models.PayloadSchemaType.KEYWORD)
            return
        info = await self.client.get_collection(self.collection)
        found = dict(info.config.metadata or {})
        size = info.config.params.vectors.size  # type: ignore[union-attr]
        if found.get("embedder", model) != model or size != dim:
            raise ModelMismatchError(
                f"collection {self.collection!r} holds vectors of {found.get('embedder')!r} ({size}-d); "
                f"refusing to add {model!r} ({dim}-d). Index into a new collection instead."
            )

    async def replace_page(self, url: str, vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        points = [
            models.PointStruct(
                id=point_id(url, i), vector=vectors[i].tolist(), payload=dict(payload, url=url, chunk_index=i)
            )
            for i, payload in enumerate(payloads)
        ]
        async with self._lock:
            if points:
                await self.client.upsert(self.collection, points=points, wait=True)
            await self.client.delete(
                self.collection,
                points_selector=models.Filter(
                    must=[
                        models.FieldCondition(key="url", match=models.MatchValue(value=url)),
                        models.FieldCondition(key="chunk_index", range=models.Range(gte=len(points))),
                    ]
                ),
                wait=True,
            )

    async def search(self, vector: np.ndarray, top_k: int, brand: str | None = None) -> list[models.ScoredPoint]:
        flt = None
        if brand:
            flt = models.Filter(must=[models.FieldCondition(key="brand", match=models.MatchValue(value=brand))])
        async with self._lock:
            result = await self.client.query_points(
                self.collection, query=vector.tolist(), limit=top_k, query_filter=flt, with_payload=True
            )
        return result.points

    async def count(self, url: str | None = None) -> int:
        flt = None
        if url:
            flt = models.Filter(must=[models.FieldCondition(key="url", match=models.MatchValue(value=url))])
        async with self._lock:
            return (await self.client.count(self.collection, count_filter=flt, exact=True)).count

    async def close(self) -> None:
        await self.client.close()
