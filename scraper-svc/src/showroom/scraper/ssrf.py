"""SSRF guard: refuse to fetch addresses inside private networks unless explicitly allowed.

A crawl URL is user input; without this guard a crawl of
``http://169.254.169.254/`` would read the cloud's metadata service.  The
check resolves the host first and refuses before any connection is opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

from showroom.scraper.errors import PermanentFetchError

Resolver = Callable[[str], Awaitable[list[str]]]


async def system_resolver(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class SsrfGuard:
    def __init__(self, allow_hosts: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.allow_hosts = {h.lower() for h in allow_hosts}
        self.resolver = resolver
        self._cache: dict[str, None] = {}

    async def check(self, hostname: str) -> None:
        """Raise PermanentFetchError unless ``hostname`` resolves only to public addresses (or is allow-listed)."""
        host = hostname.lower().strip("[]")
        if host in self.allow_hosts or host in self._cache:
            return
        try:
            addrs = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addrs = [ipaddress.ip_address(a) for a in await self.resolver(host)]
            except (OSError, ValueError) as exc:
                raise PermanentFetchError("dns_error", f"{host}: {exc}") from exc
        if not addrs:
            raise PermanentFetchError("dns_error", f"{host} has no address")
        for addr in addrs:
            if str(addr) in self.allow_hosts:
                continue
            if not _is_public(addr):
                raise PermanentFetchError("ssrf_refused", f"{host} resolves to non-public address {addr}")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[host] = None
