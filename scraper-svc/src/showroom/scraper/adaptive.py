"""Adaptive fetch: render with Chromium only the pages that need it.

Rendering costs 50-100x a plain HTTP fetch here, and most brand sites mix
static pages (support, guides, listings) with JavaScript-built ones (product
pages).  ``render=auto`` fetches over HTTP first and renders only when the
static HTML is an empty shell — its main content is missing, or its
structured product data names a product the visible text does not.  The
decision is remembered per URL pattern (``host/section/*``), so a site's
product pages are rendered directly after the first one.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import lxml.html

_SHELL_IDS = ("app", "root", "__next", "__nuxt", "svelte")
_MIN_TEXT = 200
_DIGITS = re.compile(r"\d+")


def url_pattern(url: str) -> str:
    """``http://h/northwind/products/nw-8`` -> ``h/northwind/products/*``; numbers in earlier segments too."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2:
        segments = [_DIGITS.sub("N", s) for s in segments[:-1]] + ["*"]
    return f"{parts.netloc}/{'/'.join(segments)}"


def needs_rendering(html: str) -> bool:
    """True when the static HTML does not carry the page's content and a browser must build it."""
    try:
        doc = lxml.html.document_fromstring(html or "<html></html>")
    except (ValueError, lxml.etree.ParserError):
        return False
    has_scripts = bool(doc.xpath("//script[not(@type) or @type='text/javascript' or @type='module' or @src]"))
    if not has_scripts:
        return False
    product_names = _json_ld_product_names(doc)
    for el in doc.xpath("//script|//style|//noscript|//template"):
        el.drop_tree()
    main = (doc.xpath("//main") or doc.xpath("//article") or doc.xpath("//*[@role='main']") or [None])[0]
    for shell_id in _SHELL_IDS:
        node = doc.get_element_by_id(shell_id, None)
        if node is not None and len(" ".join(node.text_content().split())) < 20:
            return True
    text = " ".join((main if main is not None else doc).text_content().split())
    if product_names and not any(name in text for name in product_names):
        return True
    return len(text) < _MIN_TEXT


def _json_ld_product_names(doc: lxml.html.HtmlElement) -> list[str]:
    names = []
    for script in doc.xpath("//script[@type='application/ld+json']"):
        raw = script.text or ""
        if '"Product"' not in raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"].strip())
    return [n for n in names if n]
