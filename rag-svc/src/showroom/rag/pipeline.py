"""Question -> hybrid retrieval -> numbered sources -> answer -> repaired citations.

Kept free of the bus: rag-svc's handlers pass a ``search`` function that asks indexer-svc over
``index.search``; the quality benchmark passes one that calls an in-process indexer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from showroom.common.events import Answer, AskRequest, SearchHit, SearchRequest
from showroom.rag.answerers import REFUSAL, Answerer
from showroom.rag.sources import Source, citations_for, group_sources, repair_citations

Search = Callable[[SearchRequest], Awaitable[list[SearchHit]]]


async def retrieve(request: AskRequest, search: Search, *, search_top_k: int, min_score: float) -> list[Source]:
    query = SearchRequest(query=request.question, brand=request.brand, top_k=max(search_top_k, request.top_k * 2))
    hits = await search(query)
    return [s for s in group_sources(hits, limit=request.top_k) if s.score >= min_score]


def finish(request: AskRequest, text: str, snippets: dict[int, str], sources: list[Source], model: str,
           t0: float) -> Answer:  # fmt: skip
    """Repair the markers and attach exactly the cited sources; no citation means no answer."""
    text, cited = repair_citations(text, sources)
    if not cited:
        text = REFUSAL
    return Answer(
        question=request.question,
        answer=text,
        model=model,
        citations=citations_for(cited, sources, snippets),
        latency_ms=(time.perf_counter() - t0) * 1000,
    )


async def answer_question(
    request: AskRequest, search: Search, answerer: Answerer, *, search_top_k: int = 8, min_score: float = 0.0
) -> Answer:
    t0 = time.perf_counter()
    sources = await retrieve(request, search, search_top_k=search_top_k, min_score=min_score)
    text, snippets = await answerer.answer(request.question, sources)
    return finish(request, text, snippets, sources, answerer.model, t0)


class MarkerFilter:
    """Repairs ``[n]`` markers in streamed text: a marker split across chunks is held back until
    it is complete, and one that names no source never reaches the client."""

    def __init__(self, valid: set[int]) -> None:
        self.valid = valid
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut <= 5:
            text, self._held = text[:cut], text[cut:]
        else:
            self._held = ""
        return self._clean(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._clean(text)

    def _clean(self, text: str) -> str:
        import re

        return re.sub(r"\[(\d{1,3})\]", lambda m: m.group(0) if int(m.group(1)) in self.valid else "", text)


async def stream_answer(
    request: AskRequest, search: Search, answerer: Answerer, *, search_top_k: int = 8, min_score: float = 0.0
) -> AsyncIterator[str | Answer]:
    """Yield text deltas as the answerer produces them, then the final :class:`Answer`."""
    t0 = time.perf_counter()
    sources = await retrieve(request, search, search_top_k=search_top_k, min_score=min_score)
    markers = MarkerFilter({s.n for s in sources})
    parts: list[str] = []
    snippets: dict[int, str] = {}
    async for delta in answerer.stream(request.question, sources, snippets):
        parts.append(delta)
        if out := markers.feed(delta):
            yield out
    if out := markers.flush():
        yield out
    yield finish(request, "".join(parts), snippets, sources, answerer.model, t0)
