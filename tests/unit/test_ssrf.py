"""The SSRF guard refuses private and special addresses before any connection is made.

A stub resolver stands in for DNS, and a transport that fails the test if
called proves no connection is attempted: nothing here touches the network.
"""

from __future__ import annotations

import httpx
import pytest

from showroom.scraper.errors import PermanentFetchError
from showroom.scraper.fetching import Fetcher
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope, normalize_url

DNS = {
    "public.example": ["93.184.216.34"],
    "internal.example": ["10.0.0.5"],
    "rebind.example": ["93.184.216.34", "127.0.0.1"],  # one private answer is enough to refuse
    "metadata.example": ["169.254.169.254"],
    "v6-private.example": ["fd00::1"],
}


async def stub_resolver(host: str) -> list[str]:
    if host not in DNS:
        raise OSError(f"NXDOMAIN {host}")
    return DNS[host]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "127.1.2.3", "localhost", "0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "224.0.0.1", "::1", "::ffff:127.0.0.1", "fe80::1", "fd00::1",
        "internal.example", "rebind.example", "metadata.example", "v6-private.example",
    ],
)  # fmt: skip
async def test_private_and_special_addresses_are_refused(host: str) -> None:
    guard = SsrfGuard(resolver=stub_resolver)
    with pytest.raises(PermanentFetchError) as err:
        await guard.check(host)
    assert err.value.reason in ("ssrf_refused", "dns_error")


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("http://2130706433/", "127.0.0.1"), ("http://0x7f.0.0.1/", "127.0.0.1"), ("http://0177.0.0.1/", "127.0.0.1"),
     ("http://127.1/", "127.0.0.1"), ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"), ("http://LOCALHOST./", "localhost")],
)  # fmt: skip
async def test_loopback_in_every_spelling_is_refused(spelling: str, canonical: str) -> None:
    """URL parsing normalises decimal, hex and octal IPv4 (as browsers do) before the guard sees the host."""
    url = normalize_url(spelling)
    assert url is not None
    host = httpx.URL(url).host
    guard = SsrfGuard(resolver=stub_resolver)
    with pytest.raises(PermanentFetchError):
        await guard.check(host)


async def test_public_addresses_pass_and_the_allow_list_overrides() -> None:
    await SsrfGuard(resolver=stub_resolver).check("public.example")
    await SsrfGuard(allow_hosts=["127.0.0.1"], resolver=stub_resolver).check("127.0.0.1")


class NoNetwork(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a connection was attempted to {request.url}")


class OneRedirect(httpx.AsyncBaseTransport):
    """A public page that redirects to a private address."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if request.url.host == "public.example":
            return httpx.Response(302, headers={"location": "http://internal.example/admin"})
        raise AssertionError(f"followed the redirect to {request.url}")


async def test_fetch_is_refused_before_connecting() -> None:
    async with httpx.AsyncClient(transport=NoNetwork()) as http:
        fetcher = Fetcher(http=http, browser=None, guard=SsrfGuard(resolver=stub_resolver), hints=None)  # type: ignore[arg-type]
        with pytest.raises(PermanentFetchError, match="ssrf_refused"):
            await fetcher.http_get("http://metadata.example/latest/meta-data/", Scope(("metadata.example",)))


async def test_redirect_to_a_private_address_is_refused_before_following_it() -> None:
    transport = OneRedirect()
    async with httpx.AsyncClient(transport=transport) as http:
        guard = SsrfGuard(resolver=stub_resolver)
        fetcher = Fetcher(http=http, browser=None, guard=guard, hints=None)  # type: ignore[arg-type]
        scope = Scope(("public.example", "internal.example"))
        with pytest.raises(PermanentFetchError, match="ssrf_refused"):
            await fetcher.http_get("http://public.example/", scope)
    assert transport.requests == ["http://public.example/"]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:25/", "ftp://public.example/", "data:text/html,hi"]
)
def test_non_http_schemes_never_reach_the_frontier(url: str) -> None:
    assert normalize_url(url) is None
