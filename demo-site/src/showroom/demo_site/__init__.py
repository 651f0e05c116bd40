"""Deterministic demo brand websites (Northwind Audio, Cobalt Instruments).

Used by the embedded runner and by tests as a crawl target with a known answer:
:func:`allowed_paths` is exactly what a robots-respecting crawl from ``/`` must
fetch, and :func:`products` / :func:`support_faq` hold the facts the site shows.
"""

from showroom.demo_site.catalog import (
    AVAILABILITY_LABELS,
    CURRENCY,
    INTERNAL_PAGES,
    PAGE_SIZE,
    Brand,
    Category,
    FaqEntry,
    InternalPage,
    Product,
    allowed_paths,
    catalog,
    category_page,
    category_products,
    disallowed_paths,
    get_brand,
    get_product,
    products,
    related_products,
    support_faq,
)
from showroom.demo_site.server import create_app, main, serve

__all__ = [
    "AVAILABILITY_LABELS",
    "CURRENCY",
    "INTERNAL_PAGES",
    "PAGE_SIZE",
    "Brand",
    "Category",
    "FaqEntry",
    "InternalPage",
    "Product",
    "allowed_paths",
    "catalog",
    "category_page",
    "category_products",
    "create_app",
    "disallowed_paths",
    "get_brand",
    "get_product",
    "main",
    "products",
    "related_products",
    "serve",
    "support_faq",
]
