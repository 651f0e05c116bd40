"""The indexing work that needs neither the store nor the dense model: decoding page events,
chunking, payloads and BM25.

A replay runs it in a worker process (``Indexer.pool``), which imports this module and what it
needs only: keep heavy imports (the bus client, the embedder's runtime, web frameworks) out of it,
or every replay pays for them again when its worker starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError

from showroom.common.events import PageScraped
from showroom.indexer.chunking import CHUNKER_VERSION, Chunk, chunk_page
from showroom.indexer.sparse import Bm25Encoder
from showroom.indexer.store import PayloadEncoder, Sparse

_IN_STOCK = {"instock", "in stock", "limitedavailability", "onlineonly", "instoreonly"}


def in_stock(availability: str | None) -> bool:
    if not availability:
        return False
    return availability.rsplit("/", 1)[-1].strip().lower() in _IN_STOCK


def chunker_id(chunk_tokens: int) -> str:
    """What built a page's chunks: the chunker's version and its token bound."""
    return f"{CHUNKER_VERSION}/{chunk_tokens}"


def page_payloads(page: PageScraped, chunks: list[Chunk], chunker: str, seq: int | None = None) -> list[dict[str, Any]]:
    """Per chunk: the text, where it came from (page event and version) and the product's fields.

    The whole extracted product (specs, description...) rides on the first chunk only: product
    search reads first chunks, and every chunk already carries the product's identity in its text.
    """
    p = page.product
    whole_product = p.model_dump() if p else None
    product_fields: dict[str, Any] = {"is_product": False, "kind": "page"}
    if p is not None and p.name:
        stocked = in_stock(p.availability)
        product_fields = {
            "is_product": True,
            "kind": "product",
            "stock": "in" if stocked else "out",
            "product_name": p.name,
            "category": (p.category or "").lower() or None,
            "sku": p.sku,
            "price": p.price,
            "currency": p.priceCurrency,
            "availability": p.availability,
            "in_stock": stocked,
        }
    shared = {
        "brand": page.brand,
        "title": page.title,
        "content_hash": page.content_hash,
        "chunker": chunker,
        "chunks": len(chunks),
        "fetched_at": page.fetched_at.isoformat(),
        "crawl_id": page.crawl_id,
        "event_id": page.event_id,
        "stream_seq": seq,
        "fetch_mode": page.fetch_mode,
        "fetched_by": page.fetched_by,
        **product_fields,
    }
    return [
        {**shared, "text": c.text, "section": c.section, "product": whole_product if c.index == 0 else None}
        for c in chunks
    ]


@dataclass(frozen=True)
class PreparedPage:
    """One page's chunk texts and payloads (and BM25 vectors where computed): the indexing work
    that needs neither the store nor the dense model, so it can be done in another process."""

    texts: list[str]
    payloads: list[Any]
    sparse: list[Sparse] | None = None
    encoded: bool = False
    """``payloads`` are in the store's own form (``ChunkStore.encode_payload``), not plain dicts."""


def prepare_pages(
    pages: Sequence[PageScraped],
    seqs: Sequence[int | None],
    chunk_words: int,
    sparse: Bm25Encoder | None = None,
    encode: PayloadEncoder | None = None,
) -> list[PreparedPage]:
    """Chunk ``pages`` and build their payloads (and BM25 vectors, given ``sparse``; the payloads in
    a store's form, given its ``encode``)."""
    chunker = chunker_id(chunk_words)
    out = []
    for page, seq in zip(pages, seqs, strict=True):
        chunks = chunk_page(page, chunk_words)
        texts = [c.text for c in chunks]
        payloads: list[Any] = page_payloads(page, chunks, chunker, seq)
        if encode is not None:
            payloads = [encode(page.url, i, payload) for i, payload in enumerate(payloads)]
        vectors = sparse.embed_documents(texts) if sparse is not None else None
        out.append(PreparedPage(texts, payloads, vectors, encoded=encode is not None))
    return out


class PageRef(NamedTuple):
    """What the write needs of a page event once it is chunked: which page and which content."""

    url: str
    content_hash: str


class PageIdentity(Protocol):
    """A :class:`PageScraped` or its :class:`PageRef`."""

    @property
    def url(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


RawEvent = tuple[int, bytes]
"""A page event as it came off PAGES: its stream sequence and its JSON body."""


def decode_events(events: Sequence[RawEvent]) -> tuple[list[PageScraped], list[int], int]:
    """Each URL's newest page event in ``events`` (and their sequences), and how many events were
    skipped: undecodable, or superseded by a newer one for the same URL."""
    latest: dict[str, tuple[int, PageScraped]] = {}
    skipped = 0
    for seq, data in events:
        try:
            page = PageScraped.model_validate_json(data)
        except ValidationError:
            skipped += 1
            continue
        if page.url in latest:
            skipped += 1
        latest[page.url] = (seq, page)
    return [p for _, p in latest.values()], [s for s, _ in latest.values()], skipped


@dataclass(frozen=True)
class PreparedEvents:
    """A batch of raw page events, decoded (:func:`decode_events`) and prepared for the store."""

    pages: list[PageRef]
    seqs: list[int]
    prepared: list[PreparedPage]
    skipped: int


_encoders: dict[float, Bm25Encoder] = {}


def prepare_events(
    events: Sequence[RawEvent], chunk_words: int, bm25_avg_len: float, encode: PayloadEncoder
) -> PreparedEvents:
    """Everything :meth:`Indexer.index_events` does before its lookup, as a plain function of plain
    arguments, so that it can run in a pool process (one BM25 encoder per process and config)."""
    encoder = _encoders.get(bm25_avg_len)
    if encoder is None:
        encoder = _encoders[bm25_avg_len] = Bm25Encoder(bm25_avg_len)
    pages, seqs, skipped = decode_events(events)
    refs = [PageRef(p.url, p.content_hash) for p in pages]
    return PreparedEvents(refs, seqs, prepare_pages(pages, seqs, chunk_words, encoder, encode), skipped)
