"""Turn a page's HTML into what the index needs: title, main text as markdown, links and product data.

Product data comes from JSON-LD, microdata, RDFa and OpenGraph, then from
heuristics on the visible text (see ``showroom.scraper.product`` for the
precedence and the several-offers rule); the spec table from the page's own
key/value tables, ``<dl>`` lists and ``Key: value`` lists; the main text from
``<main>``/``<article>`` with navigation, cookie banners and other boilerplate
removed, converted to markdown by ``html-to-markdown``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import html_to_markdown
import lxml.html
from lxml.html import HtmlElement

from showroom.common.events import Product
from showroom.scraper.product import extract_product
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
# Elements that are never main content, whatever their tag: consent banners, dialogs, breadcrumbs, tab strips,
# "related products" carousels (their prices would read as this product's).
_NOISE_XPATH = (
    ".//*[@role='navigation' or @role='banner' or @role='contentinfo' or @role='dialog' or @role='alertdialog'"
    " or @role='tablist' or @hidden or @aria-modal='true'"
    " or re:test(concat(@id, ' ', @class),"
    " 'cookie|consent|gdpr|breadcrumb|skip-link|newsletter-popup|related|upsell|cross-?sell|recommendation', 'i')]"
)
# Icon-font glyphs (Material Icons, Font Awesome…) live in the Private Use Area and mean nothing as text.
_ICON_GLYPHS = re.compile("[\ue000-\uf8ff]")
_MAIN_XPATHS = ("//main", "//article", "//*[@role='main']", "//*[@id='content']", "//body")
_KEY_VALUE = re.compile(r"^([^:\uff1a]{1,40}?)\s*[:\uff1a]\s*(\S.{0,200})$")


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
    main = _main_element(doc)
    specs = _spec_tables(main) if main is not None else {}
    try:
        product = extract_product(html, doc, url, specs)
    except Exception:  # one odd page must not fail the crawl: keep its text, lose its product data
        log.exception("product extraction failed on %s", url)
        product = None
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
    """A cleaned copy of the page's main content element (``doc`` itself is left whole)."""
    for xp in _MAIN_XPATHS:
        found = doc.xpath(xp)
        if found:
            main = copy.deepcopy(found[0])
            main.tail = None
            bad = main.xpath(" | ".join(f".//{t}" for t in _BOILERPLATE if t != "header"))
            total = len(main.text_content())
            # A class name matched on a wrapper must not take the page's content with it.
            bad += [
                el
                for el in main.xpath(_NOISE_XPATH, namespaces={"re": "http://exslt.org/regular-expressions"})
                if not el.xpath(".//h1") and len(el.text_content()) <= total / 2
            ]
            # A <header> inside the main content is that content's own header (often holding the <h1>): keep it.
            bad += [h for h in main.xpath(".//header") if main.tag == "body" or not h.xpath(".//h1")]
            for el in bad:
                if el.getparent() is not None:
                    el.drop_tree()
            return main
    return None


_MARKDOWN_OPTIONS = html_to_markdown.ConversionOptions(
    heading_style="atx",
    bullets="*+-",
    strip_tags=["a", "img"],  # their text stays; link targets and images mean nothing to the index
    compact_tables=True,  # no padding to align columns: it would be tokens in every chunk of a spec table
    extract_metadata=False,  # the title and product data come from our own extraction
    preprocessing=html_to_markdown.PreprocessingOptions(enabled=False),  # _main_element does the cleaning
)


def _markdown(main: HtmlElement) -> str:
    """The main element as markdown.  html-to-markdown (Rust) converts a guide page in ~0.1 ms, where
    markdownify took ~1 ms (with bs4's parse of the same HTML), most of a static page's extraction."""
    source = _ICON_GLYPHS.sub("", lxml.html.tostring(main, encoding="unicode"))
    md = html_to_markdown.convert(source, _MARKDOWN_OPTIONS).content
    md = re.sub(r"[ \t]+\n", "\n", md)
    md = re.sub(r"(?m)^ (?=\S)", "", md)  # a stray space left where an inline icon was
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def _spec_tables(main: HtmlElement) -> dict[str, str]:
    """Key/value rows of two-column tables (``<th>key</th><td>value</td>`` or two ``<td>``; header rows of two
    ``<th>`` are skipped), ``<dl>`` lists, and ``<ul>``/``<ol>`` lists whose every item reads ``Key: value``."""
    specs: dict[str, str] = {}
    for row in main.xpath(".//table//tr"):
        cells = [" ".join(c.text_content().split()) for c in row.xpath("./th|./td")]
        if row.xpath("./td") and len(cells) == 2 and cells[0] and cells[1] and len(cells[0]) <= 80:
            specs.setdefault(cells[0].rstrip(":\uff1a").strip(), cells[1])
    for dl in main.xpath(".//dl"):
        for dt in dl.xpath("./dt"):
            dd = dt.getnext()
            if dd is not None and dd.tag == "dd":
                key, value = (
                    " ".join(dt.text_content().split()),
                    " ".join(dd.text_content().split()),
                )
                if key and value:
                    specs.setdefault(key.rstrip(":\uff1a").strip(), value)
    for lst in main.xpath(".//ul | .//ol"):
        items = [" ".join(li.text_content().split()) for li in lst.xpath("./li")]
        pairs = [m.groups() for text in items if (m := _KEY_VALUE.match(text)) and "://" not in text]
        if len(items) >= 2 and len(pairs) == len(items):
            for key, value in pairs:
                specs.setdefault(key.strip(), value.strip())
    return specs
