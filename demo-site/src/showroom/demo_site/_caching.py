"""Validators and conditional GET for the pages whose content can change.

Product pages, product JSON and the lab's articles carry an ``ETag`` (a hash
of the exact body) and a ``Last-Modified`` date, and answer a matching
``If-None-Match`` or a not-older ``If-Modified-Since`` with ``304 Not
Modified``.  ``If-None-Match`` wins when both are sent (RFC 9110 13.2.2).
``Cache-Control: no-cache`` lets a browser keep the page but makes it
revalidate every time, so a re-crawl in a long-lived browser still asks.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web


def etag_of(body: bytes) -> str:
    """The strong ETag (quotes included) the site sends for ``body``."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # Weak comparison, as If-None-Match requires: W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _not_modified_since(header: str, last_modified: datetime) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified.replace(microsecond=0) <= since


def conditional_response(request: web.Request, body: bytes, content_type: str, last_modified: datetime) -> web.Response:
    """200 with ``body`` and validators, or 304 when the client's copy is current."""
    etag = etag_of(body)
    headers = {"ETag": etag, "Last-Modified": http_date(last_modified), "Cache-Control": "no-cache"}
    inm = request.headers.get("If-None-Match")
    ims = request.headers.get("If-Modified-Since")
    if inm is not None:
        fresh = _etag_matches(inm, etag)
    else:
        fresh = ims is not None and _not_modified_since(ims, last_modified)
    if fresh:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if content_type.startswith("text/") or content_type == "application/json" else None
    return web.Response(body=body, content_type=content_type, charset=charset, headers=headers)
