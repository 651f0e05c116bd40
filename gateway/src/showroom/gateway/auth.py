"""API keys and what each may do.

Every ``/v1`` route depends on :func:`require_scope` with the scope it needs:

- ``ask``: questions, product search, lineage (what sales staff get);
- ``crawl``: start, watch and cancel crawls, run a brand's crawl now;
- ``admin``: everything, including replays, the dead-letter queue and the brand registry.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your Showroom API key.")


class Scope(StrEnum):
    ASK = "ask"
    CRAWL = "crawl"
    ADMIN = "admin"


def require_scope(scope: Scope) -> Callable[..., str]:
    """A FastAPI dependency admitting keys that hold ``scope``."""

    def check(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> str:
        if not key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send it in the X-API-Key header")
        settings = request.app.state.settings
        if not any(hmac.compare_digest(key, k) for k in settings.api_keys):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")
        return key

    check.__name__ = f"require_{scope.value}"
    return check
