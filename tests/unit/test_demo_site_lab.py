"""Tests for the demo site's crawler lab (``/lab/...``, :mod:`showroom.demo_site.lab`).

Each scenario's HTTP behaviour is checked against the running server, with
the request counts of ``/lab/_stats`` where "how many times" is the point.
The brand sections' ground truth (link walk, sitemap index) is checked in
``test_demo_site.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from lxml import html as lhtml

from showroom.demo_site import (
    DEFAULT_STATIC_PAGES,
    create_app,
    get_product,
    js_article_paths,
    lab_article,
    lab_paths,
    products,
    serve,
    static_article_paths,
)
from showroom.demo_site._caching import etag_of

N = 12  # static section size for this module's server (the default, 200, is checked separately)
LAB = lab_paths()


@pytest_asyncio.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    async with serve(static_pages=N) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, Mapping[str, str]]:
    async with http.get(url, allow_redirects=False, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers


async def _stats(http: aiohttp.ClientSession, site: str, prefix: str = "") -> dict[str, int]:
    async with http.get(f"{site}{LAB.stats}", params={"prefix": prefix} if prefix else None) as resp:
        assert resp.status == 200
        return await resp.json()


async def _reset(http: aiohttp.ClientSession, site: str) -> None:
    async with http.post(site + LAB.reset) as resp:
        assert resp.status == 200


def _links(page_url: str, body: str) -> list[str]:
    """Every ``<a href>`` resolved against the page, fragment kept."""
    return [urljoin(page_url, href) for href in lhtml.fromstring(body).xpath("//a/@href")]


def _host_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")


_TRACKING = {"utm_source", "utm_medium", "utm_campaign", "gclid", "fbclid", "msclkid", "_ga", "ref", "sessionid"}


def _canonical(path: str) -> str:
    """A minimal normaliser: no fragment, no tracking parameters, query sorted."""
    url, _ = urldefrag(path)
    parts = urlsplit(url)
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if k not in _TRACKING)
    return parts.path + (f"?{urlencode(query)}" if query else "")


# -- ground truth -----------------------------------------------------------------------


def test_lab_ground_truth_helpers() -> None:
    assert static_article_paths(3) == ["/lab/static/articles/1", "/lab/static/articles/2", "/lab/static/articles/3"]
    assert js_article_paths(2) == ["/lab/js/articles/1", "/lab/js/articles/2"]
    assert len(static_article_paths()) == DEFAULT_STATIC_PAGES == 200
    assert LAB.flaky_429_url("a b") == "/lab/flaky/429?key=a%20b"
    assert LAB.calendar_url("2026-11", 5) == "/lab/calendar?month=2026-11&day=5"
    # The tracking page's seventeen links collapse to its four targets, and only them.
    assert len(LAB.tracking_links) == 17
    assert sorted({_canonical(link) for link in LAB.tracking_links}) == list(LAB.tracking_targets)
    assert not any(path.startswith("/lab/_") for path in LAB.index_links)
    # Generated articles: deterministic, distinct, real-looking.
    assert lab_article(7) == lab_article.__wrapped__(7)
    assert len({lab_article(i).title for i in range(1, 201)}) == 200
    words = " ".join(lab_article(1).text_blocks()).split()
    assert len(words) > 200
    with pytest.raises(ValueError):
        create_app(static_pages=-1)


# -- index, tracking, redirects ------------------------------------------------------------


async def test_index_links_the_safe_scenarios(site: str, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, site + LAB.index)
    assert status == 200
    assert [_host_path(u) for u in _links(site + LAB.index, body)] == list(LAB.index_links)
    for hostile in (LAB.huge, LAB.never_finishes, LAB.slow_drip, LAB.js_loop, LAB.popup, LAB.binary):
        assert not any(link.startswith(hostile) for link in LAB.index_links)
    status, body, _ = await _get(http, site + LAB.hostile_index)
    assert status == 200
    linked = {urlsplit(u).path for u in _links(site + LAB.hostile_index, body)}
    assert linked == {LAB.huge, LAB.binary, LAB.never_finishes, LAB.slow_drip, LAB.js_loop, LAB.popup,
                      LAB.redirect_loop[0], LAB.malformed}  # fmt: skip


async def test_tracking_duplicates_resolve_to_four_pages(site: str, http: aiohttp.ClientSession) -> None:
    page = site + LAB.tracking
    status, body, _ = await _get(http, page)
    assert status == 200
    resolved = _links(page, body)
    assert all(u.startswith(site + "/") for u in resolved)  # relative, root-relative and absolute forms
    # (_host_path on both sides: urljoin drops the empty "?" of one link)
    assert [_host_path(u) for u in resolved] == [_host_path(site + link) for link in LAB.tracking_links]

    await _reset(http, site)
    titles = set()
    for target in LAB.tracking_targets:
        status, body, _ = await _get(http, site + target)
        assert status == 200, target
        titles.add(lhtml.fromstring(body).findtext(".//h1"))
        # Item pages only link back to the tracking page.
        assert {_host_path(u) for u in _links(site + target, body)} == {LAB.tracking}
    assert len(titles) == 4  # real parameters make real differences
    # A normalising crawler's visit looks like this: each target requested once.
    assert await _stats(http, site, "/lab/tracking/item/") == dict.fromkeys(LAB.tracking_targets, 1)
    # Tracking parameters do not change the content.
    _, plain, _ = await _get(http, site + "/lab/tracking/item/3")
    _, tagged, _ = await _get(http, site + "/lab/tracking/item/3?utm_source=x&utm_medium=y&utm_campaign=z")
    assert plain == tagged
    status, _, _ = await _get(http, site + "/lab/tracking/item/2?color=green&size=m")
    assert status == 404


async def test_redirect_chain(site: str, http: aiohttp.ClientSession) -> None:
    for (path, code), (next_path, _) in pairwise(LAB.redirect_chain):
        status, _, headers = await _get(http, site + path)
        assert (status, urljoin(site + path, headers["Location"])) == (code, site + next_path)
    status, body, _ = await _get(http, site + LAB.redirect_final)
    assert status == 200 and "redirect chain" in body

    async with http.get(site + LAB.redirect_start) as resp:
        assert resp.status == 200
        assert str(resp.url) == site + LAB.redirect_final
        assert [r.status for r in resp.history] == [301, 302]


async def test_redirect_loop_and_offsite_redirect(site: str, http: aiohttp.ClientSession) -> None:
    a, b = LAB.redirect_loop
    status, _, headers = await _get(http, site + a)
    assert status == 302 and headers["Location"] == b
    status, _, headers = await _get(http, site + b)
    assert status == 302 and headers["Location"] == a
    with pytest.raises(aiohttp.TooManyRedirects):
        async with http.get(site + a, max_redirects=6):
            pass

    status, _, headers = await _get(http, site + LAB.redirect_offsite)
    assert status == 302 and headers["Location"] == LAB.redirect_offsite_target == "http://example.invalid/"


# -- flaky pages and request counts ---------------------------------------------------------


async def test_429_then_success_with_retry_after(site: str, http: aiohttp.ClientSession) -> None:
    key = uuid.uuid4().hex
    url = site + LAB.flaky_429_url(key)
    status, _, headers = await _get(http, url)
    assert status == 429 and headers["Retry-After"] == "1" == str(LAB.retry_after_s)
    for _ in range(2):
        status, body, _ = await _get(http, url)
        assert status == 200 and "Flaky page" in body
    assert (await _stats(http, site, LAB.flaky_429))[LAB.flaky_429_url(key)] == 3
    # Another key has its own state.
    status, _, _ = await _get(http, site + LAB.flaky_429_url(key + "-other"))
    assert status == 429


async def test_500_twice_then_success(site: str, http: aiohttp.ClientSession) -> None:
    key = uuid.uuid4().hex
    url = site + LAB.flaky_500_url(key)
    assert [(await _get(http, url))[0] for _ in range(4)] == [500, 500, 200, 200]
    assert LAB.flaky_500_failures == 2
    # Reset gives every key fresh state.
    await _reset(http, site)
    assert [(await _get(http, url))[0] for _ in range(3)] == [500, 500, 200]


async def test_broken_missing_and_slow(site: str, http: aiohttp.ClientSession) -> None:
    await _reset(http, site)
    assert [(await _get(http, site + LAB.broken))[0] for _ in range(3)] == [500, 500, 500]
    assert (await _get(http, site + LAB.missing))[0] == 404
    t0 = time.perf_counter()
    status, _, _ = await _get(http, site + LAB.slow + "?ms=200")
    assert status == 200 and time.perf_counter() - t0 >= 0.19
    assert (await _get(http, site + LAB.slow + "?ms=soon"))[0] == 400
    assert await _stats(http, site, "/lab/") == {
        "/lab/broken": 3,
        "/lab/missing": 1,
        "/lab/slow?ms=200": 1,
        "/lab/slow?ms=soon": 1,
    }


async def test_stats_count_every_request_by_exact_target(site: str, http: aiohttp.ClientSession) -> None:
    await _reset(http, site)
    assert await _stats(http, site) == {}
    product = products()[0]
    for _ in range(2):
        await _get(http, site + product.path)
    await _get(http, site + "/northwind/category/studio-monitors?page=2")
    await _get(http, site + "/nope")
    await _get(http, site + "/lab/tracking/item/1#fragment-is-never-sent")
    await _get(http, site + "/lab/tracking/item/1?utm_source=x")
    stats = await _stats(http, site)
    assert stats == {
        product.path: 2,
        "/northwind/category/studio-monitors?page=2": 1,
        "/nope": 1,
        "/lab/tracking/item/1": 1,
        "/lab/tracking/item/1?utm_source=x": 1,
    }  # and the control endpoints are never counted
    assert await _stats(http, site, "/northwind/") == {
        product.path: 2,
        "/northwind/category/studio-monitors?page=2": 1,
    }
    await _reset(http, site)
    assert await _stats(http, site) == {}


# -- calendar trap ------------------------------------------------------------------------------


async def test_calendar_is_an_infinite_trap(site: str, http: aiohttp.ClientSession) -> None:
    url = site + LAB.calendar_url(LAB.calendar_month)
    status, body, _ = await _get(http, url)
    assert status == 200 and "November 2026" in body
    links = {_host_path(u) for u in _links(url, body)}
    days = {LAB.calendar_url("2026-11", d) for d in range(1, 31)}
    assert links == days | {LAB.calendar_url("2026-10"), LAB.calendar_url("2026-12")}

    # Following "next" never runs out.
    seen = set()
    for _ in range(30):
        status, body, _ = await _get(http, url)
        assert status == 200
        seen.add(url)
        (next_href,) = lhtml.fromstring(body).xpath('//a[@rel="next"]/@href')
        url = urljoin(url, next_href)
    assert len(seen) == 30 and url.endswith("month=2029-05")

    day = site + LAB.calendar_url("2026-11", 30)
    status, body, _ = await _get(http, day)
    assert status == 200
    assert {_host_path(u) for u in _links(day, body)} == {
        LAB.calendar_url("2026-11"),
        LAB.calendar_url("2026-11", 29),
        LAB.calendar_url("2026-12", 1),
    }
    for bad in ("2026-13", "26-11", "2026-11&day=31", "2026-11&day=x", "0000-01"):
        assert (await _get(http, f"{site}{LAB.calendar}?month={bad}"))[0] == 404, bad


# -- static section and its JavaScript twin ------------------------------------------------------


async def test_static_section_walk_and_pages(site: str, http: aiohttp.ClientSession) -> None:
    # A crawl scoped to the section fetches exactly the index and the N articles.
    prefix = site + LAB.static_index
    queue, seen = deque([prefix]), {prefix}
    while queue:
        url = queue.popleft()
        status, body, _ = await _get(http, url)
        assert status == 200, url
        for link in _links(url, body):
            link = urldefrag(link)[0]
            if link.startswith(prefix) and link not in seen:
                seen.add(link)
                queue.append(link)
    assert seen == {prefix} | {site + p for p in static_article_paths(N)}

    url = site + static_article_paths(N)[4]
    status, body, headers = await _get(http, url)
    doc = lhtml.fromstring(body)
    assert not doc.xpath("//script")  # no JavaScript needed
    (main,) = doc.xpath("//main")
    text = " ".join(main.text_content().split())
    for block in lab_article(5).text_blocks():
        assert " ".join(block.split()) in text
    assert doc.findtext(".//title") == f"{lab_article(5).title} | Showroom Lab"
    assert {_host_path(u) for u in _links(url, body)} == {
        LAB.static_index,
        "/lab/static/articles/4",
        "/lab/static/articles/6",
    }
    assert headers["ETag"] == etag_of(body.encode())
    assert (await _get(http, url, {"If-None-Match": headers["ETag"]}))[0] == 304
    assert (await _get(http, url, {"If-Modified-Since": headers["Last-Modified"]}))[0] == 304
    last = site + static_article_paths(N)[-1]
    assert "/lab/static/articles/" + str(N + 1) not in (await _get(http, last))[1]
    for bad in (f"/lab/static/articles/{N + 1}", "/lab/static/articles/0", "/lab/static/articles/01"):
        assert (await _get(http, site + bad))[0] == 404


async def test_default_static_section_size() -> None:
    async with serve() as url, aiohttp.ClientSession() as http:
        _, body, _ = await _get(http, url + LAB.static_index)
        assert [_host_path(u) for u in _links(url + LAB.static_index, body)] == static_article_paths()
        assert (await _get(http, url + static_article_paths()[-1]))[0] == 200


async def test_js_twin_needs_the_script(site: str, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, site + LAB.js_index)
    assert status == 200
    assert [_host_path(u) for u in _links(site + LAB.js_index, body)] == js_article_paths(N)

    url = site + js_article_paths(N)[4]
    status, body, headers = await _get(http, url)
    doc = lhtml.fromstring(body)
    (main,) = doc.xpath("//main")
    assert main.get("id") == "article-app" and main.text_content().strip() == ""
    assert lab_article(5).title not in body
    assert doc.xpath("//script/@src") == ["/static/lab.js"]
    assert (await _get(http, url, {"If-None-Match": headers["ETag"]}))[0] == 304

    api = urljoin(url, main.get("data-api"))
    status, raw, headers = await _get(http, api)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    data = json.loads(raw)
    a = lab_article(5)
    assert (data["title"], data["byline"], data["summary"]) == (a.title, a.byline, a.summary)
    assert [(s["heading"], tuple(s["paragraphs"])) for s in data["sections"]] == list(a.sections)
    assert [link["url"] for link in data["links"]] == [LAB.js_index, "/lab/js/articles/4", "/lab/js/articles/6"]
    assert (await _get(http, api, {"If-None-Match": headers["ETag"]}))[0] == 304

    status, script, _ = await _get(http, site + "/static/lab.js")
    assert status == 200 and "article-app" in script


# -- off-site, malformed, injection, hostile --------------------------------------------------------


async def test_offsite_page(site: str, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, site + LAB.offsite)
    assert status == 200
    doc = lhtml.fromstring(body)
    hrefs = doc.xpath("//a/@href")
    assert set(LAB.offsite_links) | set(LAB.non_http_links) | {LAB.offsite_local} == set(hrefs)
    resources = doc.xpath("//img/@src | //script/@src | //link[@rel='stylesheet']/@href | //iframe/@src")
    assert set(LAB.offsite_resources) <= set(resources)
    assert all(urlsplit(u).hostname == "example.invalid" for u in LAB.offsite_resources)
    assert (await _get(http, site + LAB.offsite_local))[0] == 200


async def test_malformed_page_still_yields_its_link(site: str, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, site + LAB.malformed)
    assert status == 200
    links = {_host_path(u) for u in _links(site + LAB.malformed, body)}
    assert links == {LAB.malformed_child}
    assert "readable text" in lhtml.fromstring(body).text_content()
    assert (await _get(http, site + LAB.malformed_child))[0] == 200


async def test_injection_page(site: str, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, site + LAB.injection)
    assert status == 200
    main = lhtml.fromstring(body).xpath("//main")[0].text_content()
    assert LAB.injection_text in main
    assert "$349.00" in main


async def test_hostile_pages(site: str, http: aiohttp.ClientSession) -> None:
    async with http.get(site + LAB.huge + "?mb=0.25") as resp:
        body = await resp.read()
        assert resp.status == 200 and len(body) == 256 * 1024 == int(resp.headers["Content-Length"])
        assert body.startswith(b"<!DOCTYPE html>") and body.endswith(b"</html>\n")
    async with http.get(site + LAB.huge + "?mb=1000") as resp:  # capped; the body is left unread
        assert int(resp.headers["Content-Length"]) == LAB.huge_max_mb * 1024 * 1024
    async with http.get(site + LAB.huge + "?mb=0.25&chunked=1") as resp:
        assert "Content-Length" not in resp.headers and resp.headers["Transfer-Encoding"] == "chunked"
        assert await resp.read() == body

    t0 = time.perf_counter()
    async with http.get(site + LAB.slow_drip + "?s=1") as resp:
        assert "Content-Length" not in resp.headers
        drops = 0
        async for _chunk in resp.content.iter_any():
            drops += 1
    assert 0.9 < time.perf_counter() - t0 < 5 and drops >= 4

    async with http.get(site + LAB.binary) as resp:
        first = await resp.read()
        assert resp.headers["Content-Type"] == "text/html" and len(first) == LAB.binary_bytes
    async with http.get(site + LAB.binary) as resp:
        assert await resp.read() == first
    with pytest.raises(UnicodeDecodeError):
        first.decode("utf-8")

    t0 = time.perf_counter()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(site + LAB.never_finishes + "?s=0.3") as resp:
            assert resp.status == 200
            await resp.read()
    assert 0.25 < time.perf_counter() - t0 < 5

    _, body, _ = await _get(http, site + LAB.js_loop)
    assert "while (true)" in body
    _, body, _ = await _get(http, site + LAB.popup)
    assert f'window.open("{LAB.popup_child}")' in body and LAB.popup_offsite in body
    assert (await _get(http, site + LAB.popup_child))[0] == 200


async def test_server_stops_promptly_with_a_request_in_flight() -> None:
    async with aiohttp.ClientSession() as http:
        async with serve() as url:
            task = asyncio.create_task(_get(http, url + LAB.never_finishes))
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
        assert time.perf_counter() - t0 < 5  # not the 60 s the page would hold
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(task, 5)


# -- changeable content and conditional requests -------------------------------------------------------


def _json_ld(body: str) -> dict[str, Any]:
    (text,) = lhtml.fromstring(body).xpath('//script[@type="application/ld+json"]/text()')
    return json.loads(text)


async def test_conditional_requests_and_price_overlay(site: str, http: aiohttp.ClientSession) -> None:
    await _reset(http, site)
    product = get_product("northwind", "nw-8-studio-monitor")
    assert product is not None
    page, api = site + product.path, site + product.api_path

    status, body, headers = await _get(http, page)
    assert status == 200
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert etag == etag_of(body.encode()) and headers["Cache-Control"] == "no-cache"
    assert modified == "Wed, 01 May 2024 00:00:00 GMT"
    assert (await _get(http, page, {"If-None-Match": etag}))[0] == 304
    assert (await _get(http, page, {"If-None-Match": f'"other", W/{etag}'}))[0] == 304
    assert (await _get(http, page, {"If-Modified-Since": modified}))[0] == 304
    assert (await _get(http, page, {"If-None-Match": '"other"', "If-Modified-Since": modified}))[0] == 200
    status, raw, api_headers = await _get(http, api)
    assert json.loads(raw)["price"] == product.price
    assert (await _get(http, api, {"If-None-Match": api_headers["ETag"]}))[0] == 304

    async with http.post(
        site + LAB.set_price, json={"brand": "northwind", "slug": product.slug, "price": 123.45}
    ) as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "path": product.path,
            "price": 123.45,
            "priceText": "$123.45",
            "availability": product.availability,
        }

    status, body, headers = await _get(http, page, {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    assert _json_ld(body)["offers"]["price"] == "123.45"
    assert (await _get(http, page, {"If-Modified-Since": modified}))[0] == 200
    assert (await _get(http, page, {"If-None-Match": headers["ETag"]}))[0] == 304
    assert (await _get(http, page, {"If-Modified-Since": headers["Last-Modified"]}))[0] == 304
    status, raw, new_api_headers = await _get(http, api, {"If-None-Match": api_headers["ETag"]})
    assert status == 200 and new_api_headers["ETag"] != api_headers["ETag"]
    assert (json.loads(raw)["price"], json.loads(raw)["priceText"]) == (123.45, "$123.45")
    # Other products are untouched.
    other = products()[-1]
    _, other_body, _ = await _get(http, site + other.path)
    assert _json_ld(other_body)["offers"]["price"] == other.schema_price

    await _reset(http, site)
    status, body, headers = await _get(http, page)
    assert headers["ETag"] == etag and _json_ld(body)["offers"]["price"] == product.schema_price


async def test_set_price_rejects_bad_input(site: str, http: aiohttp.ClientSession) -> None:
    cases: list[tuple[Any, int]] = [
        ({"brand": "northwind", "slug": "nope", "price": 10}, 404),
        ({"brand": "northwind", "slug": "nw-8-studio-monitor", "price": -1}, 400),
        ({"brand": "northwind", "slug": "nw-8-studio-monitor", "price": "10"}, 400),
        ({"brand": "northwind", "slug": "nw-8-studio-monitor"}, 400),
        ({"brand": "northwind", "slug": "nw-8-studio-monitor", "availability": "Maybe"}, 400),
        ([1, 2], 400),
    ]
    for payload, expected in cases:
        async with http.post(site + LAB.set_price, json=payload) as resp:
            assert resp.status == expected, payload
    async with http.post(site + LAB.set_price, data=b"not json") as resp:
        assert resp.status == 400
    async with http.post(
        site + LAB.set_price, json={"brand": "cobalt", "slug": products()[-1].slug, "availability": "OutOfStock"}
    ) as resp:
        assert resp.status == 200 and (await resp.json())["availability"] == "OutOfStock"
    await _reset(http, site)
