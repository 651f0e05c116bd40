"""The evaluation set over the demo site: questions with gold pages and gold answers.

Generated deterministically from the demo catalogue (``showroom.demo_site``), plus hand-written
comparison, "which products have X" and unanswerable questions.  Kinds:

* ``spec``   -- one spec value of one product ("What is the weight of the Northwind NW-5 ...?")
* ``price``  -- a product's price
* ``compare`` -- two products (both pages are gold; the answer names the right one)
* ``which``  -- "which products have X" (gold: the products' pages)
* ``faq``    -- support questions (gold: the brand's support page)
* ``unanswerable`` -- nothing on the site answers it; the right answer is a refusal

``pages(base_url)`` builds the ``PageScraped`` events the scraper would emit for the product and
support pages, so the set can be run on an in-process indexer without crawling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from showroom.common.events import PageScraped, Product
from showroom.demo_site.catalog import catalog, products, support_faq

BASE_URL = "http://demo.local"


@dataclass(frozen=True)
class Question:
    kind: str
    question: str
    brand: str | None
    gold_paths: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    """Any one of these strings in the answer makes it correct (empty: a refusal is correct)."""
    meta: dict[str, str] = field(default_factory=dict)


def _spec_questions() -> list[Question]:
    out = []
    for i, p in enumerate(products()):
        if i % 2:  # every other product, rotating through its spec rows
            continue
        key, value = p.specs[(i // 2) % len(p.specs)]
        out.append(Question("spec", f"What is the {key.lower()} of the {p.name}?", p.brand_slug, (p.path,), (value,)))
    return out


def _price_questions() -> list[Question]:
    out = []
    for i, p in enumerate(products()):
        if i % 4 != 1:
            continue
        phrasing = ("How much does the {} cost?", "What is the price of the {}?")[i % 8 == 1]
        out.append(Question("price", phrasing.format(p.name), p.brand_slug, (p.path,), (f"{p.price:,.2f}",)))
    return out


def _compare_questions() -> list[Question]:
    by_model = {p.model: p for p in products()}
    pairs = [("NW-5", "NW-8", "Weight"), ("NW-3", "NW-5", "Amplifier power"), ("PX-4", "PX-6", "Channels")]
    out = []
    for a, b, key in pairs:
        pa, pb = by_model[a], by_model[b]
        out.append(Question("compare", f"Compare the {key.lower()} of the {pa.name} and the {pb.name}.",
                            pa.brand_slug, (pa.path, pb.path), (pa.spec(key) or "", pb.spec(key) or "")))  # fmt: skip
    cheaper = min(pa := by_model["NW-5"], pb := by_model["NW-8"], key=lambda p: p.price)
    out.append(Question("compare", f"Which costs less, the {pa.name} or the {pb.name}?", "northwind",
                        (pa.path, pb.path), (cheaper.model,)))  # fmt: skip
    return out


def _which_questions() -> list[Question]:
    out = []
    for brand, category, key, value in [
        ("northwind", "Studio Monitors", "Woofer size", "8 in"),
        ("cobalt", "Mixers", "Mixer type", "Podcast"),
    ]:
        matching = [p for p in products() if p.brand_slug == brand and p.category == category and p.spec(key) == value]
        if not matching:
            continue
        out.append(Question("which", f"Which {category.lower()} have a {key.lower()} of {value}?", brand,
                            tuple(p.path for p in matching), tuple(p.model for p in matching)))  # fmt: skip
    return out


def _faq_questions() -> list[Question]:
    out = []
    for brand in catalog():
        faq = {e.anchor: e for e in support_faq(brand)}
        path = brand.support_path
        name = brand.short_name
        out += [
            Question("faq", f"How long is the warranty on {name} products?", brand.slug, (path,),
                     (f"{brand.warranty_years}-year",)),
            Question("faq", f"How many days do I have to return a {name} product?", brand.slug, (path,),
                     (f"{brand.return_days} days",)),
            Question("faq", f"What is the {name} support email address?", brand.slug, (path,),
                     (brand.support_email,)),
            Question("faq", f"Which tool updates the firmware of {name} products?", brand.slug, (path,),
                     (brand.firmware_tool,)),
            Question("faq", f"Which regions does {name} ship to?", brand.slug, (path,),
                     (brand.shipping_regions[0],)),
            Question("faq", f"Are in-warranty repairs free at {name}?", brand.slug, (path,), ("free of charge",)),
        ]  # fmt: skip
        assert set(faq) >= {"warranty", "returns", "contact", "firmware", "shipping", "repairs"}
    return out


UNANSWERABLE = [
    ("Does the Northwind NW-8 Studio Monitor support Dolby Atmos decoding?", "northwind"),
    ("What is the price of the Northwind NW-9 Studio Monitor?", "northwind"),
    ("Who is the chief executive of Cobalt?", "cobalt"),
    ("What is the Bluetooth range of the Cobalt MX-8 Analog Mixer?", "cobalt"),
    ("When was Northwind Audio founded?", "northwind"),
    ("What is the battery life of the Cobalt PX-4 Podcast Mixer?", "cobalt"),
    ("Is there a student discount on Northwind headphones?", "northwind"),
    ("What is the stock ticker symbol of Cobalt?", "cobalt"),
    ("Which football club sponsors Northwind?", "northwind"),
    ("What is the boiling point of the Northwind NW-5 Studio Monitor's cabinet paint?", "northwind"),
]


def questions() -> list[Question]:
    unanswerable = [Question("unanswerable", q, b) for q, b in UNANSWERABLE]
    return (_spec_questions() + _price_questions() + _compare_questions() + _which_questions() + _faq_questions()
            + unanswerable)  # fmt: skip


def pages(base_url: str = BASE_URL) -> list[PageScraped]:
    """What the scraper emits for the product and support pages (structured product + markdown)."""
    out = []
    for p in products():
        rows = "\n".join(f"| {k} | {v} |" for k, v in p.specs)
        markdown = f"# {p.name}\n\n{p.description}\n\n## Specifications\n\n| Spec | Value |\n| --- | --- |\n{rows}"
        product = Product(name=p.name, brand=p.brand_name, category=p.category, price=p.price,
                          priceCurrency=p.currency, availability=f"https://schema.org/{p.availability}", sku=p.sku,
                          mpn=p.mpn, gtin=p.gtin13, description=p.description, specs=dict(p.specs))  # fmt: skip
        out.append(_page(base_url, p.brand_slug, p.path, f"{p.name} | {p.brand_name}", markdown, product))
    for brand in catalog():
        faq = "\n\n".join(f"## {e.question}\n\n{e.answer}" for e in support_faq(brand))
        out.append(_page(base_url, brand.slug, brand.support_path, f"Support | {brand.name}", f"# Support\n\n{faq}"))
    return out


def _page(base: str, brand: str, path: str, title: str, markdown: str, product: Product | None = None) -> PageScraped:
    url = base + path
    return PageScraped(crawl_id="eval", brand=brand, url=url, final_url=url, depth=1, status_code=200,
                       fetch_mode="http", content_hash=hashlib.sha256(markdown.encode()).hexdigest()[:32], title=title,
                       markdown=markdown, product=product)  # fmt: skip
