"""Request bodies over the limit are refused with 413 before they are parsed.

FastAPI's own ``max_body_size`` answers ``text/plain`` from inside each route, which is not the
``{"detail": ...}`` every other error has; this middleware keeps that shape.  A declared
``Content-Length`` over the limit is refused before a byte is read.  A body without one (chunked)
is counted as it arrives, and the read that crosses the limit raises a 413 ``HTTPException``, which
FastAPI's body reading passes through to the exception handlers untouched.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large(max_bytes: int) -> str:
    return f"request body too large: the limit is {max_bytes} bytes"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": too_large(self.max_bytes)}, status.HTTP_413_CONTENT_TOO_LARGE)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)
