"""Write side of the store, used only by publishing: one transaction per change set.

Every write inside :meth:`StoreWriter.change` records a journal row (entity, key, old and new
value) under the change set's serial and an audit row (who, command, licence, why). On success
every zone gets the new serial; on any error, or in a dry run, nothing is kept.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from enumserver.model import Route
from enumserver.store.read import StoreReader, connect
from enumserver.store.schema import MOMENT_KEY, SCHEDULES_TABLE, SCHEMA, SCHEMA_VERSION

ROUTE_FIELDS = ("order", "preference", "flags", "service", "regexp", "replacement", "ttl")
TIER2_FIELDS = ("host", "ipv4", "ipv6", "ttl")
PORTED_UPSERT = (
    "INSERT INTO ported (number, recipient, donor, ported_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (number) DO UPDATE SET recipient=excluded.recipient, "
    "donor=excluded.donor, ported_at=excluded.ported_at"
)
JOURNAL_INSERT = (
    "INSERT INTO journal (serial, audit_id, entity, key, old, new) VALUES (?, ?, ?, ?, ?, ?)"
)


class DryRun(Exception):
    """Raised inside a change to roll it back on purpose (plans)."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


class StoreWriter:
    """Write API of publishing: every change inside :meth:`change`, one transaction each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self.conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: bulk imports touch many pages
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
        self,
        who: str,
        command: str,
        message: str | None = None,
        licence: str | None = None,
        dry_run: bool = False,
    ) -> Iterator[Change]:
        """One atomic change set: everything inside or nothing; zone serials bump on success.

        With ``dry_run`` the change is made, can be inspected, and is rolled back.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cur = conn.execute(
                "INSERT INTO audit (at, who, command, licence, message) VALUES (?, ?, ?, ?, ?)",
                (now, who, command, licence, message),
            )
            change = Change(self, cur.lastrowid or 0, self.next_serial())
            yield change
            if dry_run:
                raise DryRun
            if change.count:
                conn.execute("UPDATE zones SET serial=?", (change.serial,))
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")  # nothing changed: no audit row, no new serial
        except DryRun:
            conn.execute("ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def next_serial(self) -> int:
        """The serial the next change set gets: one past the highest zone serial (RFC 1982)."""
        row = self.conn.execute("SELECT max(serial) FROM zones").fetchone()
        return ((row[0] or 0) + 1) % (1 << 32) or 1

    def current_serial(self) -> int:
        """The highest zone serial now (0 for a store without zones)."""
        row = self.conn.execute("SELECT max(serial) FROM zones").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        self.conn.close()

    def wait_for_lock(self, seconds: float) -> None:
        """How long a change waits for another writer before failing (a server cannot wait 5 s)."""
        self.conn.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")


class Change:
    """The writes of one change set; each records a journal row with old and new values."""

    TABLE_KEYS = {
        "zones": ("name",),
        "operators": ("ty",),
        "tier2_servers": ("ty", "host"),
        "ranges": ("prefix",),
        "ported": ("number",),
    }

    def __init__(self, writer: StoreWriter, audit_id: int, serial: int) -> None:
        self.writer = writer
        self.conn: sqlite3.Connection = writer.conn
        self.audit_id = audit_id
        self.serial = serial
        self.count = 0

    def _journal(self, entity: str, key: list[Any], old: Any, new: Any) -> None:
        row = (self.serial, self.audit_id, entity, json.dumps(key), _json(old), _json(new))
        self.conn.execute(JOURNAL_INSERT, row)
        self.count += 1

    def reader(self) -> StoreReader:
        """A reader that sees this change's uncommitted state (for plans and checks)."""
        return StoreReader(self.writer.path, conn=self.conn)

    def get(self, table: str, **key: Any) -> dict[str, Any] | None:
        """One row by its key, or None."""
        where = " AND ".join(f'"{k}"=?' for k in key)
        row = self.conn.execute(f"SELECT * FROM {table} WHERE {where}", tuple(key.values()))
        found = row.fetchone()
        return dict(found) if found else None

    def put(self, table: str, record: dict[str, Any]) -> bool:
        """Insert or update one row (UPSERT on its key); False when nothing changed."""
        keys = self.TABLE_KEYS[table]
        key = {k: record[k] for k in keys}
        old = self.get(table, **key)
        if old is not None and all(old.get(k) == v for k, v in record.items()):
            return False
        columns = ", ".join(f'"{c}"' for c in record)
        marks = ", ".join("?" for _ in record)
        updates = ", ".join(f'"{c}"=excluded."{c}"' for c in record if c not in keys)
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) {conflict}",
            tuple(record.values()),
        )
        self._journal(table, list(key.values()), old, {**(old or {}), **record})
        return True

    def delete(self, table: str, **key: Any) -> bool:
        """Delete one row by key; False when there was none."""
        old = self.get(table, **key)
        if old is None:
            return False
        where = " AND ".join(f'"{k}"=?' for k in key)
        self.conn.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))
        self._journal(table, list(key.values()), old, None)
        return True

    def routes_of(self, ty: str, number: str | None) -> list[dict[str, Any]]:
        """The NAPTR routes of one number (or an operator's templates), in answer order."""
        columns = ", ".join(f'"{c}"' for c in ROUTE_FIELDS)
        sql = (
            f"SELECT {columns} FROM routes WHERE ty=? AND number IS ? "
            'ORDER BY "order", preference, id'
        )
        return [dict(row) for row in self.conn.execute(sql, (ty, number))]

    def replace_routes(self, ty: str, number: str | None, records: list[dict[str, Any]]) -> bool:
        """Make these the routes of a number (or the templates of an operator); [] removes."""
        old = self.routes_of(ty, number)
        if old == records:
            return False
        self.conn.execute("DELETE FROM routes WHERE ty=? AND number IS ?", (ty, number))
        columns = ", ".join(f'"{c}"' for c in ("ty", "number", *ROUTE_FIELDS))
        sql = f"INSERT INTO routes ({columns}) VALUES ({', '.join('?' * (len(ROUTE_FIELDS) + 2))})"
        self.conn.executemany(sql, [(ty, number, *(r[f] for f in ROUTE_FIELDS)) for r in records])
        self._journal("routes", [ty, number], old or None, records or None)
        return True

    def add_route(self, route: Route) -> None:
        """Add one NAPTR route to a number's (or an operator's template) record set."""
        record = {f: getattr(route, f) for f in ROUTE_FIELDS}
        self.replace_routes(
            route.ty, route.number, [*self.routes_of(route.ty, route.number), record]
        )

    def tier2_of(self, ty: str) -> list[dict[str, Any]]:
        """An operator's Tier2 name servers, by host name."""
        sql = "SELECT host, ipv4, ipv6, ttl FROM tier2_servers WHERE ty=? ORDER BY host"
        return [dict(row) for row in self.conn.execute(sql, (ty,))]

    def replace_tier2(self, ty: str, servers: list[dict[str, Any]]) -> bool:
        """Make these the Tier2 name servers of an operator."""
        old = self.tier2_of(ty)
        new = sorted(servers, key=lambda server: server["host"])
        if old == new:
            return False
        self.conn.execute("DELETE FROM tier2_servers WHERE ty=?", (ty,))
        self.conn.executemany(
            "INSERT INTO tier2_servers (ty, host, ipv4, ipv6, ttl) VALUES (?, ?, ?, ?, ?)",
            [(ty, *(s[f] for f in TIER2_FIELDS)) for s in new],
        )
        self._journal("tier2_servers", [ty], old or None, new or None)
        return True

    def ported_map(self) -> dict[str, tuple[str, str | None, str | None]]:
        """Every ported entry: number -> (recipient, donor, ported_at). For bulk diffs only."""
        sql = "SELECT number, recipient, donor, ported_at FROM ported"
        return {row[0]: (row[1], row[2], row[3]) for row in self.conn.execute(sql)}

    def put_ported_many(
        self,
        rows: Iterable[tuple[str, str, str | None, str | None]],
        old: dict[str, tuple[str, str | None, str | None]],
        batch_size: int = 50_000,
        progress: Any = None,
    ) -> int:
        """Upsert ported entries in batches, a journal row each (old value from ``old``)."""
        rows = list(rows)
        serial, audit, get = self.serial, self.audit_id, old.get
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            self.conn.executemany(PORTED_UPSERT, batch)
            journal = [
                (serial, audit, "ported", f'["{number}"]', _ported_json(number, get(number)),
                 _ported_json(number, (recipient, donor, at)))
                for number, recipient, donor, at in batch
            ]  # fmt: skip
            self.conn.executemany(JOURNAL_INSERT, journal)
            if progress is not None:
                progress(len(batch))
        self.count += len(rows)
        return len(rows)

    def delete_ported_many(
        self, numbers: Iterable[str], old: dict[str, tuple[str, str | None, str | None]]
    ) -> int:
        """Remove ported entries (the numbers go back to their range holders), journaled."""
        numbers = list(numbers)
        self.conn.executemany("DELETE FROM ported WHERE number=?", [(n,) for n in numbers])
        self.conn.executemany(
            JOURNAL_INSERT,
            [
                (self.serial, self.audit_id, "ported", f'["{n}"]',
                 _ported_json(n, old.get(n)), None)
                for n in numbers
            ],
        )  # fmt: skip
        self.count += len(numbers)
        return len(numbers)

    def bulk_ported(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert or replace ported numbers given as dicts (loaders and tests)."""
        old = {}
        tuples = []
        for row in rows:
            entry = (row["number"], row["recipient"], row.get("donor"), row.get("ported_at"))
            before = self.get("ported", number=entry[0])
            if before is not None:
                old[entry[0]] = (before["recipient"], before["donor"], before["ported_at"])
            tuples.append(entry)
        return self.put_ported_many(tuples, old)

    def ranges_touching(self, prefix: str) -> list[dict[str, Any]]:
        """Ranges that contain the prefix or lie inside it (overlap checks)."""
        above = [prefix[:size] for size in range(1, len(prefix) + 1)]
        marks = ", ".join("?" * len(above))
        sql = (
            f"SELECT * FROM ranges WHERE prefix IN ({marks}) "
            "OR (prefix > ? AND prefix < ?) ORDER BY prefix"
        )
        return [dict(r) for r in self.conn.execute(sql, (*above, prefix, prefix + ":"))]

    def references_to(self, ty: str) -> dict[str, int]:
        """How many rows name an operator (a TY cannot leave while it holds anything)."""
        counts = {}
        for table, column in (
            ("ranges", "holder"),
            ("ported", "recipient"),
            ("routes", "ty"),
            ("operators", "host_ty"),
            ("zones", "operator"),
        ):
            sql = f"SELECT count(*) FROM {table} WHERE {column}=?"
            counts[table] = int(self.conn.execute(sql, (ty,)).fetchone()[0])
        return {table: n for table, n in counts.items() if n}

    # -- schedules (docs/service-numbers.md) ---------------------------------------------
    def schedule_row(self, scope: str, target: str) -> dict[str, Any] | None:
        """A schedule: {ty, body (the document as a dict)} of a number or range, or None."""
        self.conn.execute(SCHEDULES_TABLE)  # stores made before schedules existed
        sql = "SELECT ty, body FROM schedules WHERE scope=? AND target=?"
        row = self.conn.execute(sql, (scope, target)).fetchone()
        return None if row is None else {"ty": row["ty"], "body": json.loads(row["body"])}

    def replace_schedule(
        self, scope: str, target: str, ty: str, body: dict[str, Any] | None
    ) -> bool:
        """Set (or with None remove) the schedule of a number or range prefix, journaled."""
        old = self.schedule_row(scope, target)
        new = None if body is None else {"ty": ty, "body": body}
        if old == new:
            return False
        if new is None:
            self.conn.execute("DELETE FROM schedules WHERE scope=? AND target=?", (scope, target))
        else:
            self.conn.execute(
                "INSERT INTO schedules (scope, target, ty, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, target) DO UPDATE SET ty=excluded.ty, body=excluded.body",
                (scope, target, ty, json.dumps(body, sort_keys=True)),
            )
        self._journal("schedules", [scope, target], old, new)
        return True

    def remove_schedules_of(self, ty: str) -> int:
        """Remove every schedule an operator set (it leaves the service)."""
        self.conn.execute(SCHEDULES_TABLE)
        sql = "SELECT scope, target FROM schedules WHERE ty=?"
        targets = [(row[0], row[1]) for row in self.conn.execute(sql, (ty,)).fetchall()]
        for scope, target in targets:
            self.replace_schedule(scope, target, ty, None)
        return len(targets)

    def record_switches(
        self, moment: float, switched: dict[tuple[str, str], tuple[str, str]]
    ) -> None:
        """Move the moment zone transfers evaluate schedules at, journaling it (``tick``: old
        and new moment) and every schedule whose set changed (``switch``: old and new set)."""
        sql = "SELECT value FROM meta WHERE key=?"
        old = self.conn.execute(sql, (MOMENT_KEY,)).fetchone()
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (MOMENT_KEY, repr(moment)))
        self._journal("tick", [MOMENT_KEY], None if old is None else {"at": float(old[0])},
                      {"at": moment})  # fmt: skip
        for (scope, target), (before, after) in sorted(switched.items()):
            self._journal("switch", [scope, target], {"set": before}, {"set": after})
        what = [f"{'range ' if s == 'range' else ''}+{t}: {a} -> {b}"
                for (s, t), (a, b) in sorted(switched.items())]  # fmt: skip
        text = "; ".join(what) or "the first tick: transfers follow the schedule moment"
        self.conn.execute("UPDATE audit SET message=? WHERE id=?", (text, self.audit_id))

    def licences_of(self, ty: str) -> list[dict[str, Any]]:
        """An operator's licences (with secrets: for the publishing path only), by id."""
        sql = "SELECT * FROM licences WHERE ty=? ORDER BY id"
        return [dict(row) for row in self.conn.execute(sql, (ty,))]

    def put_licence(self, record: dict[str, Any]) -> bool:
        """Insert or update a licence by id; the journal never holds its secret."""
        old = self.get("licences", id=record["id"])
        if old is not None and all(old.get(k) == v for k, v in record.items()):
            return False
        columns = ", ".join(record)
        updates = ", ".join(f"{c}=excluded.{c}" for c in record if c != "id")
        self.conn.execute(
            f"INSERT INTO licences ({columns}) VALUES ({', '.join('?' * len(record))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            tuple(record.values()),
        )
        new = {**(old or {}), **record}
        self._journal("licences", [record["id"]], _secretless(old), _secretless(new))
        return True


def _secretless(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: v for k, v in row.items() if k != "secret"}


def _quoted(value: str | None) -> str:
    return (
        "null"
        if value is None
        else json.dumps(value)
        if '"' in value or "\\" in value
        else f'"{value}"'
    )


def _ported_json(number: str, values: Any) -> str | None:
    """The JSON of a ported row as json.dumps(sort_keys=True) writes it, without its cost."""
    if values is None:
        return None
    recipient, donor, ported_at = values
    return (
        f'{{"donor": {_quoted(donor)}, "number": "{number}", '
        f'"ported_at": {_quoted(ported_at)}, "recipient": {_quoted(recipient)}}}'
    )
