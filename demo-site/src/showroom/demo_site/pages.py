"""HTML, JSON, XML and SVG bodies for the demo site.

Rendering is kept apart from the aiohttp handlers so every page is a pure
function of the catalogue and the request's base URL (``http://host:port``),
which is only needed where the site must print absolute URLs: robots.txt,
the sitemaps, JSON-LD and the home page's brand links.

Every page shares a header (site and brand navigation) and a footer; the
page's own content is inside ``<main>``.  Product pages ship an empty
``<main id="app">`` that ``/static/app.js`` fills from the product JSON.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from showroom.demo_site.catalog import (
    INTERNAL_PAGES,
    Brand,
    Category,
    InternalPage,
    Product,
    catalog,
    category_page,
    category_products,
    get_brand,
    products,
    related_products,
    support_faq,
)

SITE_NAME = "Showroom Demo Brands"
LASTMOD = "2024-05-01"  # fixed so the sitemap is byte-for-byte deterministic


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _json_for_script(data: Any) -> str:
    # "</" inside a <script> would end the element early.
    return json.dumps(data, ensure_ascii=False, indent=2).replace("</", "<\\/")


def _layout(
    title: str,
    main: str,
    *,
    brand: Brand | None = None,
    head_extra: str = "",
    main_attrs: str = "",
    before_main: str = "",
) -> str:
    brand_nav = ""
    if brand is not None:
        links = "".join(f'<li><a href="{_e(c.path)}">{_e(c.name)}</a></li>' for c in brand.categories)
        brand_nav = (
            f'<nav class="brand-nav" aria-label="{_e(brand.name)}">'
            f'<a class="brand-name" href="{_e(brand.path)}">{_e(brand.name)}</a>'
            f'<ul>{links}<li><a href="{_e(brand.support_path)}">Support</a></li></ul></nav>'
        )
    brands = "".join(f'<li><a href="{_e(b.path)}">{_e(b.name)}</a></li>' for b in catalog())
    support = "".join(f'<li><a href="{_e(b.support_path)}">{_e(b.short_name)} support</a></li>' for b in catalog())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<link rel="stylesheet" href="/static/site.css">
{head_extra}</head>
<body>
<header class="site-header">
<a class="logo" href="/">{SITE_NAME}</a>
<nav class="site-nav" aria-label="Brands"><ul>{brands}</ul></nav>
{brand_nav}
</header>
{before_main}<main{main_attrs}>
{main}
</main>
<footer class="site-footer">
<nav aria-label="Support"><ul>{support}</ul></nav>
<p>Sign up for our newsletter for news, artist stories and exclusive offers.</p>
<p>&copy; 2024 Northwind Audio and Cobalt Instruments. Fictional brands for demonstration.
All prices in US dollars.</p>
</footer>
</body>
</html>
"""


# -- pages --------------------------------------------------------------------


def home(base_url: str) -> str:
    cards = []
    for b in catalog():
        cats = "".join(f'<li><a href="{_e(c.path)}">{_e(c.name)}</a></li>' for c in b.categories)
        # Absolute on purpose: crawlers must treat same-host absolute URLs as in-site.
        cards.append(
            f'<section class="brand-card"><h2><a href="{_e(base_url + b.path)}">'
            f"{_e(b.name)}</a></h2><p>{_e(b.tagline)}</p><ul>{cats}</ul></section>"
        )
    main = (
        f"<h1>{SITE_NAME}</h1>\n<p>Two music-equipment makers, one showroom. "
        "Pick a brand to browse its range.</p>\n" + "\n".join(cards)
    )
    return _layout(SITE_NAME, main)


def brand_home(brand: Brand) -> str:
    cats = "".join(
        f'<li><h3><a href="{_e(c.path)}">{_e(c.name)}</a></h3><p>{_e(c.blurb)}</p>'
        f"<p>{c.product_count} products</p></li>"
        for c in brand.categories
    )
    featured = "".join(
        f'<li><a href="{_e(p.path)}">{_e(p.name)}</a></li>'
        for p in (category_products(brand.slug, c.slug)[0] for c in brand.categories)
    )
    dealer = "".join(
        f'<li><a href="/{brand.slug}/internal/{page.slug}">{_e(page.title)}</a></li>' for page in INTERNAL_PAGES
    )
    main = f"""<h1>{_e(brand.name)}</h1>
<p class="tagline">{_e(brand.tagline)}</p>
<section><h2>Shop by category</h2><ul class="categories">{cats}</ul></section>
<section><h2>Featured</h2><ul class="featured">{featured}</ul></section>
<section><h2>Need help?</h2><p>Warranty, firmware, returns and shipping answers are on the
<a href="{_e(brand.support_path)}">support page</a>.</p></section>
<section class="dealer"><h2>Dealer portal</h2><ul>{dealer}</ul></section>"""
    return _layout(brand.name, main, brand=brand)


def category(brand: Brand, cat: Category, page: int) -> str:
    items = "".join(
        # Relative on purpose: crawlers must resolve hrefs against the page URL.
        f'<li class="product-card"><a href="../products/{_e(p.slug)}">{_e(p.name)}</a>'
        f'<span class="sku">{_e(p.sku)}</span></li>'
        for p in category_page(brand.slug, cat.slug, page)
    )
    pager = []
    if page > 1:
        prev = cat.page_path(1) if page == 2 else f"?page={page - 1}"
        pager.append(f'<a rel="prev" href="{_e(prev)}">Previous</a>')
    for n in range(1, cat.page_count + 1):
        pager.append(
            f'<span aria-current="page">{n}</span>' if n == page else f'<a href="{_e(cat.page_path(n))}">{n}</a>'
        )
    if page < cat.page_count:
        pager.append(f'<a rel="next" href="?page={page + 1}">Next</a>')
    title = cat.name if page == 1 else f"{cat.name} (page {page})"
    main = f"""<nav class="breadcrumb" aria-label="Breadcrumb"><a href="{_e(brand.path)}">{_e(brand.name)}</a> /
{_e(cat.name)}</nav>
<h1>{_e(brand.short_name)} {_e(cat.name)}</h1>
<p>{_e(cat.blurb)} Page {page} of {cat.page_count}.</p>
<ul class="product-list">{items}</ul>
<nav class="pagination" aria-label="Pages">{" ".join(pager)}</nav>"""
    return _layout(f"{title} | {brand.name}", main, brand=brand)


def product_json_ld(product: Product, base_url: str) -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": product.name,
        "brand": {"@type": "Brand", "name": product.brand_name},
        "sku": product.sku,
        "mpn": product.mpn,
        "gtin13": product.gtin13,
        "description": product.description,
        "image": base_url + product.image_path,
        "category": product.category,
        "offers": {
            "@type": "Offer",
            "price": product.schema_price,
            "priceCurrency": product.currency,
            "availability": f"https://schema.org/{product.availability}",
            "url": base_url + product.path,
        },
    }


def product_data(product: Product) -> dict[str, Any]:
    """The JSON the product page's script fetches; every link it renders is in here."""
    brand = get_brand(product.brand_slug)
    assert brand is not None
    return {
        "slug": product.slug,
        "name": product.name,
        "model": product.model,
        "brand": product.brand_name,
        "category": product.category,
        "sku": product.sku,
        "mpn": product.mpn,
        "gtin13": product.gtin13,
        "price": product.price,
        "priceText": product.price_text,
        "currency": product.currency,
        "availability": product.availability,
        "availabilityText": product.availability_text,
        "description": product.description,
        "image": product.image_path,
        "specs": [list(row) for row in product.specs],
        "breadcrumb": [
            {"name": brand.name, "url": brand.path},
            {"name": product.category, "url": product.category_path},
        ],
        "related": [{"name": r.name, "url": r.path} for r in related_products(product)],
    }


def product_shell(product: Product, base_url: str) -> str:
    brand = get_brand(product.brand_slug)
    assert brand is not None
    head = (
        '<script type="application/ld+json">\n'
        f"{_json_for_script(product_json_ld(product, base_url))}\n</script>\n"
        '<script src="/static/app.js" defer></script>\n'
    )
    noscript = '<noscript><p class="noscript">Please enable JavaScript to view this product.</p></noscript>\n'
    return _layout(
        f"{product.name} | {product.brand_name}",
        "",
        brand=brand,
        head_extra=head,
        main_attrs=f' id="app" data-api="{_e(product.api_path)}" data-state="loading"',
        before_main=noscript,
    )


def support(brand: Brand) -> str:
    faq = support_faq(brand)
    toc = "".join(f'<li><a href="#{f.anchor}">{_e(f.question)}</a></li>' for f in faq)
    sections = []
    for f in faq:
        extra = ""
        if f.anchor == "contact":
            tel = "".join(ch for ch in brand.support_phone if ch.isdigit() or ch == "+")
            extra = (
                f'<p><a href="mailto:{_e(brand.support_email)}">Email support</a> · '
                f'<a href="tel:{_e(tel)}">Call support</a></p>'
            )
        sections.append(
            f'<section id="{f.anchor}" class="faq"><h2>{_e(f.question)}</h2><p>{_e(f.answer)}</p>{extra}</section>'
        )
    main = (
        f"<h1>{_e(brand.name)} Support</h1>\n"
        f'<nav class="toc" aria-label="Questions"><ul>{toc}</ul></nav>\n' + "\n".join(sections)
    )
    return _layout(f"Support | {brand.name}", main, brand=brand)


def internal(brand: Brand, page: InternalPage) -> str:
    if page.slug == "dealer-pricing":
        rows = "".join(
            f"<tr><td>{_e(p.name)}</td><td>{_e(p.sku)}</td><td>{_e(p.price_text)}</td>"
            f"<td>${p.price * 0.62:,.2f}</td></tr>"
            for p in (p for c in brand.categories for p in category_products(brand.slug, c.slug))
        )
        body = (
            "<p>Confidential: authorised dealers only. Do not share with customers.</p>"
            "<table><tr><th>Product</th><th>SKU</th><th>MSRP</th><th>Dealer price</th></tr>"
            f"{rows}</table>"
        )
    else:
        items = "".join(f"<li>{_e(name)}: launch pending</li>" for name in brand.unannounced)
        body = f"<p>Confidential: unannounced products.</p><ul>{items}</ul>"
    main = f"<h1>{_e(page.title)}</h1>\n{body}"
    return _layout(
        f"{page.title} | {brand.name}",
        main,
        brand=brand,
        head_extra='<meta name="robots" content="noindex, nofollow">\n',
    )


# -- machine-readable files ---------------------------------------------------


def robots_txt(base_url: str) -> str:
    disallow = "".join(f"Disallow: /{b.slug}/internal/\n" for b in catalog())
    return f"User-agent: *\n{disallow}\nSitemap: {base_url}/sitemap.xml\n"


_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _urlset(base_url: str, paths: list[str]) -> str:
    urls = "".join(
        f"  <url><loc>{xml_escape(base_url + path)}</loc><lastmod>{LASTMOD}</lastmod></url>\n" for path in paths
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{_SITEMAP_NS}">\n{urls}</urlset>\n'


def _sitemapindex(base_url: str, paths: list[str]) -> str:
    maps = "".join(
        f"  <sitemap><loc>{xml_escape(base_url + path)}</loc><lastmod>{LASTMOD}</lastmod></sitemap>\n" for path in paths
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{_SITEMAP_NS}">\n{maps}</sitemapindex>\n'


def sitemaps(base_url: str) -> dict[str, str]:
    """Every sitemap document by path; the page URLs of all their urlsets are exactly :func:`allowed_paths`.

    Two levels of nesting, as large sites do it::

        /sitemap.xml                       index -> the three below
          /sitemaps/northwind.xml          index -> northwind-pages.xml, northwind-products.xml
            /sitemaps/northwind-pages.xml     urlset: brand home, category listings, support
            /sitemaps/northwind-products.xml  urlset: product pages
          /sitemaps/cobalt.xml             (the same for Cobalt)
          /sitemaps/site.xml               urlset: the portal page ``/``

    The lab (``/lab/...``) is deliberately in none of them.
    """
    docs: dict[str, str] = {}
    brands = catalog()
    docs["/sitemap.xml"] = _sitemapindex(base_url, [*(f"/sitemaps/{b.slug}.xml" for b in brands), "/sitemaps/site.xml"])
    for b in brands:
        product_paths = [p.path for p in products() if p.brand_slug == b.slug]
        page_paths = [b.path]
        for cat in b.categories:
            page_paths.extend(cat.page_path(n) for n in range(1, cat.page_count + 1))
        page_paths.append(b.support_path)
        docs[f"/sitemaps/{b.slug}.xml"] = _sitemapindex(
            base_url, [f"/sitemaps/{b.slug}-pages.xml", f"/sitemaps/{b.slug}-products.xml"]
        )
        docs[f"/sitemaps/{b.slug}-pages.xml"] = _urlset(base_url, page_paths)
        docs[f"/sitemaps/{b.slug}-products.xml"] = _urlset(base_url, product_paths)
    docs["/sitemaps/site.xml"] = _urlset(base_url, ["/"])
    return docs


def sitemap_xml(base_url: str) -> str:
    """The root sitemap, ``/sitemap.xml``: an index (see :func:`sitemaps`)."""
    return sitemaps(base_url)["/sitemap.xml"]


_PALETTE = {"northwind": ("#0f3d5e", "#e8f1f8"), "cobalt": ("#1f2a6b", "#eef0fb")}


def product_svg(product: Product) -> str:
    fg, bg = _PALETTE.get(product.brand_slug, ("#333", "#eee"))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480" '
        'viewBox="0 0 640 480">'
        f'<rect width="640" height="480" fill="{bg}"/>'
        f'<rect x="40" y="40" width="560" height="400" rx="24" fill="none" '
        f'stroke="{fg}" stroke-width="6"/>'
        f'<text x="320" y="230" font-family="sans-serif" font-size="64" fill="{fg}" '
        f'text-anchor="middle">{_e(product.model)}</text>'
        f'<text x="320" y="300" font-family="sans-serif" font-size="28" fill="{fg}" '
        f'text-anchor="middle">{_e(product.brand_name)}</text></svg>'
    )
