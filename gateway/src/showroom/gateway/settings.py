"""Gateway settings (env prefix ``SHOWROOM_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from showroom.common.apikeys import MIN_PLAINTEXT_LENGTH, ApiKeyEntry, Scope
from showroom.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 8000

    api_keys: list[ApiKeyEntry | str] = Field(default_factory=list)
    """Accepted API keys, a JSON list in the environment.  Each entry is what ``showroom keys new``
    prints, ``{"name": "sales", "sha256": "<hex>", "scopes": ["ask"]}``: the key's hash, never the
    key.  A plain string (the key itself, with every scope) is accepted only in ``development``."""

    environment: str = "production"
    """``development`` allows running without API keys configured (every /v1 call is then refused)
    and accepts plaintext keys."""

    ask_timeout_s: float = 60.0
    """How long POST /v1/ask waits for rag-svc (Gemini included)."""

    brands_file: Path | None = None
    """A TOML brand registry applied to the ``brands`` bucket at start: brands that are new, or whose
    entry changed since it was last applied (edits made through /v1/brands last until then).
    ``${NAME}`` in its values comes from the environment.  See ``showroom.common.brands``."""

    scheduler_enabled: bool = True
    """Re-crawl registered brands on their ``recrawl_interval`` (every replica may; they coordinate)."""

    scheduler_tick_s: float = Field(default=5.0, gt=0)
    """How often the scheduler looks for due brands."""

    scheduler_brand_delay_s: float = Field(default=60.0, ge=0)
    """Least time between two scheduled crawl starts, over all brands and replicas."""

    rate_per_s: float = Field(default=10.0, gt=0)
    """Requests per second each key may make on average, per gateway replica (an entry may override it)."""

    rate_burst: int = Field(default=30, ge=1)
    """Requests a key may make at once before the rate applies (an entry may override it)."""

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Larger request bodies are refused with 413 before they are read."""

    @model_validator(mode="after")
    def _check_keys(self) -> GatewaySettings:
        if self.environment != "development" and not self.api_keys:
            raise ValueError("SHOWROOM_API_KEYS must list at least one key outside development")
        plaintext = [k for k in self.api_keys if isinstance(k, str)]
        if plaintext and self.environment != "development":
            raise ValueError(
                "SHOWROOM_API_KEYS holds a plaintext key: outside development configure its hash "
                '({"name": ..., "sha256": ..., "scopes": [...]}, printed by `showroom keys new`)'
            )
        if any(len(k) < MIN_PLAINTEXT_LENGTH for k in plaintext):
            raise ValueError(f"every API key must be at least {MIN_PLAINTEXT_LENGTH} characters")
        entries = self.key_entries
        for what, values in (("name", [e.name for e in entries]), ("sha256", [e.sha256 for e in entries])):
            if len(set(values)) != len(values):
                raise ValueError(f"two SHOWROOM_API_KEYS entries share a {what}")
        return self

    @property
    def key_entries(self) -> list[ApiKeyEntry]:
        """Every key as an entry; a development plaintext key becomes an admin key named ``dev-<n>``."""
        return [
            k if isinstance(k, ApiKeyEntry) else ApiKeyEntry.for_key(k, [Scope.ADMIN], name=f"dev-{i}")
            for i, k in enumerate(self.api_keys)
        ]
