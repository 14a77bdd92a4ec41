"""The engine's answer caches: FIFO, bounded, in shards.

A dict that loses and gains entries all the time is rebuilt whenever its deleted slots run
out: for 100,000 entries that took 15-23 ms here (every ~75,000 misses, in each cache), a
stall that the queue of a loaded server turns into milliseconds of p99 for hundreds of
queries. In 64 shards each rebuild is a sixty-fourth as long. A key's shard is its hash,
which a bytes object computes once and keeps for the dict lookup that follows.

The hot path reads ``shards`` and ``mask`` directly (a method call would cost more than the
lookup); everything else goes through the methods. Eviction is FIFO per shard:
OrderedDict.popitem(last=False) is O(1), where deleting a plain dict's first key makes the
next iteration scan every slot freed before it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")
SHARDS = 64
MIN_SHARDED = 4096  # smaller caches stay one dict (exact FIFO over the whole cache)


class Cache(Generic[V]):
    """Up to ``size`` entries (bytes -> V), the oldest of a shard evicted first."""

    __slots__ = ("cap", "mask", "shards", "size")

    def __init__(self, size: int) -> None:
        self.resize(size)

    def resize(self, size: int) -> None:
        """A new, empty cache of this size."""
        count = SHARDS if size >= MIN_SHARDED else 1
        self.size = size
        self.shards: list[OrderedDict[bytes, V]] = [OrderedDict() for _ in range(count)]
        self.mask = count - 1
        self.cap = max(1, -(-size // count))  # entries per shard, rounded up

    def get(self, key: bytes) -> V | None:
        return self.shards[hash(key) & self.mask].get(key)

    def put(self, key: bytes, value: V) -> None:
        """Add an entry (the engine puts only keys it just missed), evicting the shard's
        oldest when the shard is full."""
        shard = self.shards[hash(key) & self.mask]
        if len(shard) >= self.cap:
            shard.popitem(last=False)
        shard[key] = value

    def pop(self, key: bytes) -> None:
        self.shards[hash(key) & self.mask].pop(key, None)

    def clear(self) -> None:
        for shard in self.shards:
            shard.clear()

    def __len__(self) -> int:
        return sum(map(len, self.shards))

    def __iter__(self) -> Iterator[bytes]:
        """Keys, oldest first within each shard."""
        for shard in self.shards:
            yield from shard
