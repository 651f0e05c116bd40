"""Split a page into retrieval chunks that follow its structure.

* Every chunk of a product page starts with the product's identity (name,
  brand, category, SKU), so a chunk about "woofer size" still says *which*
  monitor it belongs to.
* The spec table becomes one ``Key: value`` line per row and is kept whole
  (split only between rows if it is very long).
* Prose is split at headings, then into token-bounded windows (at sentence
  ends where possible); each chunk carries its heading path.

Token counts use BERT's pre-tokenisation (words and punctuation marks), a
lower bound on the embedder's word pieces; the default bound leaves room
under all-MiniLM-L6-v2's 256-piece window for the identity header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from showroom.common.events import PageScraped, Product

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

#: Bumped when chunking changes: a page indexed by another chunker version is re-chunked even
#: when its content is unchanged.
CHUNKER_VERSION = "2"


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _word_tokens(word: str) -> int:
    """:func:`count_tokens` of one whitespace-free word.  Most words are all letters or digits,
    one token, which ``isalnum`` tells without running the regex (chunking calls this per word)."""
    return 1 if word.isalnum() else len(_TOKEN.findall(word))


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    section: str


def identity(page: PageScraped) -> str:
    p = page.product
    if p is None or not p.name:
        return page.title
    parts = [p.name]
    if p.brand:
        parts.append(f"by {p.brand}")
    if p.category:
        parts.append(f"({p.category})")
    if p.sku:
        parts.append(f"SKU {p.sku}")
    return " ".join(parts)


def offer_lines(p: Product) -> list[str]:
    lines = []
    if p.price is not None:
        lines.append(f"Price: {p.price:,.2f} {p.priceCurrency or ''}".rstrip())
    if p.availability:
        lines.append(f"Availability: {p.availability}")
    for label, value in (("MPN", p.mpn), ("GTIN", p.gtin)):
        if value:
            lines.append(f"{label}: {value}")
    return lines


def chunk_page(page: PageScraped, max_tokens: int = 180) -> list[Chunk]:
    head = identity(page)
    blocks: list[tuple[str, str]] = []  # (section, text)
    p = page.product
    if p is not None:
        facts = offer_lines(p) + [f"{k}: {v}" for k, v in p.specs.items()]
        for group in _windows([(line, count_tokens(line)) for line in facts], max_tokens):
            blocks.append(("Specifications", "\n".join(group)))
    # With structured specs in hand, the markdown's own rendering of the table is a duplicate.
    prose = page.markdown
    if p is not None and p.specs:
        prose = "\n".join(line for line in prose.splitlines() if not line.lstrip().startswith("|"))
    for section, text in _sections(prose):
        for group in _windows(_pieces(text, max_tokens), max_tokens):
            blocks.append((section, " ".join(group)))
    blocks = [(section, text) for section, text in blocks if text.strip()]
    return [
        Chunk(i, f"{head}\n{section}\n{text}" if section else f"{head}\n{text}", section)
        for i, (section, text) in enumerate(blocks)
    ]


def _pieces(text: str, max_tokens: int) -> list[tuple[str, int]]:
    """Sentences with their token counts, any sentence longer than the bound cut into word windows.

    Tokens never span whitespace, so a sentence's count is the sum of its words': only a sentence
    over the bound is walked word by word.
    """
    out: list[tuple[str, int]] = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        total = count_tokens(sentence)
        if total <= max_tokens:
            if sentence:
                out.append((sentence, total))
            continue
        piece: list[str] = []
        n = 0
        for word in sentence.split():
            k = _word_tokens(word)
            if piece and n + k > max_tokens:
                out.append((" ".join(piece), n))
                piece, n = [], 0
            piece.append(word)
            n += k
        if piece:
            out.append((" ".join(piece), n))
    return out


def _windows(lines: list[tuple[str, int]], max_tokens: int) -> list[list[str]]:
    """Consecutive lines (with their token counts) grouped up to ``max_tokens`` a group."""
    groups: list[list[str]] = [[]]
    words = 0
    for line, n in lines:
        if groups[-1] and words + n > max_tokens:
            groups.append([])
            words = 0
        groups[-1].append(line)
        words += n
    return [g for g in groups if g]


def _sections(markdown: str) -> list[tuple[str, str]]:
    path: list[str] = []
    sections: list[tuple[str, str]] = []
    buf: list[str] = []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            sections.append((" > ".join(path), text))
        buf.clear()

    for line in markdown.splitlines():
        m = _HEADING.match(line.strip())
        if m:
            flush()
            level = len(m.group(1))
            del path[level - 1 :]
            path.append(m.group(2).strip())
        else:
            buf.append(line)
    flush()
    return sections
