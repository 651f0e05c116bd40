"""Product extraction on pages shaped like real shops (``tests/data/shops``), and ``showroom extract``.

Every fixture page asserts the exact product: which source wins for each field is the point of the test.
"""

# The shops write en dashes, multiplication signs and Japanese: the look-alike characters are the data.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from showroom.cli.main import app
from showroom.scraper import product as P
from showroom.scraper.extract import extract

SHOPS = Path(__file__).resolve().parents[1] / "data" / "shops"


def page(name: str, url: str) -> dict[str, Any] | None:
    p = extract((SHOPS / f"{name}.html").read_text(encoding="utf-8"), url).product
    return p.model_dump() if p else None


def product(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(P.FIELDS)
    base["specs"] = {}
    base.update(fields)
    return base


CASES: dict[str, tuple[str, dict[str, Any] | None]] = {
    # Shopify: JSON-LD offers, one per variant.  No variant in the URL: the first in-stock one (White).
    "shopify_variants": (
        "https://shop.example.com/products/arc-studio-monitor-8",
        product(
            name="Arc Studio Monitor 8",
            brand="Arcwave",
            price=679.0,
            priceCurrency="USD",
            availability="InStock",
            sku="ARC8-WHT",
            gtin="741360981241",
            description='8-inch active studio monitor with DSP room correction & a 1" silk-dome tweeter.',
            image="https://shop.example.com/cdn/shop/products/arc8-front.jpg?v=1700000000",
            specs={"Woofer": '8" Kevlar cone', "Tweeter": '1" silk dome', "Amplification": "150 W Class D bi-amp"},
        ),
    ),
    # ProductGroup + hasVariant: group name/brand/description, the first in-stock variant's offer, SKU, GTIN, image.
    "productgroup_variants": (
        "https://tessel.example/t200",
        product(
            name="Tessel T-200 Studio Headphones",
            brand="Tessel",
            price=209.0,
            priceCurrency="EUR",
            availability="InStock",
            sku="T200-SL",
            gtin="4260123450024",
            description="Closed-back studio headphones with detachable cable.",
            image="https://tessel.example/img/t200-silver.jpg",
            specs={"Impedanz": "32 Ω", "Frequenzgang": "10 Hz – 30 kHz"},
        ),
    ),
    # WooCommerce microdata; the brand comes from the visible "Brand: …" meta line; the struck-out £349 is ignored.
    "woocommerce_microdata": (
        "https://brightline.example/product/mx-12/",
        product(
            name="Brightline MX-12 Mixer",
            brand="Brightline",
            price=299.0,
            priceCurrency="GBP",
            availability="InStock",
            sku="BL-MX12",
            description="Compact 12-channel analogue mixer with a built-in USB audio interface.",
            image="https://brightline.example/wp-content/uploads/2023/05/mx12.jpg",
            specs={"Weight": "3.1 kg", "Dimensions": "33 × 28 × 9 cm", "Channels": "12"},
        ),
    ),
    # Magento (Italian store): microdata wins on price (1499, not RDFa's 1399); RDFa fills brand, MPN, GTIN and
    # availability; OpenGraph the image.
    "magento_microdata_rdfa": (
        "https://musica.example/korvo-sx-88.html",
        product(
            name="Korvo SX-88 Stage Piano",
            brand="Korvo",
            price=1499.0,
            priceCurrency="EUR",
            availability="InStock",
            sku="SX88-BK",
            mpn="SX-88",
            gtin="4012345678901",
            description="Pianoforte da palco a 88 tasti pesati, con 256 voci di polifonia.",
            image="https://musica.example/media/catalog/product/cache/1/image/265x265/sx88.jpg",
            specs={"Tasti": "88 pesati", "Polifonia": "256 voci", "Peso": "18,5 kg"},
        ),
    ),
    # OpenGraph only: og:title beats the <h1>; the relative og:image is made absolute; specs from a <dl>.
    "opengraph_only": (
        "https://fieldline.example/products/fl-1",
        product(
            name="Fieldline FL-1 Condenser Microphone",
            brand="Fieldline",
            price=249.0,
            priceCurrency="USD",
            availability="InStock",
            sku="FL1-STD",
            description="Large-diaphragm condenser microphone for vocals and acoustic instruments.",
            image="https://fieldline.example/media/fl1-hero.jpg",
            specs={"Polar pattern": "Cardioid", "Frequency response": "20 Hz – 20 kHz", "Max SPL": "136 dB"},
        ),
    ),
    # No structured data: h1, "£ 99" near the top (not the basket total in the header, not the related £ 129),
    # the "In stock" line, "SKU: …", the meta description and a "Key: value" list.
    "visible_price_only": (
        "https://pedalworks.example/pedals/fuzz-one",
        product(
            name="Fuzz One",
            price=99.0,
            priceCurrency="GBP",
            availability="InStock",
            sku="PW-FZ1",
            description="Hand-built germanium fuzz pedal.",
            specs={"Transistors": "2 × AC128 germanium", "Power": "9 V DC, centre negative", "Bypass": "true bypass"},
        ),
    ),
    # JSON-LD over visible text: OutOfStock (http:// URL), not the button's "Sold out"; numbers for price, SKU and a
    # GTIN-12 whose leading zero a number loses; brand as a plain string; ImageObject.contentUrl.
    "out_of_stock": (
        "https://orvia.example/dr-110",
        product(
            name="Orvia DR-110 Drum Machine",
            brand="Orvia",
            category="Drum Machines",
            price=429.0,
            priceCurrency="USD",
            availability="OutOfStock",
            sku="110020",
            mpn="DR-110",
            gtin="012345678905",
            description="Analogue drum machine with 16-step sequencer.",
            image="https://orvia.example/img/dr110.png",
        ),
    ),
    # "PreOrder" as a bare name, price "1,299.00" as a string, brand as Organization, a list of ImageObjects,
    # a spaced "gtin", HTML in the description.
    "preorder": (
        "https://norwick.example/polymath-61",
        product(
            name="Norwick Polymath 61",
            brand="Norwick Instruments",
            price=1299.0,
            priceCurrency="USD",
            availability="PreOrder",
            sku="NW-PM61",
            gtin="088411234567",
            description="Eight-voice polyphonic synthesizer with 61 keys.",
            image="https://norwick.example/img/pm61-top.jpg",
        ),
    ),
    # German shop: JSON-LD without offers; price "1.299,00 €*" and "Sofort verfügbar" from the page
    # (the struck "UVP 1.499,00 €" list price is skipped).
    "german_shop": (
        "https://musikhaus.example/klangwerk-modul-8",
        product(
            name="Klangwerk Modul 8",
            brand="Klangwerk",
            price=1299.0,
            priceCurrency="EUR",
            availability="InStock",
            sku="KW-M8",
            mpn="M8-2024",
            gtin="4061234567890",
            description="Semi-modularer Analogsynthesizer mit 8 Stimmen.",
            image="https://musikhaus.example/media/kw-m8.jpg",
            specs={"Tasten": "61", "Polyphonie": "8 Stimmen", "Gewicht": "4,2 kg"},
        ),
    ),
    # French shop: @graph with the brand as an @id reference; no availability in JSON-LD, "Rupture de stock" on
    # the page.
    "french_shop": (
        "https://boutique.example/fr/enceintes/42-sonalis-a5.html",
        product(
            name="Enceinte active Sonalis A5",
            brand="Sonalis",
            category="Enceintes de monitoring",
            price=549.0,
            priceCurrency="EUR",
            availability="OutOfStock",
            sku="SON-A5",
            description="Enceinte de monitoring active, 2 x 50 W.",
            image="https://boutique.example/img/p/4/2/42-large_default.jpg",
            specs={"Puissance": "2 x 50 W", "Haut-parleur": "5 pouces", "Poids": "6,1 kg"},
        ),
    ),
    # Japanese shop: OpenGraph without a price; "¥128,000（税込）", "在庫あり", and brand/SKU/GTIN from the spec table
    # (メーカー, 品番, JANコード).
    "japanese_shop": (
        "https://gakki.example/item/sp-880",
        product(
            name="ソノラ ステージピアノ SP-880",
            brand="ソノラ",
            price=128000.0,
            priceCurrency="JPY",
            availability="InStock",
            sku="SP-880",
            gtin="4901234567894",
            description="88鍵ハンマーアクションのステージピアノ。",
            image="https://gakki.example/images/sp880.jpg",
            specs={
                "メーカー": "ソノラ",
                "品番": "SP-880",
                "JANコード": "4901234567894",
                "鍵盤数": "88鍵",
                "重量": "12.5kg",
            },
        ),
    ),
    # Several offers: new before used, USD (the first priced offer's currency) before EUR, then the first in stock:
    # 1149 (not the cheaper in-stock 1129 after it, not the used 799, not the EUR 999, not the sold-out 1099).
    "several_offers": (
        "https://halvard.example/hx-500",
        product(
            name="Halvard HX-500 Tube Amp Head",
            brand="Halvard",
            price=1149.0,
            priceCurrency="USD",
            availability="InStock",
            sku="HX500",
        ),
    ),
    # AggregateOffer without nested offers: lowPrice.
    "aggregate_offer": (
        "https://compare.example/marlow-m7",
        product(
            name="Marlow M7 Electric Guitar",
            brand="Marlow",
            price=899.0,
            priceCurrency="USD",
            availability="InStock",
            mpn="M7-SB",
            image="https://marlow.example/m7.jpg",
        ),
    ),
    # Three JSON-LD blocks: valid, hopeless, and one wrapped in <!-- --> with a // comment, trailing commas, a raw
    # newline inside a string and @graph.  The hopeless one costs only itself.
    "broken_jsonld": (
        "https://quill.example/q2",
        product(
            name="Quill Q-2 Compressor",
            brand="Quill",
            price=649.5,
            priceCurrency="USD",
            availability="LimitedAvailability",
            sku="Q2-500",
            description="Two-channel VCA compressor, 500-series format.",
        ),
    ),
    # A category page: three microdata products, none of them the page's own.
    "category_listing": ("https://shop.example.com/collections/monitors", None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shop_page_product(name: str) -> None:
    url, expected = CASES[name]
    assert page(name, url) == expected


def test_every_fixture_page_has_a_case() -> None:
    assert sorted(p.stem for p in SHOPS.glob("*.html")) == sorted(CASES)


@pytest.mark.parametrize(
    ("variant", "price", "availability", "sku"),
    [
        ("40110000000001", 649.0, "OutOfStock", "ARC8-BLK"),
        ("40110000000003", 1249.0, "InStock", "ARC8-PAIR"),
    ],
)
def test_a_variant_in_the_url_selects_its_offer(variant: str, price: float, availability: str, sku: str) -> None:
    p = page("shopify_variants", f"https://shop.example.com/products/arc-studio-monitor-8?variant={variant}")
    assert p is not None
    assert (p["price"], p["availability"], p["sku"]) == (price, availability, sku)


def test_a_variant_url_selects_the_product_group_variant() -> None:
    p = page("productgroup_variants", "https://tessel.example/t200?color=red")
    assert p is not None
    assert (p["price"], p["availability"], p["sku"], p["gtin"], p["image"]) == (
        219.0,
        "PreOrder",
        "T200-RD",
        "4260123450031",
        "https://tessel.example/img/t200-red.jpg",
    )


# --------------------------------------------------------------------------- the rules, one at a time


def jsonld_page(data: dict[str, Any], head: str = "", body: str = "") -> str:
    return (
        f"<html><head>{head}<script type='application/ld+json'>{json.dumps(data)}</script></head>"
        f"<body><main>{body}</main></body></html>"
    )


def offers_product(offers: Any, **extra: Any) -> dict[str, Any] | None:
    html = jsonld_page({"@context": "https://schema.org", "@type": "Product", "name": "X", "offers": offers, **extra})
    p = extract(html, "https://shop.example/x").product
    return p.model_dump() if p else None


def test_aggregate_offer_with_nested_offers_all_out_of_stock_gives_the_cheapest() -> None:
    p = offers_product(
        {
            "@type": "AggregateOffer",
            "lowPrice": 10,
            "priceCurrency": "EUR",
            "offers": [
                {"@type": "Offer", "price": "120.00", "availability": "https://schema.org/OutOfStock"},
                {"@type": "Offer", "price": "99.90", "availability": "https://schema.org/SoldOut"},
            ],
        }
    )
    assert p is not None
    assert (p["price"], p["priceCurrency"], p["availability"]) == (99.9, "EUR", "SoldOut")


def test_the_opengraph_currency_names_the_main_currency() -> None:
    offers = [
        {"@type": "Offer", "price": 100, "priceCurrency": "USD", "availability": "InStock"},
        {"@type": "Offer", "price": 95, "priceCurrency": "EUR", "availability": "InStock"},
    ]
    html = jsonld_page(
        {"@type": "Product", "name": "X", "offers": offers},
        head='<meta property="product:price:currency" content="EUR">',
    )
    p = extract(html, "https://shop.example/x").product
    assert p is not None and (p.price, p.priceCurrency) == (95.0, "EUR")


def test_price_in_a_price_specification() -> None:
    p = offers_product(
        {
            "@type": "Offer",
            "availability": "https://schema.org/InStock",
            "priceSpecification": [
                {"@type": "UnitPriceSpecification", "priceType": "https://schema.org/ListPrice", "price": 59},
                {"@type": "UnitPriceSpecification", "price": 49, "priceCurrency": "GBP"},
            ],
        }
    )
    assert p is not None and (p["price"], p["priceCurrency"]) == (49.0, "GBP")


@pytest.mark.parametrize(
    ("fields", "gtin"),
    [
        ({"gtin13": "4006381333931", "gtin": "123"}, "4006381333931"),
        ({"gtin12": "012345678905"}, "012345678905"),
        ({"gtin14": 4006381333931}, "04006381333931"),
        ({"gtin8": "9638-5074"}, "96385074"),
        ({"gtin": "https://id.gs1.org/01/04006381333931"}, "04006381333931"),
        ({"isbn": "978-3-16-148410-0"}, "9783161484100"),
    ],
)
def test_gtin_sources(fields: dict[str, Any], gtin: str) -> None:
    p = offers_product(None, **fields)
    assert p is not None and p["gtin"] == gtin


@pytest.mark.parametrize(
    ("brand", "image", "expected"),
    [
        ("KRK", "a.jpg", ("KRK", "https://shop.example/a.jpg")),
        ({"@type": "Brand", "name": "KRK"}, ["/a.jpg", "/b.jpg"], ("KRK", "https://shop.example/a.jpg")),
        ([{"@type": "Organization", "name": "KRK Systems"}], {"@type": "ImageObject", "url": "//cdn.example/a.jpg"},
         ("KRK Systems", "https://cdn.example/a.jpg")),
    ],
)  # fmt: skip
def test_brand_and_image_shapes(brand: Any, image: Any, expected: tuple[str, str]) -> None:
    p = offers_product(None, brand=brand, image=image)
    assert p is not None and (p["brand"], p["image"]) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://schema.org/InStock", "InStock"),
        ("http://schema.org/OutOfStock", "OutOfStock"),
        ("schema:PreOrder", "PreOrder"),
        ("https://schema.org/BackOrder/", "BackOrder"),
        ("Discontinued", "Discontinued"),
        ("in stock", "InStock"),
        ("out of stock", "OutOfStock"),
        ("oos", "OutOfStock"),
        ("pre-order", "PreOrder"),
        ("Sold out", "SoldOut"),
        ("Auf Lager", "InStock"),
        ("Nicht auf Lager", "OutOfStock"),
        ("Derzeit nicht verfügbar", "OutOfStock"),
        ("Jetzt vorbestellen", "PreOrder"),
        ("En stock", "InStock"),
        ("Rupture de stock", "OutOfStock"),
        ("Indisponible", "OutOfStock"),
        ("Disponible", "InStock"),
        ("Agotado", "SoldOut"),
        ("Esaurito", "SoldOut"),
        ("Non disponibile", "OutOfStock"),
        ("在庫あり", "InStock"),
        ("在庫切れ", "OutOfStock"),
        ("予約受付中", "PreOrder"),
        ("Only 3 left in stock", "LimitedAvailability"),
        ("Free shipping", None),
    ],
)
def test_availability_normalisation(value: str, expected: str | None) -> None:
    assert P.availability(value) == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("1.299,00 €", "de", (1299.0, "EUR")),
        ("$1,299.00", "en-US", (1299.0, "USD")),
        ("$1,299.00", "en-CA", (1299.0, "CAD")),
        ("¥128,000", "ja", (128000.0, "JPY")),
        ("128.000円", "ja", (128000.0, "JPY")),
        ("£ 99", "en-GB", (99.0, "GBP")),
        ("CHF 1'299.00", "de-CH", (1299.0, "CHF")),
        ("1 299,00 EUR", "fr", (1299.0, "EUR")),
        ("2 999 kr", "sv", (2999.0, "SEK")),
        ("Gratis", "de", (None, None)),
    ],
)
def test_visible_price_parsing(text: str, lang: str, expected: tuple[float | None, str | None]) -> None:
    assert P._parse_price(text, lang) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(179, 179.0), ("179.00", 179.0), ("1,299.00", 1299.0), ("1.299,00", 1299.0), (0, None)]
)
def test_json_ld_price_strings_and_numbers(value: Any, expected: float | None) -> None:
    assert P.amount(value) == expected


def test_json_ld_block_forms() -> None:
    assert [i["n"] for i in P.parse_json_ld('<![CDATA[{"n": 1}]]>')] == [1]
    assert [i["n"] for i in P.parse_json_ld('{"n": 1}\n{"n": 2}')] == [1, 2]
    assert [i["n"] for i in P.parse_json_ld('[{"n": 1}, {"n": 2},]')] == [1, 2]
    assert [i["n"] for i in P.parse_json_ld('/* seo */ {"n": "a // b"}')] == ["a // b"]
    assert P.parse_json_ld("{not json") == []


def test_a_page_with_a_heading_and_a_price_but_nothing_to_buy_is_not_a_product() -> None:
    html = "<html><body><main><h1>Our 2024 price list</h1><p class='price'>$99</p><p>Read on.</p></main></body></html>"
    assert extract(html, "https://x.example/news").product is None


# --------------------------------------------------------------------------- markdown


def test_markdown_drops_banners_and_related_products_but_keeps_the_articles_header() -> None:
    html = """<html><body>
    <div id="cookie-banner" class="cookie-consent">We use cookies. <button>Accept</button></div>
    <header><a href="/">Shop</a></header>
    <div role="dialog" aria-modal="true">Sign up for our newsletter</div>
    <article><header><h1>Rokit 7</h1><p>Studio monitor</p></header>
      <p><i class="material-icons">\ue14b</i> Out of stock</p>
      <ul role="tablist"><li>Overview</li><li>Specs</li></ul>
      <h2>Specs</h2><table><tr><th>Woofer</th><td>7 in</td></tr></table>
      <section class="related-products"><h2>Related</h2><p>Rokit 5 – $179</p></section>
    </article>
    <script>track()</script><footer>© KRK</footer></body></html>"""
    page = extract(html, "https://krk.example/rokit-7")
    assert page.markdown == (
        "# Rokit 7\n\nStudio monitor\n\nOut of stock\n\n## Specs\n\n| Woofer | 7 in |\n| --- | --- |"
    )


# --------------------------------------------------------------------------- showroom extract

runner = CliRunner()


def test_cli_prints_one_json_object_with_the_product_keys_in_order() -> None:
    result = runner.invoke(
        app, ["extract", str(SHOPS / "german_shop.html"), "--url", "https://musikhaus.example/klangwerk-modul-8"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["product", "markdown"]
    assert list(out["product"]) == [
        "name",
        "brand",
        "price",
        "priceCurrency",
        "availability",
        "sku",
        "mpn",
        "gtin",
        "description",
        "image",
        "specs",
    ]
    assert out["product"]["price"] == 1299.0 and out["product"]["availability"] == "InStock"
    assert out["product"]["specs"] == {"Tasten": "61", "Polyphonie": "8 Stimmen", "Gewicht": "4,2 kg"}
    assert out["markdown"].startswith("# Klangwerk Modul 8\n")


def test_cli_writes_null_for_absent_fields_and_for_a_non_product_page(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extract", str(SHOPS / "several_offers.html"), "--url", "https://halvard.example/x"])
    assert result.exit_code == 0, result.output
    p = json.loads(result.stdout)["product"]
    assert (p["mpn"], p["gtin"], p["image"], p["specs"]) == (None, None, None, None)

    listing = runner.invoke(app, ["extract", str(SHOPS / "category_listing.html"), "--url", "https://x.example/c"])
    assert json.loads(listing.stdout)["product"] is None


def test_cli_reads_the_pages_own_charset(tmp_path: Path) -> None:
    html = (SHOPS / "japanese_shop.html").read_text(encoding="utf-8").replace('charset="UTF-8"', 'charset="Shift_JIS"')
    saved = tmp_path / "sp880.html"
    saved.write_bytes(html.encode("shift_jis"))
    result = runner.invoke(app, ["extract", str(saved), "--url", "https://gakki.example/item/sp-880"])
    assert result.exit_code == 0, result.output
    p = json.loads(result.stdout)["product"]
    assert (p["name"], p["price"], p["availability"]) == ("ソノラ ステージピアノ SP-880", 128000.0, "InStock")


def test_cli_missing_file_fails_with_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.html"
    result = runner.invoke(app, ["extract", str(missing), "--url", "https://x.example/"])
    assert result.exit_code != 0
    assert result.stdout == ""
    assert f"no such file: {missing}" in result.stderr


def test_a_lower_source_about_another_product_fills_nothing() -> None:
    html = jsonld_page(
        {"@type": "Product", "name": "Rokit 5 G4", "sku": "RP5G4"},
        body='<h1>Rokit 5 G4</h1><div itemscope itemtype="https://schema.org/Product">'
        '<span itemprop="name">Rokit 7 G4</span><meta itemprop="gtin13" content="0810058950022"></div>',
    )
    p = extract(html, "https://krk.example/rokit-5").product
    assert p is not None and (p.name, p.sku, p.gtin) == ("Rokit 5 G4", "RP5G4", None)


def test_an_empty_product_node_is_no_product() -> None:
    html = jsonld_page({"@type": "Product", "offers": ["x", {"price": None}], "brand": [], "image": {}})
    assert extract(html, "https://x.example/p").product is None
