"""Question -> hybrid retrieval -> numbered sources -> answer -> repaired citations.

Kept free of the bus: rag-svc's handlers pass a ``search`` function that asks indexer-svc over
``index.search`` (and a ``products`` function for ``index.products``); the quality benchmark
passes ones that call an in-process indexer.

Two kinds of question get more than one search:

* A question naming two or more product codes ("which costs less, the NW-5 or the NW-8?") also
  searches once per product, with the other codes left out, and each product's best page is
  among the sources: one search for both tends to fill the top ranks with one of them.
* "Which ... have/with X" over products: the structured product search (``index.products``)
  lists the products whose spec rows match, and the answer lists them, each citing its page.
  Ranked chunks cannot enumerate; the catalogue can.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from showroom.common.events import (
    Answer,
    AskRequest,
    ProductSearchRequest,
    ProductSummary,
    SearchHit,
    SearchRequest,
)
from showroom.rag.answerers import REFUSAL, Answerer, product_codes, terms
from showroom.rag.sources import Source, citations_for, group_sources, repair_citations

Search = Callable[[SearchRequest], Awaitable[list[SearchHit]]]
Products = Callable[[ProductSearchRequest], Awaitable[list[ProductSummary]]]


async def retrieve(request: AskRequest, search: Search, *, search_top_k: int, min_score: float) -> list[Source]:
    top_k = max(search_top_k, request.top_k * 2)
    query = SearchRequest(query=request.question, brand=request.brand, top_k=top_k)
    codes = product_codes(request.question)
    if len(codes) < 2:
        hits = await search(query)
        return [s for s in group_sources(hits, limit=request.top_k) if s.score >= min_score]
    per_product = [
        query.model_copy(update={"query": _without_codes(request.question, set(codes) - {code})}) for code in codes
    ]
    main, *each = await asyncio.gather(search(query), *(search(q) for q in per_product))
    picked: dict[str, Source] = {}
    for hits in each:  # each named product's best page first, then the question's own ranking
        for src in group_sources(hits, limit=1):
            picked.setdefault(src.url, src)
    for src in group_sources(main, limit=request.top_k):
        picked.setdefault(src.url, src)
    limit = max(request.top_k, len(codes))
    ranked = [dataclasses.replace(s, n=i) for i, s in enumerate(list(picked.values())[:limit], start=1)]
    return [s for s in ranked if s.score >= min_score]


def _without_codes(question: str, codes: set[str]) -> str:
    for code in codes:
        question = re.sub(rf"(?<![\w-]){re.escape(code)}(?![\w-])", " ", question, flags=re.IGNORECASE)
    return " ".join(question.split())


_WHICH = re.compile(r"^\s*(?:which|what)\b.*\b(?:have|has|with|offer|use|come)\b", re.IGNORECASE | re.DOTALL)


def _mentions(question: str, value: str) -> bool:
    value = value.strip().lower()
    return bool(value) and re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", question.lower()) is not None


def matching_products(question: str, products: list[ProductSummary]) -> list[tuple[ProductSummary, str]]:
    """The products with a spec row the question names: the value verbatim and a word of the key
    ("woofer size of 8 in" matches ``Woofer size: 8 in``), within a category the question names if
    it names one.  Returns each product with its matching row."""
    asked = set(terms(question))
    categories = {p.category for p in products if p.category and set(terms(p.category)) <= asked}
    out = []
    for p in products:
        if categories and p.category not in categories:
            continue
        for key, value in p.specs.items():
            if asked & set(terms(key)) and _mentions(question, value):
                out.append((p, f"{key}: {value}"))
                break
    return out


async def product_listing(request: AskRequest, products: Products) -> tuple[str, dict[int, str], list[Source]] | None:
    """Answer a "which products have X" question from the structured product search, or None."""
    if not _WHICH.match(request.question):
        return None
    found = matching_products(request.question, await products(ProductSearchRequest(brand=request.brand, limit=500)))
    if not found:
        return None
    sources = [
        Source(n, p.url, p.name, 1.0, p.content_hash, p.fetched_at,
               [SearchHit(url=p.url, title=p.name, brand=p.brand, text=f"{p.name}\n{row}", score=1.0,
                          chunk_index=0, content_hash=p.content_hash, fetched_at=p.fetched_at)])
        for n, (p, row) in enumerate(found, start=1)
    ]  # fmt: skip
    listed = "; ".join(f'{p.name} ("{row}") [{n}]' for n, (p, row) in enumerate(found, start=1))
    text = f"From the product catalogue (structured search, no LLM): {listed}."
    return text, {n: row for n, (_, row) in enumerate(found, start=1)}, sources


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
    request: AskRequest,
    search: Search,
    answerer: Answerer,
    *,
    search_top_k: int = 8,
    min_score: float = 0.0,
    products: Products | None = None,
) -> Answer:
    t0 = time.perf_counter()
    if products is not None and (listing := await product_listing(request, products)):
        text, snippets, sources = listing
        return finish(request, text, snippets, sources, answerer.model, t0)
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
    request: AskRequest,
    search: Search,
    answerer: Answerer,
    *,
    search_top_k: int = 8,
    min_score: float = 0.0,
    products: Products | None = None,
) -> AsyncIterator[str | Answer]:
    """Yield text deltas as the answerer produces them, then the final :class:`Answer`."""
    t0 = time.perf_counter()
    if products is not None and (listing := await product_listing(request, products)):
        text, snippets, sources = listing
        yield text
        yield finish(request, text, snippets, sources, answerer.model, t0)
        return
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
