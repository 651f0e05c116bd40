"""The SSRF guard refuses private and special addresses before any connection is made.

Table-driven: every spelling of a private, loopback, link-local or metadata
address, local names, DNS names that resolve privately, and redirects into
them.  A stub resolver stands in for DNS and records what it was asked; a
transport that fails the test if called proves no connection is attempted.
Nothing here touches the network.  (The browser's route path is exercised
with real Chromium in tests/integration/test_hostile_pages.py.)
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from showroom.scraper.errors import PermanentFetchError
from showroom.scraper.fetching import Fetcher
from showroom.scraper.robots import RobotsCache, read_sitemap_urls
from showroom.scraper.ssrf import GuardedTransport, SsrfGuard
from showroom.scraper.urls import Scope, normalize_url

DNS = {
    "public.example": ["93.184.216.34"],
    "public-v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example": ["10.0.0.5"],
    "corp.example": ["172.20.1.1"],
    "home.example": ["192.168.0.10"],
    "cgnat.example": ["100.64.1.1"],
    "loop.example": ["127.0.0.1"],
    "rebind.example": ["93.184.216.34", "127.0.0.1"],  # one private answer is enough to refuse
    "mixed-v6.example": ["93.184.216.34", "fd12::1"],
    "metadata.example": ["169.254.169.254"],
    "v6-private.example": ["fd00::1"],
    "v6-linklocal.example": ["fe80::1%eth0"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],  # 169.254.169.254 through a NAT64 prefix
}


class StubResolver:
    """DNS from the table above; remembers every name it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host not in DNS:
            raise OSError(f"NXDOMAIN {host}")
        return DNS[host]


class NoNetwork(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a connection was attempted to {request.url}")


# Hosts refused by the address or name alone: the resolver must not even be asked.
LITERALS = [
    # private ranges
    "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1", "100.127.255.254",
    "[fc00::1]", "[fd12:3456::1]",
    # loopback in every spelling a browser accepts
    "127.0.0.1", "127.1", "127.0.1", "127.255.255.254", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001",
    "0x7F.1", "017700000001", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "0",
    "[::]",
    # IPv4 carried in IPv6: NAT64, 6to4, IPv4-compatible
    "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[2002:7f00:1::]", "[2002:a9fe:a9fe::1]", "[::7f00:1]",
    # link-local and cloud metadata
    "169.254.0.1", "169.254.169.254", "0xa9fea9fe", "2852039166", "[fe80::1]", "[fe80::1%25eth0]", "[fd00:ec2::254]",
    "metadata.google.internal", "metadata.google.internal.", "metadata", "instance-data",
    # local names, whatever DNS would say
    "localhost", "localhost.", "LOCALHOST", "LocalHost.", "foo.localhost", "a.b.localhost", "ip6-localhost",
    "ip6-loopback", "printer.local", "router.home.arpa", "db.internal",
    # multicast, broadcast, documentation and benchmark ranges
    "224.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1", "[ff02::1]", "[2001:db8::1]",
]  # fmt: skip

# DNS names whose answers include a private address: asked of the resolver, refused before connecting.
PRIVATE_NAMES = [
    "internal.example", "corp.example", "home.example", "cgnat.example", "loop.example", "rebind.example",
    "mixed-v6.example", "metadata.example", "v6-private.example", "v6-linklocal.example", "nat64.example",
]  # fmt: skip


def _fetcher(http: httpx.AsyncClient, resolver: StubResolver, **kw: object) -> Fetcher:
    return Fetcher(http=http, browser=None, guard=SsrfGuard(resolver=resolver, **kw), hints=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", LITERALS)
async def test_private_and_local_hosts_are_refused_without_dns_or_connection(host: str) -> None:
    url = f"http://{host}/latest/meta-data/"
    normal = normalize_url(url)
    assert normal is not None
    resolver = StubResolver()
    async with httpx.AsyncClient(transport=NoNetwork()) as http:
        with pytest.raises(PermanentFetchError) as err:
            await _fetcher(http, resolver).http_get(normal, Scope((urlsplit(normal).netloc,)))
    assert err.value.reason == "ssrf_refused"
    assert resolver.asked == []


@pytest.mark.parametrize("host", PRIVATE_NAMES)
async def test_names_that_resolve_to_private_addresses_are_refused_before_connecting(host: str) -> None:
    resolver = StubResolver()
    async with httpx.AsyncClient(transport=NoNetwork()) as http:
        with pytest.raises(PermanentFetchError) as err:
            await _fetcher(http, resolver).http_get(f"http://{host}/", Scope((host,)))
    assert err.value.reason == "ssrf_refused"
    assert resolver.asked == [host]


async def test_a_name_that_does_not_resolve_is_a_dns_error_not_a_connection() -> None:
    async with httpx.AsyncClient(transport=NoNetwork()) as http:
        with pytest.raises(PermanentFetchError, match="dns_error"):
            await _fetcher(http, StubResolver()).http_get("http://nowhere.example/", Scope(("nowhere.example",)))


class Recording(httpx.AsyncBaseTransport):
    """Answers public hosts with ``answer(url)``; any other host fails the test."""

    def __init__(self, answer: dict[str, httpx.Response], delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        """How long each answer takes (0: at once, without letting another task run meanwhile)."""
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if str(request.url) not in self.answer:
            raise AssertionError(f"connected to {request.url}")
        return self.answer[str(request.url)]


async def test_public_hosts_pass_and_the_allow_list_overrides() -> None:
    ok = httpx.Response(200, headers={"content-type": "text/html"}, text="<p>hello</p>")
    transport = Recording({"http://public.example/": ok, "http://[2606:2800:220:1:248:1893:25c8:1946]/": ok})
    async with httpx.AsyncClient(transport=transport) as http:
        fetched = await _fetcher(http, StubResolver()).http_get("http://public.example/", Scope(("public.example",)))
        assert fetched.status == 200
        v6 = "[2606:2800:220:1:248:1893:25c8:1946]"
        assert (await _fetcher(http, StubResolver()).http_get(f"http://{v6}/", Scope((v6,)))).html
    await SsrfGuard(resolver=StubResolver()).check("public-v6.example")
    # The explicit allow-list (tests and the embedded demo use 127.0.0.1) wins, in any spelling of that address.
    allowed = SsrfGuard(allow_hosts=["127.0.0.1"], resolver=StubResolver())
    for spelling in ("127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1"):
        await allowed.check(spelling)
    await SsrfGuard(allow_hosts=["[::1]"], resolver=StubResolver()).check("::1")
    # ... but only for what it names.
    with pytest.raises(PermanentFetchError, match="ssrf_refused"):
        await allowed.check("127.0.0.2")
    with pytest.raises(PermanentFetchError, match="ssrf_refused"):
        await allowed.check("localhost")


@pytest.mark.parametrize(
    "target",
    ["http://internal.example/admin", "http://127.0.0.1/", "http://2130706433/", "http://[::ffff:127.0.0.1]/",
     "http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/", "http://localhost./",
     "http://foo.localhost/", "http://rebind.example/", "/relative-is-fine-but-then-private"],
)  # fmt: skip
async def test_a_redirect_into_a_private_address_is_refused_before_following_it(target: str) -> None:
    """Plain-HTTP redirects are followed one hop at a time, each hop checked before its connection."""
    private = "http://10.9.8.7/relative-is-fine-but-then-private"
    answers = {"http://public.example/": httpx.Response(302, headers={"location": target})}
    if target.startswith("/"):  # a same-host hop first, then a second hop into the private network
        answers["http://public.example" + target] = httpx.Response(301, headers={"location": private})
    transport = Recording(answers)
    hosts = ("public.example", "internal.example", "127.0.0.1", "[::ffff:7f00:1]", "169.254.169.254", "localhost",
             "metadata.google.internal", "foo.localhost", "rebind.example", "10.9.8.7")  # fmt: skip
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(PermanentFetchError) as err:
            await _fetcher(http, StubResolver()).http_get("http://public.example/", Scope(hosts))
    assert err.value.reason == "ssrf_refused"
    assert transport.requests == list(answers)


async def test_a_redirect_out_of_scope_is_refused_before_dns() -> None:
    resolver = StubResolver()
    answers = {"http://public.example/": httpx.Response(302, headers={"location": "http://internal.example/"})}
    async with httpx.AsyncClient(transport=Recording(answers)) as http:
        with pytest.raises(PermanentFetchError, match="redirect_out_of_scope"):
            await _fetcher(http, resolver).http_get("http://public.example/", Scope(("public.example",)))
    assert resolver.asked == ["public.example"]


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "file://localhost/etc/passwd", "ftp://public.example/", "gopher://127.0.0.1:25/_HELO",
     "data:text/html,<script>alert(1)</script>", "javascript:fetch('http://10.0.0.1/')", "ws://public.example/",
     "wss://public.example/", "dict://127.0.0.1:11211/", "ldap://127.0.0.1/", "jar:http://public.example/x!/",
     "view-source:http://public.example/", "chrome://settings", "about:blank", "blob:http://public.example/1",
     "mailto:x@public.example", "//public.example/no-scheme", "http:///no-host", "http://public.example:99999/"],
)  # fmt: skip
def test_non_http_urls_never_reach_the_frontier_or_a_hop(url: str) -> None:
    assert normalize_url(url) is None
    if not url.startswith(("data:", "about:", "blob:")):  # the browser loads these from memory, not the network
        assert not Scope(("public.example", "127.0.0.1", "localhost")).allows(url)


@pytest.mark.parametrize(
    ("url", "normal"),
    [("http://user:secret@public.example/", "http://public.example/"),
     ("http://public.example@10.0.0.1/", "http://10.0.0.1/"),  # the host is what follows the last @
     ("http://PUBLIC.example:80/a", "http://public.example/a"),
     ("https://public.example:8443/", "https://public.example:8443/")],
)  # fmt: skip
def test_credentials_are_dropped_and_the_real_host_is_what_gets_checked(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


@pytest.mark.parametrize("port", [22, 25, 110, 143, 6667, 5060])
async def test_ports_browsers_refuse_are_never_fetched(port: int) -> None:
    """SMTP, SSH, IRC and the rest of the Fetch standard's bad ports: not web pages, maybe a cross-protocol attack."""
    url = f"http://public.example:{port}/"
    assert normalize_url(url) is None
    answers = {"http://public.example/": httpx.Response(302, headers={"location": url})}
    async with httpx.AsyncClient(transport=Recording(answers)) as http:
        with pytest.raises(PermanentFetchError, match="redirect_refused"):
            await _fetcher(http, StubResolver()).http_get("http://public.example/", Scope(("public.example",)))


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://public.example/x"])
async def test_a_redirect_to_another_scheme_is_refused(target: str) -> None:
    answers = {"http://public.example/": httpx.Response(302, headers={"location": target})}
    async with httpx.AsyncClient(transport=Recording(answers)) as http:
        with pytest.raises(PermanentFetchError, match="redirect_refused"):
            await _fetcher(http, StubResolver()).http_get("http://public.example/", Scope(("public.example",)))


async def test_robots_and_sitemap_redirects_into_private_addresses_are_refused_before_connecting() -> None:
    """robots.txt and sitemaps are fetched with redirects followed by httpx: the client's request hook (as the
    scraper builds it) checks every hop before it connects."""
    answers = {
        "http://public.example/robots.txt": httpx.Response(301, headers={"location": "http://169.254.169.254/"}),
        "http://public.example/sitemap.xml": httpx.Response(302, headers={"location": "http://localhost/admin"}),
    }
    transport = Recording(answers)
    guard = SsrfGuard(resolver=StubResolver())
    async with httpx.AsyncClient(transport=transport, event_hooks={"request": [guard.check_request]}) as http:
        rules = await RobotsCache(http, guard, "test-bot").rules_for("http://public.example")
        assert rules.can_fetch("http://public.example/page", "test-bot")  # unreachable robots.txt: allow all
        assert await read_sitemap_urls(http, guard, "http://public.example/sitemap.xml", limit=10) == []
    assert transport.requests == list(answers)


async def test_links_checked_together_fetch_their_hosts_robots_txt_once() -> None:
    """A page's links are claimed together: twenty of them on a host new to the scraper still ask for its
    robots.txt once, and each gets its rules."""
    robots = httpx.Response(200, text="User-agent: *\nDisallow: /private/\n")
    transport = Recording({"http://public.example/robots.txt": robots}, delay_s=0.01)
    async with httpx.AsyncClient(transport=transport) as http:
        cache = RobotsCache(http, SsrfGuard(resolver=StubResolver()), "test-bot")
        urls = [f"http://public.example/{'private' if i % 2 else 'shop'}/{i}" for i in range(20)]
        allowed = await asyncio.gather(*(cache.allowed(u) for u in urls))
    assert allowed == [i % 2 == 0 for i in range(20)]
    assert transport.requests == ["http://public.example/robots.txt"]


class Rebinding:
    """DNS that answers public the first time it is asked about a name and ``then`` afterwards."""

    def __init__(self, then: str) -> None:
        self.then = then
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return ["93.184.216.34"] if len(self.asked) == 1 else [self.then]


class LocalServer:
    """A TCP server on 127.0.0.1 that answers every request with 200 and counts its connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.hosts: list[str] = []

    async def __aenter__(self) -> LocalServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.hosts += [line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("host:")]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


def _guarded_client(guard: SsrfGuard) -> httpx.AsyncClient:
    """The plain-HTTP client as scraper-svc builds it: the request hook and the guarded transport."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard), event_hooks={"request": [guard.check_request]}, trust_env=False
    )


async def test_dns_rebinding_is_refused_at_connect_time_before_any_connection() -> None:
    # The check sees a public address; the connection would have gone to loopback, where a server listens.
    async with LocalServer() as server:
        resolver = Rebinding(then="127.0.0.1")
        guard = SsrfGuard(resolver=resolver)
        async with _guarded_client(guard) as http:
            with pytest.raises(PermanentFetchError) as refused:
                await http.get(f"http://rebind-me.example:{server.port}/")
    assert refused.value.reason == "ssrf_refused" and "127.0.0.1" in str(refused.value)
    assert resolver.asked == ["rebind-me.example", "rebind-me.example"]  # checked, then resolved again to dial
    assert server.connections == 0


async def test_the_transport_dials_the_address_it_checked_and_the_request_keeps_its_host() -> None:
    dns = {"shop.example": ["127.0.0.1"]}

    async def resolver(host: str) -> list[str]:
        return dns[host]

    async with LocalServer() as server:
        guard = SsrfGuard(allow_hosts=["127.0.0.1"], resolver=resolver)  # the address is allow-listed, not the name
        async with _guarded_client(guard) as http:
            resp = await http.get(f"http://shop.example:{server.port}/")
    assert resp.status_code == 200 and resp.text == "ok"
    assert server.connections == 1 and server.hosts == [f"shop.example:{server.port}"]


@pytest.mark.parametrize(
    ("host", "by_name"),
    [
        ("shop.example", True),
        ("SHOP.Example.", True),
        ("127.0.0.1", False),  # an address literal cannot be rebound
        ("2130706433", False),  # nor can one in a spelling browsers accept
        ("[::1]", False),
        ("::1", False),
        ("allowed.example", False),  # an allow-listed name is trusted wherever it resolves
    ],
)
def test_which_hosts_a_browser_would_dial_by_name(host: str, by_name: bool) -> None:
    """The names whose plain-HTTP requests the scraper fetches for the browser (``showroom.scraper.pinned``)."""
    assert SsrfGuard(allow_hosts=["allowed.example"]).dials_by_name(host) is by_name
