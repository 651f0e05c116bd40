"""Every error the API answers has one shape, ``{"detail": "<what was wrong>"}`` (:class:`ErrorBody`),
except 422, whose ``detail`` is FastAPI's list of field errors (a route's own 422 is put in that shape).

:data:`ERROR_RESPONSES` documents in OpenAPI the errors any ``/v1`` route can answer: each depends on
an API key and its rate limit (401, 403, 429), may get a body over the limit (413) and reaches the
services over NATS (503 when the bus or a service is unavailable, 504 when it is slow).
:func:`install_error_handlers` makes the bus errors those 503/504s instead of 500s.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    detail: str = Field(description="What was wrong, in words.")


_DESCRIPTIONS = {
    401: "Missing or unknown API key (send it in `X-API-Key`)",
    403: "The API key lacks the scope this route needs",
    404: "No such resource",
    409: "The resource is not in a state that allows this",
    413: "Request body over the gateway's limit",
    429: "Too many requests for this key; retry after `Retry-After` seconds",
    503: "A service behind the gateway, or the message bus, is unavailable",
    504: "A service behind the gateway did not answer in time",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``codes``, each an :class:`ErrorBody`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}
            }
        responses[code] = entry
    return responses


ERROR_RESPONSES = error_responses(401, 403, 413, 429, 503, 504)


def install_error_handlers(app: FastAPI) -> None:
    async def unprocessable(request: Request, exc: Exception) -> JSONResponse:
        """A route's own 422 (a rule across fields, say) in the shape of FastAPI's validation errors,
        so that a client reads every 422 one way and the documented schema holds."""
        detail = getattr(exc, "detail", "invalid request")
        if isinstance(detail, str):
            detail = [{"loc": ["body"], "msg": detail, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422, headers=getattr(exc, "headers", None))

    async def bus_timeout(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: the bus timed out (%s)", request.method, request.url.path, exc)
        return JSONResponse({"detail": "the message bus did not answer in time"}, status_code=504)

    async def bus_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: bus error %r", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"the message bus is unavailable ({type(exc).__name__})"}, status_code=503)

    app.add_exception_handler(422, unprocessable)
    app.add_exception_handler(NatsTimeout, bus_timeout)
    app.add_exception_handler(NatsError, bus_error)
