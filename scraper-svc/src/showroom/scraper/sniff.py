"""Reading response bodies safely: capped in size, and checked to be text.

Is a "text/html" response really text?  Servers label anything ``text/html``.

Random or compressed bytes decode to a stream of replacement characters (as
UTF-8) or control characters (as windows-1252, which is what Chromium falls
back to); real pages in any language have almost none.  Only the first 8,000
characters are looked at, as ``file`` and git do.
"""

from __future__ import annotations

import re

import httpx

from showroom.scraper.errors import PermanentFetchError

SAMPLE_CHARS = 8000
MAX_BAD_SHARE = 0.02
_BAD = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")


def looks_binary(text: str) -> bool:
    """True when more than 2% of the sample are NULs, control characters or U+FFFD."""
    sample = text[:SAMPLE_CHARS]
    return bool(sample) and len(_BAD.findall(sample)) > MAX_BAD_SHARE * len(sample)


async def read_capped(resp: httpx.Response, max_bytes: int) -> bytes:
    """The response body, refused with ``too_large`` once it is declared or read past ``max_bytes``."""
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PermanentFetchError("too_large", f"{declared} bytes > {max_bytes}")
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PermanentFetchError("too_large", f"more than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
