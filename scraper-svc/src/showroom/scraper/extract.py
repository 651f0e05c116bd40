"""Turn a page's HTML into what the index needs: title, main text as markdown, links and product data.

Structured data comes from JSON-LD, microdata and OpenGraph (parsed by
``extruct``); the spec table from the page's own key/value tables; the main
text from ``<main>``/``<article>`` with navigation and boilerplate removed,
converted to markdown by ``markdownify``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import extruct
import lxml.html
from lxml.html import HtmlElement
from markdownify import markdownify

from showroom.common.events import Product
from showroom.scraper.urls import normalize_url

log = logging.getLogger(__name__)

_BOILERPLATE = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "nav",
    "header",
    "footer",
    "form",
    "iframe",
)
_MAIN_XPATHS = ("//main", "//article", "//*[@role='main']", "//*[@id='content']", "//body")
_AVAILABILITY = {
    "instock": "InStock",
    "outofstock": "OutOfStock",
    "preorder": "PreOrder",
    "presale": "PreSale",
    "backorder": "BackOrder",
    "discontinued": "Discontinued",
    "soldout": "SoldOut",
    "limitedavailability": "LimitedAvailability",
    "onlineonly": "OnlineOnly",
    "instoreonly": "InStoreOnly",
}


@dataclass
class ExtractedPage:
    title: str
    markdown: str
    links: list[str]
    product: Product | None
    content_hash: str
    specs: dict[str, str] = field(default_factory=dict)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def extract(html: str, url: str, links: list[str] | None = None) -> ExtractedPage:
    """Extract one page.  ``links`` (absolute hrefs from the rendered DOM) override links found in ``html``."""
    doc = _parse(html, url)
    title = _title(doc)
    structured = _structured_data(html, url)
    main = _main_element(doc)
    specs = _spec_tables(main) if main is not None else {}
    product = _product(structured, specs)
    markdown = _markdown(main) if main is not None else ""
    hrefs = links if links is not None else [urljoin(url, a) for a in doc.xpath("//a/@href")]
    normalised = list(dict.fromkeys(n for h in hrefs if (n := normalize_url(h))))
    # The hash covers what we index, not the raw HTML, so cache-busting tokens in markup don't look like changes.
    fingerprint = f"{title}\n{markdown}\n{product.model_dump_json() if product else ''}"
    return ExtractedPage(title, markdown, normalised, product, content_hash(fingerprint), specs)


def _parse(html: str, url: str) -> HtmlElement:
    try:
        doc = lxml.html.document_fromstring(html or "<html></html>", base_url=url)
    except (ValueError, lxml.etree.ParserError):
        doc = lxml.html.document_fromstring("<html></html>")
    return doc


def _title(doc: HtmlElement) -> str:
    for xp in ("//meta[@property='og:title']/@content", "//title/text()", "//h1//text()"):
        found = [t.strip() for t in doc.xpath(xp) if t.strip()]
        if found:
            return found[0]
    return ""


def _main_element(doc: HtmlElement) -> HtmlElement | None:
    for xp in _MAIN_XPATHS:
        found = doc.xpath(xp)
        if found:
            main = found[0]
            for bad in main.xpath(" | ".join(f".//{t}" for t in _BOILERPLATE)):
                bad.drop_tree()
            return main
    return None


def _markdown(main: HtmlElement) -> str:
    md = markdownify(lxml.html.tostring(main, encoding="unicode"), heading_style="ATX", strip=["img", "a"])
    md = re.sub(r"[ \t]+\n", "\n", md)
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def _spec_tables(main: HtmlElement) -> dict[str, str]:
    """Key/value rows of two-column tables (``<th>key</th><td>value</td>`` or two ``<td>``) and ``<dl>`` lists."""
    specs: dict[str, str] = {}
    for row in main.xpath(".//table//tr"):
        cells = [" ".join(c.text_content().split()) for c in row.xpath("./th|./td")]
        if len(cells) == 2 and cells[0] and cells[1] and len(cells[0]) <= 80:
            specs.setdefault(cells[0].rstrip(":"), cells[1])
    for dl in main.xpath(".//dl"):
        for dt in dl.xpath("./dt"):
            dd = dt.getnext()
            if dd is not None and dd.tag == "dd":
                key, value = (
                    " ".join(dt.text_content().split()),
                    " ".join(dd.text_content().split()),
                )
                if key and value:
                    specs.setdefault(key.rstrip(":"), value)
    return specs


def _structured_data(html: str, url: str) -> dict[str, list[dict[str, Any]]]:
    try:
        return extruct.extract(
            html,
            base_url=url,
            syntaxes=["json-ld", "microdata", "opengraph"],
            uniform=True,
            errors="ignore",
        )
    except Exception as exc:  # extruct raises a zoo of parser errors on broken markup
        log.debug("structured data unreadable on %s: %s", url, exc)
        return {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _types(item: dict[str, Any]) -> set[str]:
    return {str(t).rsplit("/", 1)[-1] for t in _as_list(item.get("@type"))}


def _find_products(items: list[Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "Product" in _types(item) or "ProductGroup" in _types(item):
            found.append(item)
        found.extend(_find_products(_as_list(item.get("@graph"))))
    return found


def _text(value: Any) -> str | None:
    for v in _as_list(value):
        if isinstance(v, dict):
            v = v.get("name") or v.get("@id") or v.get("url")
        if v not in (None, ""):
            return str(v).strip()
    return None


def _price(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def _product(structured: dict[str, list[dict[str, Any]]], specs: dict[str, str]) -> Product | None:
    candidates = _find_products(structured.get("json-ld", [])) + _find_products(structured.get("microdata", []))
    if not candidates:
        return None
    item = candidates[0]
    offers = [o for o in _as_list(item.get("offers")) if isinstance(o, dict)]
    offer = offers[0] if offers else {}
    price = _price(offer.get("price") if offer.get("price") is not None else offer.get("lowPrice"))
    availability = _text(offer.get("availability"))
    if availability:
        availability = _AVAILABILITY.get(availability.rsplit("/", 1)[-1].lower(), availability.rsplit("/", 1)[-1])
    extra = {
        str(p.get("name")): str(p.get("value"))
        for p in _as_list(item.get("additionalProperty"))
        if isinstance(p, dict) and p.get("name") and p.get("value") is not None
    }
    return Product(
        name=_text(item.get("name")),
        brand=_text(item.get("brand")),
        category=_text(item.get("category")),
        price=price,
        priceCurrency=_text(offer.get("priceCurrency")),
        availability=availability,
        sku=_text(item.get("sku")),
        mpn=_text(item.get("mpn")),
        gtin=_text(item.get("gtin13") or item.get("gtin") or item.get("gtin12") or item.get("gtin8")),
        description=_text(item.get("description")),
        image=_text(item.get("image")),
        specs={**extra, **specs},
    )
