"""Gateway settings (env prefix ``SHOWROOM_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from showroom.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 8000

    api_keys: list[str] = Field(default_factory=list)
    """Accepted API keys (JSON list in the environment: ``SHOWROOM_API_KEYS='["k1","k2"]'``)."""

    environment: str = "production"
    """``development`` allows running without API keys configured (every /v1 call is then refused)."""

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

    @model_validator(mode="after")
    def _require_keys_outside_development(self) -> GatewaySettings:
        if self.environment != "development" and not self.api_keys:
            raise ValueError("SHOWROOM_API_KEYS must list at least one key outside development")
        if any(len(k) < 16 for k in self.api_keys):
            raise ValueError("every API key must be at least 16 characters")
        return self
