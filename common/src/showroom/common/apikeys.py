"""API keys as the gateway stores them: a name, the key's SHA-256 and its scopes; never the key.

Here rather than in the gateway because two programs need it: the gateway checks keys, and the
CLI (``showroom keys new``, the embedded stack) makes them and writes the entries to configure.

Why a plain SHA-256 and no salt or slow hash: salts and key-stretching protect *guessable* secrets
(passwords) against dictionary attacks on a leaked hash.  These keys are 256 random bits made by
:func:`new_key`, so a leaked digest gives nothing to guess, and a fast hash keeps checking a key
per request at microseconds (a deliberately slow hash per request would be a denial-of-service
lever).  This is the scheme GitHub and Stripe tokens use.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_serializer

KEY_PREFIX = "sr_"
"""Marks a string as a Showroom key, so secret scanners and people recognise one that leaked."""

MIN_PLAINTEXT_LENGTH = 16


class Scope(StrEnum):
    """What a key may do.  Each scope includes the ones below it: admin ⊃ crawl ⊃ ask.

    ``crawl`` includes ``ask`` because whoever starts crawls checks what they made answerable;
    a crawl key is already the more powerful one (it makes Showroom fetch from the internet).
    """

    ASK = "ask"
    CRAWL = "crawl"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def includes(self, other: Scope) -> bool:
        return self.rank >= other.rank


def digest(key: str) -> str:
    """The hex SHA-256 that the configuration holds for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyEntry(BaseModel):
    """One configured key: ``{"name": "sales", "sha256": "<hex>", "scopes": ["ask"]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="Who holds the key.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key (`showroom keys new`).")
    scopes: frozenset[Scope] = Field(min_length=1)
    rate_per_s: float | None = Field(default=None, gt=0, description="Overrides the gateway's rate limit.")
    burst: int | None = Field(default=None, ge=1, description="Overrides the gateway's burst size.")

    @classmethod
    def for_key(
        cls, key: str, scopes: Iterable[Scope | str] = (Scope.ADMIN,), name: str = "key", **limits: float | None
    ) -> ApiKeyEntry:
        """The entry to configure for ``key`` (what ``showroom keys new`` prints; handy in tests).
        ``limits``: ``rate_per_s`` and ``burst``, when this key's differ from the gateway's."""
        return cls(name=name, sha256=digest(key), scopes=frozenset(Scope(s) for s in scopes), **limits)

    @field_serializer("scopes")
    def _sorted_scopes(self, scopes: frozenset[Scope]) -> list[str]:
        return sorted(s.value for s in scopes)

    def allows(self, needed: Scope) -> bool:
        return any(s.includes(needed) for s in self.scopes)

    def config_json(self) -> str:
        """The entry as it goes in ``SHOWROOM_API_KEYS`` (a JSON list of these)."""
        return self.model_dump_json(exclude_none=True)
