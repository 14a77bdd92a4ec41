"""The demo data set: fictional Finnish operators, ranges, routes and ported numbers.

The data lives in ``examples/demo`` (``registry.toml`` and ``ported.csv``); wheels carry it as
``enumserver/demo_data``. :func:`load_demo` writes all of it into a store as one change set.
"""

from __future__ import annotations

import csv
import sqlite3
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from enumserver import numbers
from enumserver.model import Route
from enumserver.store import StoreWriter

PORTED_HEADER = ["number", "recipient", "donor", "ported_at"]
_REQUIRED: Any = object()
ZONE_OPTIONAL = ("refresh", "retry", "expire", "minimum", "soa_ttl", "ns_ttl")


def demo_source() -> Path:
    """Directory of the demo data: packaged ``enumserver/demo_data``, else ``examples/demo``."""
    try:
        packaged = resources.files("enumserver").joinpath("demo_data")
        if packaged.is_dir() and packaged.joinpath("registry.toml").is_file():
            return Path(str(packaged))
    except (ModuleNotFoundError, NotADirectoryError, OSError):
        pass
    return Path(__file__).resolve().parents[1] / "examples" / "demo"


class _Entry:
    """One ``[[table]]`` entry of registry.toml, with errors that name the file and entry."""

    def __init__(self, path: Path, table: str, index: int, data: dict[str, Any]) -> None:
        self.where = f"{path}: [[{table}]] entry {index}"
        self.data = data

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.where}: {problem}")

    def get(self, key: str, kind: type, default: Any = _REQUIRED) -> Any:
        """The value of a key of the given type; without a default the key must be there."""
        if key not in self.data:
            if default is _REQUIRED:
                raise self.fail(f"missing {key!r}")
            return default
        value = self.data[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(f"{key!r} must be {kind.__name__}, not {value!r}")
        return value

    def number(self, key: str) -> str:
        try:
            return numbers.normalise(self.get(key, str))
        except numbers.NumberError as exc:
            raise self.fail(str(exc)) from exc

    def ref(self, key: str, known: set[str], default: Any = _REQUIRED) -> str | None:
        """An operator id that must be one of ``known``."""
        value: str | None = self.get(key, str, default)
        if value is not None and value not in known:
            raise self.fail(f"{key} {value!r} is not an operator")
        return value


def _entries(path: Path, registry: dict[str, Any], table: str) -> list[_Entry]:
    items = registry.get(table, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{path}: {table!r} must be an array of tables [[{table}]]")
    return [_Entry(path, table, n, item) for n, item in enumerate(items, start=1)]


def _read_ported(path: Path, known: set[str]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if next(reader, None) != PORTED_HEADER:
            raise ValueError(f"{path} line 1: header must be {','.join(PORTED_HEADER)}")
        for fields in reader:
            where = f"{path} line {reader.line_num}"
            try:  # a wrong number of fields or a bad number
                text, recipient, donor, ported_at = (field.strip() for field in fields)
                number = numbers.normalise(text)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
            if number in rows:
                raise ValueError(f"{where}: +{number} is listed twice")
            if recipient not in known or (donor and donor not in known) or recipient == donor:
                problem = "must be different operators of registry.toml"
                raise ValueError(f"{where}: recipient {recipient!r} and donor {donor!r} {problem}")
            rows[number] = {
                "number": number,
                "recipient": recipient,
                "donor": donor or None,
                "ported_at": ported_at or None,
            }
    return list(rows.values())


def _rows(e: _Entry, table: str, known: set[str]) -> dict[str, Any]:
    """The store row of one registry entry (``table`` is the registry's table name)."""
    if table == "operator":
        joined = e.get("joined", object, None)
        return {
            "ty": e.get("ty", str),
            "name": e.get("name", str),
            "kind": e.get("kind", str),
            "host_ty": e.ref("host_ty", known, None),
            "routing_number": e.get("routing_number", str, None),
            "sip_domain": e.get("sip_domain", str, None),
            "joined": None if joined is None else str(joined),
            "openstack": int(e.get("openstack", bool, False)),
        }
    if table == "zone":
        zone = {key: e.get(key, str) for key in ("name", "apex", "role", "style", "mname", "rname")}
        zone |= {
            "environment": e.get("environment", str, "production"),
            "operator": e.ref("operator", known, None),
            "ns": " ".join(str(host) for host in e.get("ns", list)),
        }
        return zone | {key: e.get(key, int) for key in ZONE_OPTIONAL if key in e.data}
    if table == "tier2":
        return {
            "ty": e.ref("ty", known),
            "host": e.get("host", str),
            "ipv4": e.get("ipv4", str, None),
            "ipv6": e.get("ipv6", str, None),
            "ttl": e.get("ttl", int, 3600),
        }
    if table == "range":
        prefix = e.number("prefix")
        low, high = numbers.default_lengths(prefix)
        return {
            "prefix": prefix,
            "holder": e.ref("holder", known),
            "min_digits": e.get("min_digits", int, low),
            "max_digits": e.get("max_digits", int, high),
        }
    number = e.number("number") if "number" in e.data else None
    return {
        "ty": e.ref("ty", known),
        "number": number,
        "order": e.get("order", int),
        "preference": e.get("preference", int),
        "flags": e.get("flags", str),
        "service": e.get("service", str),
        "regexp": e.get("regexp", str),
        "replacement": e.get("replacement", str, "."),
        "ttl": e.get("ttl", int, 300),
    }


TABLES = {
    "operator": "operators",
    "zone": "zones",
    "tier2": "tier2_servers",
    "range": "ranges",
    "route": "routes",
}


def load_demo(writer: StoreWriter, source: Path | None = None) -> dict[str, int]:
    """Load registry.toml and ported.csv from ``source`` (default: the demo) in one change set.

    Operators are written first (host TYs before their POs): the other tables refer to them.

    :returns: number of rows written per store table.
    :raises ValueError: on bad data, naming the file and the entry or line.
    """
    source = source or demo_source()
    path = source / "registry.toml"
    try:
        registry = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    entries = {table: _entries(path, registry, table) for table in TABLES}
    entries["operator"].sort(key=lambda e: e.get("kind", str) != "TY")
    known = {str(e.get("ty", str)) for e in entries["operator"]}
    ported = _read_ported(source / "ported.csv", known)
    counts = {store_table: 0 for store_table in TABLES.values()}
    with writer.change(who="demo", command="load-example", message="demo data") as change:
        for table, store_table in TABLES.items():
            for e in entries[table]:
                row = _rows(e, table, known)
                try:
                    if table == "route":
                        change.add_route(Route(**row))
                    else:
                        change.put(store_table, row)
                except sqlite3.Error as exc:
                    raise e.fail(str(exc)) from exc
                counts[store_table] += 1
        change.bulk_ported(ported)
    counts["ported"] = len(ported)
    return counts
