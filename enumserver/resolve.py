"""Pure resolution: (question name labels, type, store view) -> Answer. Every DNS rule lives here.

No sockets, no bytes, no clock: the moment of the question is an argument (``now``), which
only scheduled numbers read. Owner names are expressed relative to the question name (``owner``
= how many leading labels of the question to drop), so the wire layer can point at the client's
own spelling of the name and keep its case.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from enumserver.model import Operator, Route, Tier2Server, Zone
from enumserver.numbers import is_service
from enumserver.schedule import Schedule, epoch, evaluate
from enumserver.store import Snapshot

# RR types and rcodes used here (RFC 1035, 3403, 3596, 6891).
A, NS, SOA, AAAA, NAPTR, DS, ANY = 1, 2, 6, 28, 35, 43, 255
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


class Kind(Enum):
    """What kind of answer resolution found (CoreDNS's lookup result vocabulary)."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFERRAL = "referral"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True, slots=True)
class NsData:
    host: str


@dataclass(frozen=True, slots=True)
class Address:
    address: str


# Not frozen: built on every cache miss, and a frozen dataclass's __init__ goes through
# object.__setattr__ per field (17% of a miss's instructions for these three). Never mutated.
@dataclass(slots=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


Rdata = Soa | NsData | Address | Naptr


@dataclass(slots=True)  # not frozen: see Naptr
class Record:
    """One RR. ``owner`` is an int (leading question labels to drop) or an absolute name."""

    owner: int | str
    rtype: int
    ttl: int
    rdata: Rdata


@dataclass(slots=True)  # not frozen: see Naptr
class Answer:
    """The complete result of a question: rcode, AA and the three sections.

    ``expires``: for an answer that depends on the clock (a scheduled number), the epoch time
    after which it must not be served as it is (its TTLs would reach past the next switch).
    ``counted``: (number, serving TY) of an answer whose queries are counted (service numbers
    and scheduled numbers, see docs/service-numbers.md).
    """

    kind: Kind
    rcode: int
    aa: bool
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    zone: str | None = None
    expires: float | None = None
    counted: tuple[str, str] | None = None


REFUSED_ANSWER = Answer(Kind.REFUSED, REFUSED, False)


@dataclass(slots=True)
class Plain:
    """A number's NAPTR answer made of its serving operator's templates alone: no schedule, no
    routes of its own, not a service number. Its records depend on the number only through its
    digits, so the wire layer may encode it once per operator and fill the digits in
    (``plan``); ``render`` gives the Answer that ``resolve`` returns for it.
    """

    zone: Zone
    holder: str
    routes: Sequence[Route]
    digits: str
    number: NumberView

    def render(self, digits: str | None = None) -> Answer:
        """The Answer, for these digits or others of the same length (a template's marker)."""
        records = self.number._records(digits or self.digits, self.holder, self.routes, None, 0.0)
        return Answer(Kind.ANSWER, NOERROR, True, records, zone=self.zone.name)

    def insertions(self) -> int:
        """How many times the digits appear in the records."""
        splits = (self.number._split(self.holder, route) for route in self.routes)
        return sum(len(regexp) + len(replacement) - 2 for regexp, replacement in splits)


class Lookups(Protocol):
    """The per-number store lookups resolution needs (indexed, never a scan)."""

    def recipient_of(self, digits: str) -> str | None: ...
    def number_routes(self, digits: str) -> list[Route]: ...
    def ported_below(self, prefix: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class View:
    """What resolution reads: the served zones by apex labels, a snapshot and the lookups."""

    zones: dict[tuple[str, ...], Zone]
    snapshot: Snapshot
    lookups: Lookups
    # Label counts of the served apexes, longest first: the only suffixes worth looking up.
    apex_sizes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # (serving TY, regexp, replacement) -> both texts split at the number (see _split): what
    # of a route's expansion is the same for every number, worked out once per snapshot.
    splits: dict[tuple[str, str, str], tuple[Split, Split]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # Zone name -> its NumberView (made on first use: it only holds the zone and this view).
    numbers: dict[str, NumberView] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        sizes = tuple(sorted({len(apex) for apex in self.zones}, reverse=True))
        object.__setattr__(self, "apex_sizes", sizes)


def zones_by_apex(zones: Sequence[Zone]) -> dict[tuple[str, ...], Zone]:
    """Index zones by their lowercased apex labels; two served zones may not share an apex."""
    index: dict[tuple[str, ...], Zone] = {}
    for zone in zones:
        key = tuple(label for label in zone.apex.lower().rstrip(".").split(".") if label)
        if key in index:
            raise ValueError(f"zones {index[key].name} and {zone.name} share the apex {zone.apex}")
        index[key] = zone
    return index


def resolve(
    labels: Sequence[str], qtype: int, view: View, now: float | dt.datetime | None = None
) -> Answer:
    """Answer a question given as lowercased labels (no root label) and a type.

    ``now`` (epoch seconds or an aware datetime) is the moment of the question; without it,
    the moment the snapshot was read.
    """
    found = plan(labels, qtype, view, now)
    return found.render() if isinstance(found, Plain) else found


def plan(
    labels: Sequence[str], qtype: int, view: View, now: float | dt.datetime | None = None
) -> Answer | Plain:
    """``resolve``, but a number answered by its operator's templates alone comes back as a
    Plain (not yet rendered into records)."""
    zones = view.zones
    for size in view.apex_sizes:  # the longest (most specific) apex first
        cut = len(labels) - size
        zone = zones.get(tuple(labels[cut:])) if cut >= 0 else None
        if zone is not None:
            if now is None:
                moment = view.snapshot.taken_at
            else:
                moment = now if now.__class__ is float else epoch(now)
            return _in_zone(zone, labels[:cut], qtype, view, moment)
    return REFUSED_ANSWER


def _soa(zone: Zone, owner: int, ttl: int) -> Record:
    soa = Soa(
        zone.mname, zone.rname, zone.serial, zone.refresh, zone.retry, zone.expire, zone.minimum
    )
    return Record(owner, SOA, ttl, soa)


def _negative(zone: Zone, kind: Kind, apex_owner: int) -> Answer:
    rcode = NXDOMAIN if kind is Kind.NXDOMAIN else NOERROR
    authority = (_soa(zone, apex_owner, zone.negative_ttl),)
    return Answer(kind, rcode, True, authority=authority, zone=zone.name)


def _apex(zone: Zone, qtype: int) -> Answer:
    """SOA or NS at the apex; ANY gets the SOA alone (RFC 8482: one RRset, not everything)."""
    records: list[Record] = []
    if qtype in (SOA, ANY):
        records.append(_soa(zone, 0, zone.soa_ttl))
    if qtype == NS:
        records.extend(Record(0, NS, zone.ns_ttl, NsData(host)) for host in zone.ns)
    if not records:
        return _negative(zone, Kind.NODATA, 0)
    return Answer(Kind.ANSWER, NOERROR, True, answer=tuple(records), zone=zone.name)


def _in_zone(
    zone: Zone, below: Sequence[str], qtype: int, view: View, now: float
) -> Answer | Plain:
    """Resolve inside a zone; ``below`` are the question's labels under the apex."""
    if not below:
        return _apex(zone, qtype)
    apex_owner = len(below)
    # Digit labels from the apex down; anything after them is a name below a number.
    joined = "".join(below)
    if len(joined) == len(below) and joined.isascii() and joined.isdigit():
        digit_labels = len(below)  # the usual question: one digit per label
    else:
        digit_labels = 0
        for label in reversed(below):
            if len(label) != 1 or not "0" <= label <= "9":
                break
            digit_labels += 1
        joined = "".join(below[len(below) - digit_labels :])
    digits = zone.lead_digits + joined[::-1]
    extra = len(below) - digit_labels  # non-digit labels below the digit run
    number = view.numbers.get(zone.name)
    if number is None:
        number = view.numbers[zone.name] = NumberView(zone, view)

    holder: str | None = None
    if zone.style == "referral" and zone.role == "tier1":
        cut = number.delegation(digits, whole=extra == 0)
        if cut is not None:
            cut_digits, cut_holder = cut
            owner = extra + len(digits) - len(cut_digits)
            if owner == 0 and qtype == DS:
                return _negative(zone, Kind.NODATA, apex_owner)
            return number.referral(cut_holder, owner, apex_owner)
    elif not extra:
        holder = number.holder(digits)
    if extra:
        return _negative(zone, Kind.NXDOMAIN, apex_owner)
    if holder is not None and not number.serves(holder):
        holder = None
    if holder is not None:
        if qtype not in (NAPTR, ANY):
            return _negative(zone, Kind.NODATA, apex_owner)
        schedule, routes = number.schedule_of(digits, holder)
        if schedule is None and routes and not is_service(digits):
            templates = number.templates_of(holder)
            if routes is templates:
                return Plain(zone, holder, routes, digits, number)
        records, expires, scheduled = number.naptrs_at(digits, holder, now, (schedule, routes))
        if not records:
            return _negative(zone, Kind.NODATA, apex_owner)
        counted = (digits, holder) if scheduled or is_service(digits) else None
        ok, name = Kind.ANSWER, zone.name
        return Answer(ok, NOERROR, True, records, zone=name, expires=expires, counted=counted)
    if number.is_empty_non_terminal(digits):
        return _negative(zone, Kind.NODATA, apex_owner)
    return _negative(zone, Kind.NXDOMAIN, apex_owner)


class NumberView:
    """The number rules of one zone: who holds a number, what exists, what to answer."""

    __slots__ = ("lookups", "snapshot", "splits", "zone")

    def __init__(self, zone: Zone, view: View) -> None:
        self.zone = zone
        self.snapshot = view.snapshot
        self.lookups = view.lookups
        self.splits = view.splits

    def holder(self, digits: str) -> str | None:
        """Serving TY: recipient of a ported entry, else holder of the longest range, else None."""
        recipient = self.lookups.recipient_of(digits)
        if recipient is not None:
            return recipient
        found = self.snapshot.range_of(digits)
        if found is not None and found.min_digits <= len(digits) <= found.max_digits:
            return found.holder
        return None

    def serves(self, holder: str) -> bool:
        """Whether this zone answers for the holder's numbers (a Tier2 zone only for its TY)."""
        owner = self.zone.operator
        if owner is None:
            return True
        operator = self.snapshot.operators.get(holder)
        return holder == owner or (operator is not None and operator.host_ty == owner)

    def is_empty_non_terminal(self, digits: str) -> bool:
        """A digit prefix with numbers below it: inside a served range, or above ranges/ports."""
        if len(digits) <= len(self.zone.lead_digits) or digits in self.snapshot.range_ancestors:
            return True
        found = self.snapshot.range_of(digits)
        if found is not None and len(digits) < found.max_digits and self.serves(found.holder):
            return True
        return self.lookups.ported_below(digits)

    def delegation(self, digits: str, whole: bool) -> tuple[str, str] | None:
        """The number name at or above the digits that Tier1 delegates: (its digits, holder).

        The deepest number wins, so a ported number is found before a shorter number length
        that its range would also allow (numbers of a sane plan never nest).
        """
        if whole:
            holder = self.holder(digits)
            if holder is not None:
                return digits, holder
        found = self.snapshot.range_of(digits)
        if found is None:
            return None
        longest = min(len(digits) if whole else len(digits) + 1, found.max_digits + 1)
        for size in range(longest - 1, found.min_digits - 1, -1):
            holder = self.holder(digits[:size])
            if holder is not None:
                return digits[:size], holder
        return None

    def operator_chain(self, ty: str) -> tuple[Operator | None, Operator | None]:
        """The operator and, for a PO, its host TY."""
        operators = self.snapshot.operators
        operator = operators.get(ty)
        host = operators.get(operator.host_ty) if operator and operator.host_ty else None
        return operator, host

    def tier2_of(self, holder: str) -> tuple[Tier2Server, ...]:
        """Tier2 servers that serve the holder: its own, else (for a PO) its host TY's."""
        host = self.operator_chain(holder)[1]
        servers = self.snapshot.tier2.get(holder, ())
        if not servers and host is not None:
            servers = self.snapshot.tier2.get(host.ty, ())
        return servers

    def referral(self, holder: str, owner: int, apex_owner: int) -> Answer:
        """Tier1 referral: NS of the holder's Tier2 at the number's name, glue, AA clear."""
        servers = self.tier2_of(holder)
        if not servers:
            return _negative(self.zone, Kind.NODATA, apex_owner)
        ttl = min(server.ttl for server in servers)
        authority = tuple(Record(owner, NS, ttl, NsData(s.host)) for s in servers)
        glue: list[Record] = []
        for server in servers:
            if server.ipv4:
                glue.append(Record(server.host, A, server.ttl, Address(server.ipv4)))
            if server.ipv6:
                glue.append(Record(server.host, AAAA, server.ttl, Address(server.ipv6)))
        return Answer(
            Kind.REFERRAL,
            NOERROR,
            False,
            authority=authority,
            additional=tuple(glue),
            zone=self.zone.name,
        )

    def routes_of(self, digits: str, holder: str) -> Sequence[Route]:
        """The holder's per-number routes, else its (or its host's) templates."""
        routes: Sequence[Route] = ()
        if self.snapshot.has_number_routes:
            routes = [r for r in self.lookups.number_routes(digits) if r.ty == holder]
        if not routes:
            routes = self.templates_of(holder)
        return routes

    def templates_of(self, holder: str) -> Sequence[Route]:
        """The holder's templates, else its host TY's (for a PO): the same object each time."""
        routes = self.snapshot.templates.get(holder, ())
        if not routes:
            host = self.operator_chain(holder)[1]
            if host is not None:
                routes = self.snapshot.templates.get(host.ty, ())
        return routes

    def schedule_of(self, digits: str, holder: str) -> tuple[Schedule | None, Sequence[Route]]:
        """The schedule that answers for a number, else its routes. Most specific first: its
        own schedule, its own routes, its longest range's schedule, the templates; only the
        serving operator's schedules count (a ported-out number leaves its old one's behind)."""
        snapshot = self.snapshot
        schedule = snapshot.schedules.get(digits) if snapshot.schedules else None
        if schedule is not None and schedule.ty == holder:
            return schedule, ()
        routes = self.routes_of(digits, holder)
        if snapshot.range_schedules and (not routes or routes[0].number is None):
            schedule = snapshot.range_schedule_of(digits)
            if schedule is not None and schedule.ty == holder:
                return schedule, ()
        return None, routes

    def naptrs(self, digits: str, holder: str) -> tuple[Record, ...]:
        """NAPTR records of the holder's own routes, else of its (or its host's) templates."""
        return self._records(digits, holder, self.routes_of(digits, holder), None, 0.0)

    def naptrs_at(
        self,
        digits: str,
        holder: str,
        now: float,
        decided: tuple[Schedule | None, Sequence[Route]] | None = None,
    ) -> tuple[tuple[Record, ...], float | None, bool]:
        """(NAPTR records, expiry, scheduled) at a moment: a schedule's set in force, with every
        TTL capped at the seconds left until its next switch (at least 1), else the routes.
        ``decided``: ``schedule_of``'s result when the caller already has it."""
        schedule, routes = decided or self.schedule_of(digits, holder)
        if schedule is None:
            return self._records(digits, holder, routes, None, now), None, False
        name, switch = evaluate(schedule, now)
        records = self._records(digits, holder, schedule.route_sets[name], switch, now)
        if switch is None or not records:
            return records, None, True
        return records, switch - max(record.ttl for record in records), True

    def _records(
        self,
        digits: str,
        holder: str,
        routes: Sequence[Route],
        switch: float | None,
        now: float,
    ) -> tuple[Record, ...]:
        cap = None if switch is None else max(1, int(switch - now))
        splits = self.splits
        records = []  # a loop, not a generator: cheaper for two or three routes
        for route in routes:
            split = splits.get((holder, route.regexp, route.replacement))
            if split is None:
                split = self._split(holder, route)
            records.append(
                Record(
                    0,
                    NAPTR,
                    route.ttl if cap is None else min(route.ttl, cap),
                    Naptr(
                        route.order,
                        route.preference,
                        route.flags,
                        route.service,
                        digits.join(split[0]),
                        digits.join(split[1]),
                    ),
                )
            )
        return tuple(records)

    def _split(self, holder: str, route: Route) -> tuple[Split, Split]:
        """A route's regexp and replacement with the holder's fields filled in, split at the
        number: the expansion for a number is then ``digits.join(split)``."""
        fields = _template_fields(*self.operator_chain(holder))
        splits = self.splits
        if len(splits) >= 10_000:
            splits.clear()
        key = (holder, route.regexp, route.replacement)
        found = splits[key] = (_split(route.regexp, fields), _split(route.replacement, fields))
        return found


Split = tuple[str, ...]  # literal texts between which the number's digits go
_NUMBER_FIELDS = re.compile(r"(\{e164\}|\{digits\})")
_OTHER_FIELDS = re.compile(r"\{rn\}|\{sip_domain\}")


def _template_fields(operator: Operator | None, host: Operator | None) -> dict[str, str]:
    """The fields of a template that are the same for every number of the serving TY."""
    rn = (operator and operator.routing_number) or (host and host.routing_number) or ""
    domain = (operator and operator.sip_domain) or (host and host.sip_domain) or ""
    return {"{rn}": rn, "{sip_domain}": domain}


def _split(text: str, fields: dict[str, str]) -> Split:
    """Template text -> the literal parts around the number's place(s), the other fields
    filled in, in one pass (a value is never expanded again): {e164} is "+" and the digits,
    {digits} the digits. ``digits.join(parts)`` is the expansion for a number."""
    if "{" not in text:
        return (text,)
    pieces = _NUMBER_FIELDS.split(text)  # literal, field, literal, field, ..., literal
    literals = [_fill(piece, fields) for piece in pieces[::2]]
    for index, name in enumerate(pieces[1::2]):
        if name == "{e164}":
            literals[index] += "+"
    return tuple(literals)


def _fill(text: str, fields: dict[str, str]) -> str:
    return _OTHER_FIELDS.sub(lambda match: fields[match.group()], text) if "{" in text else text


def expand(text: str, digits: str, operator: Operator | None, host: Operator | None) -> str:
    """A template text expanded for a number and its serving operator (and that one's host)."""
    return digits.join(_split(text, _template_fields(operator, host)))
