"""A small typed client of the gateway's HTTP API, used by the CLI and the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx


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

    async def status(self, crawl_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/crawls/{crawl_id}"))

    async def ask(self, question: str, brand: str | None = None, top_k: int = 5) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question, "top_k": top_k}
        if brand:
            body["brand"] = brand
        return dict(await self._call("POST", "/v1/ask", json=body))
