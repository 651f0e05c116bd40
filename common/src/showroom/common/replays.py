"""A replay's state as kept in the ``replays`` KV bucket.

The gateway creates the record (``queued``) and publishes ``replay.requested``; the indexer that
takes the request runs it and keeps the record's progress current (about once a second), so
``GET /v1/replays/{id}`` and the CLI read progress without asking the indexer anything.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from showroom.common.events import CrawlStatus, ReplaySpec, utcnow

ReplayStatus = CrawlStatus
"""A replay goes through a crawl's lifecycle: queued, running, then completed, failed or cancelled."""


class ReplayProgress(BaseModel):
    done: int = Field(0, description="Page events read so far.")
    total: int = Field(0, description="Page events in range (grows while the replay follows the live tail).")
    indexed: int = Field(0, description="Pages written to the new collection.")
    skipped: int = Field(0, description="Events not indexed: superseded by a newer version, or undecodable.")
    position: int = Field(0, description="The last PAGES sequence read; a resumed replay starts after it.")
    rate: float = Field(0.0, description="Events per second since the replay started.")
    eta_s: float | None = Field(None, description="Seconds left at the current rate.")


class ReplayState(BaseModel):
    replay_id: str
    spec: ReplaySpec
    status: ReplayStatus = ReplayStatus.QUEUED
    progress: ReplayProgress = Field(default_factory=ReplayProgress)
    source_collection: str | None = Field(None, description="The version the alias pointed at when it started.")
    target_collection: str | None = Field(None, description="The version being built.")
    swapped: bool = Field(False, description="The alias now points at the target.")
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    trace_id: str | None = None
    runner: str | None = Field(None, description="The indexer instance running it.")
    heartbeat_at: datetime | None = Field(None, description="Its runner's last progress write.")
