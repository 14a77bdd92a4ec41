r"""RFC 1035 master files of a zone as it answers: the export, and what the import shares.

Export reads one StoreReader snapshot and asks ``enumserver.resolve`` (the server's own rules)
what every name answers; ``enumserver.present`` turns the answers into dnspython RRsets and
``dns.zone`` writes them, sorted, so export -> import -> export is byte-identical.

naptr-style Tier1 zones and Tier2 zones
  * NAPTR RRsets at every ported number and every number with routes of its own, as served;
  * per range of an operator the zone serves, a wildcard ``*.<range prefix>`` with the holder's
    templates. The client applies the regexp to the ``+digits`` AUS, so ``{e164}`` becomes a
    backreference: ``!^.*$!sip:{e164}@d!`` -> ``!^(.*)$!sip:\1@d!``; ``{digits}`` is ``\1`` of
    ``^\+(.*)$`` (both: ``^(\+(.*))$`` with ``\1`` and ``\2``); ``{rn}`` and ``{sip_domain}``
    are the holder's values. A template that uses the number with another pattern than
    ``^.*$``, or in its replacement field, cannot be expressed: skipped, with a warning and a
    comment in the file;
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
  numbers below it. A standard secondary of this zone answers NXDOMAIN (NODATA at empty
  non-terminals) for numbers served by their range holder: clients must ask operator-enum for
  them, or secondaries carry the naptr-style zone. Where one delegated number is a prefix of
  another, the shorter cut is kept (a warning): nothing below a cut is visible.

``zonetools.zoneimport`` reads such a file back into routes and templates.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.rrset
import dns.zone

from enumserver.model import Route, Zone
from enumserver.present import to_rrsets
from enumserver.resolve import (
    NAPTR,
    NS,
    SOA,
    Answer,
    Kind,
    Naptr,
    NumberView,
    Record,
    View,
    resolve,
    zones_by_apex,
)
from enumserver.store import Catalog, Snapshot, StoreError, StoreReader

MARK = "\x01"  # stands for the number's digits while a wildcard's templates are expanded


class ZoneFileError(ValueError):
    """An export or import refused: every reason, each naming the file, zone or owner name."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


class _TemplatesOnly:
    """Lookups that hide per-number routes: what a number answers from templates alone."""

    def __init__(self, lookups: StoreReader) -> None:
        self.lookups = lookups

    def recipient_of(self, digits: str) -> str | None:
        return self.lookups.recipient_of(digits)

    def number_routes(self, digits: str) -> list[Route]:
        return []

    def ported_below(self, prefix: str) -> bool:
        return self.lookups.ported_below(prefix)


@dataclass
class ZoneState:
    """A zone with everything export and import read, all at one serial of the store."""

    zone: Zone
    snapshot: Snapshot
    reader: StoreReader
    explicit: set[str]  # ported numbers and numbers with routes of their own, under the apex
    routed: dict[str, set[str]]  # number -> operators with routes of their own for it
    warnings: list[str] = field(default_factory=list)
    _wild: dict[str, list[Record]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin = dns.name.from_text(self.zone.apex)
        self.view = View(zones_by_apex([self.zone]), self.snapshot, self.reader)
        self.number = NumberView(self.zone, self.view)

    def templates_view(self, snapshot: Snapshot | None = None) -> NumberView:
        """Numbers answered from templates alone (optionally with other templates)."""
        view = View(self.view.zones, snapshot or self.snapshot, _TemplatesOnly(self.reader))
        return NumberView(self.zone, view)

    def name(self, digits: str) -> dns.name.Name:
        """The owner name of a number (as ``enumserver.numbers.to_name``, without the text)."""
        rest = digits[len(self.zone.lead_digits) :]
        return dns.name.Name((*(c.encode() for c in reversed(rest)), *self.origin.labels))

    def answer(self, digits: str, qtype: int = NAPTR) -> Answer:
        """What the server answers for a number name (the apex for the zone's lead digits)."""
        labels = [label.decode().lower() for label in self.name(digits).labels if label]
        return resolve(labels, qtype, self.view)

    def wildcard_holder(self, digits: str) -> str | None:
        """The operator whose numbers a ``*`` below this name stands for, or None."""
        found = self.snapshot.range_of(digits)
        if found is None or len(digits) >= found.max_digits:
            return None
        return found.holder if self.number.serves(found.holder) else None

    def wildcard(self, holder: str) -> list[Record]:
        """The holder's templates with backreferences for the number (cached per holder)."""
        if holder not in self._wild:
            records = []
            for record in self.templates_view().naptrs(MARK, holder):
                assert isinstance(record.rdata, Naptr)
                regexp = to_backrefs(record.rdata.regexp)
                if regexp is None or MARK in record.rdata.replacement:
                    text = record.rdata.regexp.replace("+" + MARK, "{e164}")
                    self.warnings.append(
                        f"{holder}'s template {text.replace(MARK, '{digits}')} uses the "
                        "number beside a pattern other than ^.*$: no wildcard can say it"
                    )
                    continue
                rdata = dataclasses.replace(record.rdata, regexp=regexp)
                records.append(dataclasses.replace(record, rdata=rdata))
            if not records:
                self.warnings.append(f"{holder} has no templates: its range numbers answer nothing")
            self._wild[holder] = records
        return self._wild[holder]


@contextmanager
def zone_state(store: Path, zone_name: str) -> Iterator[ZoneState]:
    """Read a zone's state in one read transaction (snapshot and numbers at one serial)."""
    try:
        catalog = Catalog(store)
        catalog.conn.execute("BEGIN")
        reader = StoreReader(store, conn=catalog.conn)
    except (StoreError, sqlite3.Error) as exc:
        raise ZoneFileError([f"cannot read store {store}: {exc}"]) from exc
    try:
        snapshot = reader.snapshot()
        zone = snapshot.zones.get(zone_name)
        if zone is None:
            known = ", ".join(sorted(snapshot.zones)) or "none"
            raise ZoneFileError([f"no zone {zone_name!r} in {store} (zones: {known})"])
        lead = zone.lead_digits
        explicit = {str(row["number"]) for row in catalog.ported(prefix=lead)}
        routed: dict[str, set[str]] = {}
        for row in catalog.routes():
            if row["number"] is not None and str(row["number"]).startswith(lead):
                routed.setdefault(str(row["number"]), set()).add(str(row["ty"]))
        yield ZoneState(zone, snapshot, reader, explicit | set(routed), routed)
    finally:
        if catalog.conn.in_transaction:
            catalog.conn.execute("COMMIT")
        catalog.close()


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


def _add(
    zone: dns.zone.Zone, records: tuple[Record, ...] | list[Record], name: dns.name.Name
) -> None:
    """Add resolved records at a name, in a canonical order (so the text is deterministic)."""
    for rrset in to_rrsets(tuple(records), name):
        rdataset = zone.find_rdataset(rrset.name, rrset.rdtype, create=True)
        for rdata in sorted(rrset, key=rdata_key):
            rdataset.add(rdata, rrset.ttl)


def _sorted(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    out = []
    for rrset in rrsets:
        ordered = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
        for rdata in sorted(rrset, key=rdata_key):
            ordered.add(rdata, rrset.ttl)
        out.append(ordered)
    return out


def rdata_key(rdata: dns.rdata.Rdata) -> tuple[int, int, bytes, bytes, bytes, str]:
    """Records of an RRset in a canonical order: NAPTR by order and preference first."""
    if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
        fields = (rdata.flags, rdata.service, rdata.regexp)
        return rdata.order, rdata.preference, *fields, rdata.replacement.to_text()
    return 0, 0, b"", b"", b"", rdata.to_text()


def build(state: ZoneState) -> dns.zone.Zone:
    """The zone as it answers, as a dnspython zone (warnings collected in ``state``)."""
    zone = dns.zone.Zone(state.origin)
    lead = state.zone.lead_digits
    for qtype in (SOA, NS):
        _add(zone, state.answer(lead, qtype).answer, state.origin)
    if state.zone.style == "referral" and state.zone.role == "tier1":
        _referrals(state, zone)
        return zone
    answers = {d: state.answer(d) for d in state.explicit}
    nodes = {d for d, answer in answers.items() if answer.kind is Kind.ANSWER} | {lead}
    for found in state.snapshot.ranges.values():
        if found.prefix.startswith(lead) or lead.startswith(found.prefix):
            nodes.add(found.prefix if found.prefix.startswith(lead) else lead)
    nodes = {d[:size] for d in nodes for size in range(len(lead), len(d) + 1)}
    wildcards: dict[str, list[dns.rrset.RRset]] = {}
    for digits in sorted(nodes):
        if digits != lead:
            answer = answers.get(digits) or state.answer(digits)
            if answer.kind is Kind.ANSWER:
                _add(zone, answer.answer, state.name(digits))
        holder = state.wildcard_holder(digits)
        if holder is not None:
            if holder not in wildcards:
                wildcards[holder] = _sorted(to_rrsets(tuple(state.wildcard(holder)), state.origin))
            for rrset in wildcards[holder]:
                copy = rrset.copy()  # type: ignore[no-untyped-call]
                zone.replace_rdataset(wildcard_name(state.name(digits)), copy)
    return zone


def _referrals(state: ZoneState, zone: dns.zone.Zone) -> None:
    cuts: set[str] = set()
    for digits in sorted(state.explicit):
        answer = state.answer(digits)
        name = state.name(digits)
        if answer.kind is not Kind.REFERRAL:
            state.warnings.append(f"+{digits}: no Tier2 servers to delegate to; left out")
            continue
        above = next((d for d in cuts if digits.startswith(d)), None)
        if above is not None:
            state.warnings.append(f"+{digits} is below the delegation of +{above}; left out")
            continue
        cuts.add(digits)
        _add(zone, answer.authority, name)
        glue = [r for r in answer.additional if isinstance(r.owner, str)
                and dns.name.from_text(r.owner).is_subdomain(state.origin)]  # fmt: skip
        _add(zone, glue, name)


@dataclass
class Export:
    """A zone file's text, what it could not express, and its size."""

    text: str
    warnings: list[str]
    serial: int
    names: int
    rrsets: int


def export_zone(store: Path, zone_name: str) -> Export:
    """The zone as it answers, as RFC 1035 master file text (sorted, deterministic)."""
    with zone_state(store, zone_name) as state:
        return render(state)


def render(state: ZoneState) -> Export:
    zone = build(state)
    info = state.zone
    header = [f"; zone {info.name} ({info.role}, {info.style}) at serial {info.serial}"]
    if info.style == "referral" and info.role == "tier1":
        header.append(
            "; numbers served by their range holder are not delegated here: ask the server"
        )
    header += [f"; left out: {warning}" for warning in state.warnings]
    text = "\n".join(header) + "\n" + zone.to_text(sorted=True, relativize=True, want_origin=True)
    rrsets = sum(len(node.rdatasets) for node in zone.nodes.values())
    return Export(text, state.warnings, info.serial, len(zone.nodes), rrsets)
