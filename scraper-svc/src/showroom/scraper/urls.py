"""URL normalisation and crawl scope.

Two spellings of one page must map to one URL, or a crawl fetches it twice:
the host is lower-cased, default ports and fragments dropped, tracking
parameters removed and the query sorted (``w3lib.url.canonicalize_url``
does the percent-encoding and sorting).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url, url_query_cleaner

from showroom.common.events import CrawlSpec

TRACKING_PARAMS = frozenset(
    {
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "utm_id",
        "gclid",
        "fbclid",
        "msclkid",
        "dclid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "ref",
        "sessionid",
        "session_id",
        "sid",
        "phpsessid",
        "jsessionid",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
BAD_PORTS = frozenset(
    {
        0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103,
        104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514,
        515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723,
        2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
    }
)  # fmt: skip
"""The Fetch standard's "bad ports" (SMTP, SSH, IRC, ...): browsers refuse them, so an HTTP request to one
is never a web page and may be a cross-protocol attack on the service behind it."""


def normalize_url(url: str) -> str | None:
    """The canonical form of an http(s) URL, or None for anything else (mailto:, javascript:, …)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if port in BAD_PORTS:
        return None
    host = canonical_host(parts.hostname)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    cleaned = url_query_cleaner(
        urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")),
        parameterlist=TRACKING_PARAMS,
        remove=True,
        keep_fragments=False,
    )
    return canonicalize_url(cleaned, keep_fragments=False)


def canonical_host(host: str) -> str:
    """One spelling per host: lower case, no trailing dot, IPv4 numbers as browsers read them, IPv6 compressed
    (without brackets).  Scope and SSRF checks compare hosts in this form."""
    host = host.lower().strip("[]").rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return host
    return canonical_ipv4(host) or host


def canonical_ipv4(host: str) -> str | None:
    """Numeric hosts as browsers read them (WHATWG URL): ``0x7f.1``, ``0177.0.0.1`` and ``2130706433`` are all
    ``127.0.0.1``.  Returns None when ``host`` is not such a number, so names are left alone."""
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    return str(ipaddress.IPv4Address(value))


def host_of(url: str) -> str:
    """``host[:port]`` of a normalised URL."""
    return urlsplit(url).netloc


@dataclass(frozen=True)
class Scope:
    """Which URLs a crawl may touch: its hosts (``example.com`` admits subdomains), then include/exclude regexes.

    The browser applies :meth:`allows` to every sub-request (hosts only: a page
    may load scripts from paths the crawl would not index); the frontier
    applies :meth:`admits` to the pages themselves.
    """

    allowed_domains: tuple[str, ...]
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, spec: CrawlSpec) -> Scope:
        return cls(
            tuple(spec.allowed_domains),
            tuple(re.compile(p) for p in spec.include),
            tuple(re.compile(p) for p in spec.exclude),
        )

    def admits(self, url: str) -> bool:
        """Is ``url`` a page this crawl should fetch?"""
        if not self.allows(url):
            return False
        if self.include and not any(p.search(url) for p in self.include):
            return False
        return not any(p.search(url) for p in self.exclude)

    def allows_host(self, hostname: str | None) -> bool:
        if not hostname:
            return False
        hostname = canonical_host(hostname)
        for domain in self.allowed_domains:
            # A domain may carry a port (``127.0.0.1:8088``); scope is by host.
            d = canonical_host(domain.split("]")[0] if domain.startswith("[") else domain.split(":")[0])
            if hostname == d or hostname.endswith("." + d):
                return True
        return False

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if parts.scheme in ("data", "blob", "about"):
            return True
        try:
            if parts.port in BAD_PORTS:
                return False
        except ValueError:
            return False
        return parts.scheme in _DEFAULT_PORTS and self.allows_host(parts.hostname)
