"""indexer-svc settings (env prefix ``SHOWROOM_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr

from showroom.common.settings import ServiceSettings


class IndexerSettings(ServiceSettings):
    http_port: int = 9102

    qdrant_url: str | None = None
    """A Qdrant server (production).  Unset: the embedded store at ``qdrant_path``, owned by this process."""

    qdrant_path: str = "var/qdrant"

    store_backend: Literal["edge", "local"] = "edge"
    """Embedded store: ``edge`` (Qdrant Edge, HNSW and payload indexes) or ``local`` (qdrant-client's
    brute-force local mode; correct, slow at scale)."""

    collection: str = "showroom_pages"
    """The alias readers and writers use; versions are ``<collection>__v<n>``."""

    embedder: str = "minilm"
    """``minilm`` (all-MiniLM-L6-v2, offline), ``gemini`` (Gemini embeddings via google-genai) or
    ``hashing`` (tests only)."""

    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SHOWROOM_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    gemini_embedding_model: str = "gemini-embedding-001"
    gemini_embedding_dim: int = 768
    gemini_base_url: str | None = None

    chunk_tokens: int = Field(
        default=180, validation_alias=AliasChoices("SHOWROOM_CHUNK_TOKENS", "SHOWROOM_CHUNK_WORDS")
    )
    """Upper bound on a chunk's body, in pre-tokenised tokens (the identity header comes on top)."""

    batch_max_chunks: int = 64
    """Micro-batch: embed together what arrived, up to this many chunks..."""

    batch_max_wait_ms: float = 50.0
    """...or for at most this long after the first page of the batch arrived."""

    index_concurrency: int = 16
    """Page events in flight at once (they share embedding batches)."""

    index_ack_wait_s: float = 30.0
    """A page event not acked within this time (its indexer died, or a stop lost it in flight) is
    redelivered; must exceed the slowest micro-batch a page can wait through (``index_concurrency``
    pages' chunks: a few seconds with MiniLM here).  A late redelivery costs a lookup, not a
    re-embedding: the page's content is already in the index."""

    index_max_markdown_chars: int = Field(default=500_000, ge=1)
    """A page with more markdown than this is dead-lettered, not indexed: its chunks would crowd out
    every other page's in search results.  Raise it and re-drive the DLQ to index such pages."""

    search_concurrency: int = 32
