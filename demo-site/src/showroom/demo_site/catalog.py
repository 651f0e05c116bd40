"""The demo catalogue: brands, products, support answers and the site's link graph.

This module is the ground truth that tests and benchmarks compare Showroom
against.  It is pure data (no aiohttp), deterministic, and derived from the
tables in :mod:`showroom.demo_site._families`.

Site layout (all paths are on one host)::

    /                                        home, links both brands
    /{brand}/                                brand home
    /{brand}/category/{category}             category listing, page 1
    /{brand}/category/{category}?page=N      listing pages 2.. (PAGE_SIZE per page)
    /{brand}/products/{product}              product page (content rendered by JS)
    /{brand}/support                         support / FAQ page
    /{brand}/internal/{page}                 linked, but disallowed by robots.txt
    /{brand}/api/products/{product}.json     data the product page's script fetches
    /{brand}/images/{product}.svg            product image
    /static/app.js, /static/site.css         assets (and /static/lab.js for the lab)
    /robots.txt
    /sitemap.xml                             sitemap index -> /sitemaps/{brand}.xml (itself an
                                             index of {brand}-pages.xml and {brand}-products.xml)
                                             and /sitemaps/site.xml (the portal page)
    /lab/...                                 crawler test scenarios, linked from nothing above;
                                             see :mod:`showroom.demo_site.lab`
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from showroom.demo_site._families import BRANDS, BrandTable, CategoryTable, Model

PAGE_SIZE = 5
"""Products per category listing page (11 products -> 3 pages, 10 -> 2)."""

CURRENCY = "USD"
AVAILABILITY_LABELS = {
    "InStock": "In stock",
    "OutOfStock": "Out of stock",
    "PreOrder": "Available for pre-order",
}


@dataclass(frozen=True)
class Product:
    brand_slug: str
    brand_name: str
    slug: str
    name: str
    category: str
    category_slug: str
    sku: str
    mpn: str
    gtin13: str
    price: float
    currency: str
    availability: str  # "InStock" | "OutOfStock" | "PreOrder"
    description: str
    specs: tuple[tuple[str, str], ...]
    model: str = ""
    """The model code alone, e.g. "NW-8" (the name is "Northwind NW-8 Studio Monitor")."""

    @property
    def path(self) -> str:
        return f"/{self.brand_slug}/products/{self.slug}"

    @property
    def api_path(self) -> str:
        return f"/{self.brand_slug}/api/products/{self.slug}.json"

    @property
    def image_path(self) -> str:
        return f"/{self.brand_slug}/images/{self.slug}.svg"

    @property
    def category_path(self) -> str:
        return f"/{self.brand_slug}/category/{self.category_slug}"

    @property
    def price_text(self) -> str:
        """Price as a shopper sees it, e.g. "$1,299.00"."""
        return f"${self.price:,.2f}"

    @property
    def schema_price(self) -> str:
        """Price as schema.org offers carry it, e.g. "1299.00"."""
        return f"{self.price:.2f}"

    @property
    def availability_text(self) -> str:
        return AVAILABILITY_LABELS[self.availability]

    def spec(self, key: str) -> str | None:
        return dict(self.specs).get(key)


@dataclass(frozen=True)
class Category:
    brand_slug: str
    slug: str
    name: str
    blurb: str
    product_count: int

    @property
    def path(self) -> str:
        return f"/{self.brand_slug}/category/{self.slug}"

    @property
    def page_count(self) -> int:
        return max(1, -(-self.product_count // PAGE_SIZE))

    def page_path(self, page: int) -> str:
        """Canonical path of listing page ``page``: page 1 never carries ``?page=1``."""
        return self.path if page == 1 else f"{self.path}?page={page}"


@dataclass(frozen=True)
class FaqEntry:
    anchor: str
    question: str
    answer: str


@dataclass(frozen=True)
class InternalPage:
    slug: str
    title: str


INTERNAL_PAGES: tuple[InternalPage, ...] = (
    InternalPage("dealer-pricing", "Dealer price list"),
    InternalPage("launch-roadmap", "Launch roadmap"),
)


@dataclass(frozen=True)
class Brand:
    slug: str
    name: str
    short_name: str
    tagline: str
    warranty_years: int
    return_days: int
    firmware_tool: str
    support_email: str
    support_phone: str
    support_hours: str
    shipping_regions: tuple[str, ...]
    categories: tuple[Category, ...]
    unannounced: tuple[str, ...]
    """Products named only on the robots-disallowed roadmap page: an answer that
    mentions one proves the crawler ignored robots.txt."""

    @property
    def path(self) -> str:
        return f"/{self.slug}/"

    @property
    def support_path(self) -> str:
        return f"/{self.slug}/support"

    @property
    def internal_paths(self) -> list[str]:
        return [f"/{self.slug}/internal/{page.slug}" for page in INTERNAL_PAGES]

    def category(self, slug: str) -> Category | None:
        return next((c for c in self.categories if c.slug == slug), None)


# -- derivation ---------------------------------------------------------------


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _gtin13(first12: str) -> str:
    """Append the GS1 check digit (weights 1,3,1,3,... from the left)."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def _product(brand: BrandTable, cat_index: int, cat: CategoryTable, index: int, m: Model) -> Product:
    name = f"{brand.short_name} {m.code} {m.noun}"
    params = m.p
    compact = re.sub(r"[^A-Z0-9]", "", m.code.upper())
    return Product(
        brand_slug=brand.slug,
        brand_name=brand.name,
        slug=_slugify(f"{m.code} {m.noun}"),
        name=name,
        category=cat.name,
        category_slug=cat.slug,
        sku=f"{brand.sku_prefix}-{cat.sku_code}-{index + 1:03d}",
        mpn=f"{compact}-{cat.sku_code}{cat_index + 1}{index + 1:02d}",
        gtin13=_gtin13(f"{brand.gtin_prefix}{cat_index + 1:02d}{index + 1:03d}"),
        price=m.price,
        currency=CURRENCY,
        availability=m.availability,
        description=cat.describe(name, params),
        specs=tuple(cat.specs(params)),
        model=m.code,
    )


_UNANNOUNCED = {
    "northwind": ("Northwind NW-9 Studio Monitor", "Northwind H-700 Studio Headphones"),
    "cobalt": ("Cobalt Prism 24 Polyphonic Synthesizer", "Cobalt DM-64 Digital Mixer"),
}


@cache
def _build() -> tuple[tuple[Brand, ...], tuple[Product, ...]]:
    brands: list[Brand] = []
    items: list[Product] = []
    for bt in BRANDS:
        for ci, ct in enumerate(bt.categories):
            items.extend(_product(bt, ci, ct, i, m) for i, m in enumerate(ct.models))
        brands.append(
            Brand(
                slug=bt.slug,
                name=bt.name,
                short_name=bt.short_name,
                tagline=bt.tagline,
                warranty_years=bt.warranty_years,
                return_days=bt.return_days,
                firmware_tool=bt.firmware_tool,
                support_email=bt.support_email,
                support_phone=bt.support_phone,
                support_hours=bt.support_hours,
                shipping_regions=bt.shipping_regions,
                categories=tuple(Category(bt.slug, ct.slug, ct.name, ct.blurb, len(ct.models)) for ct in bt.categories),
                unannounced=_UNANNOUNCED[bt.slug],
            )
        )
    return tuple(brands), tuple(items)


# -- public API ---------------------------------------------------------------


def catalog() -> list[Brand]:
    """Both brands, Northwind first."""
    return list(_build()[0])


def products() -> list[Product]:
    """Every product, ordered by brand, category, then model (the listing order)."""
    return list(_build()[1])


def get_brand(slug: str) -> Brand | None:
    return next((b for b in _build()[0] if b.slug == slug), None)


def get_product(brand_slug: str, slug: str) -> Product | None:
    return _product_index().get((brand_slug, slug))


@cache
def _product_index() -> dict[tuple[str, str], Product]:
    return {(p.brand_slug, p.slug): p for p in _build()[1]}


def category_products(brand_slug: str, category_slug: str) -> list[Product]:
    return [p for p in _build()[1] if p.brand_slug == brand_slug and p.category_slug == category_slug]


def category_page(brand_slug: str, category_slug: str, page: int) -> list[Product]:
    """Products on listing page ``page`` (1-based); empty when out of range."""
    if page < 1:
        return []
    return category_products(brand_slug, category_slug)[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]


def related_products(product: Product) -> list[Product]:
    """The two products after this one in its category, wrapping around."""
    siblings = category_products(product.brand_slug, product.category_slug)
    # By slug, not equality: the lab's price overlay hands in modified copies.
    i = next(k for k, p in enumerate(siblings) if p.slug == product.slug)
    return [siblings[(i + k) % len(siblings)] for k in (1, 2)]


def support_faq(brand: Brand) -> list[FaqEntry]:
    """The support page's questions and answers, in page order."""
    regions = ", ".join(brand.shipping_regions[:-1]) + f" and {brand.shipping_regions[-1]}"
    return [
        FaqEntry(
            "warranty",
            f"How long is the warranty on {brand.short_name} products?",
            f"Every {brand.name} product carries a {brand.warranty_years}-year limited "
            "warranty from the date of purchase, covering defects in materials and "
            "workmanship. Keep your proof of purchase; the warranty transfers with the "
            "product if you sell it.",
        ),
        FaqEntry(
            "firmware",
            "How do I update the firmware?",
            f"Install {brand.firmware_tool} (macOS 12 or later, Windows 10 or later), connect "
            "the product over USB and choose Check for Updates. Firmware updates are free for "
            "the life of the product and never erase your saved presets.",
        ),
        FaqEntry(
            "returns",
            "What is your returns policy?",
            f"You can return any product bought from our online store within "
            f"{brand.return_days} days of delivery for a full refund, provided it is in "
            "its original packaging with all accessories. Refunds are issued to the "
            "original payment method within 5 business days of the return arriving.",
        ),
        FaqEntry(
            "contact",
            "How do I contact support?",
            f"Email {brand.support_email} or call {brand.support_phone} "
            f"({brand.support_hours}). Please have your product's serial number ready.",
        ),
        FaqEntry(
            "shipping",
            "Which regions do you ship to?",
            f"We ship to {regions}. Orders placed before 14:00 on a business day ship the "
            "same day; standard delivery takes 2 to 5 business days.",
        ),
        FaqEntry(
            "repairs",
            "My product needs a repair. What should I do?",
            "Open a repair ticket by email with your serial number and a description of the "
            "fault. In-warranty repairs, including return shipping, are free of charge.",
        ),
    ]


def allowed_paths() -> list[str]:
    """Every page a robots-respecting breadth-first crawl from ``/`` fetches.

    Exactly the distinct, canonical URLs reachable by following ``<a href>``
    links from ``/`` in the *rendered* DOM (so including the breadcrumb and
    related-product links the product page's script renders), minus those that
    robots.txt disallows.  Paths are host-relative; compare them as a set (the
    order here is brand by brand, not crawl order).

    Included: ``/``; each brand home ``/{brand}/``; every category listing page
    (page 1 as ``/{brand}/category/{c}``, later pages as ``...?page=N``); every
    product page; each brand's ``/support`` page.  Total: 85 paths.

    Not included: the ``/{brand}/internal/...`` pages (linked, but disallowed;
    see :func:`disallowed_paths`); the product JSON under ``/{brand}/api/``,
    product images, ``/static/*`` assets, ``/robots.txt`` and ``/sitemap.xml``
    (fetched by a browser or a crawler, but never the target of an ``<a href>``);
    ``mailto:``/``tel:`` links on the support pages.

    Canonical form: no fragment (support pages link ``#warranty`` and friends to
    themselves), no ``?page=1``.  Some links on the site are relative
    (``../products/x``, ``?page=3``) and the home page links each brand home by
    absolute URL, so a crawler must resolve hrefs against the page URL.
    """
    paths = ["/"]
    for brand in catalog():
        paths.append(brand.path)
        for cat in brand.categories:
            paths.extend(cat.page_path(n) for n in range(1, cat.page_count + 1))
        paths.extend(p.path for p in products() if p.brand_slug == brand.slug)
        paths.append(brand.support_path)
    return paths


def disallowed_paths() -> list[str]:
    """Pages linked from each brand home that robots.txt disallows (4 in all)."""
    return [path for brand in catalog() for path in brand.internal_paths]
