"""Schedules in change sets: the ``schedule`` entity (set/remove) and how schedules read.

A schedule belongs to a number or to a range prefix and to the operator that serves it; its
document (``default``, ``route_sets``, ``windows``, ``holidays``; see
docs/service-numbers.md) is checked completely (every NAPTR record by the same rules as routes)
before it is written. Registered into :data:`zonetools.ops.OPERATIONS` on import.
"""

from __future__ import annotations

from typing import Any

from enumserver.engine import clock_from_env
from enumserver.schedule import (
    Moment,
    Schedule,
    ScheduleError,
    days_text,
    epoch,
    hhmm,
    local_text,
    parse,
    switches,
    to_dict,
)
from enumserver.store import Change
from zonetools import rules
from zonetools.ops import OpError, Recorder, _holder, _range_of, _records, operation

DOCUMENT_FIELDS = ("default", "route_sets", "windows", "holidays")
SWITCHES_SHOWN = 4


def now() -> float:
    """The time schedules are shown at (fixed by $ENUMSERVER_FAKE_TIME in tests, as the server)."""
    return clock_from_env(warn=False)()


def target_of(fields: dict[str, Any]) -> tuple[str, str]:
    """(scope, digits) named by the fields: ``number`` or ``range`` (a prefix), not both."""
    named = [key for key in ("number", "range") if fields.get(key) not in (None, "")]
    if len(named) != 1:
        raise OpError("give either number: +358... or range: PREFIX (a range you hold)")
    if named[0] == "number":
        return "number", rules.number(str(fields["number"]))
    return "range", rules.prefix(str(fields["range"]))


def key_of(scope: str, digits: str) -> str:
    return f"+{digits}" if scope == "number" else f"range +{digits}"


def _owner(change: Change, scope: str, digits: str, ty: Any) -> str:
    """The operator the schedule belongs to: the one that serves the number or holds the range."""
    if scope == "number":
        serving = _holder(change, digits)
        if serving is None:
            raise OpError(f"+{digits} is served by no operator (no range, not ported)")
    else:
        found = _range_of(change, digits)
        if found is None:
            raise OpError(f"+{digits} is inside no number range")
        serving = str(found["holder"])
    if ty not in (None, "") and str(ty) != serving:
        what = f"+{digits} is served by" if scope == "number" else f"range +{digits} is held by"
        raise OpError(f"{what} {serving}, not {ty}")
    return serving


def document(fields: dict[str, Any], ty: str) -> tuple[Schedule, dict[str, Any]]:
    """The schedule of the fields, checked, and its canonical document; every reason at once."""
    reasons: list[str] = []
    sets = fields.get("route_sets")
    checked: dict[str, Any] = {}
    if isinstance(sets, dict):
        for name, records in sets.items():
            try:
                checked[str(name)] = _records({"records": records})
            except (OpError, rules.RuleError) as exc:
                reasons.append(f"route set {name!r}: {exc}")
    body = {key: fields.get(key) for key in DOCUMENT_FIELDS if fields.get(key) is not None}
    if isinstance(sets, dict):
        body["route_sets"] = {**sets, **checked}
    unknown = set(fields) - {*DOCUMENT_FIELDS, "number", "range", "ty"}
    if unknown:
        reasons.append(f"unknown field(s) {sorted(unknown)}")
    try:
        schedule = parse(body, ty)
    except ScheduleError as exc:
        reasons.extend(exc.reasons)
    if reasons:
        raise OpError("; ".join(dict.fromkeys(reasons)))
    return schedule, to_dict(schedule)


@operation("set", "schedule")
def set_schedule(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    scope, digits = target_of(fields)
    ty = _owner(change, scope, digits, fields.get("ty"))
    schedule, body = document(fields, ty)
    old = change.schedule_row(scope, digits)
    if change.replace_schedule(scope, digits, ty, body):
        _record(rec, scope, digits, old, schedule)


@operation("remove", "schedule")
def remove_schedule(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    scope, digits = target_of(fields)
    old = change.schedule_row(scope, digits)
    if old is None:
        raise OpError(f"{key_of(scope, digits)} has no schedule")
    change.replace_schedule(scope, digits, old["ty"], None)
    _record(rec, scope, digits, old, None)


def _record(
    rec: Recorder, scope: str, digits: str, old: dict[str, Any] | None, new: Schedule | None
) -> None:
    """Record the change as lines a reviewer reads, then what answers now and at each switch.

    The timeline depends on the clock, so it is added after the diff is recorded: it is shown
    in the plan but stays out of the plan's checksum (a reviewed plan stays valid).
    """
    before = None if old is None else describe(parse(old["body"], old["ty"]))
    after = None if new is None else describe(new)
    rec.record("schedule", key_of(scope, digits), before, after)
    if after is not None and new is not None:
        after.extend(timeline(new, now()))
    if scope == "number":
        rec.touch(digits)


def describe(schedule: Schedule) -> list[str]:
    """The schedule as lines: windows, holidays, the default, then each set's records."""
    lines = [
        f"{days_text(w.days)} {hhmm(w.start)}-{hhmm(w.end)}: {w.route_set}"
        for w in schedule.windows
    ]
    lines += [f"holiday {day}: {name}" for day, name in sorted(schedule.holidays.items())]
    lines += [f"every {m:02d}-{d:02d}: {name}" for (m, d), name in sorted(schedule.annual.items())]
    lines.append(f"otherwise: {schedule.default}")
    for name, routes in schedule.route_sets.items():
        lines += [
            f'set {name}: {r.order} {r.preference} "{r.flags}" "{r.service}" "{r.regexp}" '
            f"{r.replacement} (ttl {r.ttl})"
            for r in routes
        ]
    return lines


def timeline(schedule: Schedule, moment: Moment, count: int = SWITCHES_SHOWN) -> list[str]:
    """'in force now: office (...)' and the next switches, as lines."""
    steps = switches(schedule, epoch(moment), count)
    lines = [f"in force now: {steps[0][1]} ({local_text(steps[0][0])})"]
    lines += [f"from {local_text(at)}: {name}" for at, name in steps[1:]]
    if len(steps) == 1:
        lines.append("no switch ahead: the same set answers all the time")
    return lines
