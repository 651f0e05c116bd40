"""Sources, citation repair and the extractive answerer."""

from datetime import UTC, datetime

from showroom.common.events import AskRequest, ProductSearchRequest, ProductSummary, SearchHit, SearchRequest
from showroom.rag.answerers import REFUSAL, ExtractiveAnswerer
from showroom.rag.pipeline import answer_question, matching_products
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


async def test_a_comparison_quotes_each_product_from_its_own_page_and_says_which() -> None:
    sources = group_sources(HITS)
    text, snippets = await ExtractiveAnswerer().answer("Which costs less, the NW-8 or the NW-5?", sources)
    assert '"Price: 449.00 USD" [1]' in text and '"Price: 249.00 USD" [2]' in text
    assert text.endswith("has the lower price [2].")
    assert snippets == {1: "Price: 449.00 USD", 2: "Price: 249.00 USD"}


async def test_a_comparison_gives_no_verdict_between_unlike_quotes() -> None:
    sources = group_sources(HITS)
    text, _ = await ExtractiveAnswerer().answer("Compare the woofer size of the NW-8 and the NW-5.", sources)
    assert '"Woofer size: 8 in" [1]' in text and '"Woofer size: 5 in" [2]' in text
    assert "has the" not in text  # no comparative word was asked


async def test_per_product_searches_put_both_compared_pages_among_the_sources() -> None:
    # The question's own search finds only the NW-8; the per-product search brings the NW-5.
    asked: list[str] = []

    async def search(request: SearchRequest) -> list[SearchHit]:
        asked.append(request.query)
        query = request.query.lower()
        if "nw-5" in query and "nw-8" not in query:
            return [h for h in HITS if "nw-5" in h.url]
        return [h for h in HITS if "nw-5" not in h.url]

    request = AskRequest(question="Which costs less, the NW-8 or the NW-5?", brand="northwind")
    answer = await answer_question(request, search, ExtractiveAnswerer())
    assert len(asked) == 3  # the question, then once per product
    assert {c.url for c in answer.citations} == {"http://s/products/nw-8", "http://s/products/nw-5"}
    assert "NW-5 Studio Monitor by Northwind" not in answer.answer  # quotes spec rows, not identity lines
    assert "lower price" in answer.answer


def product(name: str, url: str, category: str, specs: dict[str, str]) -> ProductSummary:
    return ProductSummary(url=url, name=name, brand="Northwind", category=category, specs=specs,
                          content_hash=f"hash-{url}", fetched_at=NOW)  # fmt: skip


CATALOGUE = [
    product("NW-8 Studio Monitor", "http://s/products/nw-8", "Studio Monitors", {"Woofer size": "8 in"}),
    product("NW-5 Studio Monitor", "http://s/products/nw-5", "Studio Monitors", {"Woofer size": "5 in"}),
    product("R-8 Reference Monitor", "http://s/products/r-8", "Studio Monitors", {"Woofer size": "8 in"}),
    product("S-18 Subwoofer", "http://s/products/s-18", "Subwoofers", {"Woofer size": "18 in"}),
    product("H-8 Headphones", "http://s/products/h-8", "Headphones", {"Driver size": "8 in"}),
]


def test_which_products_match_the_named_spec_value_and_category() -> None:
    found = matching_products("Which studio monitors have a woofer size of 8 in?", CATALOGUE)
    assert [(p.name, row) for p, row in found] == [
        ("NW-8 Studio Monitor", "Woofer size: 8 in"),
        ("R-8 Reference Monitor", "Woofer size: 8 in"),
    ]  # not the 18 in subwoofer, not the headphones' 8 in driver
    assert matching_products("Which studio monitors have a woofer size of 10 in?", CATALOGUE) == []


async def test_which_question_is_answered_from_the_product_search_with_each_page_cited() -> None:
    asked: list[ProductSearchRequest] = []

    async def products(request: ProductSearchRequest) -> list[ProductSummary]:
        asked.append(request)
        return CATALOGUE

    async def search(request: SearchRequest) -> list[SearchHit]:
        raise AssertionError("a catalogue question needs no chunk search")

    request = AskRequest(question="Which studio monitors have a woofer size of 8 in?", brand="northwind")
    answer = await answer_question(request, search, ExtractiveAnswerer(), products=products)
    assert asked[0].brand == "northwind"
    assert [c.url for c in answer.citations] == ["http://s/products/nw-8", "http://s/products/r-8"]
    assert [c.snippet for c in answer.citations] == ["Woofer size: 8 in"] * 2
    assert "NW-8 Studio Monitor" in answer.answer and "R-8 Reference Monitor" in answer.answer
