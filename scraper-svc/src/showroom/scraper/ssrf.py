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

Known limit: the guard's answer is cached per name and the connection
resolves the name again, so a DNS server that answers public, then private
(rebinding) is not stopped here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

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

        Refusals have reason ``ssrf_refused``; a name that does not resolve gives ``dns_error``.
        """
        host = canonical_host(hostname)
        literal = _literal(host)
        if host in self.allow_hosts or host in self._cache:
            return
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
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[host] = None

    async def check_request(self, request: httpx.Request) -> None:
        """An httpx ``request`` event hook: every request the client sends, each redirect hop included, is
        checked before it connects, whoever sends it (page fetches, robots.txt, sitemaps)."""
        await self.check(request.url.host)
