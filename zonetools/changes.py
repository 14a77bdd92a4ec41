"""Change sets: parse, validate, plan (diff and resulting answers), apply in one transaction.

Publishing has one path. The CLI commands, change-set files (YAML or CSV), bulk imports and
(later) DNS UPDATE all build a :class:`ChangeSet` and hand it to :func:`execute`, which runs it
inside one store transaction: each operation is validated against the store as it stands at
that point, and every reason for refusal is collected. A plan is the same run rolled back; an
apply commits it with a new serial, a journal row per change and an audit row. A plan carries a
checksum over the base serial and the diff, so an apply of a reviewed plan refuses a store that
changed in between.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.name

from enumserver.model import Zone
from enumserver.numbers import to_name
from enumserver.present import answer_lines
from enumserver.resolve import View, resolve, zones_by_apex
from enumserver.store import Change, StoreWriter
from zonetools import rules
from zonetools.imports import FileError, RawPorts, check_ports, diff_ports, read_changes
from zonetools.ops import OPERATIONS, OpError

ANSWERS_SHOWN = 20
DIFFS_KEPT = 200


class ChangeError(ValueError):
    """A change set refused: every reason, each naming where it came from."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


class StalePlan(ChangeError):
    """The store changed since the plan was made."""


@dataclass(frozen=True)
class Op:
    """One operation: set or remove an entity, with its fields and where it was written."""

    action: str
    entity: str
    fields: dict[str, Any]
    where: str = "command line"


@dataclass
class ChangeSet:
    """What to change, and why."""

    ops: list[Op] = field(default_factory=list)
    bulk: RawPorts | None = None
    message: str | None = None


@dataclass
class Diff:
    """One changed entity: its key, action (add/modify/remove) and old and new values."""

    entity: str
    key: str
    action: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "key": self.key,
            "action": self.action,
            "old": self.old,
            "new": self.new,
        }


@dataclass
class Plan:
    """The result of a change set: diff, counts, answers before and after, checksum."""

    base_serial: int
    serial: int
    diffs: list[Diff]
    counts: dict[str, int]
    answers: dict[str, dict[str, list[str]]]
    checksum: str = ""
    applied: bool = False

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_serial": self.base_serial,
            "serial": self.serial if self.applied else None,
            "applied": self.applied,
            "checksum": self.checksum,
            "counts": self.counts,
            "changes": [d.to_dict() for d in self.diffs],
            "answers": self.answers,
        }


class Recorder:
    """Collects diffs and the numbers whose answers a change touches."""

    def __init__(self) -> None:
        self.diffs: list[Diff] = []
        self.counts = {"add": 0, "modify": 0, "remove": 0}
        self.numbers: list[str] = []
        self.digest = hashlib.sha256()

    def record(self, entity: str, key: str, old: Any, new: Any) -> None:
        if old == new:
            return
        action = "add" if old is None else "remove" if new is None else "modify"
        self.counts[action] += 1
        self.digest.update(json.dumps([entity, key, old, new], sort_keys=True).encode())
        if len(self.diffs) < DIFFS_KEPT:
            self.diffs.append(Diff(entity, key, action, old, new))

    def record_bulk(
        self,
        entity: str,
        names: tuple[str, ...],
        counts: dict[str, int],
        sample: list[tuple[str, tuple[Any, ...] | None, tuple[Any, ...] | None]],
        fingerprint: bytes,
    ) -> None:
        """Record a bulk change by its counts, a sample of diffs and a fingerprint of its input."""
        self.digest.update(entity.encode() + fingerprint)
        for action, count in counts.items():
            self.counts[action] += count
        for key, old, new in sample[: max(0, DIFFS_KEPT - len(self.diffs))]:
            action = "add" if old is None else "remove" if new is None else "modify"
            self.diffs.append(Diff(
                entity, key, action,
                None if old is None else dict(zip(names, old, strict=True)),
                None if new is None else dict(zip(names, new, strict=True)),
            ))  # fmt: skip

    def touch(self, digits: str) -> None:
        if len(self.numbers) < ANSWERS_SHOWN and digits not in self.numbers:
            self.numbers.append(digits)


def load(path: str, message: str | None = None, snapshot: bool = False) -> ChangeSet:
    """The change set of a YAML or CSV file.

    :raises ChangeError: when the file cannot be read (file and line named).
    """
    try:
        ops, file_message, bulk = read_changes(path)
    except (FileError, OSError) as exc:
        raise ChangeError([str(exc)]) from exc
    if bulk is not None:
        bulk.snapshot = snapshot
    return ChangeSet([Op(*op) for op in ops], bulk, message or file_message)


def execute(
    writer: StoreWriter,
    changes: ChangeSet,
    *,
    who: str,
    command: str,
    licence: str | None = None,
    apply: bool = False,
    checksum: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Validate and plan a change set; with ``apply`` commit it (refusing a stale checksum).

    :raises ChangeError: with every reason when any operation is invalid (nothing written).
    :raises StalePlan: when ``checksum`` is given and the plan no longer matches it.
    """
    base = writer.current_serial()
    recorder = Recorder()
    plan: Plan | None = None
    with writer.change(who, command, changes.message, licence, dry_run=not apply) as change:
        touched = _numbers_of(changes)
        before = _answers(change, touched)
        reasons: list[str] = []
        for op in changes.ops:
            handler = OPERATIONS.get((op.action, op.entity))
            if handler is None:
                reasons.append(f"{op.where}: cannot {op.action} {op.entity!r}")
                continue
            try:
                handler(change, op.fields, recorder)
            except (OpError, rules.RuleError) as exc:
                reasons.append(f"{op.where}: {op.action} {op.entity}: {exc}")
        if changes.bulk is not None and not reasons:
            try:
                rows = check_ports(change, changes.bulk)
            except FileError as exc:
                raise ChangeError(str(exc).splitlines()) from exc
            diff_ports(change, changes.bulk, rows, recorder, progress)
        if reasons:
            raise ChangeError(reasons)
        for digits in recorder.numbers:
            if digits not in touched:
                touched.append(digits)
        after = _answers(change, touched[:ANSWERS_SHOWN])
        answers = {
            f"+{digits}": {"before": before.get(digits, []), "after": after.get(digits, [])}
            for digits in touched[:ANSWERS_SHOWN]
        }
        recorder.digest.update(str(base).encode())
        plan = Plan(
            base,
            change.serial,
            recorder.diffs,
            recorder.counts,
            answers,
            recorder.digest.hexdigest()[:16],
        )
        if checksum is not None and checksum != plan.checksum:
            raise StalePlan(
                [
                    f"the store changed since the plan was made (plan {checksum}, now "
                    f"{plan.checksum} at serial {base}); run 'zonetools plan' again and review it"
                ]
            )
        plan.applied = apply and not plan.empty
    return plan


def _numbers_of(changes: ChangeSet) -> list[str]:
    """Numbers named by the operations (their answers are shown before and after)."""
    found: list[str] = []
    for op in changes.ops:
        text = op.fields.get("number")
        if text is None:
            continue
        try:
            digits = rules.number(text)
        except rules.RuleError:
            continue
        if digits not in found:
            found.append(digits)
    return found[:ANSWERS_SHOWN]


def _primary_first(zone: Zone) -> tuple[bool, bool, bool, str]:
    return (
        zone.role != "tier1",
        zone.style != "naptr",
        zone.environment != "production",
        zone.name,
    )


def _answers(change: Change, numbers: Iterable[str]) -> dict[str, list[str]]:
    """Answers the primary zone gives for the numbers, as the store stands in this change."""
    numbers = list(numbers)
    if not numbers:
        return {}
    reader = change.reader()
    snapshot = reader.snapshot()
    zones = sorted(snapshot.zones.values(), key=_primary_first)
    if not zones:
        return {}
    zone = zones[0]
    view = View(zones_by_apex([zone]), snapshot, reader)
    out = {}
    for digits in numbers:
        try:
            qname = to_name(digits, zone.apex)
        except ValueError:
            continue
        labels = [label.decode().lower() for label in dns.name.from_text(qname).labels if label]
        out[digits] = answer_lines(resolve(labels, 35, view), qname)
    return out
