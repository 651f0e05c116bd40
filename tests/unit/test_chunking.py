from showroom.common.events import PageScraped, Product
from showroom.indexer.chunking import chunk_page


def _page(markdown: str, product: Product | None = None) -> PageScraped:
    return PageScraped(
        crawl_id="c1", brand="krk", url="https://x/p", final_url="https://x/p", depth=1, status_code=200,
        fetch_mode="browser", content_hash="h", title="Rokit 5 | KRK", markdown=markdown, product=product,
    )  # fmt: skip


def test_every_chunk_of_a_product_page_names_the_product() -> None:
    product = Product(name="Rokit 5 G4", brand="KRK", category="Studio Monitors", sku="RP5G4", price=179.0,
                      priceCurrency="USD", availability="InStock", specs={"Woofer size": "5 in"})  # fmt: skip
    prose = "# Rokit 5 G4\n\n" + "word " * 500 + "\n\n## Warranty\n\nThree years."
    chunks = chunk_page(_page(prose, product), max_tokens=120)
    assert len(chunks) >= 5
    assert all(c.text.startswith("Rokit 5 G4 by KRK (Studio Monitors) SKU RP5G4") for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_spec_table_becomes_key_value_lines_kept_together() -> None:
    specs = {f"Spec {i}": f"value {i}" for i in range(12)}
    product = Product(name="Mixer", price=999.0, priceCurrency="USD", specs=specs)
    markdown = "| Spec 0 | value 0 |\n| --- | --- |\n\nA mixer."
    chunks = chunk_page(_page(markdown, product))
    spec_chunk = chunks[0]
    assert spec_chunk.section == "Specifications"
    assert "Price: 999.00 USD" in spec_chunk.text
    assert all(f"Spec {i}: value {i}" in spec_chunk.text for i in range(12))
    # The markdown rendering of the same table is not indexed a second time.
    assert not any("| Spec 0 |" in c.text for c in chunks)


def test_heading_path_is_kept() -> None:
    chunks = chunk_page(_page("# Support\n\n## Warranty\n\nTwo years.\n\n## Returns\n\n30 days."))
    assert [(c.section, c.text.splitlines()[-1]) for c in chunks] == [
        ("Support > Warranty", "Two years."),
        ("Support > Returns", "30 days."),
    ]
