"""aiohttp application serving the demo brand sites on one host.

``create_app()`` builds the application; ``serve()`` runs it on a free
loopback port for tests and the embedded runner; ``main()`` is the
``python -m showroom.demo_site`` entry point.  URL layout is documented in
:mod:`showroom.demo_site.catalog`, the crawler lab (``/lab/...``, request
counts, the price overlay) in :mod:`showroom.demo_site.lab`.

Product pages and product JSON carry ``ETag``/``Last-Modified`` and answer
conditional requests with ``304`` (see :mod:`showroom.demo_site._caching`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from functools import cache
from importlib.resources import files

from aiohttp import web

from showroom.demo_site import pages
from showroom.demo_site._caching import conditional_response
from showroom.demo_site.catalog import INTERNAL_PAGES, Brand, Product, get_brand, get_product
from showroom.demo_site.lab import DEFAULT_STATIC_PAGES, LAB_STATE, add_lab

_HTML = "text/html"


def _base_url(request: web.Request) -> str:
    # Built from the Host header so robots.txt and the sitemap name whatever
    # address the client actually used (port 0 means it is only known now).
    return f"{request.scheme}://{request.host}"


def _brand(request: web.Request) -> Brand:
    brand = get_brand(request.match_info["brand"])
    if brand is None:
        raise web.HTTPNotFound()
    return brand


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type=_HTML, charset="utf-8")


@cache
def _asset(name: str) -> str:
    return files("showroom.demo_site").joinpath("static", name).read_text(encoding="utf-8")


async def _home(request: web.Request) -> web.Response:
    return _html(pages.home(_base_url(request)))


async def _brand_home(request: web.Request) -> web.Response:
    return _html(pages.brand_home(_brand(request)))


async def _category(request: web.Request) -> web.Response:
    brand = _brand(request)
    cat = brand.category(request.match_info["category"])
    if cat is None:
        raise web.HTTPNotFound()
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= cat.page_count:
        raise web.HTTPNotFound()
    return _html(pages.category(brand, cat, int(raw)))


def _product_or_404(request: web.Request) -> Product:
    """The product as currently shown: the lab's price overlay applied."""
    product = get_product(_brand(request).slug, request.match_info["product"])
    if product is None:
        raise web.HTTPNotFound()
    return request.app[LAB_STATE].product(product)


async def _product(request: web.Request) -> web.Response:
    product = _product_or_404(request)
    body = pages.product_shell(product, _base_url(request)).encode()
    return conditional_response(request, body, _HTML, request.app[LAB_STATE].last_modified(product))


async def _product_api(request: web.Request) -> web.Response:
    product = _product_or_404(request)
    body = json.dumps(pages.product_data(product)).encode()
    return conditional_response(request, body, "application/json", request.app[LAB_STATE].last_modified(product))


async def _product_image(request: web.Request) -> web.Response:
    return web.Response(text=pages.product_svg(_product_or_404(request)), content_type="image/svg+xml")


async def _support(request: web.Request) -> web.Response:
    return _html(pages.support(_brand(request)))


async def _internal(request: web.Request) -> web.Response:
    brand = _brand(request)
    page = next((p for p in INTERNAL_PAGES if p.slug == request.match_info["page"]), None)
    if page is None:
        raise web.HTTPNotFound()
    return _html(pages.internal(brand, page))


async def _robots(request: web.Request) -> web.Response:
    return web.Response(text=pages.robots_txt(_base_url(request)), content_type="text/plain")


async def _sitemap(request: web.Request) -> web.Response:
    doc = pages.sitemaps(_base_url(request)).get(request.path)
    if doc is None:
        raise web.HTTPNotFound()
    return web.Response(text=doc, content_type="application/xml")


async def _static(request: web.Request) -> web.Response:
    types = {"app.js": "text/javascript", "lab.js": "text/javascript", "site.css": "text/css"}
    name = request.match_info["name"]
    if name not in types:
        raise web.HTTPNotFound()
    return web.Response(text=_asset(name), content_type=types[name])


def create_app(static_pages: int = DEFAULT_STATIC_PAGES) -> web.Application:
    """The whole site; ``static_pages`` sizes the lab's static section (and its JavaScript twin)."""
    app = web.Application()
    add_lab(app, static_pages)  # routes under /lab/, registered before the /{brand}/ patterns
    app.router.add_get("/", _home)
    app.router.add_get("/robots.txt", _robots)
    app.router.add_get("/sitemap.xml", _sitemap)
    app.router.add_get("/sitemaps/{name}.xml", _sitemap)
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/{brand}/", _brand_home)
    app.router.add_get("/{brand}/category/{category}", _category)
    app.router.add_get("/{brand}/products/{product}", _product)
    app.router.add_get("/{brand}/api/products/{product}.json", _product_api)
    app.router.add_get("/{brand}/images/{product}.svg", _product_image)
    app.router.add_get("/{brand}/support", _support)
    app.router.add_get("/{brand}/internal/{page}", _internal)
    return app


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, *, static_pages: int = DEFAULT_STATIC_PAGES
) -> AsyncIterator[str]:
    """Run the site until the block exits; yields its base URL, e.g. ``http://127.0.0.1:41234``."""
    runner = web.AppRunner(create_app(static_pages))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        netloc = f"[{host}]" if ":" in host else host
        yield f"http://{netloc}:{bound_port}"
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m showroom.demo_site", description="Serve the Showroom demo brand sites."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    parser.add_argument(
        "--static-pages",
        type=int,
        default=DEFAULT_STATIC_PAGES,
        help="articles in the lab's static section, /lab/static/ (default %(default)s)",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        async with serve(args.host, args.port, static_pages=args.static_pages) as url:
            print(f"Showroom demo site on {url}/ (Ctrl-C to stop)", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
