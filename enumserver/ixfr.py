"""IXFR (RFC 1995) from the store journal: per serial, the zone image's RRsets that changed.

Every change set is journaled under its serial with the old and new row of every change. The
image at an older serial is the current store seen through those old rows (``PastLookups``);
the RRsets a change set can touch are at the names of the numbers it changed and of their
ancestors (empty non-terminals appear and vanish, and with them the ``*`` below them). So one
difference costs a few lookups per changed number, whatever the size of the zone.

A schedule tick (``enumserver.ticks``) moves the moment the image evaluates scheduled numbers
at: the image before it is the same store at the old moment, and only the NAPTR RRsets of the
zone's scheduled numbers can differ (the set that switched, or a TTL capped by the next switch);
with a range schedule, also those of the explicit numbers of its range.

Changes to the small tables (operators, ranges, templates, Tier2 servers of a referral zone,
the zone itself, schedules) reach names all over the zone: for those, and when the journal no
longer reaches the client's serial or spans more than the configured depth or rows, the
transfer is the whole zone (:class:`Unreachable`, AXFR-style IXFR). So is the first tick of a
store (the transfers before it had no fixed moment).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.serial

from enumserver.model import Route
from enumserver.resolve import SOA, Kind, Record, Soa
from enumserver.store import StoreReader
from enumserver.store.read import JournalRow
from enumserver.zoneimage import Entry, ImageLookups, ZoneState

NO_IMAGE = frozenset({"licences"})  # journaled, but never part of a zone image
TICKS = frozenset({"tick", "switch"})  # schedule ticks: read by differences()
RANGE_SCHEDULE_NUMBERS = 10_000  # explicit numbers under range schedules a tick may rediff
EntryKey = tuple[str, bool, str | None, int]
Past = dict[str, dict[str, list[Route] | None]]  # number -> operator -> its routes then


class Unreachable(Exception):
    """No incremental transfer to this serial: the reason; send the whole zone instead."""


@dataclass
class Difference:
    """One step of an IXFR: from ``old`` to ``new`` serial, RRsets deleted and added."""

    old: int
    new: int
    deleted: list[Entry]
    added: list[Entry]


def next_serial(serial: int) -> int:
    """The serial after this one, as the store's writer counts (RFC 1982, 0 skipped)."""
    return (serial + 1) % (1 << 32) or 1


def serials_after(old: int, new: int, limit: int) -> list[int]:
    """The serials in (old, new], at most ``limit`` of them, else Unreachable."""
    if dns.serial.Serial(old) >= dns.serial.Serial(new):
        return []
    steps, serial = [], old
    while serial != new:
        serial = next_serial(serial)
        steps.append(serial)
        if len(steps) > limit:
            raise Unreachable(f"serial {old} is more than {limit} changes behind {new}")
    return steps


class PastLookups:
    """The per-number lookups of the store as it was: current rows, overlaid with old rows."""

    def __init__(
        self,
        reader: ImageLookups,
        ported: dict[str, str | None],
        routes: Past,
    ) -> None:
        self.reader = reader
        self.ported = ported  # number -> recipient then (None: not ported)
        self.routes = routes  # number -> operator -> routes then (None: none)
        self.changed = sorted(ported.keys() | routes.keys())
        self._explicit: dict[str, bool] = {}

    def recipient_of(self, digits: str) -> str | None:
        if digits in self.ported:
            return self.ported[digits]
        return self.reader.recipient_of(digits)

    def number_routes(self, digits: str) -> list[Route]:
        routes = self.reader.number_routes(digits)
        past = self.routes.get(digits)
        if past is None:
            return routes
        routes = [r for r in routes if r.ty not in past]
        routes += [r for rows in past.values() for r in rows or ()]
        return sorted(routes, key=lambda r: (r.order, r.preference))

    def explicit(self, digits: str) -> bool:
        found = self._explicit.get(digits)
        if found is None:
            found = self.recipient_of(digits) is not None or bool(self.number_routes(digits))
            self._explicit[digits] = found
        return found

    def explicit_numbers(self, prefix: str = "", limit: int | None = None) -> Iterator[str]:
        start = bisect.bisect_left(self.changed, prefix)
        end = bisect.bisect_left(self.changed, prefix + ":", start)
        changed = self.changed[start:end]
        skip = set(changed)
        now = (d for d in self.reader.explicit_numbers(prefix) if d not in skip)
        then = [d for d in changed if self.explicit(d)]
        for count, digits in enumerate(heapq.merge(now, then)):
            if limit is not None and count >= limit:
                return
            yield digits

    def ported_below(self, prefix: str) -> bool:
        below = (d for d in self.explicit_numbers(prefix) if d != prefix)
        return any(self.recipient_of(d) is not None for d in below)


def _route(row: dict[str, Any], ty: str, number: str) -> Route:
    fields = ("order", "preference", "flags", "service", "regexp", "replacement", "ttl")
    return Route(ty, number, *(row[f] for f in fields))


def _overlay(rows: list[JournalRow], ported: dict[str, str | None],
             routes: Past) -> None:  # fmt: skip
    """Step the overlay back over the rows of one serial (the oldest old value wins)."""
    for row in reversed(rows):
        if row.entity == "ported":
            ported[row.key[0]] = row.old["recipient"] if row.old else None
        elif row.entity == "routes":
            ty, number = row.key
            past = [_route(r, ty, number) for r in row.old] if row.old else None
            routes.setdefault(number, {})[ty] = past


def _touched(rows: list[JournalRow], lead: str) -> set[str]:
    numbers = {str(row.key[0] if row.entity == "ported" else row.key[1]) for row in rows
               if row.entity in ("ported", "routes")}  # fmt: skip
    return {n for n in numbers if n.startswith(lead)}


def check_rows(state: ZoneState, rows: list[JournalRow]) -> None:
    """Unreachable when a row changes more than single numbers of this zone."""
    for row in rows:
        if row.entity == "ported" or (row.entity == "routes" and row.key[1] is not None):
            continue
        if row.entity in NO_IMAGE | TICKS:
            continue
        if row.entity == "zones" and row.key[0] != state.zone.name:
            continue
        if row.entity == "tier2_servers" and not state.referral:
            continue  # a naptr-style image has no NS below the apex
        if row.entity == "routes" and state.referral:
            continue  # templates: a referral image has no NAPTR
        what = "templates" if row.entity == "routes" else row.entity
        raise Unreachable(f"{what} changed at serial {row.serial}")


def differences(
    state: ZoneState, reader: StoreReader, old: int, max_depth: int, max_rows: int
) -> list[Difference]:
    """The steps from serial ``old`` to the state's serial; Unreachable: send the whole zone."""
    steps = serials_after(old, state.zone.serial, max_depth)
    if not steps:
        return []
    ranges = [(steps[0], steps[-1])] if steps[0] <= steps[-1] else [
        (steps[0], (1 << 32) - 1), (1, steps[-1])]  # fmt: skip
    spans = [reader.journal_span(low, high) for low, high in ranges]
    if sum(s for s, _ in spans) != len(steps):
        raise Unreachable(f"the journal no longer reaches serial {old}")
    if sum(r for _, r in spans) > max_rows:
        raise Unreachable(f"more than {max_rows} changes since serial {old}")
    by_serial: dict[int, list[JournalRow]] = {serial: [] for serial in steps}
    for low, high in ranges:
        for row in reader.journal_rows(low, high):
            by_serial[row.serial].append(row)
    for serial in steps:
        check_rows(state, by_serial[serial])
    if state.referral and any(_inside(host, state) for host in _hosts(state)):
        raise Unreachable("Tier2 servers named inside the zone (glue)")
    ported: dict[str, str | None] = {}
    routes: Past = {}
    after = state
    moment = state.snapshot.taken_at
    out = []
    for index in range(len(steps) - 1, -1, -1):
        rows = by_serial[steps[index]]
        touched = _touched(rows, state.lead)
        _overlay(rows, ported, routes)
        for row in rows:
            if row.entity == "tick":
                if row.old is None:
                    raise Unreachable(f"the first schedule tick at serial {row.serial}")
                moment = float(row.old["at"])
                touched |= set() if state.referral else scheduled_numbers(state)
        before = past_state(state, dict(ported), {n: dict(r) for n, r in routes.items()}, moment)
        deleted, added = diff(entries_at(before, touched), entries_at(after, touched))
        serial = steps[index - 1] if index else old
        out.append(Difference(serial, steps[index], deleted, added))
        after = before
    return out[::-1]


def scheduled_numbers(state: ZoneState) -> set[str]:
    """The names of a naptr-style image whose NAPTR RRsets depend on the schedule moment:
    numbers with a schedule of their own; a range schedule's prefix (the wildcards at and
    below it) and the explicit numbers under it."""
    lead = state.lead
    found = {d for d in state.snapshot.schedules if d.startswith(lead)}
    for prefix in state.snapshot.range_schedules:
        if not (prefix.startswith(lead) or lead.startswith(prefix)):
            continue
        if len(prefix) <= len(lead):
            raise Unreachable(f"the schedule of range +{prefix} covers the whole zone")
        found.add(prefix)  # the wildcards at and below its name, and of the ranges inside it
        found.update(seed for seed in state.range_seeds if seed.startswith(prefix))
        numbers = list(state.reader.explicit_numbers(prefix, RANGE_SCHEDULE_NUMBERS + 1))
        if len(numbers) > RANGE_SCHEDULE_NUMBERS:
            raise Unreachable(f"more than {RANGE_SCHEDULE_NUMBERS} numbers under range +{prefix}")
        found.update(numbers)
    return found


def past_state(
    state: ZoneState,
    ported: dict[str, str | None],
    routes: Past,
    moment: float | None = None,
) -> ZoneState:
    """The zone as it was, given old values of some numbers (and the old schedule moment)."""
    snapshot = state.snapshot
    if any(r for past in routes.values() for r in past.values()):
        snapshot = dataclasses.replace(snapshot, has_number_routes=True)
    if moment is not None and moment != snapshot.taken_at:
        snapshot = dataclasses.replace(snapshot, taken_at=moment)
    lookups = PastLookups(state.reader, ported, routes)
    return ZoneState(state.zone, snapshot, lookups)


def _hosts(state: ZoneState) -> Iterator[str]:
    return (server.host for servers in state.snapshot.tier2.values() for server in servers)


def _inside(host: str, state: ZoneState) -> bool:
    apex = state.zone.apex.lower().rstrip(".")
    name = host.lower().rstrip(".")
    return name == apex or name.endswith("." + apex)


def entries_at(state: ZoneState, numbers: set[str]) -> dict[EntryKey, Entry]:
    """The image's RRsets at the names that changes to these numbers can touch."""
    found: dict[EntryKey, Entry] = {}
    if state.referral:
        for digits in numbers:
            for entry in _delegation(state, digits):
                found[entry.digits, entry.wildcard, entry.host, entry.rtype] = entry
        return found
    lead = state.lead
    prefixes = {n[:size] for n in numbers for size in range(len(lead) + 1, len(n) + 1)}
    for digits in sorted(prefixes):
        if is_node(state, digits):
            for entry in state.node_entries(digits):
                found[entry.digits, entry.wildcard, entry.host, entry.rtype] = entry
    return found


def is_node(state: ZoneState, digits: str) -> bool:
    """Whether the name of these digits exists in a naptr-style image."""
    if digits in state.range_nodes:
        return True
    return any(state.answer(d).kind is Kind.ANSWER for d in state.explicit(digits))


def _delegation(state: ZoneState, digits: str) -> list[Entry]:
    """The NS RRset of a number in a referral image (none when it is no cut)."""
    below = [d for d in state.explicit(digits) if d != digits]
    if below:
        raise Unreachable(f"+{digits} has delegated numbers below it")
    lookups = state.reader
    if lookups.recipient_of(digits) is None and not lookups.number_routes(digits):
        return []
    for size in range(len(state.lead) + 1, len(digits)):
        above = digits[:size]
        cut = next(state.explicit(above), None) == above
        if cut and state.answer(above).kind is Kind.REFERRAL:
            return []  # below the cut of a shorter number
    answer = state.answer(digits)
    return state.entries(answer.authority, digits) if answer.kind is Kind.REFERRAL else []


def diff(old: dict[EntryKey, Entry], new: dict[EntryKey, Entry]) -> tuple[list[Entry], list[Entry]]:
    """RRs deleted and added between two sets of RRsets (an RRset whose TTL changed: all)."""
    deleted, added = [], []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], k[1], k[2] or "", k[3])):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if before is None or after is None or before.ttl != after.ttl:
            deleted += [before] if before else []
            added += [after] if after else []
            continue
        gone = tuple(r for r in before.records if r not in after.records)
        new_records = tuple(r for r in after.records if r not in before.records)
        deleted += [dataclasses.replace(before, records=gone)] if gone else []
        added += [dataclasses.replace(after, records=new_records)] if new_records else []
    return deleted, added


def soa_entry(state: ZoneState, serial: int) -> Entry:
    """The zone's SOA RRset with another serial (the versions of an IXFR)."""
    soa = state.apex_entries()[0]
    record = soa.records[0]
    assert record.rtype == SOA and isinstance(record.rdata, Soa)
    rdata = dataclasses.replace(record.rdata, serial=serial)
    return dataclasses.replace(soa, records=(Record(0, SOA, record.ttl, rdata),))
