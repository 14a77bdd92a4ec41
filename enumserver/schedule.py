"""Schedules: which route set a number answers at a given moment, and until when.

A schedule has named route sets (each a list of NAPTR records like a number's routes), weekly
windows (weekdays and a start and end time on the Europe/Helsinki wall clock) that select a
set, holiday dates that select a set for the whole local day, and a default set for every
other moment. Holidays win over windows; among windows the first that matches wins. A window
whose end is not after its start runs past midnight into the next day.

Pure: the moment is an argument (epoch seconds or an aware datetime). Daylight saving time is
the wall clock's business: an 08:00 window opens at 05:00 UTC in summer and 06:00 UTC in
winter; a boundary inside the skipped spring hour takes effect when the clock jumps.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from enumserver.model import Route

TIMEZONE = "Europe/Helsinki"
ZONE = ZoneInfo(TIMEZONE)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_ALIASES = {"daily": "mon-sun", "weekdays": "mon-fri", "weekend": "sat-sun"}
ROUTE_FIELDS = ("order", "preference", "flags", "service", "regexp", "replacement", "ttl")
DAY_MINUTES = 1440
SCAN_DAYS = 371  # a year and a week: every annual holiday and every weekday is seen
Moment = float | dt.datetime
K = TypeVar("K", bound=Hashable)


class ScheduleError(ValueError):
    """A schedule that cannot be used: every reason, each naming the part at fault."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays (0 = Monday) and local minutes after midnight [start, end) selecting a set."""

    days: frozenset[int]
    start: int
    end: int
    route_set: str

    @property
    def overnight(self) -> bool:
        """The window ends on the next day (22:00-06:00)."""
        return self.end <= self.start


@dataclass(frozen=True)
class Schedule:
    """Route sets by name, weekly windows, holidays (dates and every-year days), a default."""

    default: str
    route_sets: Mapping[str, tuple[Route, ...]]
    windows: tuple[Window, ...] = ()
    holidays: Mapping[dt.date, str] = field(default_factory=dict)
    annual: Mapping[tuple[int, int], str] = field(default_factory=dict)
    ty: str = ""
    memo: list[Any] = field(default_factory=list, compare=False, repr=False)


class RouteSet(NamedTuple):
    """A route set by name and its records."""

    name: str
    routes: tuple[Route, ...]


# -- evaluation ----------------------------------------------------------------------------


def epoch(moment: Moment) -> float:
    """Epoch seconds of a moment given as epoch seconds or an aware datetime."""
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            raise ValueError(f"{moment} has no time zone; give UTC or an aware datetime")
        return moment.timestamp()
    return float(moment)


def set_at(schedule: Schedule, moment: Moment) -> str:
    """Name of the route set in force at a moment."""
    local = dt.datetime.fromtimestamp(epoch(moment), ZONE)
    return _set_on(schedule, local.date(), local.hour * 60 + local.minute)


def _set_on(schedule: Schedule, day: dt.date, minute: int) -> str:
    holiday = schedule.holidays.get(day) or schedule.annual.get((day.month, day.day))
    if holiday is not None:
        return holiday
    weekday = day.weekday()
    yesterday = (weekday - 1) % 7
    for window in schedule.windows:
        if window.overnight:
            if (weekday in window.days and minute >= window.start) or (
                yesterday in window.days and minute < window.end
            ):
                return window.route_set
        elif weekday in window.days and window.start <= minute < window.end:
            return window.route_set
    return schedule.default


def evaluate(schedule: Schedule, moment: Moment) -> tuple[str, float | None]:
    """(route set in force, epoch of the next switch or None when it never changes).

    The result holds from the moment until the switch, so it is remembered for that span
    (the answer is the same; only the cost of finding the switch is saved).
    """
    now = epoch(moment)
    memo = schedule.memo
    if memo and memo[0] <= now < memo[1]:
        return memo[2], memo[3]
    current = set_at(schedule, now)
    switch = next_switch(schedule, now, current)
    schedule.memo[:] = [now, math.inf if switch is None else switch, current, switch]
    return current, switch


def in_force(schedule: Schedule, now_utc: Moment) -> tuple[RouteSet, dt.datetime | None]:
    """The route set in force at a moment and the time (UTC) of the next switch, if any."""
    name, switch = evaluate(schedule, now_utc)
    until = None if switch is None else dt.datetime.fromtimestamp(switch, dt.UTC)
    return RouteSet(name, tuple(schedule.route_sets[name])), until


def switches(schedule: Schedule, moment: Moment, count: int = 5) -> list[tuple[float, str]]:
    """The set in force now and the next ``count`` switches: [(epoch, set name), ...]."""
    now = epoch(moment)
    name, switch = evaluate(schedule, now)
    out = [(now, name)]
    while switch is not None and len(out) <= count:
        name, following = evaluate(schedule, switch)
        out.append((switch, name))
        switch = following
    return out


def changed_between(
    schedules: Mapping[K, Schedule], before: Moment, after: Moment
) -> dict[K, tuple[str, str]]:
    """The schedules whose set in force at ``after`` differs from the one at ``before``:
    key -> (old set, new set). A schedule that switched and switched back in between has the
    same answer at both moments and is left out (nothing a zone transfer must carry)."""
    start, end = epoch(before), epoch(after)
    found = {}
    for key, schedule in schedules.items():
        old, new = set_at(schedule, start), set_at(schedule, end)
        if old != new:
            found[key] = (old, new)
    return found


def first_switch(schedules: Iterable[Schedule], moment: Moment) -> float | None:
    """The earliest next switch of any of the schedules after a moment, or None."""
    now = epoch(moment)
    found = [evaluate(schedule, now)[1] for schedule in schedules]
    return min((switch for switch in found if switch is not None), default=None)


def next_switch(schedule: Schedule, now: float, current: str) -> float | None:
    """Epoch of the first moment after ``now`` when another set is in force, or None.

    The set can change only where the wall clock reaches a window boundary or midnight, or
    jumps (daylight saving time): those instants are scanned in order, a day at a time
    (Helsinki's clock never jumps across midnight, so days come in order).
    """
    today = dt.datetime.fromtimestamp(now, ZONE).date()
    for offset in range(-1, SCAN_DAYS):
        for instant in sorted(set(_boundaries(schedule, today + dt.timedelta(days=offset)))):
            if instant > now and set_at(schedule, instant) != current:
                return instant
    for day in sorted(schedule.holidays):  # a weekly pattern that never changes: holidays
        if day > today and schedule.holidays[day] != current:
            return min(_instants(day, 0))
    return None


def _instants(day: dt.date, minute: int) -> list[float]:
    """The UTC instants of a local wall time (two in the repeated autumn hour, two guesses
    in the skipped spring hour: the jump itself is a boundary of its own)."""
    hour, rest = divmod(minute, 60)
    return [
        dt.datetime(day.year, day.month, day.day, hour, rest, fold=fold, tzinfo=ZONE).timestamp()
        for fold in (0, 1)
    ]


def _boundaries(schedule: Schedule, day: dt.date) -> Iterator[float]:
    """Instants on a local day where the set may change: midnight, window ends, clock jumps."""
    weekday, yesterday = day.weekday(), (day.weekday() - 1) % 7
    minutes = {0}
    for window in schedule.windows:
        if weekday in window.days:
            minutes.add(window.start)
            if not window.overnight and window.end < DAY_MINUTES:
                minutes.add(window.end)
        if window.overnight and yesterday in window.days:
            minutes.add(window.end)
    for minute in minutes:
        yield from _instants(day, minute)
    start, end = _instants(day, 0)[0], _instants(day + dt.timedelta(days=1), 0)[0]
    if _offset(start) != _offset(end):
        yield _jump(start, end)


def _offset(instant: float) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(instant, ZONE).utcoffset()


def _jump(low: float, high: float) -> float:
    """The instant in [low, high] where the UTC offset changes (one change in between)."""
    after = _offset(high)
    lo, hi = int(low), int(high)
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if _offset(middle) == after:
            hi = middle
        else:
            lo = middle
    return float(hi)


# -- parsing and presentation --------------------------------------------------------------


def parse(data: Mapping[str, Any], ty: str = "") -> Schedule:
    """A schedule from its document form (YAML/JSON fields); every reason at once.

    Fields: ``default`` (a set name), ``route_sets`` (name -> list of records), ``windows``
    (list of ``days``, ``start``, ``end``, ``set``) and ``holidays`` (date -> set name;
    ``YYYY-MM-DD`` once, ``MM-DD`` every year).
    """
    reasons: list[str] = []
    unknown = sorted(set(data) - {"default", "route_sets", "windows", "holidays"})
    if unknown:
        reasons.append(f"unknown field(s) {unknown}: use default, route_sets, windows, holidays")
    sets = _route_sets(data.get("route_sets"), ty, reasons)
    default = data.get("default")
    if not isinstance(default, str) or not default:
        reasons.append("default: name the route set that answers outside every window")
    elif sets and default not in sets:
        reasons.append(f"default: no route set {default!r} (have {sorted(sets)})")
    windows = _windows(data.get("windows") or [], sets, reasons)
    holidays, annual = _holidays(data.get("holidays") or {}, sets, reasons)
    if reasons:
        raise ScheduleError(reasons)
    return Schedule(str(default), sets, windows, holidays, annual, ty)


def _route_sets(value: Any, ty: str, reasons: list[str]) -> dict[str, tuple[Route, ...]]:
    if not isinstance(value, Mapping) or not value:
        reasons.append("route_sets: give at least one named list of NAPTR records")
        return {}
    sets: dict[str, tuple[Route, ...]] = {}
    for name, records in value.items():
        if not isinstance(records, Sequence) or isinstance(records, str) or not records:
            reasons.append(f"route set {name!r}: give a list of at least one NAPTR record")
            continue
        routes = []
        for index, record in enumerate(records, 1):
            try:
                routes.append(_route(record, ty))
            except KeyError as exc:
                reasons.append(f"route set {name!r} record {index}: missing field {exc}")
            except (TypeError, ValueError) as exc:
                reasons.append(f"route set {name!r} record {index}: {exc}")
        sets[str(name)] = tuple(sorted(routes, key=lambda r: (r.order, r.preference)))
    return sets


def _route(record: Any, ty: str) -> Route:
    if not isinstance(record, Mapping):
        raise TypeError("a record is a mapping (order, preference, service, regexp, ...)")
    values = {"flags": "u", "replacement": ".", "ttl": 300, **record}
    for key in ("order", "preference", "ttl"):
        if isinstance(values.get(key), bool) or not isinstance(values.get(key), int):
            raise ValueError(f"{key} {values.get(key)!r} must be an integer")
    return Route(
        ty,
        None,
        values["order"],
        values["preference"],
        str(values["flags"]),
        str(values["service"]),
        str(values.get("regexp") or ""),
        str(values["replacement"]),
        values["ttl"],
    )


def _windows(value: Any, sets: Mapping[str, Any], reasons: list[str]) -> tuple[Window, ...]:
    if not isinstance(value, list):
        reasons.append("windows: give a list of {days, start, end, set}")
        return ()
    windows = []
    for index, item in enumerate(value, 1):
        where = f"window {index}"
        if not isinstance(item, Mapping):
            reasons.append(f"{where}: a mapping of days, start, end, set")
            continue
        found: list[str] = []
        days = _days(item.get("days"), found)
        start = _minute(item.get("start"), "start", found)
        end = _minute(item.get("end"), "end", found)
        name = item.get("set")
        if not isinstance(name, str) or (sets and name not in sets):
            found.append(f"set {name!r} is not a route set (have {sorted(sets)})")
        if start is not None and start == end:
            found.append("start and end are the same time")
        if found:
            reasons.extend(f"{where}: {reason}" for reason in found)
        elif start is not None and end is not None and days:
            windows.append(Window(days, start, end, str(name)))
    return tuple(windows)


def _days(value: Any, reasons: list[str]) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'daily', 'weekdays', 'weekend' or a list of day names."""
    parts = value if isinstance(value, list) else str(value or "").split(",")
    days: set[int] = set()
    for part in (str(p).strip().lower() for p in parts):
        part = DAY_ALIASES.get(part, part)
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            reasons.append(f"days {value!r}: use mon..sun, ranges (mon-fri), lists (sat,sun)")
            return frozenset()
        low, high = DAYS.index(first), DAYS.index(last or first)
        days.update(day % 7 for day in range(low, high + (7 if high < low else 0) + 1))
    return frozenset(days)


def _minute(value: Any, what: str, reasons: list[str]) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        reasons.append(f"{what} {value!r}: write the time in quotes, '{value // 60:02d}:00'")
        return None
    text = str(value or "")
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        reasons.append(f"{what} {value!r} must be a local time HH:MM ('08:00', end '24:00')")
        return None
    minute = int(hours) * 60 + int(minutes)
    limit = DAY_MINUTES if what == "end" else DAY_MINUTES - 1
    if int(minutes) > 59 or minute > limit:
        reasons.append(f"{what} {text!r} is not a time of day")
        return None
    return minute


def _holidays(
    value: Any, sets: Mapping[str, Any], reasons: list[str]
) -> tuple[dict[dt.date, str], dict[tuple[int, int], str]]:
    dates: dict[dt.date, str] = {}
    annual: dict[tuple[int, int], str] = {}
    if not isinstance(value, Mapping):
        reasons.append("holidays: a mapping of date (YYYY-MM-DD, or MM-DD every year) -> set")
        return dates, annual
    for key, name in value.items():
        if not isinstance(name, str) or (sets and name not in sets):
            reasons.append(f"holiday {key}: {name!r} is not a route set")
            continue
        text = key.isoformat() if isinstance(key, dt.date) else str(key)
        try:
            if len(text) == 5:
                day = dt.date.fromisoformat(f"2000-{text}")  # a leap year: 02-29 is allowed
                annual[(day.month, day.day)] = name
            else:
                dates[dt.date.fromisoformat(text)] = name
        except ValueError:
            reasons.append(f"holiday {text!r} must be a date YYYY-MM-DD or MM-DD")
    return dates, annual


def days_text(days: frozenset[int]) -> str:
    """Weekdays as runs: 'mon-fri', 'sat,sun' -> 'sat-sun', 'mon,wed'."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        DAYS[run[0]] if len(run) == 1 else f"{DAYS[run[0]]}-{DAYS[run[-1]]}" for run in runs
    )


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def to_dict(schedule: Schedule) -> dict[str, Any]:
    """The canonical document form (stored, journaled, printed as JSON)."""
    holidays = {day.isoformat(): name for day, name in sorted(schedule.holidays.items())}
    holidays |= {f"{m:02d}-{d:02d}": name for (m, d), name in sorted(schedule.annual.items())}
    return {
        "default": schedule.default,
        "route_sets": {
            name: [{f: getattr(route, f) for f in ROUTE_FIELDS} for route in routes]
            for name, routes in schedule.route_sets.items()
        },
        "windows": [
            {
                "days": days_text(w.days),
                "start": hhmm(w.start),
                "end": hhmm(w.end),
                "set": w.route_set,
            }
            for w in schedule.windows
        ],
        "holidays": holidays,
    }


def local_text(moment: Moment) -> str:
    """A moment as an operator reads it: '2026-03-27 16:00 EET (14:00 UTC)'."""
    instant = epoch(moment)
    local = dt.datetime.fromtimestamp(instant, ZONE)
    utc = dt.datetime.fromtimestamp(instant, dt.UTC)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({utc:%H:%M} UTC)"
