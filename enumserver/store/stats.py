"""Who called, when: query counts per number, hour and client network, in a file of their own.

The server counts the answers of service numbers and scheduled numbers (``Answer.counted``) in
memory (:class:`QueryTally`, one per worker) and a :class:`Flusher` adds them every few seconds,
before a reload and once more after the server stopped, to a separate SQLite file next to the
store (``<store>.stats.sqlite``): the server never writes the store itself. Rows are aggregated
by UTC hour and client network (IPv4 /24, IPv6 /56) and deleted after the retention period.
``zonetools stats`` reads them (:class:`StatsReader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from enumserver.config import StatsConfig

log = logging.getLogger("enumserver")

STATS_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_counts (
    number TEXT NOT NULL,
    hour INTEGER NOT NULL,
    network TEXT NOT NULL,
    operator TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (number, hour, network, operator)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS query_counts_by_operator ON query_counts (operator, hour);
CREATE INDEX IF NOT EXISTS query_counts_by_hour ON query_counts (hour);
"""
ADD_COUNT = (
    "INSERT INTO query_counts (number, hour, network, operator, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (number, hour, network, operator) DO UPDATE SET count = count + excluded.count"
)
MAX_KEYS = 50_000  # distinct (hour, number, network) between flushes; beyond: network "other"
UNKNOWN_NETWORK = "-"

Key = tuple[int, str, str, str]  # hour (epoch), number digits, network, serving TY
T = TypeVar("T")


def stats_path(store: str | Path) -> Path:
    """The default stats file of a store: ``<store>.stats.sqlite`` beside it."""
    return Path(f"{store}.stats.sqlite")


@functools.lru_cache(maxsize=65536)
def network_of(address: str) -> str:
    """The querying network of a client address: IPv4 /24, IPv6 /56 (IPv4-mapped as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network((ip, prefix), strict=False))


class QueryTally:
    """Counts in memory, per (hour, number, network, operator), until the flusher takes them."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Key, int] = {}

    def add(self, now: float, number: str, operator: str, address: str | None) -> None:
        network = network_of(address) if address else UNKNOWN_NETWORK
        key = (int(now // 3600) * 3600, number, network, operator)
        counts = self.counts
        if key not in counts and len(counts) >= MAX_KEYS:
            key = (key[0], number, "other", operator)
        counts[key] = counts.get(key, 0) + 1

    def take(self) -> dict[Key, int]:
        """The counts so far; the tally starts again from zero."""
        counts, self.counts = self.counts, {}
        return counts


def _connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(STATS_SCHEMA)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=2000")
    return conn


class StatsWriter:
    """Adds tallies to the stats file (created when missing) and applies the retention."""

    def __init__(self, path: str | Path, retention_days: int) -> None:
        self.path = Path(path)
        self.retention = retention_days * 86400
        self.conn = _connect(self.path)
        self.pruned_hour = 0

    def add(self, counts: dict[Key, int], now: float) -> None:
        """Add counts in one transaction; once an hour delete the hours past retention."""
        rows = [(number, hour, net, ty, n) for (hour, number, net, ty), n in counts.items()]
        with self.conn:
            self.conn.executemany(ADD_COUNT, rows)
            hour = int(now // 3600)
            if hour != self.pruned_hour:
                cutoff = now - self.retention
                self.conn.execute("DELETE FROM query_counts WHERE hour < ?", (cutoff,))
                self.pruned_hour = hour

    def close(self) -> None:
        self.conn.close()


class StatsReader:
    """Counts for tools: per hour, per network and per number, for a number or an operator."""

    def __init__(self, path: str | Path) -> None:
        if not Path(path).exists():
            raise FileNotFoundError(f"no stats file {path}: the server writes it once counted")
        self.conn = _connect(path, readonly=True)

    def _where(
        self, number: str | None, operator: str | None, start: float, end: float
    ) -> tuple[str, list[Any]]:
        clauses = ["hour >= ?", "hour < ?"]
        args: list[Any] = [int(start // 3600) * 3600, end]
        if number is not None:
            clauses.append("number = ?")
            args.append(number)
        if operator is not None:
            clauses.append("operator = ?")
            args.append(operator)
        return " AND ".join(clauses), args

    def totals(
        self, by: str, number: str | None, operator: str | None, start: float, end: float
    ) -> list[tuple[Any, int]]:
        """(hour | network | number, count) pairs, by hour in time order, else largest first."""
        column = {"hour": "hour", "network": "network", "number": "number"}[by]
        where, args = self._where(number, operator, start, end)
        order = "hour" if by == "hour" else "total DESC, " + column
        sql = (
            f"SELECT {column}, sum(count) AS total FROM query_counts WHERE {where} "
            f"GROUP BY {column} ORDER BY {order}"
        )
        return [(row[0], int(row[1])) for row in self.conn.execute(sql, args)]

    def close(self) -> None:
        self.conn.close()


class Counting(Protocol):
    """What the flusher reads from the running engine: its tally and its clock."""

    @property
    def tally(self) -> QueryTally: ...

    def clock(self) -> float: ...


class Settings(Protocol):
    """The configuration the flusher reads ([server] store and the [stats] table)."""

    @property
    def store(self) -> str: ...

    @property
    def stats(self) -> StatsConfig: ...


class Serving(Protocol):
    """The running server: its engine (replaced on reload), configuration and stop event."""

    @property
    def engine(self) -> Counting: ...

    @property
    def config(self) -> Settings: ...

    @property
    def stopping(self) -> asyncio.Event: ...


class Flusher:
    """Adds the engine's tally to the stats file: every ``flush_interval``, before a reload
    (SIGHUP: the counts so far go to the file the old configuration names) and once more after
    the server stopped (SIGTERM: with the queries of the TCP connections it drained).

    The configuration is read again each time (SIGHUP may change it); with stats disabled the
    counts are dropped. A reload that replaces the engine leaves its tally here, taken once more.
    """

    def __init__(self, server: Serving) -> None:
        self.server = server
        self.writer: StatsWriter | None = None
        self.failed = False
        self.tally: QueryTally | None = None  # taken last: an old engine's, after a reload
        self.lock = asyncio.Lock()

    def _take(self) -> dict[Key, int]:
        tally = self.server.engine.tally
        counts = tally.take()
        if self.tally is not None and self.tally is not tally:
            for key, count in self.tally.take().items():
                counts[key] = counts.get(key, 0) + count
        self.tally = tally
        return counts

    async def flush(self) -> None:
        """Add the counts so far to the stats file (one at a time)."""
        async with self.lock:
            counts = self._take()
            settings = self.server.config.stats
            path = Path(settings.path or stats_path(self.server.config.store))
            if self.writer is not None and self.writer.path != path:
                self.writer.close()
                self.writer = None
            if not counts or not settings.enabled:
                return
            try:
                self.writer = self.writer or StatsWriter(path, settings.retention_days)
                self.writer.retention = settings.retention_days * 86400
                await asyncio.to_thread(self.writer.add, counts, self.server.engine.clock())
                self.failed = False
            except (sqlite3.Error, OSError) as exc:
                if not self.failed:
                    log.warning("cannot write query counts to %s: %s", path, exc)
                self.failed = True

    async def flushed(self, then: Awaitable[T]) -> T:
        """Flush, then await ``then`` (a reload)."""
        await self.flush()
        return await then

    async def run(self) -> None:
        """Flush every ``flush_interval`` until the server is stopping."""
        while not self.server.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                interval = self.server.config.stats.flush_interval
                await asyncio.wait_for(self.server.stopping.wait(), interval)
            if not self.server.stopping.is_set():
                await self.flush()

    async def close(self) -> None:
        """The last flush (call it once the server stopped answering), then close the file."""
        await self.flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
