"""rag-svc settings (env prefix ``SHOWROOM_``; the Gemini key is also read from plain ``GEMINI_API_KEY``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from showroom.common.settings import ServiceSettings


class RagSettings(ServiceSettings):
    http_port: int = 9103

    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SHOWROOM_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    """Set it to answer with Gemini; without it answers are extractive (quoted from the sources)."""

    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    """Override Gemini's endpoint (tests point it at a local fake of the REST API)."""

    search_top_k: int = 8
    """Chunks retrieved per question before they are grouped into sources (pages)."""

    search_timeout_s: float = 10.0
    min_score: float = 0.2
    """Below this retrieval score the evidence is too weak to answer from."""
