"""Change-set files (YAML, CSV) and the bulk import of ported numbers from the NP master.

A ported-numbers CSV has the header ``number,recipient,donor,ported_at`` (see
docs/publishing.md). Every row is checked (number, known TY, inside a range, duplicate, time)
and the import is refused with file, line and reason before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

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
    digest: bytes = b""


def read_ported_csv(path: str | Path, snapshot: bool = False) -> RawPorts:
    """Read a ported-numbers CSV (header number,recipient,donor,ported_at; donor/time optional)."""
    raw = RawPorts(str(path), snapshot=snapshot)
    raw.digest = hashlib.sha256(Path(path).read_bytes()).digest()
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
        if header == list(PORT_COLUMNS):  # the documented layout: no column shuffling
            append = raw.rows.append
            for line, row in enumerate(reader, start=2):
                if len(row) == 4:
                    append((line, row[0].strip(), row[1].strip(), row[2].strip(), row[3].strip()))
                elif row:
                    raise FileError(f"{path}:{line}: {len(row)} columns, the header has 4")
            return raw
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
    known = set(snapshot.operators) | {""}
    all_known = {r[2] for r in raw.rows} | {r[3] for r in raw.rows} <= known
    number, range_of, timestamp = rules.number, snapshot.range_of, CANONICAL_TIME.match
    canonical, lengths = rules.CANONICAL_NUMBER.fullmatch, rules.nsn_lengths
    seen: dict[str, int] = {}
    rows: list[PortRow] = []
    reasons: list[str] = []
    for line, number_text, recipient, donor, when in raw.rows:
        try:
            fast = canonical(number_text)  # +358 and digits: check the length only
            digits = fast.group(1) if fast else number(number_text)
            if fast and not lengths(digits[3:6])[0] <= len(digits) - 3 <= lengths(digits[3:6])[1]:
                digits = number(number_text)  # raises with the reason
            found = range_of(digits)
            if found is None:
                raise OpError(f"+{digits} is in no number range")
            if not found.min_digits <= len(digits) <= found.max_digits:
                raise OpError(f"+{digits} is too short or long for range +{found.prefix}")
            if not all_known:
                for role, ty in (("recipient", recipient), ("donor", donor)):
                    if ty not in known:
                        raise OpError(f"unknown {role} TY {ty!r}")
            if not recipient:
                raise OpError("no recipient TY")
            if digits in seen:
                raise OpError(f"+{digits} is listed twice (also on line {seen[digits]})")
            seen[digits] = line
            stamp = when if timestamp(when) else ported_at(when)
            rows.append((digits, recipient, donor or found.holder, stamp))
        except (rules.RuleError, OpError) as exc:
            reasons.append(f"{raw.path}:{line}: {exc}")
            if len(reasons) >= MAX_REASONS:
                reasons.append(f"{raw.path}: stopped after {MAX_REASONS} bad rows")
                break
    if reasons:
        raise FileError("\n".join(reasons))
    return rows


Item = tuple[str, tuple[Any, ...] | None, tuple[Any, ...] | None]


class BulkRecorder(Protocol):
    def record_bulk(
        self,
        entity: str,
        names: tuple[str, ...],
        counts: dict[str, int],
        sample: list[Item],
        fingerprint: bytes,
    ) -> None: ...
    def touch(self, digits: str) -> None: ...


def diff_ports(
    change: Change,
    raw: RawPorts,
    rows: list[PortRow],
    recorder: BulkRecorder,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the difference between the rows and the store's ported numbers."""
    existing = change.ported_map()
    get = existing.get
    upserts = sorted((row for row in rows if get(row[0]) != row[1:]), key=itemgetter(0))
    modified = sum(1 for row in upserts if row[0] in existing)
    gone = sorted(set(existing) - {row[0] for row in rows}) if raw.snapshot else []
    counts = {"add": len(upserts) - modified, "modify": modified, "remove": len(gone)}
    sample: list[Item] = [(f"+{row[0]}", get(row[0]), row[1:]) for row in upserts[:200]]
    sample += [(f"+{number}", existing[number], None) for number in gone[:200]]
    recorder.record_bulk("port", ("recipient", "donor", "ported_at"), counts, sample, raw.digest)
    for number in [row[0] for row in upserts[:20]] + gone[:20]:
        recorder.touch(number)
    change.put_ported_many(upserts, existing, progress=progress)
    if gone:
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
