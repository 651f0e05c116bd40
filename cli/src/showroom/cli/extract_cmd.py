"""``showroom extract PAGE.html --url URL``: run the scraper's extractor on one saved page, offline.

Prints one JSON object, ``{"product": {...}, "markdown": "..."}``.  The product is keyed by schema.org names in a
fixed order (``name``, ``brand``, ``price``, ``priceCurrency``, ``availability``, ``sku``, ``mpn``, ``gtin``,
``description``, ``image``, ``specs``) with ``null`` for every field the page doesn't give, ``specs`` included
(``null``, not ``{}``, when the page has no spec table); ``"product"`` is ``null`` for a page that isn't a product
page.  The extractor is the same one scraper-svc runs; nothing here touches the network or a browser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from showroom.common.events import Product

PRODUCT_KEYS = (
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
)


def product_json(product: Product | None) -> dict[str, Any] | None:
    if product is None:
        return None
    data = product.model_dump()
    out = {key: data.get(key) for key in PRODUCT_KEYS}
    out["specs"] = out["specs"] or None
    return out


def read_page(page: Path) -> str:
    """The page's text, decoded the way a browser would (BOM, then ``<meta charset>``, else UTF-8)."""
    from w3lib.encoding import html_to_unicode

    _, text = html_to_unicode(None, page.read_bytes())
    return text


def extract(
    page: Annotated[Path, typer.Argument(help="A saved HTML page.", show_default=False)],
    url: Annotated[str, typer.Option("--url", help="The URL the page was saved from (resolves relative links).")],
) -> None:
    """Extract the product and the main text of one saved page; print them as JSON."""
    if not page.is_file():
        print(f"showroom extract: no such file: {page}", file=sys.stderr)
        raise typer.Exit(1)
    try:
        html = read_page(page)
    except OSError as exc:
        print(f"showroom extract: cannot read {page}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    # Imported here so the other commands don't pay for the extractor's libraries (about a second).
    from showroom.scraper.extract import extract as extract_page

    result = extract_page(html, url)
    out = {"product": product_json(result.product), "markdown": result.markdown}
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
