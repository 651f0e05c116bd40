"""The chunk store: one interface, two backends.

* :class:`EdgeChunkStore` -- Qdrant Edge (``qdrant-edge-py``), the embedded default.  A Rust
  engine in this process: HNSW, payload indexes, sparse vectors and RRF fusion, ~2 ms filtered
  search at 100k chunks.  It locks its folder, so only indexer-svc opens it.
* :class:`QdrantChunkStore` -- ``qdrant-client`` against a Qdrant server (production); tests run
  it in ``:memory:`` local mode as the stand-in for the server (same API, brute force).

Both hold, per chunk, a dense vector (``dense``, cosine) and a BM25 sparse vector (``bm25``,
IDF applied by the engine), and answer a hybrid query by fusing the two rankings with RRF.

Versions and the alias.  A logical collection (``showroom_pages``) is an *alias* pointing at
one physical version (``showroom_pages__v1``, ``__v2``...).  Every read and write goes through
the alias, so a rebuild fills a new version and :meth:`ChunkStore.swap_alias` switches readers
to it atomically (a server alias update; for Qdrant Edge an ``alias.json`` replaced with
``os.replace``).

Idempotence.  Point ids derive from (url, chunk index): re-indexing a page overwrites its
points, and a page that shrank has its surplus chunks deleted, so no stale chunk survives.
Each version records the embedding model and dimension that filled it; writing vectors of
another model is refused with :class:`ModelMismatchError`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic_core import to_json

__all__ = [
    "DENSE",
    "SPARSE",
    "ChunkStore",
    "EdgeChunkStore",
    "ModelMismatchError",
    "PageWrite",
    "PayloadEncoder",
    "ProductQuery",
    "QdrantChunkStore",
    "SearchFilter",
    "Sparse",
    "StoredChunk",
    "open_store",
    "point_id",
]

DENSE = "dense"
SPARSE = "bm25"
#: RRF's k: 60 is the constant of the original paper and Qdrant's default.
RRF_K = 60
#: Payload fields with an index (where the backend uses them): filters and the product search.
#: Flags are filtered as keywords (``kind``: product|page, ``stock``: in|out), not booleans:
#: qdrant-edge-py 0.9 turns ``MatchValue(True)`` into the integer 1, which matches no boolean.
KEYWORD_FIELDS = ("url", "brand", "category", "kind", "stock")
INTEGER_FIELDS = ("chunk_index",)
FLOAT_FIELDS = ("price",)
#: Qdrant Edge keeps these payload fields as fields of their own (filters, indexes); the rest of
#: a chunk's payload is stored as one JSON string under ``PACKED`` and unpacked on every read, so
#: callers see the same payload either way.  Why: qdrant-edge-py 0.9 converts a payload from
#: Python value by value, trying bool, ints and float before str, with an exception per miss
#: (~2-5 us a value, GIL held), and each indexed value costs the write too.  A chunk's ~25
#: values cost ~3x more than one JSON string and the native fields: the bulk of a replay's time
#: (bench/replay.py).  Filtering on another field means adding it to the lists above.
NATIVE_FIELDS = frozenset(KEYWORD_FIELDS + INTEGER_FIELDS + FLOAT_FIELDS)
#: Only product search filters on these, and it reads first chunks only (``chunk_index`` 0): on
#: the other chunks they stay packed.
FIRST_CHUNK_ONLY = frozenset(("kind", "stock", "price"))
NATIVE_AFTER_FIRST = NATIVE_FIELDS - FIRST_CHUNK_ONLY
PACKED = "_packed"
#: Qdrant Edge keeps every update in its write-ahead log until the shard is flushed.  A log that
#: only grows makes each upsert slower (27 -> 47 us a point from 0 to 200k points here, 31 with a
#: flush every 20k) and a restart replay all of it, so a shard is flushed after this many points
#: written, or at the first write this long after its oldest unflushed one.
FLUSH_AFTER_POINTS = 20_000
FLUSH_AFTER_S = 60.0


class ModelMismatchError(RuntimeError):
    """The collection was built by a different embedding model (or dimension)."""


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def point_id(url: str, chunk_index: int) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{chunk_index}"))``, without building ``UUID``
    objects: a replay asks for three ids an event, and ``uuid5`` took ~10 us each."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + f"{url}#{chunk_index}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Sparse(NamedTuple):
    """A sparse vector: BM25 term weights by hashed token id (lists, or arrays: see ``sparse.py``)."""

    indices: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True)
class SearchFilter:
    brand: str | None = None
    category: str | None = None
    url: str | None = None

    def conditions(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in (("brand", self.brand), ("category", self.category), ("url", self.url)) if v]


@dataclass(frozen=True)
class ProductQuery:
    """Structured product search: every given field must match."""

    brand: str | None = None
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    text: str | None = None
    limit: int = 50


PayloadEncoder = Callable[[str, int, dict[str, Any]], Any]
"""A chunk's payload (given its URL and chunk index) as a store stores it: ``encode_payload``."""


@dataclass(frozen=True)
class PageWrite:
    """One page's new chunks, for :meth:`ChunkStore.replace_pages`."""

    url: str
    dense: np.ndarray
    sparse: Sequence[Sparse]
    payloads: Sequence[Any]
    had_chunks: int | None = None
    """How many chunks the store held for the page (``None``: unknown).  Surplus chunks are
    deleted only when it held more than it gets, so a page new to the store costs one upsert."""
    encoded: bool = False
    """``payloads`` went through the store's ``encode_payload`` already (in a replay's worker)."""

    def stored_payloads(self, encode: PayloadEncoder) -> Sequence[Any]:
        if self.encoded:
            return self.payloads
        return [encode(self.url, i, payload) for i, payload in enumerate(self.payloads)]

    @property
    def may_leave_surplus(self) -> bool:
        return self.had_chunks is None or self.had_chunks > len(self.payloads)


@dataclass
class StoredChunk:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


def _version_name(collection: str, n: int) -> str:
    return f"{collection}__v{n}"


def _version_number(collection: str, name: str) -> int:
    m = re.fullmatch(re.escape(collection) + r"__v(\d+)", name)
    return int(m.group(1)) if m else 0


def _matches_text(payload: dict[str, Any], text: str | None) -> bool:
    if not text:
        return True
    product = payload.get("product") or {}
    haystack = " ".join(
        str(x) for x in (product.get("name"), product.get("brand"), product.get("category"), product.get("sku"),
                         product.get("description"), " ".join(f"{k} {v}" for k, v in product.get("specs", {}).items()))
        if x
    ).lower()  # fmt: skip
    return all(word in haystack for word in text.lower().split())


def _pack(payload: dict[str, Any]) -> dict[str, Any]:
    """A chunk's payload as Qdrant Edge stores it: the fields filters use as they are (see
    ``NATIVE_FIELDS``), the rest as one JSON string (pydantic-core's encoder: ~2x ``json``'s)."""
    fields = NATIVE_FIELDS if payload.get("chunk_index") == 0 else NATIVE_AFTER_FIRST
    native = {k: v for k, v in payload.items() if k in fields}
    native[PACKED] = to_json({k: v for k, v in payload.items() if k not in fields}).decode()
    return native


def _unpack(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The payload :func:`_pack` stored (a payload stored before packing comes back as it is)."""
    payload = dict(stored or {})
    packed = payload.pop(PACKED, None)
    if packed is not None:
        payload.update(json.loads(packed))
    return payload


class ChunkStore(ABC):
    """What indexer-svc needs from a vector store; see the module docstring."""

    collection: str
    """The alias every read and write goes through."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.model: str | None = None
        self.dim: int | None = None
        # Writers are serialised: replace_page is upsert-then-delete and must not interleave with
        # another replace of the same page.
        self._write_lock = asyncio.Lock()
        self._pinned: str | None = None
        self.claims: dict[tuple[str, str], asyncio.Future[None]] = {}
        """(version, URL) -> done when the latest indexing batch holding that page has written it
        (or failed): how batches take turns per page (``Indexer._turn``), shared by pinned views."""

    def pinned(self, version: str) -> ChunkStore:
        """A view of this store that reads and writes ``version`` whatever the alias says.

        It shares connections, open shards, the write lock and the claims with this store.  A replay fills a
        new version through one; an indexer batch pins the version it started on, so a swap in
        the middle of a batch cannot mix two configurations in one collection.
        """
        view = copy.copy(self)
        view._pinned = version
        return view

    # -- versions ---------------------------------------------------------------------------

    @abstractmethod
    async def current_version(self) -> str | None:
        """The physical collection the alias points at (``None`` before the first one)."""

    @abstractmethod
    async def versions(self) -> list[str]:
        """Every physical version of this collection, oldest first."""

    @abstractmethod
    async def create_version(self, model: str, dim: int, **meta: Any) -> str:
        """Create an empty new version recording ``model``/``dim`` (and ``meta``); the alias does not move."""

    @abstractmethod
    async def drop_version(self, version: str) -> None:
        """Delete a version that the alias does not point at."""

    async def _check_droppable(self, version: str) -> None:
        if version == await self.current_version():
            raise ValueError(f"{version!r} is what {self.collection!r} points at; swap the alias first")
        if version not in await self.versions():
            raise ValueError(f"no version {version!r} of {self.collection!r}")

    @abstractmethod
    async def swap_alias(self, version: str) -> None:
        """Point the alias at ``version`` atomically: readers see the old one or the new one."""

    @abstractmethod
    async def version_meta(self, version: str) -> dict[str, Any]:
        """The ``{"embedder": ..., "dim": ...}`` a version records."""

    async def ensure_collection(self, model: str, dim: int) -> None:
        """Open the alias's version, creating version 1 on first use; refuse another model."""
        version = await self.current_version()
        if version is None:
            version = await self.create_version(model, dim)
            await self.swap_alias(version)
        meta = await self.version_meta(version)
        if meta.get("embedder") != model or meta.get("dim") != dim:
            raise ModelMismatchError(
                f"collection {self.collection!r} ({version}) holds vectors of {meta.get('embedder')!r} "
                f"({meta.get('dim')}-d); refusing to add {model!r} ({dim}-d). Build a new version and swap "
                "the alias instead."
            )
        self.model, self.dim = model, dim

    def _check_dim(self, vectors: np.ndarray) -> None:
        if self.dim is not None and vectors.ndim == 2 and vectors.shape[0] and vectors.shape[1] != self.dim:
            raise ModelMismatchError(f"{vectors.shape[1]}-d vectors for a {self.dim}-d collection ({self.model})")

    # -- data -------------------------------------------------------------------------------

    async def page_version(self, url: str) -> dict[str, Any] | None:
        """The payload of ``url``'s first chunk (content hash, chunker...), ``None`` if not indexed."""
        return (await self.page_versions([url])).get(url)

    @abstractmethod
    async def page_versions(self, urls: Sequence[str]) -> dict[str, dict[str, Any]]:
        """:meth:`page_version` of many pages in one lookup (pages not indexed are left out)."""

    async def replace_page(
        self, url: str, dense: np.ndarray, sparse: Sequence[Sparse], payloads: Sequence[dict[str, Any]]
    ) -> None:
        """Make ``url``'s chunks exactly these (an empty list removes the page)."""
        await self.replace_pages([PageWrite(url, dense, sparse, payloads)])

    @abstractmethod
    async def replace_pages(self, writes: Sequence[PageWrite]) -> None:
        """:meth:`replace_page` for many pages: one upsert for all their points."""

    @staticmethod
    @abstractmethod
    def encode_payload(url: str, chunk_index: int, payload: dict[str, Any]) -> Any:
        """A chunk's payload as this backend stores it, its URL and index included.  A plain
        function of its arguments, so a replay's worker process can call it."""

    @abstractmethod
    async def search(
        self, dense: np.ndarray, sparse: Sparse | None, top_k: int, flt: SearchFilter | None = None
    ) -> list[StoredChunk]:
        """Hybrid search: dense and sparse candidates fused by RRF (dense only without ``sparse``)."""

    @abstractmethod
    async def products(self, query: ProductQuery) -> list[dict[str, Any]]:
        """Payloads of product pages' first chunks that match ``query``."""

    @abstractmethod
    async def count(self, url: str | None = None) -> int: ...

    @abstractmethod
    async def payloads(self, flt: SearchFilter | None = None) -> list[dict[str, Any]]:
        """Every stored chunk's payload that matches ``flt`` (an audit's full scan, not a query path)."""

    @abstractmethod
    async def close(self) -> None: ...


# ------------------------------------------------------------------------------------------
# Qdrant Edge (embedded)
# ------------------------------------------------------------------------------------------


class EdgeChunkStore(ChunkStore):
    """Qdrant Edge shards under ``root/<collection>/<version>/``, the alias in ``alias.json``."""

    def __init__(self, collection: str, root: str | os.PathLike[str]) -> None:
        import qdrant_edge

        super().__init__(collection)
        self.q = qdrant_edge
        self.base = Path(root) / collection
        self.base.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}
        # One open per shard: Qdrant Edge locks a shard's WAL, so two concurrent first searches
        # that both tried to load it would see the second fail ("Can't init WAL: WouldBlock").
        self._opening = asyncio.Lock()
        self._unflushed: dict[str, tuple[int, float]] = {}
        """Per version: points written since its last flush, and when the first of them was."""

    # versions
    @property
    def _alias_file(self) -> Path:
        return self.base / "alias.json"

    async def current_version(self) -> str | None:
        if self._pinned:
            return self._pinned
        try:
            return json.loads(self._alias_file.read_text())["version"]
        except FileNotFoundError:
            return None

    async def versions(self) -> list[str]:
        found = [p.name for p in self.base.iterdir() if (p / "meta.json").is_file()]
        return sorted(found, key=lambda v: _version_number(self.collection, v))

    async def create_version(self, model: str, dim: int, **meta: Any) -> str:
        n = max((_version_number(self.collection, v) for v in await self.versions()), default=0) + 1
        version = _version_name(self.collection, n)
        folder = self.base / version
        config = self.q.EdgeConfig(
            vectors={DENSE: self.q.EdgeVectorParams(size=dim, distance=self.q.Distance.Cosine)},
            sparse_vectors={SPARSE: self.q.EdgeSparseVectorParams(modifier=self.q.Modifier.Idf)},
        )
        shard = await asyncio.to_thread(self.q.EdgeShard.create, str(folder / "shard"), config)
        for name in KEYWORD_FIELDS:
            shard.update(self.q.UpdateOperation.create_field_index(name, self.q.PayloadSchemaType.Keyword))
        for name in INTEGER_FIELDS:
            shard.update(self.q.UpdateOperation.create_field_index(name, self.q.PayloadSchemaType.Integer))
        for name in FLOAT_FIELDS:
            shard.update(self.q.UpdateOperation.create_field_index(name, self.q.PayloadSchemaType.Float))
        _write_json(folder / "meta.json", {**meta, "embedder": model, "dim": dim})
        self._shards[version] = shard
        return version

    async def drop_version(self, version: str) -> None:
        await self._check_droppable(version)
        async with self._write_lock:
            self._unflushed.pop(version, None)
            if shard := self._shards.pop(version, None):
                await asyncio.to_thread(shard.close)
            await asyncio.to_thread(shutil.rmtree, self.base / version)

    async def swap_alias(self, version: str) -> None:
        if not (self.base / version / "meta.json").is_file():
            raise ValueError(f"no version {version!r} of {self.collection!r}")
        _write_json(self._alias_file, {"version": version})

    async def version_meta(self, version: str) -> dict[str, Any]:
        return json.loads((self.base / version / "meta.json").read_text())

    async def _shard(self, version: str | None = None) -> Any:
        """The open shard of ``version`` (by default, the one reads and writes go to)."""
        version = version or await self.current_version()
        if version is None:
            raise RuntimeError(f"collection {self.collection!r} has no version yet: call ensure_collection()")
        shard = self._shards.get(version)
        if shard is None:
            async with self._opening:
                shard = self._shards.get(version)
                if shard is None:
                    shard = self._shards[version] = await asyncio.to_thread(
                        self.q.EdgeShard.load, str(self.base / version / "shard")
                    )
        return shard

    # data
    def _eq(self, key: str, value: Any) -> Any:
        return self.q.FieldCondition(key, match=self.q.MatchValue(value))

    def _filter(self, flt: SearchFilter | None) -> Any:
        conds = [self._eq(k, v) for k, v in flt.conditions()] if flt else []
        return self.q.Filter(must=conds) if conds else None

    async def page_versions(self, urls: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not urls:
            return {}
        shard = await self._shard()
        records = await asyncio.to_thread(shard.retrieve, [point_id(u, 0) for u in urls], True, False)
        return {r.payload["url"]: _unpack(r.payload) for r in records if r.payload and "url" in r.payload}

    async def replace_pages(self, writes: Sequence[PageWrite]) -> None:
        q = self.q

        def build() -> tuple[list[Any], list[Any]]:
            points, stale = [], []
            for w in writes:
                self._check_dim(w.dense)
                vectors = w.dense.tolist()
                for i, payload in enumerate(w.stored_payloads(self.encode_payload)):
                    sparse = q.SparseVector(w.sparse[i].indices, w.sparse[i].values)
                    points.append(q.Point(point_id(w.url, i), {DENSE: vectors[i], SPARSE: sparse}, payload))
                if w.may_leave_surplus:
                    surplus = q.FieldCondition("chunk_index", range=q.RangeFloat(gte=len(w.payloads)))
                    stale.append(q.Filter(must=[self._eq("url", w.url), surplus]))
            return points, stale

        def write(shard: Any, version: str) -> None:
            points, stale = build()
            if points:
                shard.update(q.UpdateOperation.upsert_points(points))
            for flt in stale:
                shard.update(q.UpdateOperation.delete_points_by_filter(flt))
            now = time.monotonic()
            written, since = self._unflushed.get(version, (0, now))
            written += len(points) + len(stale)
            if written >= FLUSH_AFTER_POINTS or now - since >= FLUSH_AFTER_S:
                shard.flush()
                self._unflushed.pop(version, None)
            else:
                self._unflushed[version] = (written, since)

        async with self._write_lock:
            version = await self.current_version()
            shard = await self._shard(version)
            assert version is not None  # else _shard() raised
            await asyncio.to_thread(write, shard, version)

    @staticmethod
    def encode_payload(url: str, chunk_index: int, payload: dict[str, Any]) -> Any:
        return _pack(dict(payload, url=url, chunk_index=chunk_index))

    async def search(
        self, dense: np.ndarray, sparse: Sparse | None, top_k: int, flt: SearchFilter | None = None
    ) -> list[StoredChunk]:
        q = self.q
        flt_ = self._filter(flt)
        dense_q = q.Query.Nearest(dense.tolist(), using=DENSE)
        if sparse is None or not sparse.indices:
            request = q.QueryRequest(limit=top_k, query=dense_q, filter=flt_, with_payload=True)
        else:
            depth = max(20, 4 * top_k)
            request = q.QueryRequest(
                limit=top_k,
                prefetches=[
                    q.Prefetch(limit=depth, query=dense_q, filter=flt_),
                    q.Prefetch(
                        limit=depth,
                        query=q.Query.Nearest(q.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                        filter=flt_,
                    ),
                ],
                query=q.Fusion.Rrf(k=RRF_K),
                with_payload=True,
            )
        shard = await self._shard()
        points = await asyncio.to_thread(shard.query, request)
        return [StoredChunk(str(p.id), float(p.score), _unpack(p.payload)) for p in points]

    async def products(self, query: ProductQuery) -> list[dict[str, Any]]:
        q = self.q
        must = [self._eq("kind", "product"), self._eq("chunk_index", 0)]
        for key, value in (("brand", query.brand), ("category", query.category)):
            if value:
                must.append(self._eq(key, value))
        if query.min_price is not None or query.max_price is not None:
            must.append(q.FieldCondition("price", range=q.RangeFloat(gte=query.min_price, lte=query.max_price)))
        if query.in_stock is not None:
            must.append(self._eq("stock", "in" if query.in_stock else "out"))
        shard = await self._shard()
        out: list[dict[str, Any]] = []
        offset = None
        while len(out) < query.limit:
            request = q.ScrollRequest(offset=offset, limit=256, filter=q.Filter(must=must), with_payload=True)
            records, offset = await asyncio.to_thread(shard.scroll, request)
            payloads = (_unpack(r.payload) for r in records)
            out.extend(p for p in payloads if _matches_text(p, query.text))
            if offset is None:
                break
        return out[: query.limit]

    async def count(self, url: str | None = None) -> int:
        flt = self._filter(SearchFilter(url=url)) if url else None
        shard = await self._shard()
        return await asyncio.to_thread(shard.count, self.q.CountRequest(exact=True, filter=flt))

    async def payloads(self, flt: SearchFilter | None = None) -> list[dict[str, Any]]:
        shard = await self._shard()
        out: list[dict[str, Any]] = []
        offset = None
        while True:
            request = self.q.ScrollRequest(offset=offset, limit=1024, filter=self._filter(flt), with_payload=True)
            records, offset = await asyncio.to_thread(shard.scroll, request)
            out.extend(_unpack(r.payload) for r in records)
            if offset is None:
                return out

    async def optimize(self) -> None:
        """Build HNSW and merge segments (blocking work, off the event loop)."""
        shard = await self._shard()
        async with self._write_lock:
            await asyncio.to_thread(shard.optimize)

    async def close(self) -> None:
        for shard in self._shards.values():
            await asyncio.to_thread(shard.flush)
            shard.close()
        self._shards.clear()
        self._unflushed.clear()


def _write_json(path: Path, obj: object) -> None:
    """Write ``obj`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with tmp.open("w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------
# qdrant-client (a Qdrant server; :memory: / path= local mode in tests)
# ------------------------------------------------------------------------------------------


class QdrantChunkStore(ChunkStore):
    def __init__(self, collection: str, client: Any, *, server: bool) -> None:
        super().__init__(collection)
        from qdrant_client import models

        self.client = client
        self.m = models
        # Local mode searches by brute force and warns on payload indexes; a server uses them.
        self.server = server

    @property
    def _name(self) -> str:
        """What data calls address: the alias, or the pinned version."""
        return self._pinned or self.collection

    async def current_version(self) -> str | None:
        if self._pinned:
            return self._pinned
        aliases = await self.client.get_aliases()
        for a in aliases.aliases:
            if a.alias_name == self.collection:
                return a.collection_name
        return None

    async def versions(self) -> list[str]:
        names = [c.name for c in (await self.client.get_collections()).collections]
        mine = [n for n in names if _version_number(self.collection, n)]
        return sorted(mine, key=lambda v: _version_number(self.collection, v))

    async def create_version(self, model: str, dim: int, **meta: Any) -> str:
        m = self.m
        n = max((_version_number(self.collection, v) for v in await self.versions()), default=0) + 1
        version = _version_name(self.collection, n)
        await self.client.create_collection(
            version,
            vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            metadata={**meta, "embedder": model, "dim": dim},
        )
        if self.server:
            schema = {
                **dict.fromkeys(KEYWORD_FIELDS, m.PayloadSchemaType.KEYWORD),
                **dict.fromkeys(INTEGER_FIELDS, m.PayloadSchemaType.INTEGER),
                **dict.fromkeys(FLOAT_FIELDS, m.PayloadSchemaType.FLOAT),
            }
            for name, kind in schema.items():
                await self.client.create_payload_index(version, name, kind)
        return version

    async def drop_version(self, version: str) -> None:
        await self._check_droppable(version)
        await self.client.delete_collection(version)

    async def swap_alias(self, version: str) -> None:
        m = self.m
        ops: list[Any] = []
        if await self.current_version() is not None:
            ops.append(m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=self.collection)))
        ops.append(
            m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=version, alias_name=self.collection))
        )
        # One request: the server applies both operations atomically.
        await self.client.update_collection_aliases(change_aliases_operations=ops)

    async def version_meta(self, version: str) -> dict[str, Any]:
        info = await self.client.get_collection(version)
        meta = dict(info.config.metadata or {})
        vectors = info.config.params.vectors
        if isinstance(vectors, dict) and DENSE in vectors:
            meta.setdefault("dim", vectors[DENSE].size)
        return meta

    def _eq(self, key: str, value: Any) -> Any:
        return self.m.FieldCondition(key=key, match=self.m.MatchValue(value=value))

    def _filter(self, flt: SearchFilter | None) -> Any:
        conds = [self._eq(k, v) for k, v in flt.conditions()] if flt else []
        return self.m.Filter(must=conds) if conds else None

    async def page_versions(self, urls: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not urls:
            return {}
        records = await self.client.retrieve(self._name, [point_id(u, 0) for u in urls], with_payload=True)
        return {r.payload["url"]: dict(r.payload) for r in records if r.payload and "url" in r.payload}

    async def replace_pages(self, writes: Sequence[PageWrite]) -> None:
        m = self.m
        points, stale = [], []
        for w in writes:
            self._check_dim(w.dense)
            vectors = w.dense.tolist()
            for i, payload in enumerate(w.stored_payloads(self.encode_payload)):
                sparse = m.SparseVector(indices=w.sparse[i].indices, values=w.sparse[i].values)
                points.append(m.PointStruct(id=point_id(w.url, i), vector={DENSE: vectors[i], SPARSE: sparse},
                                            payload=payload))  # fmt: skip
            if w.may_leave_surplus:
                surplus = m.FieldCondition(key="chunk_index", range=m.Range(gte=len(w.payloads)))
                stale.append(m.Filter(must=[self._eq("url", w.url), surplus]))
        async with self._write_lock:
            if points:
                await self.client.upsert(self._name, points=points, wait=True)
            for flt in stale:
                await self.client.delete(self._name, points_selector=m.FilterSelector(filter=flt), wait=True)

    @staticmethod
    def encode_payload(url: str, chunk_index: int, payload: dict[str, Any]) -> Any:
        return dict(payload, url=url, chunk_index=chunk_index)

    async def search(
        self, dense: np.ndarray, sparse: Sparse | None, top_k: int, flt: SearchFilter | None = None
    ) -> list[StoredChunk]:
        m = self.m
        flt_ = self._filter(flt)
        if sparse is None or not sparse.indices:
            result = await self.client.query_points(
                self._name, query=dense.tolist(), using=DENSE, limit=top_k, query_filter=flt_, with_payload=True
            )
        else:
            depth = max(20, 4 * top_k)
            result = await self.client.query_points(
                self._name,
                prefetch=[
                    m.Prefetch(query=dense.tolist(), using=DENSE, limit=depth, filter=flt_),
                    m.Prefetch(
                        query=m.SparseVector(indices=sparse.indices, values=sparse.values),
                        using=SPARSE,
                        limit=depth,
                        filter=flt_,
                    ),
                ],
                query=m.FusionQuery(fusion=m.Fusion.RRF),
                limit=top_k,
                with_payload=True,
            )
        return [StoredChunk(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    async def products(self, query: ProductQuery) -> list[dict[str, Any]]:
        m = self.m
        must = [self._eq("kind", "product"), self._eq("chunk_index", 0)]
        for key, value in (("brand", query.brand), ("category", query.category)):
            if value:
                must.append(self._eq(key, value))
        if query.min_price is not None or query.max_price is not None:
            must.append(m.FieldCondition(key="price", range=m.Range(gte=query.min_price, lte=query.max_price)))
        if query.in_stock is not None:
            must.append(self._eq("stock", "in" if query.in_stock else "out"))
        out: list[dict[str, Any]] = []
        offset = None
        while len(out) < query.limit:
            records, offset = await self.client.scroll(
                self._name, scroll_filter=m.Filter(must=must), limit=256, offset=offset, with_payload=True
            )
            out.extend(r.payload for r in records if _matches_text(r.payload or {}, query.text))
            if offset is None:
                break
        return out[: query.limit]

    async def count(self, url: str | None = None) -> int:
        flt = self._filter(SearchFilter(url=url)) if url else None
        return (await self.client.count(self._name, count_filter=flt, exact=True)).count

    async def payloads(self, flt: SearchFilter | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = None
        while True:
            records, offset = await self.client.scroll(
                self._name, scroll_filter=self._filter(flt), limit=1024, offset=offset, with_payload=True
            )
            out.extend(dict(r.payload or {}) for r in records)
            if offset is None:
                return out

    async def close(self) -> None:
        await self.client.close()


def open_store(
    collection: str, *, url: str | None = None, path: str | None = None, backend: str = "edge"
) -> ChunkStore:
    """The configured store: a Qdrant server when ``url`` is set, else the embedded ``backend``.

    ``backend`` is ``edge`` (Qdrant Edge, the default) or ``local`` (qdrant-client's local mode at
    ``path``, or in memory when ``path`` is ``:memory:`` -- correct but brute force).
    """
    if url:
        from qdrant_client import AsyncQdrantClient

        return QdrantChunkStore(collection, AsyncQdrantClient(url=url), server=True)
    if backend == "local" or path == ":memory:":
        from qdrant_client import AsyncQdrantClient

        in_memory = path in (None, ":memory:")
        client = AsyncQdrantClient(location=":memory:" if in_memory else None, path=None if in_memory else path)
        return QdrantChunkStore(collection, client, server=False)
    if backend != "edge":
        raise ValueError(f"unknown store backend {backend!r}; choose edge or local")
    return EdgeChunkStore(collection, path or "var/qdrant")
