"""Tests for the bundled demo brand site (``showroom.demo_site``).

The most important one is ``test_link_walk_matches_allowed_paths``: it crawls
the running server and checks that ``allowed_paths()``, the ground truth other
crawl tests compare against, really is what a robots-respecting crawl finds.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator
from itertools import combinations
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from lxml import etree
from lxml import html as lhtml
from protego import Protego

from showroom.demo_site import (
    allowed_paths,
    catalog,
    disallowed_paths,
    get_product,
    products,
    related_products,
    serve,
    support_faq,
)


@pytest_asyncio.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    async with serve() as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, url
        return await resp.json()


def _host_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- catalogue ------------------------------------------------------------------


def _fingerprint_in_subprocess(hash_seed: str) -> str:
    code = (
        "import hashlib; from showroom.demo_site import products, allowed_paths;"
        "from showroom.demo_site.pages import sitemaps, product_data;"
        "blob = repr(products()) + repr(allowed_paths()) + repr(sitemaps('http://h'))"
        " + repr([product_data(p) for p in products()]);"
        "print(hashlib.sha256(blob.encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_catalog_is_deterministic() -> None:
    assert products() == products()
    assert catalog() == catalog()
    # Rebuilding from scratch (bypassing the cache) gives equal data ...
    # (the package re-exports a *function* named catalog, hence import_module)
    catalog_module = importlib.import_module("showroom.demo_site.catalog")
    assert catalog_module._build.__wrapped__() == catalog_module._build()
    # ... and so do fresh interpreters with different hash seeds.
    assert _fingerprint_in_subprocess("1") == _fingerprint_in_subprocess("2")


def test_catalog_shape() -> None:
    items = products()
    brands = {b.slug: b for b in catalog()}
    assert set(brands) == {"northwind", "cobalt"}
    assert brands["northwind"].warranty_years != brands["cobalt"].warranty_years
    for slug in brands:
        assert sum(p.brand_slug == slug for p in items) >= 30
    for field in ("sku", "mpn", "gtin13", "name", "path"):
        values = [getattr(p, field) for p in items]
        assert len(values) == len(set(values)), field
    for p in items:
        digits = [int(d) for d in p.gtin13]
        assert len(digits) == 13
        assert sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0
        assert 149 <= p.price <= 2499
        assert p.currency == "USD"
        assert p.availability in {"InStock", "OutOfStock", "PreOrder"}
        assert len(p.specs) >= 7 and p.description
        assert get_product(p.brand_slug, p.slug) is p
    availability = [p.availability for p in items]
    assert availability.count("InStock") > len(items) * 0.75
    assert availability.count("OutOfStock") >= 2 and availability.count("PreOrder") >= 2
    assert len({p.price for p in items}) > 25


def test_spec_values_vary_and_models_are_unambiguous() -> None:
    items = products()
    for a, b in combinations(items, 2):
        if a.category_slug == b.category_slug and a.brand_slug == b.brand_slug:
            sa, sb = dict(a.specs), dict(b.specs)
            assert len(set(sa) & set(sb)) >= 6
            differing = sum(sa.get(k) != sb.get(k) for k in set(sa) | set(sb))
            assert differing >= 2, (a.name, b.name)
        if a.brand_slug == b.brand_slug:
            # "the Northwind NW-8" must name one product, not also "NW-8 Pro" etc.
            assert f" {a.model} " not in f" {b.name} "
            assert f" {b.model} " not in f" {a.name} "
    nw8 = next(p for p in items if p.model == "NW-8")
    assert nw8.spec("Woofer size") == "8 in"
    assert next(p for p in items if p.model == "NW-5").spec("Amplifier power") == "55 W"


def test_support_answers_differ_per_brand() -> None:
    northwind, cobalt = catalog()
    nw = {f.anchor: f.answer for f in support_faq(northwind)}
    cb = {f.anchor: f.answer for f in support_faq(cobalt)}
    assert "3-year" in nw["warranty"] and "2-year" in cb["warranty"]
    assert set(nw) == set(cb) >= {"warranty", "firmware", "returns", "contact", "shipping"}


def test_allowed_paths_shape() -> None:
    paths = allowed_paths()
    assert len(paths) == len(set(paths)) == 85
    assert not any("#" in p or p.endswith("?page=1") for p in paths)
    assert set(p.path for p in products()) <= set(paths)
    assert not set(disallowed_paths()) & set(paths)
    assert len(disallowed_paths()) == 4


# -- server ---------------------------------------------------------------------


async def test_product_page_is_a_js_shell_with_json_ld(site: str, http: aiohttp.ClientSession) -> None:
    product = next(p for p in products() if p.model == "R-8")
    status, body = await _get(http, site + product.path)
    assert status == 200
    doc = lhtml.fromstring(body)
    main = doc.xpath("//main")
    assert len(main) == 1
    assert main[0].get("id") == "app"
    assert main[0].text_content().strip() == ""
    assert product.name not in main[0].text_content()
    body_text = "".join(doc.xpath("//body//text()[not(ancestor::script)]"))
    assert product.name not in body_text and product.price_text not in body_text
    assert doc.findtext(".//title") == f"{product.name} | {product.brand_name}"

    (ld_text,) = doc.xpath('//head/script[@type="application/ld+json"]/text()')
    ld = json.loads(ld_text)
    assert ld["@type"] == "Product"
    assert ld["name"] == product.name
    assert ld["brand"] == {"@type": "Brand", "name": "Northwind Audio"}
    assert (ld["sku"], ld["mpn"], ld["gtin13"]) == (product.sku, product.mpn, product.gtin13)
    assert ld["offers"]["price"] == "1599.00"
    assert ld["offers"]["priceCurrency"] == "USD"
    assert ld["offers"]["availability"] == f"https://schema.org/{product.availability}"
    assert ld["offers"]["url"] == site + product.path
    assert ld["image"].startswith(site + "/")

    status, _ = await _get(http, ld["image"])
    assert status == 200


async def test_product_api_carries_the_rendered_content(site: str, http: aiohttp.ClientSession) -> None:
    product = next(p for p in products() if p.model == "Prism 6")
    data = await _get_json(http, site + product.api_path)
    assert data["name"] == product.name
    assert data["priceText"] == "$1,199.00"
    assert data["specs"] == [list(row) for row in product.specs]
    assert [r["url"] for r in data["related"]] == [r.path for r in related_products(product)]
    assert data["breadcrumb"][-1]["url"] == product.category_path


async def test_static_assets_served(site: str, http: aiohttp.ClientSession) -> None:
    for path in ("/static/app.js", "/static/site.css"):
        status, body = await _get(http, site + path)
        assert status == 200 and body


async def test_robots_txt(site: str, http: aiohttp.ClientSession) -> None:
    status, body = await _get(http, site + "/robots.txt")
    assert status == 200
    robots = Protego.parse(body)
    assert list(robots.sitemaps) == [f"{site}/sitemap.xml"]
    for path in disallowed_paths():
        assert not robots.can_fetch(site + path, "ShowroomBot")
    for path in allowed_paths():
        assert robots.can_fetch(site + path, "ShowroomBot"), path


_SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


async def _read_sitemaps(http: aiohttp.ClientSession, url: str, depth: int = 0) -> tuple[list[str], list[str]]:
    """(page URLs of every nested urlset, every sitemap document fetched), following indexes recursively."""
    assert depth <= 3, "sitemap nesting too deep"
    status, body = await _get(http, url)
    assert status == 200, url
    root = etree.fromstring(body.encode())
    if root.tag == f"{_SM}sitemapindex":
        pages, docs = [], [url]
        for loc in root.iterfind(f"{_SM}sitemap/{_SM}loc"):
            sub_pages, sub_docs = await _read_sitemaps(http, loc.text or "", depth + 1)
            pages += sub_pages
            docs += sub_docs
        return pages, docs
    assert root.tag == f"{_SM}urlset", url
    return [loc.text or "" for loc in root.iterfind(f"{_SM}url/{_SM}loc")], [url]


async def test_sitemap_index_lists_exactly_the_allowed_pages(site: str, http: aiohttp.ClientSession) -> None:
    _, root_body = await _get(http, site + "/sitemap.xml")
    root = etree.fromstring(root_body.encode())
    assert root.tag == f"{_SM}sitemapindex"
    assert [loc.text for loc in root.iterfind(f"{_SM}sitemap/{_SM}loc")] == [
        f"{site}/sitemaps/northwind.xml",
        f"{site}/sitemaps/cobalt.xml",
        f"{site}/sitemaps/site.xml",
    ]
    _, brand_body = await _get(http, site + "/sitemaps/northwind.xml")
    assert etree.fromstring(brand_body.encode()).tag == f"{_SM}sitemapindex"  # a second level of nesting

    pages, docs = await _read_sitemaps(http, site + "/sitemap.xml")
    assert len(pages) == len(set(pages))
    assert set(pages) == {site + p for p in allowed_paths()}
    assert len(docs) == 8  # root, per brand: index + pages + products, and the portal's
    assert not any("/lab/" in p for p in pages)
    status, _ = await _get(http, site + "/sitemaps/nope.xml")
    assert status == 404


async def test_internal_pages_exist_but_are_disallowed(site: str, http: aiohttp.ClientSession) -> None:
    for path in disallowed_paths():
        status, body = await _get(http, site + path)
        assert status == 200 and "Confidential" in body
    _, roadmap = await _get(http, site + "/cobalt/internal/launch-roadmap")
    assert catalog()[1].unannounced[0] in roadmap


async def test_support_page(site: str, http: aiohttp.ClientSession) -> None:
    status, body = await _get(http, site + "/northwind/support")
    assert status == 200
    main_text = lhtml.fromstring(body).xpath("//main")[0].text_content()
    assert "3-year limited warranty" in main_text
    assert "Northwind Control" in main_text


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/northwind",
        "/acme/",
        "/northwind/category/mixers",
        "/northwind/category/studio-monitors?page=0",
        "/northwind/category/studio-monitors?page=4",
        "/northwind/category/studio-monitors?page=two",
        "/northwind/products/dm-16-digital-mixer",
        "/cobalt/products/does-not-exist",
        "/cobalt/api/products/does-not-exist.json",
        "/cobalt/internal/secret",
        "/static/missing.js",
    ],
)
async def test_unknown_paths_404(site: str, http: aiohttp.ClientSession, path: str) -> None:
    status, _ = await _get(http, site + path)
    assert status == 404


async def _walk(http: aiohttp.ClientSession, site: str) -> tuple[set[str], set[str]]:
    """Breadth-first crawl from ``/`` that honours robots.txt.

    Follows every ``<a href>`` in the served HTML plus the links a product
    page's script renders (its JSON's breadcrumb and related products).
    Returns (fetched paths, linked-but-disallowed paths).
    """
    _, robots_txt = await _get(http, site + "/robots.txt")
    robots = Protego.parse(robots_txt)
    host = urlsplit(site).netloc
    seen = {"/"}
    queue = deque(["/"])
    fetched: set[str] = set()
    blocked: set[str] = set()
    while queue:
        path = queue.popleft()
        page_url = site + path
        status, body = await _get(http, page_url)
        assert status == 200, path
        fetched.add(path)
        doc = lhtml.fromstring(body)
        hrefs: list[str] = list(doc.xpath("//a/@href"))
        for api in doc.xpath('//main[@id="app"]/@data-api'):
            data = await _get_json(http, urljoin(page_url, api))
            hrefs += [link["url"] for link in data["breadcrumb"] + data["related"]]
        for href in hrefs:
            url, _fragment = urldefrag(urljoin(page_url, href))
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.netloc != host:
                continue
            target = _host_path(url)
            if target in seen:
                continue
            seen.add(target)
            if robots.can_fetch(url, "ShowroomBot"):
                queue.append(target)
            else:
                blocked.add(target)
    return fetched, blocked


async def test_link_walk_matches_allowed_paths(site: str, http: aiohttp.ClientSession) -> None:
    fetched, blocked = await _walk(http, site)
    assert fetched == set(allowed_paths())
    assert blocked == set(disallowed_paths())
