"""Numbered sources and citations that are correct by construction.

Retrieved chunks are grouped by page into sources numbered ``[1]..[n]``.  An
answer may only cite those numbers: :func:`repair_citations` drops any
marker outside the range (an invented source) and the citations returned are
exactly the sources the answer cites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from showroom.common.events import Citation, SearchHit

_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass
class Source:
    n: int
    url: str
    title: str
    score: float
    content_hash: str
    fetched_at: object
    chunks: list[SearchHit] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(h.text for h in sorted(self.chunks, key=lambda h: h.chunk_index))


def group_sources(hits: list[SearchHit], limit: int = 5) -> list[Source]:
    by_url: dict[str, Source] = {}
    for hit in sorted(hits, key=lambda h: -h.score):
        src = by_url.get(hit.url)
        if src is None:
            if len(by_url) >= limit:
                continue
            src = by_url[hit.url] = Source(
                len(by_url) + 1, hit.url, hit.title, hit.score, hit.content_hash, hit.fetched_at
            )
        src.chunks.append(hit)
    return list(by_url.values())


def repair_citations(answer: str, sources: list[Source]) -> tuple[str, list[int]]:
    """Remove markers that name no source; return the cleaned answer and the cited numbers in order."""
    valid = {s.n for s in sources}
    cited: list[int] = []

    def keep(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in valid:
            return ""
        if n not in cited:
            cited.append(n)
        return m.group(0)

    cleaned = _MARKER.sub(keep, answer)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    return cleaned, cited


def citations_for(cited: list[int], sources: list[Source], snippets: dict[int, str] | None = None) -> list[Citation]:
    by_n = {s.n: s for s in sources}
    out = []
    for n in cited:
        s = by_n[n]
        snippet = (snippets or {}).get(n) or s.chunks[0].text
        out.append(
            Citation(
                n=n,
                url=s.url,
                title=s.title,
                snippet=snippet[:400],
                score=round(s.score, 4),
                content_hash=s.content_hash,
                fetched_at=s.fetched_at,  # type: ignore[arg-type]
                lineage=s.chunks[0].lineage if s.chunks else None,
            )
        )
    return out
