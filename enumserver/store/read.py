"""Read side of the store: the server's snapshot of small tables and per-number lookups."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from enumserver.model import NumberRange, Operator, Route, Tier2Server, Zone
from enumserver.schedule import Schedule, ScheduleError, parse
from enumserver.store.schema import MOMENT_KEY, SCHEMA_VERSION


class StoreError(Exception):
    """The store file is missing, unreadable or of another schema version."""


@dataclass(frozen=True)
class Snapshot:
    """The small tables, read together at one serial: zones, operators, Tier2, templates, ranges."""

    zones: dict[str, Zone]
    operators: dict[str, Operator]
    tier2: dict[str, tuple[Tier2Server, ...]]
    templates: dict[str, tuple[Route, ...]]
    ranges: dict[str, NumberRange]
    range_lengths: tuple[int, ...]
    range_ancestors: frozenset[str] = field(default_factory=frozenset)
    has_number_routes: bool = True
    schedules: dict[str, Schedule] = field(default_factory=dict)  # by number
    range_schedules: dict[str, Schedule] = field(default_factory=dict)  # by range prefix
    range_schedule_lengths: tuple[int, ...] = ()
    taken_at: float = 0.0  # when it was read (epoch): the moment of answers asked without one

    @property
    def serials(self) -> dict[str, int]:
        """Serial of every zone, by zone name."""
        return {name: zone.serial for name, zone in self.zones.items()}

    def range_schedule_of(self, digits: str) -> Schedule | None:
        """The schedule of the longest range prefix of the digits, or None."""
        for size in self.range_schedule_lengths:
            found = self.range_schedules.get(digits[:size])
            if found is not None and size <= len(digits):
                return found
        return None

    def range_of(self, digits: str) -> NumberRange | None:
        """The range with the longest prefix of the digits, or None."""
        ranges = self.ranges
        for size in self.range_lengths:
            if size <= len(digits):
                found = ranges.get(digits[:size])
                if found is not None:
                    return found
        return None


def _zone(row: sqlite3.Row) -> Zone:
    return Zone(
        name=row["name"],
        apex=row["apex"],
        role=row["role"],
        style=row["style"],
        environment=row["environment"],
        operator=row["operator"],
        mname=row["mname"],
        rname=row["rname"],
        serial=row["serial"],
        refresh=row["refresh"],
        retry=row["retry"],
        expire=row["expire"],
        minimum=row["minimum"],
        soa_ttl=row["soa_ttl"],
        ns=tuple(row["ns"].split()),
        ns_ttl=row["ns_ttl"],
    )


def _route(row: sqlite3.Row) -> Route:
    return Route(
        ty=row["ty"],
        number=row["number"],
        order=row["order"],
        preference=row["preference"],
        flags=row["flags"],
        service=row["service"],
        regexp=row["regexp"],
        replacement=row["replacement"],
        ttl=row["ttl"],
    )


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the store; a read-only connection never writes, a writer makes sure of WAL."""
    path = Path(path)
    if readonly:
        if not path.exists():
            raise StoreError(f"store {path} does not exist (create it with 'zonetools init')")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class StoreReader:
    """Read API of the server: a snapshot of small tables plus indexed per-number lookups."""

    def __init__(self, path: str | Path, conn: sqlite3.Connection | None = None) -> None:
        self.path = Path(path)
        self.conn = conn if conn is not None else connect(self.path, readonly=True)
        try:
            version = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not an operator-enum store: {exc}") from exc
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version and version[0]}, need {SCHEMA_VERSION}"
            )
        self._data_version = -1
        self._ported = self.conn.cursor()  # the per-miss lookup: one cursor, plain tuples
        self._ported.row_factory = None

    def changed(self) -> bool:
        """True when another connection committed since the last call (cheap: no table read)."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            return True
        return False

    def map_memory(self, size: int = 1 << 36) -> None:
        """Read the file through a memory map (SQLite caps it, 2 GiB in Debian's build): a page
        not in SQLite's cache costs no read() and no copy. The mapped pages are the kernel's
        page cache (RssFile), shared by every worker. The store is never truncated (no VACUUM).
        """
        self.conn.execute(f"PRAGMA mmap_size={int(size)}").fetchall()

    def pin(self) -> bool:
        """Hold a read transaction from now on, ending the one held before: every read sees the
        store as one commit left it, until the next pin. True when another connection committed
        since the previous pin (a snapshot taken now differs from the last one).
        """
        conn = self.conn
        if conn.in_transaction:
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # the first read fixes the state
        return self.changed()

    def snapshot(self) -> Snapshot:
        """Read zones, operators, Tier2 servers, templates and ranges in one read transaction."""
        conn = self.conn
        own_transaction = not conn.in_transaction
        if own_transaction:
            conn.execute("BEGIN")
        try:
            zones = {row["name"]: _zone(row) for row in conn.execute("SELECT * FROM zones")}
            operators = {
                row["ty"]: Operator(
                    row["ty"],
                    row["name"],
                    row["kind"],
                    row["host_ty"],
                    row["routing_number"],
                    row["sip_domain"],
                )
                for row in conn.execute("SELECT * FROM operators")
            }
            tier2: dict[str, list[Tier2Server]] = {}
            for row in conn.execute("SELECT * FROM tier2_servers ORDER BY ty, host"):
                server = Tier2Server(row["ty"], row["host"], row["ipv4"], row["ipv6"], row["ttl"])
                tier2.setdefault(row["ty"], []).append(server)
            templates: dict[str, list[Route]] = {}
            sql = 'SELECT * FROM routes WHERE number IS NULL ORDER BY ty, "order", preference, id'
            for row in conn.execute(sql):
                templates.setdefault(row["ty"], []).append(_route(row))
            ranges = {
                row["prefix"]: NumberRange(
                    row["prefix"], row["holder"], row["min_digits"], row["max_digits"]
                )
                for row in conn.execute("SELECT * FROM ranges")
            }
            sql = "SELECT EXISTS (SELECT 1 FROM routes WHERE number IS NOT NULL)"
            has_number_routes = bool(conn.execute(sql).fetchone()[0])
            schedules = self._schedules()
        finally:
            if own_transaction:
                conn.execute("COMMIT")
        ancestors = frozenset(p[:i] for p in ranges for i in range(1, len(p)))
        return Snapshot(
            zones=zones,
            operators=operators,
            tier2={ty: tuple(servers) for ty, servers in tier2.items()},
            templates={ty: tuple(routes) for ty, routes in templates.items()},
            ranges=ranges,
            range_lengths=tuple(sorted({len(p) for p in ranges}, reverse=True)),
            range_ancestors=ancestors,
            has_number_routes=has_number_routes,
            schedules=schedules["number"],
            range_schedules=schedules["range"],
            range_schedule_lengths=tuple(sorted(map(len, schedules["range"]), reverse=True)),
            taken_at=time.time(),
        )

    def _schedules(self) -> dict[str, dict[str, Schedule]]:
        """Schedules by scope ('number', 'range') and target digits (a store without the
        table, made before schedules existed, has none)."""
        found: dict[str, dict[str, Schedule]] = {"number": {}, "range": {}}
        sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schedules'"
        if self.conn.execute(sql).fetchone() is None:
            return found
        for row in self.conn.execute("SELECT scope, target, ty, body FROM schedules"):
            try:
                found[row["scope"]][row["target"]] = parse(json.loads(row["body"]), row["ty"])
            except (ScheduleError, ValueError, KeyError) as exc:
                raise StoreError(f"schedule of {row['scope']} +{row['target']}: {exc}") from exc
        return found

    def schedule_moment(self) -> float | None:
        """The moment zone transfers evaluate schedules at: the last one ``zonetools schedule
        tick`` recorded with a switch (None before the first tick: the moment of transfer)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (MOMENT_KEY,)).fetchone()
        return None if row is None else float(row[0])

    def recipient_of(self, digits: str) -> str | None:
        """The TY a number was ported to, or None when it is not ported."""
        sql = "SELECT recipient FROM ported WHERE number=?"
        rows = self._ported.execute(sql, (digits,)).fetchall()  # to the end: no open statement
        return str(rows[0][0]) if rows else None

    def number_routes(self, digits: str) -> list[Route]:
        """Per-number routes of a number, of every owner (the caller keeps the holder's)."""
        sql = 'SELECT * FROM routes WHERE number=? ORDER BY "order", preference, id'
        return [_route(row) for row in self.conn.execute(sql, (digits,))]

    def ported_below(self, prefix: str) -> bool:
        """True when some ported number starts with the prefix and is longer than it."""
        sql = "SELECT 1 FROM ported WHERE number > ? AND number < ? LIMIT 1"
        return self.conn.execute(sql, (prefix, prefix + ":")).fetchone() is not None

    def close(self) -> None:
        self.conn.close()

    def licence_by_key(self, key_name: str) -> dict[str, Any] | None:
        """The licence row (with its secret) of a TSIG key name of a TY that still exists.

        Read on every signed message, so a revoked, expired or rotated key is refused at once.
        None for an unknown key, or a store made before licences existed.
        """
        sql = (
            "SELECT licences.* FROM licences JOIN operators ON operators.ty = licences.ty "
            "AND operators.kind = 'TY' WHERE licences.key_name = ?"
        )
        try:
            row = self.conn.execute(sql, (key_name.lower(),)).fetchone()
        except sqlite3.OperationalError:
            return None
        return dict(row) if row else None

    # -- zone images and transfers (enumserver.zoneimage, enumserver.xfr) -----------------
    def explicit_numbers(self, prefix: str = "", limit: int | None = None) -> Iterator[str]:
        """Numbers with answers of their own (ported, or with per-number routes) that start
        with the prefix, in order, streamed: zone images and transfers walk all of them."""
        sql = (
            "SELECT number FROM ported WHERE number >= ?1 AND number < ?2 UNION "
            "SELECT number FROM routes WHERE number IS NOT NULL AND number >= ?1 AND number < ?2 "
            "ORDER BY number LIMIT ?3"
        )
        for row in self.conn.execute(sql, (prefix, prefix + ":", -1 if limit is None else limit)):
            yield str(row[0])

    def journal_span(self, first: int, last: int) -> tuple[int, int]:
        """(distinct serials, rows) of the journal with ``first <= serial <= last``."""
        sql = "SELECT count(DISTINCT serial), count(*) FROM journal WHERE serial BETWEEN ? AND ?"
        serials, rows = self.conn.execute(sql, (first, last)).fetchone()
        return int(serials), int(rows)

    def journal_rows(self, first: int, last: int) -> list[JournalRow]:
        """Journal rows with ``first <= serial <= last`` in the order they were written."""
        sql = (
            "SELECT serial, entity, key, old, new FROM journal WHERE serial BETWEEN ? AND ? "
            "ORDER BY serial, id"
        )
        return [
            JournalRow(
                int(row[0]),
                str(row[1]),
                tuple(json.loads(row[2])),
                None if row[3] is None else json.loads(row[3]),
                None if row[4] is None else json.loads(row[4]),
            )
            for row in self.conn.execute(sql, (first, last))
        ]


@dataclass(frozen=True)
class JournalRow:
    """One journaled change: the change set's serial, table, key, old and new row (or None)."""

    serial: int
    entity: str
    key: tuple[Any, ...]
    old: Any
    new: Any


def store_serials(path: str | Path) -> dict[str, int]:
    """Zone serials of a store, for tools and tests."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT name, serial FROM zones").fetchall())


class Catalog:
    """Read API of the tools: whole rows as dicts for listings, history and explanations."""

    def __init__(self, path: str | Path) -> None:
        self.conn = connect(path, readonly=True)
        self.db = sqlite_utils.Database(self.conn)

    def _rows(
        self,
        table: str,
        where: str | None = None,
        args: Sequence[Any] = (),
        order: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(self.db[table].rows_where(where, list(args), order_by=order, limit=limit))

    def operators(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return self._rows("operators", order="ty")
        return self._rows("operators", "kind = ?", [kind], order="ty")

    def operator(self, ty: str) -> dict[str, Any] | None:
        rows = self._rows("operators", "ty = ?", [ty])
        return rows[0] if rows else None

    def ranges(self, holder: str | None = None) -> list[dict[str, Any]]:
        if holder is None:
            return self._rows("ranges", order="prefix")
        return self._rows("ranges", "holder = ?", [holder], order="prefix")

    def ported(
        self, recipient: str | None = None, prefix: str = "", limit: int | None = None
    ) -> list[dict[str, Any]]:
        where, args = "number >= ? AND number < ?", [prefix, prefix + ":"]
        if recipient is not None:
            where, args = where + " AND recipient = ?", [*args, recipient]
        return self._rows("ported", where, args, order="number", limit=limit)

    def port(self, number: str) -> dict[str, Any] | None:
        rows = self._rows("ported", "number = ?", [number])
        return rows[0] if rows else None

    def routes(
        self, ty: str | None = None, number: str | None = None, templates: bool = False
    ) -> list[dict[str, Any]]:
        clauses, args = [], []
        if ty is not None:
            clauses, args = ["ty = ?"], [ty]
        if number is not None:
            clauses, args = [*clauses, "number = ?"], [*args, number]
        elif templates:
            clauses.append("number IS NULL")
        where = " AND ".join(clauses) or None
        return self._rows("routes", where, args, order='ty, number, "order", preference, id')

    def tier2(self, ty: str | None = None) -> list[dict[str, Any]]:
        if ty is None:
            return self._rows("tier2_servers", order="ty, host")
        return self._rows("tier2_servers", "ty = ?", [ty], order="host")

    def zones(self) -> list[dict[str, Any]]:
        return self._rows("zones", order="name")

    def zone(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("zones", "name = ?", [name])
        return rows[0] if rows else None

    def schedules(self, ty: str | None = None) -> list[dict[str, Any]]:
        """Schedules (scope, target, ty, body as a dict), of one operator or all."""
        if not self.db["schedules"].exists():
            return []
        where, args = ("ty = ?", [ty]) if ty is not None else (None, [])
        rows = self._rows("schedules", where, args, order="scope, target")
        return [{**row, "body": json.loads(row["body"])} for row in rows]

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """Audit entries, newest first, with the serial and number of changes of each."""
        sql = (
            "SELECT audit.*, max(journal.serial) AS serial, count(journal.id) AS changes "
            "FROM audit LEFT JOIN journal ON journal.audit_id = audit.id "
            "GROUP BY audit.id ORDER BY audit.id DESC LIMIT ?"
        )
        return [dict(row) for row in self.conn.execute(sql, (limit,))]

    def journal(self, audit_id: int, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT entity, key, old, new FROM journal WHERE audit_id = ? ORDER BY id LIMIT ?"
        return [dict(row) for row in self.conn.execute(sql, (audit_id, limit))]

    def close(self) -> None:
        self.conn.close()

    LICENCE_COLUMNS = "id, ty, kind, issued, expires, revoked, generation, key_name, algorithm"

    def licences(
        self, ty: str | None = None, licence_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Licences (never their secrets), by TY and id; optionally of one TY or one id."""
        where: str = ""
        args: tuple[str, ...] = ()
        if ty is not None:
            where, args = "WHERE ty = ?", (ty,)
        elif licence_id is not None:
            where, args = "WHERE id = ?", (licence_id,)
        sql = f"SELECT {self.LICENCE_COLUMNS} FROM licences {where} ORDER BY ty, id"
        try:
            return [dict(row) for row in self.conn.execute(sql, args)]
        except sqlite3.OperationalError:
            return []  # a store made before licences existed

    def licence(self, licence_id: str) -> dict[str, Any] | None:
        """One licence by id (never its secret), or None."""
        found = self.licences(licence_id=licence_id)
        return found[0] if found else None

    def billable_events(self, start: str, end: str) -> list[dict[str, Any]]:
        """Billable events with ``start <= at < end`` (UTC ISO 8601 strings), oldest first."""
        sql = "SELECT * FROM billable_events WHERE at >= ? AND at < ? ORDER BY id"
        try:
            return [dict(row) for row in self.conn.execute(sql, (start, end))]
        except sqlite3.OperationalError:
            return []
