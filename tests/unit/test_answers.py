"""Sources, citation repair and the extractive answerer."""

from datetime import UTC, datetime

from showroom.common.events import SearchHit
from showroom.rag.answerers import REFUSAL, ExtractiveAnswerer
from showroom.rag.sources import citations_for, group_sources, repair_citations

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def hit(url: str, text: str, score: float, chunk: int = 0) -> SearchHit:
    return SearchHit(url=url, title=url.rsplit("/", 1)[-1], brand="northwind", text=text, score=score,
                     chunk_index=chunk, content_hash=f"hash-{url}", fetched_at=NOW)  # fmt: skip


HITS = [
    hit("http://s/products/nw-8", "NW-8 Studio Monitor by Northwind\nSpecifications\nWoofer size: 8 in\n"
        "Amplifier power: 100 W\nPrice: 449.00 USD", 0.71),
    hit("http://s/products/nw-5", "NW-5 Studio Monitor by Northwind\nSpecifications\nWoofer size: 5 in\n"
        "Price: 249.00 USD", 0.55),
    hit("http://s/products/nw-8", "NW-8 Studio Monitor by Northwind\nOverview\nA monitor for mid-size rooms.", 0.5, 1),
    hit("http://s/support", "Support\nWarranty\nEvery Northwind product carries a three-year warranty.", 0.3),
]  # fmt: skip


def test_chunks_of_one_page_become_one_numbered_source() -> None:
    sources = group_sources(HITS)
    assert [(s.n, s.url) for s in sources] == [
        (1, "http://s/products/nw-8"),
        (2, "http://s/products/nw-5"),
        (3, "http://s/support"),
    ]
    assert "A monitor for mid-size rooms." in sources[0].text


def test_invented_and_out_of_range_markers_are_removed() -> None:
    sources = group_sources(HITS)
    text, cited = repair_citations("It has an 8 in woofer [1][7], unlike the NW-5 [2] [0].", sources)
    assert text == "It has an 8 in woofer [1], unlike the NW-5 [2]."
    assert cited == [1, 2]
    citations = citations_for(cited, sources)
    assert [c.url for c in citations] == ["http://s/products/nw-8", "http://s/products/nw-5"]
    assert citations[0].content_hash == "hash-http://s/products/nw-8"


async def test_extractive_answer_quotes_the_spec_row_and_cites_its_page() -> None:
    sources = group_sources(HITS)
    text, snippets = await ExtractiveAnswerer().answer("What is the woofer size of the Northwind NW-8?", sources)
    assert "Woofer size: 8 in" in text and text.endswith("[1]")
    assert "extractive" in text
    assert snippets == {1: "Woofer size: 8 in"}


async def test_extractive_answer_maps_cost_to_price() -> None:
    text, _ = await ExtractiveAnswerer().answer("How much does the NW-5 cost?", group_sources(HITS[1:2]))
    assert "Price: 249.00 USD" in text


async def test_extractive_answerer_refuses_when_nothing_matches() -> None:
    text, snippets = await ExtractiveAnswerer().answer("Does it support Dolby Atmos decoding?", group_sources(HITS))
    assert text == REFUSAL and snippets == {}


def test_an_empty_gemini_key_means_extractive_answers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from showroom.rag.settings import RagSettings

    monkeypatch.setenv("GEMINI_API_KEY", "  ")
    assert RagSettings().gemini_api_key is None
    monkeypatch.setenv("GEMINI_API_KEY", "real-key")
    assert RagSettings().gemini_api_key is not None
