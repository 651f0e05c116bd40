"""Why a fetch failed, split by what to do about it.

FetchError
├── TransientFetchError   retry later with backoff (timeouts, 5xx, 429, browser crash)
└── PermanentFetchError   never retry (4xx, refused by the SSRF guard, not HTML)
"""

from __future__ import annotations


class FetchError(Exception):
    """A page could not be fetched.  ``reason`` is a short machine-friendly label."""

    def __init__(self, reason: str, detail: str = "", status_code: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status_code = status_code


class TransientFetchError(FetchError):
    """Worth retrying: the same request may succeed later."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, detail, status_code)
        self.retry_after = retry_after


class PermanentFetchError(FetchError):
    """Retrying cannot help."""


class RetryLater(Exception):
    """Not now: the frontier should redeliver this task after ``wait`` seconds."""

    def __init__(self, wait: float, why: str = "") -> None:
        super().__init__(f"retry in {wait:.2f}s: {why}")
        self.wait = wait
        self.why = why
