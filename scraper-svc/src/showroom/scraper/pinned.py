"""The browser's plain-HTTP requests to names, fetched by the scraper so that DNS rebinding cannot redirect them.

Chromium resolves names itself: a name that answered public to the guard's
check may answer private a moment later, when Chromium connects (DNS
rebinding).  Over HTTPS that connection would fail, since whatever answers
at the private address cannot show a certificate for the name.  Over plain
HTTP nothing would stop it, so the browser does not make those requests: its
request guard hands them here, they go out through :class:`GuardedTransport`
(which dials exactly the addresses it has just checked), and the response is
given to the page as if the browser had fetched it (``Fetch.fulfillRequest``).

Requests to address literals and to allow-listed hosts go out from the
browser as before: a literal cannot be rebound, and an allow-listed host is
trusted wherever it resolves.  Cookies are Chromium's business and not added
to these requests: a crawl renders pages as a first-time visitor.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from showroom.scraper.errors import TransientFetchError
from showroom.scraper.sniff import read_capped
from showroom.scraper.ssrf import GuardedTransport, SsrfGuard

NOT_FORWARDED = frozenset(
    {
        "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
        "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range",
    }
)  # fmt: skip
"""Request headers the browser set for its own connection, and conditions from its cache: a fulfilled
response does not go into that cache, so a 304 would leave the page with nothing."""
NOT_RETURNED = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"})
"""Response headers that describe the bytes on the wire: the body handed to the page is already decoded."""


class PinnedFetcher:
    """Fetches a paused browser request over :class:`GuardedTransport` and says how to fulfil it."""

    def __init__(self, guard: SsrfGuard, max_bytes: int, timeout_s: float) -> None:
        self.guard = guard
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(
            transport=GuardedTransport(guard), timeout=timeout_s, follow_redirects=False, trust_env=False
        )

    def applies_to(self, url: str) -> bool:
        return url.startswith("http://") and self.guard.dials_by_name(httpx.URL(url).host)

    async def fulfilment(self, request_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """``Fetch.fulfillRequest``'s parameters for the paused ``request``, fetched here; FetchError if it fails.

        Redirects are handed back as they are: Chromium follows them, and its next hop is paused (and
        checked) as a request of its own.
        """
        headers = {k: v for k, v in request.get("headers", {}).items() if k.lower() not in NOT_FORWARDED}
        try:
            async with self.http.stream(
                request.get("method", "GET"), request["url"], headers=headers, content=_body(request)
            ) as resp:
                content = await read_capped(resp, self.max_bytes)
        except httpx.TimeoutException as exc:
            raise TransientFetchError("timeout", str(exc) or type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise TransientFetchError("connect_error", str(exc) or type(exc).__name__) from exc
        return {
            "requestId": request_id,
            "responseCode": resp.status_code,
            "responseHeaders": [
                {"name": k, "value": v} for k, v in resp.headers.multi_items() if k.lower() not in NOT_RETURNED
            ],
            "body": base64.b64encode(content).decode(),
        }

    async def close(self) -> None:
        await self.http.aclose()


def _body(request: dict[str, Any]) -> bytes | None:
    """A paused request's body: ``postDataEntries`` (base64, whole) when given, else ``postData`` (text)."""
    if entries := request.get("postDataEntries"):
        return b"".join(base64.b64decode(e.get("bytes", "")) for e in entries)
    data = request.get("postData")
    return data.encode() if data else None
