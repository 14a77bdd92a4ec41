r"""The zone image: a zone as it answers, as RRsets a standard DNS server can load and serve.

``zonetools export`` writes it as a master file; AXFR and IXFR (``enumserver.xfr``) send it.
Every answer comes from ``enumserver.resolve`` (the server's own rules) through
``enumserver.present``, so the image cannot drift from what the server answers.

naptr-style Tier1 zones and Tier2 zones
  * NAPTR RRsets at every number with answers of its own (ported, per-number routes, a
    schedule), as served;
  * per range of an operator the zone serves, a wildcard ``*.<range prefix>`` with the holder's
    templates. The client applies the regexp to the ``+digits`` AUS, so ``{e164}`` becomes a
    backreference: ``!^.*$!sip:{e164}@d!`` -> ``!^(.*)$!sip:\1@d!``; ``{digits}`` is ``\1`` of
    ``^\+(.*)$`` (both: ``^(\+(.*))$`` with ``\1`` and ``\2``); ``{rn}`` and ``{sip_domain}``
    are the holder's values. A template that uses the number with another pattern than
    ``^.*$``, or in its replacement field, cannot be expressed: skipped, with a warning;
  * RFC 4592 wildcards stop matching below names that exist, so every name that exists inside
    a range (the empty non-terminals above explicit numbers, the explicit numbers themselves)
    gets its own ``*`` child, and such a name that is itself a number gets its NAPTR RRset.
  A standard server then answers every number of every range as operator-enum does. It differs
  only on names that are no number: digit strings shorter or longer than a range allows and
  non-digit labels below a range get the wildcard's answer where operator-enum says NODATA or
  NXDOMAIN; in a Tier2 zone, numbers of its ranges ported to other operators do too.

referral-style Tier1 zones
  Only the delegations of single names: NS RRsets at every ported number and every number with
  routes of its own (the recipient's or holder's Tier2 servers), with glue only where a server
  name lies inside the zone. The numbers of range holders cannot be expressed: a wildcard NS
  is no delegation (RFC 4592 section 4.2) and an NS at the range prefix would hide the ported
  numbers below it. Where one delegated number is a prefix of another, the shorter cut is kept
  (a warning): nothing below a cut is visible.

The nodes (names that exist) are walked in order from the sorted explicit numbers and range
prefixes, so a transfer streams the image without holding it (``ZoneState.rrsets``).
"""

from __future__ import annotations

import dataclasses
import heapq
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.rrset
import dns.zone

from enumserver.model import Route, Zone
from enumserver.present import to_rdata
from enumserver.resolve import (
    NAPTR,
    NS,
    SOA,
    Answer,
    Kind,
    Lookups,
    Naptr,
    NumberView,
    Record,
    View,
    resolve,
    zones_by_apex,
)
from enumserver.schedule import evaluate
from enumserver.store import Catalog, Snapshot, StoreError, StoreReader

IN = dns.rdataclass.IN
MARK = "\x01"  # stands for the number's digits while a wildcard's templates are expanded


class ImageError(ValueError):
    """A zone image that cannot be made: every reason, each naming the zone or owner name."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


class ImageLookups(Lookups, Protocol):
    """Resolution's per-number lookups plus the ordered walk over numbers with own answers."""

    def explicit_numbers(self, prefix: str = "", limit: int | None = None) -> Iterator[str]: ...


class _TemplatesOnly:
    """Lookups that hide per-number routes: what a number answers from templates alone."""

    def __init__(self, lookups: Lookups) -> None:
        self.lookups = lookups

    def recipient_of(self, digits: str) -> str | None:
        return self.lookups.recipient_of(digits)

    def number_routes(self, digits: str) -> list[Route]:
        return []

    def ported_below(self, prefix: str) -> bool:
        return self.lookups.ported_below(prefix)


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    size = min(len(a), len(b))
    for index in range(size):
        if a[index] != b[index]:
            return index
    return size


@dataclass
class ZoneState:
    """A zone with everything its image reads, all at one serial of the store."""

    zone: Zone
    snapshot: Snapshot
    reader: ImageLookups
    routed: dict[str, set[str]] = field(default_factory=dict)  # filled for zone file imports
    warnings: list[str] = field(default_factory=list)
    _wild: dict[str, list[Record]] = field(default_factory=dict)
    _wild_entries: dict[str, list[Entry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin = dns.name.from_text(self.zone.apex)
        self.lead = self.zone.lead_digits
        self.apex_labels = [label.decode().lower() for label in self.origin.labels if label]
        self.view = View(zones_by_apex([self.zone]), self.snapshot, self.reader)
        self.number = NumberView(self.zone, self.view)
        self.referral = self.zone.style == "referral" and self.zone.role == "tier1"
        seeds = set()
        for found in self.snapshot.ranges.values():
            if found.prefix.startswith(self.lead):
                seeds.add(found.prefix)
            elif self.lead.startswith(found.prefix):
                seeds.add(self.lead)
        for prefix in getattr(self.snapshot, "range_schedules", None) or {}:
            if prefix.startswith(self.lead) and self.snapshot.range_of(prefix) is not None:
                seeds.add(prefix)  # its own name, so that a wildcard below it can say the set
        self.range_seeds = sorted(seeds)
        self.range_nodes = {s[:size] for s in seeds for size in range(len(self.lead), len(s) + 1)}

    def templates_view(self, snapshot: Snapshot | None = None) -> NumberView:
        """Numbers answered from templates alone (optionally with other templates)."""
        view = View(self.view.zones, snapshot or self.snapshot, _TemplatesOnly(self.reader))
        return NumberView(self.zone, view)

    def name(self, digits: str) -> dns.name.Name:
        """The owner name of a number (as ``enumserver.numbers.to_name``, without the text)."""
        rest = digits[len(self.lead) :]
        return dns.name.Name((*(c.encode() for c in reversed(rest)), *self.origin.labels))

    def answer(self, digits: str, qtype: int = NAPTR) -> Answer:
        """What the server answers for a number name (the apex for the zone's lead digits)."""
        rest = digits[len(self.lead) :]
        return resolve([*reversed(rest), *self.apex_labels], qtype, self.view)

    def wildcard_holder(self, digits: str) -> str | None:
        """The operator whose numbers a ``*`` below this name stands for, or None."""
        found = self.snapshot.range_of(digits)
        if found is None or len(digits) >= found.max_digits:
            return None
        return found.holder if self.number.serves(found.holder) else None

    def wildcard_schedule(self, digits: str, holder: str) -> str | None:
        """The prefix of the range schedule a ``*`` below this name answers (the longest that
        contains the name, when the holder set it, as resolution chooses), or None."""
        snapshot = self.snapshot
        for size in getattr(snapshot, "range_schedule_lengths", ()):
            found = snapshot.range_schedules.get(digits[:size]) if size <= len(digits) else None
            if found is not None:
                return digits[:size] if found.ty == holder else None
        return None

    def wildcard(self, holder: str, scheduled: str | None = None) -> list[Record]:
        """The holder's templates (or the set in force of its range schedule at ``scheduled``)
        with backreferences for the number (cached per holder and schedule)."""
        key = holder if scheduled is None else f"{holder} {scheduled}"
        if key not in self._wild:
            what = f"{holder}'s template" if scheduled is None else f"range +{scheduled}'s set"
            records = []
            for record in self._wildcard_naptrs(holder, scheduled):
                assert isinstance(record.rdata, Naptr)
                regexp = to_backrefs(record.rdata.regexp)
                if regexp is None or MARK in record.rdata.replacement:
                    text = record.rdata.regexp.replace("+" + MARK, "{e164}")
                    self.warnings.append(
                        f"{what} {text.replace(MARK, '{digits}')} uses the "
                        "number beside a pattern other than ^.*$: no wildcard can say it"
                    )
                    continue
                rdata = dataclasses.replace(record.rdata, regexp=regexp)
                records.append(dataclasses.replace(record, rdata=rdata))
            if not records:
                self.warnings.append(f"{holder} has no templates: its range numbers answer nothing")
            self._wild[key] = records
        return self._wild[key]

    def _wildcard_naptrs(self, holder: str, scheduled: str | None) -> tuple[Record, ...]:
        if scheduled is None:
            return self.templates_view().naptrs(MARK, holder)
        schedule = self.snapshot.range_schedules[scheduled]
        moment = self.snapshot.taken_at
        name, switch = evaluate(schedule, moment)
        return self.number._records(MARK, holder, schedule.route_sets[name], switch, moment)

    # -- the image ------------------------------------------------------------------------
    def entries(
        self, records: tuple[Record, ...], digits: str, wildcard: bool = False
    ) -> list[Entry]:
        """Records resolved at a number's name (or ``*.`` below it) as RRsets; records with an
        absolute owner (glue) keep it."""
        groups: dict[tuple[str | None, int], list[Record]] = {}
        for record in records:
            owner = record.owner
            if isinstance(owner, int) and owner:
                raise ValueError(f"record {record} is not at +{digits}")
            host = owner if isinstance(owner, str) else None
            groups.setdefault((host, record.rtype), []).append(record)
        return [
            Entry(digits, wildcard, tuple(sorted(group, key=record_key)), host)
            for (host, _), group in groups.items()
        ]

    def apex_entries(self) -> list[Entry]:
        """SOA, then NS, at the apex."""
        answers = [self.answer(self.lead, qtype).answer for qtype in (SOA, NS)]
        return [entry for records in answers for entry in self.entries(records, self.lead)]

    def node_entries(self, digits: str, answer: Answer | None = None) -> list[Entry]:
        """RRsets at an existing name of a naptr-style image: NAPTR at it when it is a number
        that answers, and the wildcard below it when it lies inside a range."""
        out = []
        if digits != self.lead:
            if answer is None:
                found = self.snapshot.range_of(digits)
                fits = found is not None and found.min_digits <= len(digits) <= found.max_digits
                answer = self.answer(digits) if fits else None
            if answer is not None and answer.kind is Kind.ANSWER:
                out += self.entries(answer.answer, digits)
        holder = self.wildcard_holder(digits)
        if holder is not None:
            scheduled = self.wildcard_schedule(digits, holder)
            key = holder if scheduled is None else f"{holder} {scheduled}"
            if key not in self._wild_entries:
                records = tuple(self.wildcard(holder, scheduled))
                self._wild_entries[key] = self.entries(records, "", True)
            out += [Entry(digits, True, e.records) for e in self._wild_entries[key]]
        return out

    def explicit(self, prefix: str = "") -> Iterator[str]:
        """Numbers with answers of their own under the prefix, in order (with schedules)."""
        numbers = self.reader.explicit_numbers(prefix or self.lead)
        scheduled = getattr(self.snapshot, "schedules", None) or {}
        extra = sorted(d for d in scheduled if d.startswith(prefix or self.lead))
        return iter(numbers) if not extra else _unique(heapq.merge(numbers, extra))

    def nodes(self) -> Iterator[tuple[str, Answer | None]]:
        """Every existing name of a naptr-style image in order, with the answer of an explicit
        number (None: resolve when needed)."""
        prev = self.lead
        yield self.lead, None
        explicit = ((d, self.answer(d)) for d in self.explicit())
        answering = ((d, a) for d, a in explicit if a.kind is Kind.ANSWER)
        seeds = ((d, None) for d in self.range_seeds)
        for digits, answer in heapq.merge(answering, seeds, key=lambda item: item[0]):
            start = max(common_prefix(prev, digits), len(self.lead)) + 1
            for size in range(start, len(digits) + 1):
                yield digits[:size], answer if size == len(digits) else None
            prev = digits

    def image(self) -> Iterator[Entry]:
        """The whole image, streamed: SOA first, then NS, then every other RRset."""
        yield from self.apex_entries()
        if self.referral:
            yield from self.referrals()
            return
        for digits, answer in self.nodes():
            yield from self.node_entries(digits, answer)

    def referrals(self) -> Iterator[Entry]:
        """NS (and in-zone glue) at every delegated number; a number below a cut is left out."""
        cut = None
        glue: set[tuple[str | None, int]] = set()
        for digits in self.explicit():
            answer = self.answer(digits)
            if answer.kind is not Kind.REFERRAL:
                self.warnings.append(f"+{digits}: no Tier2 servers to delegate to; left out")
                continue
            if cut is not None and digits.startswith(cut):
                self.warnings.append(f"+{digits} is below the delegation of +{cut}; left out")
                continue
            cut = digits
            yield from self.entries(answer.authority, digits)
            for entry in self.entries(self.glue(answer), digits):
                if (entry.host, entry.rtype) not in glue:
                    glue.add((entry.host, entry.rtype))
                    yield entry

    def glue(self, answer: Answer) -> tuple[Record, ...]:
        """The glue records of a referral that lie inside the zone."""
        return tuple(
            r for r in answer.additional
            if isinstance(r.owner, str) and dns.name.from_text(r.owner).is_subdomain(self.origin)
        )  # fmt: skip

    def owner(self, entry: Entry) -> dns.name.Name:
        """The owner name of an image RRset."""
        if entry.host is not None:
            return dns.name.from_text(entry.host)
        name = self.name(entry.digits)
        return wildcard_name(name) if entry.wildcard else name

    def rrset(self, entry: Entry) -> dns.rrset.RRset:
        """An image RRset as dnspython's (TTL: the smallest of its records)."""
        rrset = dns.rrset.RRset(self.owner(entry), IN, dns.rdatatype.RdataType.make(entry.rtype))
        for record in entry.records:
            rrset.add(to_rdata(record), record.ttl)
        return rrset

    def rrsets(self) -> Iterator[dns.rrset.RRset]:
        """The whole image as dnspython RRsets (SOA first)."""
        return (self.rrset(entry) for entry in self.image())


@dataclass(frozen=True, slots=True)
class Entry:
    """One RRset of an image: its owner (the name of ``digits``, ``*.`` below it when
    ``wildcard``, or the absolute ``host`` of glue) and its records in canonical order."""

    digits: str
    wildcard: bool
    records: tuple[Record, ...]
    host: str | None = None

    @property
    def rtype(self) -> int:
        return self.records[0].rtype

    @property
    def ttl(self) -> int:
        """The RRset's TTL: the smallest of its records' (RFC 2181 5.2)."""
        return min(record.ttl for record in self.records)


def _unique(items: Iterable[str]) -> Iterator[str]:
    last = None
    for item in items:
        if item != last:
            yield item
        last = item


def record_key(record: Record) -> tuple[int, int, str, str, str, str]:
    """Records of an RRset in a canonical order (the order of ``rdata_key``)."""
    data = record.rdata
    if isinstance(data, Naptr):
        replacement = data.replacement if data.replacement.endswith(".") else data.replacement + "."
        return data.order, data.preference, data.flags, data.service, data.regexp, replacement
    return 0, 0, "", "", "", to_rdata(record).to_text()


def rdata_key(rdata: dns.rdata.Rdata) -> tuple[int, int, bytes, bytes, bytes, str]:
    """Records of an RRset in a canonical order: NAPTR by order and preference first."""
    if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
        fields = (rdata.flags, rdata.service, rdata.regexp)
        return rdata.order, rdata.preference, *fields, rdata.replacement.to_text()
    return 0, 0, b"", b"", b"", rdata.to_text()


def to_backrefs(regexp: str) -> str | None:
    """A regexp expanded for MARK, with backreferences for the number; None if impossible."""
    if MARK not in regexp:
        return regexp
    delim, parts = regexp[:1], regexp[1:].split(regexp[:1])
    if len(parts) != 3 or parts[0] != "^.*$":
        return None
    subst = parts[1].replace("+" + MARK, "\x02")
    if "\x02" in subst and MARK in subst:
        pattern, subst = "^(\\+(.*))$", subst.replace("\x02", "\\1").replace(MARK, "\\2")
    elif "\x02" in subst:
        pattern, subst = "^(.*)$", subst.replace("\x02", "\\1")
    else:
        pattern, subst = "^\\+(.*)$", subst.replace(MARK, "\\1")
    return delim.join(("", pattern, subst, parts[2]))


def wildcard_name(name: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"*", *name.labels))


def build(state: ZoneState) -> dns.zone.Zone:
    """The image as a dnspython zone (warnings collected in ``state``)."""
    zone = dns.zone.Zone(state.origin)
    for rrset in state.rrsets():
        rdataset = zone.find_rdataset(rrset.name, rrset.rdtype, create=True)
        for rdata in rrset:
            rdataset.add(rdata, rrset.ttl)
    return zone


def at_schedule_moment(snapshot: Snapshot, reader: StoreReader) -> Snapshot:
    """The snapshot as transfers read it: scheduled numbers evaluated at the store's schedule
    moment (``enumserver.ticks``), so one serial has one content; before the first tick, at
    the moment the snapshot was read."""
    moment = reader.schedule_moment()
    return snapshot if moment is None else dataclasses.replace(snapshot, taken_at=moment)


@contextmanager
def zone_state(store: Path, zone_name: str) -> Iterator[ZoneState]:
    """Read a zone's state in one read transaction (snapshot and numbers at one serial)."""
    try:
        catalog = Catalog(store)
        catalog.conn.execute("BEGIN")
        reader = StoreReader(store, conn=catalog.conn)
    except (StoreError, sqlite3.Error) as exc:
        raise ImageError([f"cannot read store {store}: {exc}"]) from exc
    try:
        snapshot = at_schedule_moment(reader.snapshot(), reader)
        zone = snapshot.zones.get(zone_name)
        if zone is None:
            known = ", ".join(sorted(snapshot.zones)) or "none"
            raise ImageError([f"no zone {zone_name!r} in {store} (zones: {known})"])
        routed: dict[str, set[str]] = {}
        for row in catalog.routes():
            if row["number"] is not None and str(row["number"]).startswith(zone.lead_digits):
                routed.setdefault(str(row["number"]), set()).add(str(row["ty"]))
        yield ZoneState(zone, snapshot, reader, routed)
    finally:
        if catalog.conn.in_transaction:
            catalog.conn.execute("COMMIT")
        catalog.close()
