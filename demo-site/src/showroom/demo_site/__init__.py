"""Deterministic demo brand websites (Northwind Audio, Cobalt Instruments).

Used by the embedded runner and by tests as a crawl target with a known answer:
:func:`allowed_paths` is exactly what a robots-respecting crawl from ``/`` must
fetch, and :func:`products` / :func:`support_faq` hold the facts the site shows.

The crawler lab under ``/lab/`` (linked from nowhere else) holds one scenario
per crawler behaviour: redirects, tracking duplicates, flaky and broken pages,
a calendar trap, static and JavaScript article sections, off-site links,
hostile pages, request counting and changeable prices.  :func:`lab_paths`
maps it; :mod:`showroom.demo_site.lab` documents each scenario.
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
from showroom.demo_site.lab import (
    DEFAULT_STATIC_PAGES,
    LabPaths,
    js_article_paths,
    lab_paths,
    static_article_paths,
)
from showroom.demo_site.lab_pages import LabArticle, lab_article
from showroom.demo_site.server import create_app, main, serve

__all__ = [
    "AVAILABILITY_LABELS",
    "CURRENCY",
    "DEFAULT_STATIC_PAGES",
    "INTERNAL_PAGES",
    "PAGE_SIZE",
    "Brand",
    "Category",
    "FaqEntry",
    "InternalPage",
    "LabArticle",
    "LabPaths",
    "Product",
    "allowed_paths",
    "catalog",
    "category_page",
    "category_products",
    "create_app",
    "disallowed_paths",
    "get_brand",
    "get_product",
    "js_article_paths",
    "lab_article",
    "lab_paths",
    "main",
    "products",
    "related_products",
    "serve",
    "static_article_paths",
    "support_faq",
]
