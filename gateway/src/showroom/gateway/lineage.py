"""Where an indexed page version came from."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["lineage"])
