"""Settings shared by every service.  Each service subclasses :class:`ServiceSettings`.

Every field can be set from the environment with the ``SHOWROOM_`` prefix
(``SHOWROOM_NATS_URL``), which is what docker-compose and the k8s ConfigMaps do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOWROOM_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    """Comma-separated NATS server URLs."""

    http_host: str = "127.0.0.1"
    """Where the service's own HTTP endpoint (/healthz, /metrics) listens."""

    http_port: int = 0
    """Port of the service's HTTP endpoint; each service sets its own default."""

    stream_replicas: int = Field(default=1, ge=1, le=5)
    """JetStream replicas for streams and buckets this service creates (3 in production)."""

    log_level: str = "INFO"
    log_json: bool = True
    """JSON lines (one object per record, with trace ids) instead of plain text."""

    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Larger bus messages are dead-lettered unread ("oversized").  nats-server's ``max_payload`` is set
    above this (2 MiB in the embedded stack), so an oversized event still reaches the DLQ whole enough to read."""

    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The services' event loop.  uvloop runs the same work on less CPU: a ``render=auto`` crawl of the
    lab's static section took ~15-25% less CPU per page in scraper-svc and indexer-svc than on asyncio, and a
    ``render=always`` one ~15% less in the scraper (Chromium included); see docs/architecture.md."""

    @property
    def nats_servers(self) -> list[str]:
        return [s.strip() for s in self.nats_url.split(",") if s.strip()]
