"""The Gemini path, through the real google-genai client, against a local fake of Gemini's REST API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from showroom.common.events import SearchHit
from showroom.rag.answerers import SYSTEM_INSTRUCTION, GeminiAnswerer
from showroom.rag.sources import group_sources, repair_citations


class FakeGemini:
    """Answers generateContent with a canned reply and records what it was sent."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("x-goog-api-key") == "test-key"
        self.requests.append({"path": request.path, "body": await request.json()})
        return web.json_response(
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": self.reply}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            }
        )


@pytest.fixture
async def fake_gemini() -> AsyncIterator[tuple[FakeGemini, str]]:
    fake = FakeGemini("The NW-8 has an 8 in woofer [1]; see also [9].")
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_gemini_gets_numbered_sources_as_data_and_its_citations_are_repaired(fake_gemini) -> None:
    fake, url = fake_gemini
    hits = [
        SearchHit(url="http://s/nw-8", title="NW-8", brand="northwind", text="NW-8\nWoofer size: 8 in", score=0.7,
                  chunk_index=0, content_hash="h8", fetched_at=datetime.now(UTC)),
    ]  # fmt: skip
    sources = group_sources(hits)
    answerer = GeminiAnswerer("test-key", "gemini-2.5-flash", base_url=url)
    text, _ = await answerer.answer("What is the woofer size of the NW-8?", sources)
    cleaned, cited = repair_citations(text, sources)
    assert cleaned == "The NW-8 has an 8 in woofer [1]; see also."
    assert cited == [1]

    (req,) = fake.requests
    assert req["path"].endswith("/models/gemini-2.5-flash:generateContent")
    body = req["body"]
    assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM_INSTRUCTION
    prompt = json.dumps(body["contents"])
    assert '<source n=\\"1\\" url=\\"http://s/nw-8\\"' in prompt
    assert "Question: What is the woofer size of the NW-8?" in prompt
