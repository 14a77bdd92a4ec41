"""The SQLite store: the one schema and every SQL statement; server reads, publishing writes.

The server reads through :class:`StoreReader` (small tables kept in a :class:`Snapshot`,
ported numbers and per-number routes looked up by primary key on demand, so start-up does
not grow with the number of ported numbers). Publishing writes through :class:`StoreWriter`,
one transaction per change set, bumping zone serials and writing the journal.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from enumserver.model import NumberRange, Operator, Route, Tier2Server, Zone

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS zones (
    name TEXT PRIMARY KEY,
    apex TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('tier1', 'tier2')),
    style TEXT NOT NULL DEFAULT 'naptr' CHECK (style IN ('referral', 'naptr')),
    environment TEXT NOT NULL DEFAULT 'production' CHECK (environment IN ('production', 'test')),
    operator TEXT REFERENCES operators(ty),
    mname TEXT NOT NULL,
    rname TEXT NOT NULL,
    serial INTEGER NOT NULL DEFAULT 1,
    refresh INTEGER NOT NULL DEFAULT 3600,
    retry INTEGER NOT NULL DEFAULT 600,
    expire INTEGER NOT NULL DEFAULT 1209600,
    minimum INTEGER NOT NULL DEFAULT 60,
    soa_ttl INTEGER NOT NULL DEFAULT 300,
    ns TEXT NOT NULL,
    ns_ttl INTEGER NOT NULL DEFAULT 3600
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS operators (
    ty TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'TY' CHECK (kind IN ('TY', 'PO')),
    host_ty TEXT REFERENCES operators(ty),
    routing_number TEXT,
    sip_domain TEXT,
    joined TEXT,
    openstack INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'PO') = (host_ty IS NOT NULL))
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tier2_servers (
    ty TEXT NOT NULL REFERENCES operators(ty),
    host TEXT NOT NULL,
    ipv4 TEXT,
    ipv6 TEXT,
    ttl INTEGER NOT NULL DEFAULT 3600,
    PRIMARY KEY (ty, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ranges (
    prefix TEXT PRIMARY KEY,
    holder TEXT NOT NULL REFERENCES operators(ty),
    min_digits INTEGER NOT NULL,
    max_digits INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ported (
    number TEXT PRIMARY KEY,
    recipient TEXT NOT NULL REFERENCES operators(ty),
    donor TEXT REFERENCES operators(ty),
    ported_at TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    ty TEXT NOT NULL REFERENCES operators(ty),
    number TEXT,
    "order" INTEGER NOT NULL,
    preference INTEGER NOT NULL,
    flags TEXT NOT NULL,
    service TEXT NOT NULL,
    regexp TEXT NOT NULL,
    replacement TEXT NOT NULL DEFAULT '.',
    ttl INTEGER NOT NULL DEFAULT 300
);
CREATE INDEX IF NOT EXISTS routes_by_number ON routes (number) WHERE number IS NOT NULL;
CREATE INDEX IF NOT EXISTS routes_templates ON routes (ty) WHERE number IS NULL;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    command TEXT NOT NULL,
    licence TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    serial INTEGER NOT NULL,
    audit_id INTEGER REFERENCES audit(id),
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS journal_by_serial ON journal (serial);
"""


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

    @property
    def serials(self) -> dict[str, int]:
        """Serial of every zone, by zone name."""
        return {name: zone.serial for name, zone in self.zones.items()}

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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path, readonly=True)
        try:
            version = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not an operator-enum store: {exc}") from exc
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version and version[0]}, need {SCHEMA_VERSION}"
            )
        self._data_version = -1

    def changed(self) -> bool:
        """True when another connection committed since the last call (cheap: no table read)."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            return True
        return False

    def snapshot(self) -> Snapshot:
        """Read zones, operators, Tier2 servers, templates and ranges in one read transaction."""
        conn = self.conn
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
        finally:
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
        )

    def recipient_of(self, digits: str) -> str | None:
        """The TY a number was ported to, or None when it is not ported."""
        row = self.conn.execute("SELECT recipient FROM ported WHERE number=?", (digits,)).fetchone()
        return row[0] if row else None

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


class StoreWriter:
    """Write API of publishing: every change inside :meth:`change`, one transaction each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self.db = sqlite_utils.Database(self.conn)

    @classmethod
    def create(cls, path: str | Path) -> StoreWriter:
        """Create (or upgrade in place) a store with the current schema."""
        writer = cls(path)
        with writer.conn:
            writer.conn.executescript(SCHEMA)
            writer.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        return writer

    @contextmanager
    def change(
        self, who: str, command: str, message: str | None = None, licence: str | None = None
    ) -> Iterator[Change]:
        """One atomic change set: everything inside or nothing; zone serials bump on success."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cur = conn.execute(
                "INSERT INTO audit (at, who, command, licence, message) VALUES (?, ?, ?, ?, ?)",
                (now, who, command, licence, message),
            )
            serial = self.next_serial()
            change = Change(self, cur.lastrowid or 0, serial)
            yield change
            if change.count:
                conn.execute("UPDATE zones SET serial=?", (serial,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def next_serial(self) -> int:
        """The serial the next change set gets: one past the highest zone serial (RFC 1982)."""
        row = self.conn.execute("SELECT max(serial) FROM zones").fetchone()
        return ((row[0] or 0) + 1) % (1 << 32) or 1

    def close(self) -> None:
        self.conn.close()


class Change:
    """The writes of one change set; each records a journal row with old and new values."""

    TABLE_KEYS = {
        "zones": ("name",),
        "operators": ("ty",),
        "tier2_servers": ("ty", "host"),
        "ranges": ("prefix",),
        "ported": ("number",),
        "routes": ("id",),
    }

    def __init__(self, writer: StoreWriter, audit_id: int, serial: int) -> None:
        self.db = writer.db
        self.conn = writer.conn
        self.audit_id = audit_id
        self.serial = serial
        self.count = 0

    def _journal(self, entity: str, key: str, old: Any, new: Any) -> None:
        self.conn.execute(
            "INSERT INTO journal (serial, audit_id, entity, key, old, new) VALUES (?,?,?,?,?,?)",
            (
                self.serial,
                self.audit_id,
                entity,
                key,
                None if old is None else json.dumps(old),
                None if new is None else json.dumps(new),
            ),
        )
        self.count += 1

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        where = " AND ".join(f'"{k}"=?' for k in key)
        row = self.conn.execute(f"SELECT * FROM {table} WHERE {where}", tuple(key.values()))
        found = row.fetchone()
        return dict(found) if found else None

    def put(self, table: str, record: dict[str, Any]) -> None:
        """Insert or update one row (UPSERT on its key), journaled with its previous value."""
        keys = self.TABLE_KEYS[table]
        key = {k: record[k] for k in keys}
        old = self._get(table, key)
        if old is not None and all(old.get(k) == v for k, v in record.items()):
            return
        columns = ", ".join(f'"{c}"' for c in record)
        marks = ", ".join("?" for _ in record)
        updates = ", ".join(f'"{c}"=excluded."{c}"' for c in record if c not in keys)
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) {conflict}",
            tuple(record.values()),
        )
        self._journal(table, json.dumps(list(key.values())), old, record)

    def delete(self, table: str, **key: Any) -> bool:
        """Delete one row by key; False when there was none."""
        old = self._get(table, key)
        if old is None:
            return False
        where = " AND ".join(f'"{k}"=?' for k in key)
        self.conn.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))
        self._journal(table, json.dumps(list(key.values())), old, None)
        return True

    def add_route(self, route: Route) -> None:
        """Add a NAPTR route (per number or template)."""
        record = {
            "ty": route.ty,
            "number": route.number,
            "order": route.order,
            "preference": route.preference,
            "flags": route.flags,
            "service": route.service,
            "regexp": route.regexp,
            "replacement": route.replacement,
            "ttl": route.ttl,
        }
        columns = ", ".join(f'"{c}"' for c in record)
        cur = self.conn.execute(
            f"INSERT INTO routes ({columns}) VALUES ({', '.join('?' for _ in record)})",
            tuple(record.values()),
        )
        self._journal("routes", json.dumps([cur.lastrowid]), None, record)

    def bulk_ported(self, rows: Iterable[dict[str, Any]], batch_size: int = 10_000) -> int:
        """Insert or replace many ported numbers in batches; one journal row for the batch."""
        sql = (
            "INSERT INTO ported (number, recipient, donor, ported_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (number) DO UPDATE SET recipient=excluded.recipient, "
            "donor=excluded.donor, ported_at=excluded.ported_at"
        )
        total = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append((row["number"], row["recipient"], row.get("donor"), row.get("ported_at")))
            if len(batch) >= batch_size:
                self.conn.executemany(sql, batch)
                total += len(batch)
                batch.clear()
        self.conn.executemany(sql, batch)
        total += len(batch)
        self._journal("ported", "bulk", None, {"rows": total})
        return total


def store_serials(path: str | Path) -> dict[str, int]:
    """Zone serials of a store, for tools and tests."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT name, serial FROM zones").fetchall())
