"""SSRF guard: refuse to fetch addresses inside private networks unless explicitly allowed.

A crawl URL is user input; without this guard a crawl of
``http://169.254.169.254/`` would read the cloud's metadata service.  The
check resolves the host first and refuses before any connection is opened.

Three things make "is this address private?" harder than ``is_global``:

* Names that never need DNS to be local: ``localhost`` and everything under
  ``.localhost`` (RFC 6761), ``/etc/hosts`` aliases such as ``ip6-localhost``
  and the clouds' metadata names.  They are refused by name, so the answer
  does not depend on what the resolver of the day says.
* Numeric hosts in the spellings browsers accept (``127.1``, ``2130706433``,
  ``0x7f.0.0.1``, ``0177.0.0.1``): read the way browsers read them.
* IPv6 addresses that carry an IPv4 one (``::ffff:127.0.0.1``, NAT64
  ``64:ff9b::7f00:1``, 6to4 ``2002:7f00:1::``, IPv4-compatible ``::7f00:1``,
  Teredo): Python calls several of these global, yet a translator on the
  path delivers them to the embedded IPv4 address, which is what is checked.

DNS rebinding: a name can answer public to the check and private to the
connection.  Plain-HTTP fetches (pages, robots.txt, sitemaps) go through
:class:`GuardedTransport`, which resolves and checks again when it opens a
connection and dials the very addresses it checked, so what was checked is
what is connected to.  Chromium resolves names itself, so its plain-HTTP
requests to names are fetched by the scraper through the same transport
(``showroom.scraper.pinned``); over HTTPS a rebound connection fails on the
certificate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from showroom.scraper.errors import PermanentFetchError
from showroom.scraper.urls import canonical_host, canonical_ipv4

Resolver = Callable[[str], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NAMES = frozenset(
    {
        "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "ip6-localnet",
        "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    }
)  # fmt: skip
"""Names that mean this machine or its cloud's metadata service whatever DNS says."""
LOCAL_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa")
"""Special-use and private-use domains (RFC 6761, RFC 6762, RFC 8375, ICANN's ``.internal``): never public."""

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


async def system_resolver(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo, IPv4-compatible), if any."""
    if addr.ipv4_mapped:
        return addr.ipv4_mapped
    if addr.sixtofour:
        return addr.sixtofour
    if addr.teredo:
        return addr.teredo[1]
    if any(addr in net for net in _NAT64) or (int(addr) >> 32 == 0 and int(addr) > 0xFFFF):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_public(addr: IPAddress) -> bool:
    """Globally routable unicast, including any IPv4 address embedded in an IPv6 one."""
    if isinstance(addr, ipaddress.IPv6Address) and (inner := embedded_ipv4(addr)) is not None:
        return is_public(inner)
    return addr.is_global and not addr.is_multicast


def _literal(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any spelling a browser accepts, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if (v4 := canonical_ipv4(host)) is not None:
        return ipaddress.IPv4Address(v4)
    return None


class SsrfGuard:
    def __init__(self, allow_hosts: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.allow_hosts = {canonical_host(h) for h in allow_hosts}
        self.resolver = resolver
        self._cache: dict[str, None] = {}

    async def check(self, hostname: str) -> None:
        """Raise PermanentFetchError unless ``hostname`` resolves only to public addresses (or is allow-listed).

        Refusals have reason ``ssrf_refused``; a name that does not resolve gives ``dns_error``.  A passed
        name is remembered: this answers "may we ask for it?" quickly; :meth:`addresses` answers "where to?".
        """
        host = canonical_host(hostname)
        if host in self.allow_hosts or host in self._cache:
            return
        await self._checked_addresses(host)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[host] = None

    def dials_by_name(self, hostname: str) -> bool:
        """Whether a connection to ``hostname`` goes wherever DNS says at that moment: a name, not an address
        literal in any spelling, and not allow-listed.  Such a name could be rebound after :meth:`check`."""
        host = canonical_host(hostname)
        return bool(host) and host not in self.allow_hosts and _literal(host) is None

    async def addresses(self, hostname: str) -> list[str]:
        """The addresses to connect to for ``hostname``: resolved and checked now, never from a cache.

        An allow-listed name is returned as it is (the configuration trusts wherever it resolves to).
        """
        host = canonical_host(hostname)
        if host in self.allow_hosts:
            return [hostname]
        return [str(addr) for addr in await self._checked_addresses(host)]

    async def _checked_addresses(self, host: str) -> list[IPAddress]:
        literal = _literal(host)
        if not host:
            raise PermanentFetchError("ssrf_refused", "empty host")
        if literal is None and (host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES)):
            raise PermanentFetchError("ssrf_refused", f"{host} is a local name")
        if literal is not None:
            addrs = [literal]
        else:
            try:
                addrs = [ipaddress.ip_address(a.split("%")[0]) for a in await self.resolver(host)]
            except (OSError, ValueError) as exc:
                raise PermanentFetchError("dns_error", f"{host}: {exc}") from exc
        if not addrs:
            raise PermanentFetchError("dns_error", f"{host} has no address")
        for addr in addrs:
            if str(addr) in self.allow_hosts:
                continue
            if not is_public(addr):
                raise PermanentFetchError("ssrf_refused", f"{host} resolves to non-public address {addr}")
        return addrs

    async def check_request(self, request: httpx.Request) -> None:
        """An httpx ``request`` event hook: every request the client sends, each redirect hop included, is
        checked before it connects, whoever sends it (page fetches, robots.txt, sitemaps)."""
        await self.check(request.url.host)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, dialling only what the guard approves at the moment of connecting."""

    def __init__(self, guard: SsrfGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # TLS still names the host (httpcore passes it as SNI and checks the certificate against it).
        last: Exception | None = None
        for addr in await self.guard.addresses(host):
            try:
                return await self.inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # addresses() returns at least one address or raises
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise PermanentFetchError("ssrf_refused", "unix sockets are never dialled")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, except that each new connection goes to addresses the guard has just checked.

    httpx takes no network backend, its connection pool does: the pool is rebuilt with one.  No proxy
    from the environment is used (a proxy would do the resolving, and the guard would check nothing).
    """

    def __init__(self, guard: SsrfGuard, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard),
        )
