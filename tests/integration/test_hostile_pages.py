"""Hostile pages cannot break the crawler: each fails with a clear reason, within a limit that is a setting.

Real nats-server (the ``nats_url`` fixture), one real scraper process with
Chromium, and the demo site's lab served by this test on 127.0.0.1.  Each
hostile page of ``/lab/hostile/`` is crawled over plain HTTP only
(``render=never``), in the browser only (``always``) and adaptively
(``auto``), and must end as a ``page.failed`` event whose reason names the
limit it hit; broken markup is not an error and must be scraped with its text
and links.  The limits are set small through the scraper's environment so the
test is quick.  Afterwards the same scraper process renders normal pages, its
Chromium is idle (no script left spinning) and no pop-up window is left open.

Also here: the browser's route path of the SSRF guard, with real Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil
import pytest
from aiohttp import web
from nats.aio.client import Client

from showroom.cli.stack import Stack, StackConfig, free_port
from showroom.common.bus import MSG_ID_HEADER
from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlRequested, CrawlSpec, RenderMode, new_id
from showroom.common.topology import Streams, Subjects, ensure_topology
from showroom.demo_site.server import serve
from showroom.scraper.browser import BrowserPool
from showroom.scraper.errors import PermanentFetchError
from showroom.scraper.settings import ScraperSettings
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, normalize_url

pytestmark = pytest.mark.e2e

MAX_BYTES = 256 * 1024
LIMITS = {
    "SHOWROOM_MAX_PAGE_BYTES": str(MAX_BYTES),
    "SHOWROOM_NAV_TIMEOUT_MS": "4000",
    "SHOWROOM_SCRIPT_TIMEOUT_MS": "1500",
    "SHOWROOM_SETTLE_TIMEOUT_MS": "500",
    "SHOWROOM_HTTP_TIMEOUT_S": "2",
    "SHOWROOM_FETCH_TIMEOUT_S": "4",
    "SHOWROOM_MAX_REDIRECTS": "5",
    "SHOWROOM_MAX_ATTEMPTS": "2",
    "SHOWROOM_RETRY_BASE_S": "0.2",
}

# Page -> the reason it must fail with, whatever the render mode (None: scraped).  Every hostile page outlasts
# its limit by far: 1 MiB against 256 KiB, 30 s of body against a 4 s fetch or navigation limit.
FAILS_EVERYWHERE = {
    "/lab/huge?mb=1": "too_large",  # size declared: refused from the headers
    "/lab/huge?mb=1&chunked=1": "too_large",  # size declared nowhere: counted as it arrives (or once loaded)
    "/lab/binary": "binary_content",
    "/lab/never-finishes?s=30": "timeout",
    "/lab/slow-drip?s=30": "timeout",  # each read is quick; only the whole is slow
    "/lab/redirect/loop-a": "redirect_loop",
    "/lab/malformed": None,
}
IN_THE_BROWSER = {
    "/lab/js-loop": "script_timeout",  # `load` never comes: its handler never returns
    "/lab/popup": None,  # scraped; the windows it opens are closed
}
EXPECTED = {
    RenderMode.NEVER: FAILS_EVERYWHERE,
    RenderMode.ALWAYS: FAILS_EVERYWHERE | IN_THE_BROWSER,
    RenderMode.AUTO: FAILS_EVERYWHERE | IN_THE_BROWSER,
}
NORMAL_PAGES = [f"/lab/static/articles/{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    async with serve(static_pages=10) as url:
        yield url


@pytest.fixture(scope="module")
async def scraper(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One scraper process (concurrency 3, with Chromium) on the shared nats-server, with small limits."""
    config = StackConfig(
        root=tmp_path_factory.mktemp("hostile"),
        api_key="unused",
        nats_port=int(nats_url.rsplit(":", 1)[1]),
        ports={"scraper": free_port()},
        with_demo=False,
        scraper_concurrency=3,
        extra_env=LIMITS,
    )
    stack = Stack(config)
    stack.logs.mkdir(parents=True, exist_ok=True)
    stack.start_service("scraper")
    try:
        await stack.wait_service_ready("scraper", timeout=90)
        yield stack
    finally:
        await stack.stop()


async def _crawl(nc: Client, site: str, paths: list[str], render: RenderMode, timeout: float = 120) -> dict[str, Any]:
    """Request a crawl of ``paths`` (depth 0) the way the gateway does; returns each URL's page event by path."""
    run = secrets.token_hex(3)
    brand = f"hostile-{render.value}-{run}"
    # A parameter of its own makes every URL new to this crawl: no earlier crawl's record turns it "unchanged".
    starts = {f"{site}{p}{'&' if '?' in p else '?'}run={run}": p for p in paths}
    urls = {normalize_url(u): p for u, p in starts.items()}
    spec = CrawlSpec(
        brand=brand, start_urls=list(starts), allowed_domains=["127.0.0.1"],
        include=[f"^{re.escape(site)}/lab/"], use_sitemaps=False, max_depth=0, render=render,
        host_concurrency=3, host_delay_ms=0,
    )  # fmt: skip
    event = CrawlRequested(crawl_id=new_id(), spec=spec)
    js = nc.jetstream()
    await ensure_topology(js)
    record = CrawlState(crawl_id=event.crawl_id, brand=brand, spec=spec, trace_id=event.trace_id)
    await (await js.key_value("crawls")).create(event.crawl_id, record.model_dump_json().encode())
    events: dict[str, Any] = {}
    all_in = asyncio.Event()

    async def on_page(msg) -> None:  # type: ignore[no-untyped-def]
        data = json.loads(msg.data) | {"kind": msg.subject.split(".")[1]}
        events[urls[data["url"]]] = data
        if len(events) == len(urls):
            all_in.set()

    sub = await nc.subscribe(f"page.*.{brand}", cb=on_page)
    try:
        await js.publish(
            Subjects.crawl_requested(brand), event.model_dump_json().encode(), stream=Streams.CRAWLS.name,
            headers={MSG_ID_HEADER: event.event_id},
        )  # fmt: skip
        try:
            await asyncio.wait_for(all_in.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"{render.value}: no page event within {timeout} s for {sorted(set(paths) - set(events))}")
    finally:
        await sub.unsubscribe()
    return events


def _outcomes(events: dict[str, Any]) -> dict[str, str | None]:
    return {path: (e["reason"] if e["kind"] == "failed" else None) for path, e in events.items()}


async def _metric(stack: Stack, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{stack.config.ports['scraper']}/metrics")).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _renderer_cpu_s(stack: Stack) -> float:
    """CPU seconds used so far by the scraper's Chromium renderers: where a page's scripts run.  (The browser
    process itself may still be tidying up closed pages for a second or two after a crawl.)"""
    total = 0.0
    for proc in psutil.Process(stack.procs["scraper"].pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "chrom" in proc.name() and "--type=renderer" in proc.cmdline():
                times = proc.cpu_times()
                total += times.user + times.system
    return total


@pytest.mark.parametrize("render", [RenderMode.NEVER, RenderMode.ALWAYS, RenderMode.AUTO])
async def test_each_hostile_page_fails_with_its_reason_within_its_limit(
    render: RenderMode, site: str, scraper: Stack, nc: Client
) -> None:
    expected = EXPECTED[render]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    events = await _crawl(nc, site, list(expected), render)
    took = loop.time() - t0
    assert _outcomes(events) == expected
    # Bounded by the limits: two attempts of at most a 4 s fetch or navigation (plus probe and backoff), in
    # parallel; nothing waited for a 30 s body or a 60 s hold.
    assert took < 25, f"{render.value} crawl took {took:.1f} s"
    for path, reason in expected.items():
        if reason in ("too_large", "binary_content", "redirect_loop"):
            assert events[path]["attempts"] == 1, path  # permanent: never retried
        elif reason in ("timeout", "script_timeout"):
            assert events[path]["attempts"] == 2, path  # retried up to SHOWROOM_MAX_ATTEMPTS
    malformed = events["/lab/malformed"]
    assert malformed["title"] == "Malformed page | Showroom Lab"
    assert "The end of the readable text." in malformed["markdown"]
    assert "a paragraph inside a table" in malformed["markdown"]
    assert malformed["bytes"] < MAX_BYTES
    if "/lab/popup" in events:
        assert "Pop-up page" in events["/lab/popup"]["markdown"]


async def test_the_scraper_keeps_rendering_after_hostile_pages(site: str, scraper: Stack, nc: Client) -> None:
    """Runs after the hostile crawls (module order): the same process, browser and page pool still work."""
    events = await _crawl(nc, site, [*NORMAL_PAGES, "/lab/popup"], RenderMode.ALWAYS, timeout=60)
    assert all(e["kind"] == "scraped" and e["fetch_mode"] == "browser" for e in events.values())
    assert scraper.procs["scraper"].poll() is None
    # No renderer is left running a script: Chromium is idle between crawls.
    before = _renderer_cpu_s(scraper)
    await asyncio.sleep(2)
    assert _renderer_cpu_s(scraper) - before < 0.5


# -- the SSRF guard on the browser's route path ------------------------------------------------------------


class Bait:
    """A page on 127.0.0.1 (allow-listed) that points the browser at loopback in other spellings.

    Every request that reaches this server is recorded, so a request the
    guard should have refused shows up here whatever Chromium did with it.
    """

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.dialled: list[str] = []
        """The address each request arrived at (the bait listens on two), its path, and its method unless GET."""
        self.port = 0

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.hits.append(f"{request.host}{request.path_qs}")
            assert request.transport is not None
            method = "" if request.method == "GET" else f" {request.method}"
            self.dialled.append(f"{request.transport.get_extra_info('sockname')[0]}{request.path_qs}{method}")
            port = self.port
            if request.path == "/redirect-to-localhost":
                raise web.HTTPFound(f"http://localhost:{port}/secret")
            if request.path == "/redirect-to-subdomain":
                raise web.HTTPFound(f"http://admin.localhost:{port}/secret")
            if request.path == "/redirect-to-ipv6":
                raise web.HTTPFound(f"http://[::ffff:127.0.0.2]:{port}/secret")
            if request.path == "/hop":  # in scope and allowed: followed, and its own redirect checked in turn
                raise web.HTTPFound(f"http://127.0.0.1:{port}/redirect-to-localhost")
            if request.path == "/script-redirect":
                raise web.HTTPFound(f"http://localhost:{port}/secret-script-redirect")
            if request.path == "/escape":
                rules = {
                    "prefetch": [{"source": "list", "urls": [f"http://127.0.0.1:{port}/secret-prefetch"]}],
                    "prerender": [{"source": "list", "urls": [f"http://127.0.0.1:{port}/secret-prerender"]}],
                }
                body = f"""<!DOCTYPE html><html><head><title>escape</title>
<script type="speculationrules">{json.dumps(rules)}</script></head>
<body><main><h1>Escape</h1><p>Requests from places a page's own target does not cover.</p>
<iframe src="http://127.0.0.3:{port}/frame"></iframe>
<script>window.open("http://127.0.0.1:{port}/secret-popup");
try {{ new SharedWorker("/shared-worker.js"); }} catch (e) {{}}
new Worker("/worker.js");
fetch("/script-ran");</script></main></body></html>"""
                return web.Response(text=body, content_type="text/html")
            if request.path == "/frame":  # a cross-site frame, in scope and allowed; its image is not
                body = f'<p>frame</p><img src="http://localhost:{port}/secret-from-frame">'
                return web.Response(text=body, content_type="text/html")
            if request.path == "/worker.js":
                body = f'fetch("http://localhost:{port}/secret-from-worker").catch(() => {{}});'
                return web.Response(text=body, content_type="text/javascript")
            if request.path == "/page":
                body = f"""<!DOCTYPE html><html><head><title>bait</title>
<script src="http://localhost:{port}/secret-script"></script>
<script src="/script-redirect"></script></head>
<body><main><h1>Bait</h1><p>Sub-resources in loopback spellings.</p>
<img src="http://127.0.0.2:{port}/secret-img"><iframe src="http://foo.localhost:{port}/secret-frame"></iframe>
<script>fetch("http://localhost:{port}/secret-xhr").catch(() => {{}});
new WebSocket("ws://127.0.0.1:{port}/secret-ws");</script></main></body></html>"""
                return web.Response(text=body, content_type="text/html")
            if request.path == "/dom":  # rewrites its DOM and, like Prototype.js, Array.from
                body = """<!DOCTYPE html><html><head><title>dom</title></head>
<body><main><h1>Dom</h1><a href="/one">one</a><a href="two?x=1#top">two</a>
<svg><a href="/svg-link"><text>svg</text></a></svg>
<script>Array.from = function (items) { return [].slice.call(items); };
const a = document.createElement("a"); a.href = "/added"; a.textContent = "added by a script";
document.querySelector("main").append(a);</script></main></body></html>"""
                return web.Response(text=body, content_type="text/html")
            if request.path == "/rebound-hop":  # a redirect fetched for the browser: Chromium follows it
                raise web.HTTPFound("/rebound")
            if request.path == "/rebound":  # asked for by name: must reach the address the guard checked
                body = """<!DOCTYPE html><html><head><title>rebound</title><script src="/rebound.js"></script></head>
<body><main><h1>Rebound</h1><p id="xhr">pending</p></main></body></html>"""
                return web.Response(text=body, content_type="text/html", headers={"ETag": '"r1"'})
            if request.path == "/rebound.js":
                body = """fetch("/rebound-xhr").then(r => r.text()).then(t => { xhr.textContent = t; });
fetch(`http://api.test:${location.port}/rebound-api`, {headers: {"x-test": "1"}})
  .then(r => r.text()).then(t => { document.title = t; });"""
                return web.Response(text=body, content_type="text/javascript")
            if request.path == "/rebound-xhr":
                return web.Response(text="xhr from the checked address", content_type="text/plain")
            if request.path == "/rebound-api":  # another site, asked with a header that needs a CORS preflight
                cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "x-test"}
                return web.Response(text="api from the checked address", headers=cors)
            return web.Response(text="<p>secret</p>", content_type="text/html")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture(scope="module")
async def bait() -> AsyncIterator[Bait]:
    bait = Bait()
    runner = web.AppRunner(bait.app())
    await runner.setup()
    bait.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", bait.port).start()
    await web.TCPSite(runner, "127.0.0.3", bait.port).start()  # another site: its frames are cross-site
    try:
        yield bait
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[BrowserPool]:
    pool = BrowserPool(
        executable_path="/usr/bin/chromium", size=1, user_agent="test", guard=SsrfGuard(["127.0.0.1", "127.0.0.3"]),
        nav_timeout_ms=5000, settle_timeout_ms=500,
    )  # fmt: skip
    await pool.start()
    yield pool
    await pool.stop()


# The scope admits every spelling, so only the SSRF guard stands between the page and loopback.
BAIT_SCOPE = Scope(("127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost", "[::ffff:7f00:2]"))


@pytest.mark.parametrize(
    "chain",
    [["/redirect-to-localhost"], ["/redirect-to-subdomain"], ["/redirect-to-ipv6"], ["/hop", "/redirect-to-localhost"]],
)
async def test_a_browser_redirect_into_loopback_is_refused_before_it_is_followed(
    chain: list[str], bait: Bait, pool: BrowserPool
) -> None:
    """Each redirect hop is paused as a request of its own and checked before Chromium follows it."""
    bait.hits.clear()
    with pytest.raises(PermanentFetchError) as err:
        await pool.render(f"http://127.0.0.1:{bait.port}{chain[0]}", BAIT_SCOPE)
    assert err.value.reason == "ssrf_refused"
    assert bait.hits == [f"127.0.0.1:{bait.port}{path}" for path in chain]


async def test_sub_resources_in_loopback_spellings_and_websockets_never_leave_the_browser(
    bait: Bait, pool: BrowserPool
) -> None:
    bait.hits.clear()
    rendered = await pool.render(f"http://127.0.0.1:{bait.port}/page", BAIT_SCOPE)
    assert "Bait" in rendered.html
    # The page itself, and the same-origin script whose redirect into localhost was refused.
    assert bait.hits == [f"127.0.0.1:{bait.port}/page", f"127.0.0.1:{bait.port}/script-redirect"]


async def test_nothing_a_page_starts_outside_its_own_target_gets_past_the_guard(bait: Bait, pool: BrowserPool) -> None:
    """The guard is one DevTools session per page: a cross-site frame must render in the page's process, a
    pop-up must never open, shared workers must not exist and speculation rules must not preload, or their
    requests would go out unchecked (the prefetch and prerender URLs are in scope and allowed: only turning
    preloading off keeps the browser from fetching them)."""
    bait.hits.clear()
    rendered = await pool.render(f"http://127.0.0.1:{bait.port}/escape", BAIT_SCOPE)
    assert "Escape" in rendered.html
    origin = f"127.0.0.1:{bait.port}"
    assert sorted(bait.hits) == sorted(
        [f"{origin}/escape", f"127.0.0.3:{bait.port}/frame", f"{origin}/worker.js", f"{origin}/script-ran"]
    )  # the page's script ran; no secret-*, no pop-up, no shared worker script


async def test_the_rendered_dom_is_read_with_its_doctype_and_its_links_absolute(bait: Bait, pool: BrowserPool) -> None:
    """One script reads the HTML and the links, in the page's own world: a page that replaced a global the way
    old libraries do still gives all its links.  An SVG link's ``href`` is not a URL string and is left out."""
    rendered = await pool.render(f"http://127.0.0.1:{bait.port}/dom", BAIT_SCOPE)
    assert rendered.html.startswith("<!DOCTYPE html><html><head><title>dom</title>")
    assert "added by a script</a>" in rendered.html
    origin = f"http://127.0.0.1:{bait.port}"
    assert rendered.links == [f"{origin}/one", f"{origin}/two?x=1#top", f"{origin}/added"]


def test_the_limits_set_here_are_scraper_settings() -> None:
    """The limits the test sets are the scraper's own settings (a renamed setting would silently not apply)."""
    fields = set(ScraperSettings.model_fields)
    assert {k.removeprefix("SHOWROOM_").lower() for k in LIMITS} <= fields


class RebindingDns:
    """The guard's DNS: each name gives its answers in turn, then keeps its last one (a rebinding name
    answers public to the check, private to the connection)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers

    async def __call__(self, host: str) -> list[str]:
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
async def rebinding_pool() -> AsyncIterator[BrowserPool]:
    """Chromium resolves the test names to 127.0.0.3 (its own DNS, rebound); the guard's DNS says otherwise."""
    checked = [["127.0.0.1"]]
    dns = RebindingDns({"shop.test": checked, "api.test": checked, "rebinder.test": [["93.184.216.34"], ["127.0.0.3"]]})
    chromium_dns = ", ".join(f"MAP {name} 127.0.0.3" for name in ("shop.test", "api.test", "rebinder.test"))
    pool = BrowserPool(
        executable_path="/usr/bin/chromium", size=1, user_agent="test", nav_timeout_ms=5000, settle_timeout_ms=500,
        guard=SsrfGuard(["127.0.0.1"], resolver=dns),
        chromium_args=[f"--host-resolver-rules={chromium_dns}"],
    )  # fmt: skip
    await pool.start()
    yield pool
    await pool.stop()


async def test_plain_http_by_name_reaches_the_address_the_guard_checked_not_the_browsers_dns(
    bait: Bait, rebinding_pool: BrowserPool
) -> None:
    """A redirect, the page it leads to, the page's script, the script's XHR and its cross-site request (CORS
    preflight included) are fetched by the scraper from the checked address (127.0.0.1), never by Chromium
    from where its own DNS points (127.0.0.3)."""
    bait.dialled.clear()
    scope = Scope(("shop.test", "api.test"))
    rendered = await rebinding_pool.render(f"http://shop.test:{bait.port}/rebound-hop", scope)
    assert "xhr from the checked address" in rendered.html  # the script ran and its XHR came back
    assert "<title>api from the checked address</title>" in rendered.html  # and so did the cross-site one
    assert rendered.final_url == f"http://shop.test:{bait.port}/rebound" and rendered.etag == '"r1"'
    paths = ["rebound-hop", "rebound", "rebound.js", "rebound-xhr", "rebound-api OPTIONS", "rebound-api"]
    assert sorted(bait.dialled) == sorted(f"127.0.0.1/{path}" for path in paths)


async def test_a_name_rebound_to_a_private_address_after_its_check_is_refused_before_connecting(
    bait: Bait, rebinding_pool: BrowserPool
) -> None:
    bait.dialled.clear()
    with pytest.raises(PermanentFetchError) as err:
        await rebinding_pool.render(f"http://rebinder.test:{bait.port}/secret", Scope(("rebinder.test",)))
    assert err.value.reason == "ssrf_refused" and "127.0.0.3" in err.value.detail
    assert bait.dialled == []  # neither the scraper nor Chromium connected anywhere
