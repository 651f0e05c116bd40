"""Per-key rate limits: a token bucket for each configured key, in this gateway replica's memory.

Each replica limits on its own, so with N replicas behind a load balancer a key may make up to N
times its rate in all.  That is deliberate: a shared bucket (JetStream KV) would add a bus round
trip and a compare-and-set race to every request, and the limit exists to stop one runaway client
from swamping the services, which a per-replica bound already does.  Buckets exist only for
configured keys, so unknown keys (refused with 401 before any bucket) cannot grow the table.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from showroom.common.apikeys import ApiKeyEntry


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float | None = None) -> float:
        """Spend a token: 0 when one was there, else the seconds until the next one."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


class RateLimiter:
    def __init__(self, entries: list[ApiKeyEntry], rate_per_s: float, burst: int) -> None:
        self.buckets = {e.sha256: TokenBucket(e.rate_per_s or rate_per_s, e.burst or burst) for e in entries}

    def retry_after(self, entry: ApiKeyEntry) -> int:
        """0 when ``entry`` may go ahead now, else whole seconds to wait (the ``Retry-After`` value)."""
        wait = self.buckets[entry.sha256].take()
        return math.ceil(wait) if wait else 0
