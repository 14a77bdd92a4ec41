"""Limits against abuse: response rate limiting (RRL) on UDP per client prefix, in the spirit
of Knot's mod-rrl and BIND's RRL, and admission of TCP connections (total and per client).

Each client prefix (/24 for IPv4, /56 for IPv6 by default) has a token bucket refilled at
``rate`` answers per second up to ``burst``. A query arriving at an empty bucket is not
answered; every ``slip``-th of them gets an empty TC=1 answer instead, so a real client behind
a spoofed flood retries over TCP (which is never limited). ``exempt`` networks (the SIP proxies
that are the real clients) are never limited. Only UDP is limited: TCP cannot be spoofed.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from enumserver.config import RrlConfig
from enumserver.metrics import Counters

ALLOW, DROP, SLIP = 0, 1, 2
K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=Hashable)

Bucket = list[float]  # [tokens, last refill time, limited answers so far]
EXEMPT: Bucket = [0.0, 0.0, 0.0]


class RateLimiter:
    """Token buckets by client prefix; :meth:`check` costs one dict lookup and some arithmetic."""

    def __init__(
        self,
        config: RrlConfig,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = config.rate
        self.burst = float(config.burst)
        self.slip = config.slip
        self.shift = {4: 32 - config.ipv4_prefix, 6: 128 - config.ipv6_prefix}
        self.exempt = [ipaddress.ip_network(net, strict=False) for net in config.exempt]
        self.table_size = config.table_size
        self.counters = counters
        self.clock = clock
        self.by_address: dict[str, Bucket] = {}
        self.by_prefix: dict[tuple[int, int], Bucket] = {}

    def check(self, host: str) -> int:
        """ALLOW, DROP or SLIP for one answer to ``host``."""
        bucket = self.by_address.get(host)
        if bucket is None:
            bucket = self._bucket(host)
        if bucket is EXEMPT:
            return ALLOW
        now = self.clock()
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return ALLOW
        bucket[0] = tokens
        bucket[2] += 1
        if self.slip and bucket[2] % self.slip == 0:
            self.counters.rrl_slipped += 1
            return SLIP
        self.counters.rrl_dropped += 1
        return DROP

    def _bucket(self, host: str) -> Bucket:
        """The bucket of an address seen for the first time (shared by its prefix)."""
        address = ipaddress.ip_address(host.partition("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.exempt):
            bucket = EXEMPT
        else:
            key = (address.version, int(address) >> self.shift[address.version])
            found = self.by_prefix.get(key)
            if found is None:
                _evict(self.by_prefix, self.table_size)
                found = self.by_prefix[key] = [self.burst, self.clock(), 0.0]
            bucket = found
        _evict(self.by_address, self.table_size)
        self.by_address[host] = bucket
        return bucket

    def prefixes(self) -> int:
        """Client prefixes tracked now."""
        return len(self.by_prefix)


def _evict(table: dict[K, Bucket], size: int) -> None:
    """Make room for one entry by forgetting the oldest ones (an eighth of the table)."""
    if len(table) >= size:
        for key in list(table)[: max(1, size // 8)]:
            del table[key]


class ConnectionLimits(Generic[C]):
    """Open TCP connections, in total and per client address, and who may open one more."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.open: set[C] = set()
        self.per_client: dict[str, int] = {}

    def admit(self, connection: C, client: str, total: int, per_client: int) -> str | None:
        """None when the connection is accepted (and counted), else the limit it hits."""
        if len(self.open) >= total:
            return "max_clients"
        count = self.per_client.get(client, 0)
        if per_client and count >= per_client:
            return "max_clients_per_ip"
        self.open.add(connection)
        self.per_client[client] = count + 1
        self.counters.tcp_accepted += 1
        return None

    def release(self, connection: C, client: str) -> None:
        """Forget a closed connection (no-op for one that was refused)."""
        if connection not in self.open:
            return
        self.open.discard(connection)
        left = self.per_client.get(client, 1) - 1
        if left > 0:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)
