"""rag-svc settings (env prefix ``SHOWROOM_``; the Gemini key is also read from plain ``GEMINI_API_KEY``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator

from showroom.common.settings import ServiceSettings


class RagSettings(ServiceSettings):
    http_port: int = 9103

    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SHOWROOM_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    """Set it to answer with Gemini; without it (or set empty) answers are extractive (quoted from the sources)."""

    @field_validator("gemini_api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        # Compose and Helm templates often render an unset secret as "": that must not mean "use Gemini".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    """Override Gemini's endpoint (tests point it at a local fake of the REST API)."""

    search_top_k: int = 8
    """Chunks retrieved per question before they are grouped into sources (pages)."""

    search_timeout_s: float = 10.0

    ask_concurrency: int = 32
    """Questions one replica answers at once.  Answering mostly waits (on index.search, the cache,
    Gemini), and concurrent questions' searches share the indexer's query-embedding batches, so
    this is well above the core count."""
    min_score: float = 0.0
    """Below this retrieval score the evidence is too weak to answer from.  Hybrid scores are RRF
    rank scores (about 1/(60 + rank)), so the default keeps every source and leaves refusing to
    the answerer."""

    answer_cache_ttl_s: float = 3600.0
    """How long a cached answer lives at most (re-indexing a cited page drops it sooner); 0 turns the cache off."""
