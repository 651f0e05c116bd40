"""API keys, what each may do, and how often.

Every ``/v1`` route depends on :func:`require_scope` with the scope it needs:

- ``ask``: questions, product search, lineage (what sales staff get);
- ``crawl``: start, watch and cancel crawls, run a brand's crawl now (and ask);
- ``admin``: everything, including replays, the dead-letter queue and the brand registry.

Keys are configured by their SHA-256 only (``showroom.common.apikeys``).  A request's key is hashed
and looked up; a missing or unknown key is 401, a key without the scope 403 (naming the scope), and
a key over its rate limit 429 with ``Retry-After``.  ``/healthz``, ``/readyz`` and ``/metrics`` need
no key and are never rate limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from showroom.common.apikeys import ApiKeyEntry, Scope, digest
from showroom.gateway.ratelimit import RateLimiter
from showroom.gateway.settings import GatewaySettings

__all__ = ["KeyRing", "Scope", "api_key_header", "require_scope"]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your Showroom API key.")


class KeyRing:
    """The configured keys by digest, and their rate limits.  Lives on ``app.state.keys``."""

    def __init__(self, settings: GatewaySettings) -> None:
        entries = settings.key_entries
        # A lookup by digest leaks nothing through timing: finding a key whose digest shares a
        # prefix with a configured one is a preimage search on SHA-256.
        self.by_digest = {e.sha256: e for e in entries}
        self.limiter = RateLimiter(entries, settings.rate_per_s, settings.rate_burst)

    def find(self, key: str) -> ApiKeyEntry | None:
        return self.by_digest.get(digest(key))


def require_scope(scope: Scope) -> Callable[..., Awaitable[ApiKeyEntry]]:
    """A FastAPI dependency admitting keys that hold ``scope`` (or a scope including it)."""

    # Async, so FastAPI runs it on the event loop rather than a worker thread: the buckets are
    # updated without a lock, and no thread hop is added to every request.
    async def check(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> ApiKeyEntry:
        if not key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send it in the X-API-Key header")
        keys: KeyRing = request.app.state.keys
        entry = keys.find(key)
        if entry is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")
        if not entry.allows(scope):
            needed = _route_scope(request, scope)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this API key lacks the {needed.value!r} scope, which this route needs"
            )
        # A route may stack scopes (a router's and its own): one request spends one token.
        charged = getattr(request.state, "api_key_name", None) is not None
        if not charged and (wait := keys.limiter.retry_after(entry)):
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of API key {entry.name!r} exceeded: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        request.state.api_key_name = entry.name
        return entry

    check.__name__ = f"require_{scope.value}"
    check.scope = scope  # type: ignore[attr-defined]  # how _route_scope finds a route's scopes
    return check


def _route_scope(request: Request, scope: Scope) -> Scope:
    """The highest scope the matched route requires: a router may admit ``crawl`` keys while one
    of its routes also requires ``admin``, and a refusal should name what would let the key in."""
    found = [scope]
    todo = [getattr(request.scope.get("route"), "dependant", None)]
    while todo:
        dep = todo.pop()
        if dep is None:
            continue
        if isinstance(required := getattr(dep.call, "scope", None), Scope):
            found.append(required)
        todo.extend(dep.dependencies)
    return max(found, key=lambda s: s.rank)
