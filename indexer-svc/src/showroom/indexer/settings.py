"""indexer-svc settings (env prefix ``SHOWROOM_``)."""

from __future__ import annotations

from showroom.common.settings import ServiceSettings


class IndexerSettings(ServiceSettings):
    http_port: int = 9102

    qdrant_url: str | None = None
    """A Qdrant server (production).  Unset: embedded Qdrant at ``qdrant_path``, owned by this process."""

    qdrant_path: str = "var/qdrant"

    collection: str = "showroom_pages"

    embedder: str = "minilm"
    """``minilm`` (all-MiniLM-L6-v2, offline) or ``hashing`` (tests only)."""

    chunk_words: int = 180
    """Upper bound on a chunk's prose, in words (~240 tokens)."""

    search_concurrency: int = 8
