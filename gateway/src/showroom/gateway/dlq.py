"""Dead letters: list, re-drive, purge."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dlq"])
