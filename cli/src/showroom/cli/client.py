"""A small typed client of the gateway's HTTP API, and a way to await crawls' ends on the bus;
used by the CLI, the end-to-end tests and the benchmarks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg


class GatewayError(RuntimeError):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 120.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.http.request(method, path, **kw)
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text
            raise GatewayError(resp.status_code, detail)
        return resp.json()

    async def crawl(self, brand: str, start_urls: list[str], **spec: Any) -> str:
        body = {"brand": brand, "start_urls": start_urls, **spec}
        return str((await self._call("POST", "/v1/crawls", json=body))["crawl_id"])

    async def brands(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/v1/brands"))

    async def brand(self, brand: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/brands/{brand}"))

    async def crawl_brand(self, brand: str) -> str:
        """Crawl a registered brand now; :class:`GatewayError` 409 while its last crawl is still going."""
        return str((await self._call("POST", f"/v1/brands/{brand}/crawl"))["crawl_id"])

    async def status(self, crawl_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/crawls/{crawl_id}"))

    async def replay(self, **spec: Any) -> str:
        """Start a replay (body as for POST /v1/replays); returns its id."""
        return str((await self._call("POST", "/v1/replays", json=spec))["replay_id"])

    async def replay_status(self, replay_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/replays/{replay_id}"))

    async def collections(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/v1/collections"))

    async def lineage(self, url: str) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/v1/lineage", params={"url": url}))

    async def dlq_list(self, service: str | None = None, after: int = 0, limit: int = 50) -> dict[str, Any]:
        params: dict[str, Any] = {"after": after, "limit": limit} | ({"service": service} if service else {})
        return dict(await self._call("GET", "/v1/dlq", params=params))

    async def dlq_get(self, letter_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/dlq/{letter_id}"))

    async def dlq_redrive(
        self, ids: list[int] | None = None, *, all: bool = False, service: str | None = None
    ) -> dict[str, Any]:
        """Re-drive letters by id, or all of them (of ``service``); see gateway ``dlq``."""
        body: dict[str, Any] = {"ids": ids} if ids else {"all": all} | ({"service": service} if service else {})
        return dict(await self._call("POST", "/v1/dlq/redrive", json=body))

    async def dlq_purge(self, service: str | None = None) -> int:
        params = {"service": service} if service else {}
        return int((await self._call("DELETE", "/v1/dlq", params=params))["purged"])

    async def dlq_delete(self, letter_id: int) -> None:
        resp = await self.http.delete(f"/v1/dlq/{letter_id}")
        if resp.status_code >= 400:
            raise GatewayError(resp.status_code, resp.json().get("detail"))

    async def ask(self, question: str, brand: str | None = None, top_k: int = 5) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question, "top_k": top_k}
        if brand:
            body["brand"] = brand
        return dict(await self._call("POST", "/v1/ask", json=body))


class FinishedCrawls:
    """Awaits crawls' ends on the bus: ``crawl.finished`` events, collected from the moment it is entered.

        async with FinishedCrawls(nats_url) as finished:
            crawl_id = await client.crawl(...)
            event = await finished.wait(crawl_id, timeout=180)

    Enter it before starting the crawl, so a crawl that ends quickly is not missed.
    """

    subject = "crawl.finished.*"
    key = "crawl_id"

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self._events: dict[str, dict[str, Any]] = {}
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> FinishedCrawls:
        self._nc = await nats.connect(self.nats_url)

        async def on_finished(msg: Msg) -> None:
            event = json.loads(msg.data)
            async with self._arrived:
                self._events[event[self.key]] = event
                self._arrived.notify_all()

        await self._nc.subscribe(self.subject, cb=on_finished)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._nc.close()

    async def wait(self, crawl_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """The ``crawl.finished`` event of ``crawl_id``."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: crawl_id in self._events)
            return self._events[crawl_id]


class FinishedReplays(FinishedCrawls):
    """The same for replays: ``replay.finished`` events, by replay id."""

    subject = "replay.finished"
    key = "replay_id"
