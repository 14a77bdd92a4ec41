"""Change-set files (YAML, CSV) and the bulk import of ported numbers from the NP master.

A ported-numbers CSV has the header ``number,recipient,donor,ported_at`` (see
docs/publishing.md). Every row is checked (number, known TY, inside a range, duplicate, time)
and the import is refused with file, line and reason before anything is written.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enumserver.store import Change
from zonetools import rules
from zonetools.ops import OpError, ported_at

PORT_COLUMNS = ("number", "recipient", "donor", "ported_at")
RANGE_COLUMNS = ("prefix", "holder")
CANONICAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MAX_REASONS = 20

PortRow = tuple[str, str, str | None, str | None]


class FileError(ValueError):
    """A change-set file that cannot be read; the message names the file and line."""


@dataclass
class RawPorts:
    """Rows of a ported-numbers CSV as read (checked against the store when executed)."""

    path: str
    rows: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    snapshot: bool = False


def read_ported_csv(path: str | Path, snapshot: bool = False) -> RawPorts:
    """Read a ported-numbers CSV (header number,recipient,donor,ported_at; donor/time optional)."""
    raw = RawPorts(str(path), snapshot=snapshot)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        missing = [c for c in ("number", "recipient") if c not in header]
        if missing:
            raise FileError(
                f"{path}:1: header must name {', '.join(PORT_COLUMNS)}; missing {missing}"
            )
        index = [header.index(c) if c in header else -1 for c in PORT_COLUMNS]
        width = len(header)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                raise FileError(f"{path}:{line}: {len(row)} columns, the header has {width}")
            values = [row[i].strip() if i >= 0 else "" for i in index]
            raw.rows.append((line, values[0], values[1], values[2], values[3]))
    return raw


def check_ports(change: Change, raw: RawPorts) -> list[PortRow]:
    """Validate every row against the store; raise FileError with up to 20 file:line reasons."""
    snapshot = change.reader().snapshot()
    known = set(snapshot.operators)
    seen: dict[str, int] = {}
    rows: list[PortRow] = []
    reasons: list[str] = []
    for line, number_text, recipient, donor, when in raw.rows:
        try:
            digits = rules.number(number_text)
            found = snapshot.range_of(digits)
            if found is None:
                raise OpError(f"+{digits} is in no number range")
            if not found.min_digits <= len(digits) <= found.max_digits:
                raise OpError(f"+{digits} is too short or long for range +{found.prefix}")
            for role, ty in (("recipient", recipient), ("donor", donor)):
                if ty and ty not in known:
                    raise OpError(f"unknown {role} TY {ty!r}")
            if not recipient:
                raise OpError("no recipient TY")
            if digits in seen:
                raise OpError(f"+{digits} is listed twice (also on line {seen[digits]})")
            seen[digits] = line
            stamp = when if CANONICAL_TIME.match(when) else ported_at(when)
            rows.append((digits, recipient, donor or found.holder, stamp))
        except (rules.RuleError, OpError) as exc:
            reasons.append(f"{raw.path}:{line}: {exc}")
            if len(reasons) >= MAX_REASONS:
                reasons.append(f"{raw.path}: stopped after {MAX_REASONS} bad rows")
                break
    if reasons:
        raise FileError("\n".join(reasons))
    return rows


def diff_ports(
    change: Change,
    rows: list[PortRow],
    snapshot: bool,
    record: Callable[[str, str, Any, Any], None],
    touch: Callable[[str], None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the difference between the rows and the store's ported numbers."""
    existing = change.ported_map()
    upserts = [row for row in rows if existing.get(row[0]) != row[1:]]
    names = ("recipient", "donor", "ported_at")
    for number, *values in upserts:
        before = existing.get(number)
        old = None if before is None else dict(zip(names, before, strict=True))
        record("port", f"+{number}", old, dict(zip(names, values, strict=True)))
        touch(number)
    change.put_ported_many(upserts, existing, progress=progress)
    if snapshot:
        listed = {row[0] for row in rows}
        gone = sorted(set(existing) - listed)
        for number in gone:
            record("port", f"+{number}", dict(zip(names, existing[number], strict=True)), None)
            touch(number)
        change.delete_ported_many(gone, existing)


Ops = list[tuple[str, str, dict[str, Any], str]]


def read_changes(path: str | Path) -> tuple[Ops, str | None, RawPorts | None]:
    """Operations of a change-set file: YAML (changes: [...]) or CSV (ports or ranges)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            header = [c.strip().lower() for c in next(csv.reader(handle), [])]
        if "number" in header and "recipient" in header:
            return [], None, read_ported_csv(path)
        if all(c in header for c in RANGE_COLUMNS):
            return _range_rows(path), None, None
        raise FileError(
            f"{path}:1: a CSV change set has the columns {','.join(PORT_COLUMNS)} "
            f"(ported numbers) or prefix,holder[,min_digits,max_digits] (ranges)"
        )
    return _yaml_ops(path)


def _range_rows(path: Path) -> Ops:
    ops = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            fields = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            ops.append(("set", "range", {k: v for k, v in fields.items() if v}, f"{path}:{line}"))
    return ops


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping (for error messages)."""


def _mapping_with_line(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _yaml_ops(path: Path) -> tuple[Ops, str | None, RawPorts | None]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise FileError(f"{path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list):
        raise FileError(f"{path}: a change set is a mapping with a 'changes:' list")
    ops = []
    for item in data["changes"]:
        if not isinstance(item, dict):
            raise FileError(f"{path}: every change is a mapping (set: ENTITY or remove: ENTITY)")
        line = item.pop("__line__", "?")
        actions = [a for a in ("set", "remove") if a in item]
        if len(actions) != 1:
            raise FileError(f"{path}:{line}: give exactly one of 'set: ENTITY' or 'remove: ENTITY'")
        entity = str(item.pop(actions[0]))
        ops.append((actions[0], entity, _strip_lines(item), f"{path}:{line}"))
    message = data.get("message")
    return ops, None if message is None else str(message), None


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value
