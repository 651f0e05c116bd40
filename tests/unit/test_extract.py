"""The extractor on a page shaped like a real shop's product page."""

from showroom.scraper.extract import extract

PRODUCT_PAGE = """<!doctype html><html><head><title>KRK Rokit 5 G4 | KRK Systems</title>
<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "Product", "name": "Rokit 5 G4",
 "brand": {"@type": "Brand", "name": "KRK"}, "sku": "RP5G4", "mpn": "RP5G4-NA", "gtin13": "0810058950015",
 "description": "Professional studio monitor.", "image": "https://example.com/r5.jpg",
 "offers": {"@type": "Offer", "price": "179.00", "priceCurrency": "USD",
            "availability": "https://schema.org/OutOfStock"}}
</script></head>
<body><nav><a href="/">Home</a> <a href="/monitors?utm_source=nav">Monitors</a></nav>
<main><h1>Rokit 5 G4</h1><p>A 5-inch monitor for small rooms.</p>
<table class="specs"><tr><th>Woofer size</th><td>5 in</td></tr><tr><th>Amplifier power</th><td>55 W</td></tr></table>
<a href="/monitors/rokit-7#reviews">Rokit 7</a></main><footer>© KRK</footer></body></html>"""


def test_product_fields_come_from_json_ld_and_the_spec_table() -> None:
    page = extract(PRODUCT_PAGE, "https://krk.example.com/monitors/rokit-5")
    p = page.product
    assert p is not None
    assert (p.name, p.brand, p.sku, p.mpn, p.gtin) == ("Rokit 5 G4", "KRK", "RP5G4", "RP5G4-NA", "0810058950015")
    assert (p.price, p.priceCurrency, p.availability) == (179.0, "USD", "OutOfStock")
    assert p.specs == {"Woofer size": "5 in", "Amplifier power": "55 W"}


def test_markdown_keeps_main_content_and_drops_navigation() -> None:
    page = extract(PRODUCT_PAGE, "https://krk.example.com/monitors/rokit-5")
    assert page.markdown.startswith("# Rokit 5 G4")
    assert "A 5-inch monitor for small rooms." in page.markdown
    assert "Home" not in page.markdown and "© KRK" not in page.markdown


def test_links_are_absolute_normalised_and_deduplicated() -> None:
    page = extract(PRODUCT_PAGE, "https://krk.example.com/monitors/rokit-5")
    assert page.links == [
        "https://krk.example.com/",
        "https://krk.example.com/monitors",
        "https://krk.example.com/monitors/rokit-7",
    ]


def test_content_hash_ignores_markup_noise_but_not_content() -> None:
    url = "https://krk.example.com/monitors/rokit-5"
    base = extract(PRODUCT_PAGE, url).content_hash
    assert extract(PRODUCT_PAGE.replace("<body>", "<body data-build='123'>"), url).content_hash == base
    assert extract(PRODUCT_PAGE.replace("179.00", "169.00"), url).content_hash != base


def test_a_page_without_structured_data_has_no_product() -> None:
    page = extract("<html><body><main><p>Contact us</p></main></body></html>", "https://x.example/")
    assert page.product is None
    assert page.markdown == "Contact us"
