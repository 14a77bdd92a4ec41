"""Import of RFC 1035 master files (as ``zonetools.exports`` writes them) into routes.

The file goes through the change-set path (``zonetools.changes``): NAPTR RRsets at numbers
become "route" operations for the number's serving operator, skipped when that operator's
templates already give those records; wildcard NAPTR at a range (or below it) become "template"
operations for its holder, backreferences turned back into placeholders and the holder's
routing number and SIP domain into ``{rn}`` and ``{sip_domain}``; a number whose routes of its
own are missing from the file loses them. What maps to nothing (NAPTR at a name no range holds
or of an operator the zone does not serve, changed delegations, other types) refuses the whole
file, each reason naming the owner. SOA and apex NS are zone settings: differences are noted.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.zone

from enumserver.model import Route
from enumserver.present import to_rrsets
from enumserver.resolve import NAPTR, NS, SOA, _template_fields
from zonetools.changes import Op
from zonetools.exports import ZoneFileError, ZoneState, build, rdata_key, zone_state

FORMS = {  # pattern -> what its backreferences stand for
    "^(.*)$": ("{e164}",),
    "^\\+(.*)$": ("{digits}",),
    "^(\\+(.*))$": ("{e164}", "{digits}"),
}


def from_backrefs(regexp: str, fields: dict[str, str]) -> str:
    """The template of a wildcard's regexp: placeholders for backreferences and the holder's
    routing number and SIP domain (``fields``: placeholder -> the holder's value)."""
    delim, parts = regexp[:1], regexp[1:].split(regexp[:1])
    if len(parts) != 3:
        return regexp
    pattern, subst, flags = parts
    if pattern in FORMS:
        names = FORMS[pattern]
        subst = re.sub(
            r"\\(\d)",
            lambda m: names[int(m[1]) - 1] if 0 < int(m[1]) <= len(names) else m[0],
            subst,
        )
        pattern = "^.*$"
    for placeholder, value in fields.items():
        if value:
            subst = subst.replace(value, placeholder)
    return delim.join(("", pattern, subst, flags))


@dataclass
class ImportPlan:
    """The operations a zone file maps to, and notices about what it leaves alone."""

    ops: list[Op]
    notices: list[str]


def read_zone_file(path: Path, apex: str) -> dns.zone.Zone:
    """A master file parsed with absolute names; its origin must be the zone's apex."""
    try:
        return dns.zone.from_file(str(path), apex, relativize=False)
    except dns.zone.NoSOA as exc:
        problem = f"no SOA at {apex}: is it a file of another zone? ($ORIGIN must be {apex})"
        raise ZoneFileError([f"{path}: {problem}"]) from exc
    except (dns.exception.DNSException, OSError, UnicodeDecodeError, KeyError) as exc:
        text = str(exc) or type(exc).__name__
        raise ZoneFileError([text if text.startswith(f"{path}:") else f"{path}: {text}"]) from exc


def plan_import(store: Path, zone_name: str, path: Path) -> ImportPlan:
    """Map a zone file to change-set operations against the zone's state now.

    :raises ZoneFileError: with every reason when some record cannot be mapped.
    """
    with zone_state(store, zone_name) as state:
        theirs = read_zone_file(path, state.zone.apex)
        ours = build(state)
        return _Mapper(state, path).run(theirs, ours)


def _same(
    ours: dns.rdataset.Rdataset | None, theirs: dns.rdataset.Rdataset | None, origin: dns.name.Name
) -> bool:
    """Same type, TTL and records (names compared absolute)."""
    if ours is None or theirs is None:
        return ours is theirs

    def texts(rdataset: dns.rdataset.Rdataset) -> set[str]:
        return {rdata.to_text(origin=origin, relativize=False) for rdata in rdataset}

    return ours.rdtype == theirs.rdtype and ours.ttl == theirs.ttl and texts(ours) == texts(theirs)


def _records(
    rdataset: dns.rdataset.Rdataset, regexp: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Route fields of a NAPTR RRset (``regexp`` maps each regexp, for templates)."""
    out = []
    for rdata in sorted(rdataset, key=rdata_key):
        assert isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR)
        text = rdata.regexp.decode()
        out.append(
            {
                "order": rdata.order,
                "preference": rdata.preference,
                "flags": rdata.flags.decode(),
                "service": rdata.service.decode(),
                "regexp": regexp(text) if regexp else text,
                "replacement": rdata.replacement.to_text(),
                "ttl": rdataset.ttl,
            }
        )
    return out


class _Mapper:
    """Maps one parsed zone file to operations, collecting every reason to refuse it."""

    def __init__(self, state: ZoneState, path: Path) -> None:
        self.state = state
        self.path = path
        self.reasons: list[str] = []
        self.notices: list[str] = []
        self.ops: list[Op] = []
        self.wild: dict[str, list[tuple[str, dns.rdataset.Rdataset]]] = {}
        self.numbers: list[tuple[str, str, str, dns.rdataset.Rdataset]] = []

    def run(self, theirs: dns.zone.Zone, ours: dns.zone.Zone) -> ImportPlan:
        state, origin = self.state, self.state.origin
        referral = state.zone.style == "referral" and state.zone.role == "tier1"
        for name in sorted(theirs.nodes):
            where = f"{self.path}: {name}"
            for rdataset in theirs.nodes[name]:
                if rdataset.rdtype == NAPTR and not referral:
                    problem = self.naptr(name.relativize(origin), where, rdataset)
                    if problem:
                        self.reasons.append(f"{where}: {problem}")
                    continue
                if _same(ours.get_rdataset(name, rdataset.rdtype), rdataset, origin):
                    continue
                kind = dns.rdatatype.to_text(rdataset.rdtype)
                if name == origin and rdataset.rdtype in (SOA, NS):
                    self.notices.append(
                        f"{where}: {kind} differs from the store: zone settings "
                        "are not imported (use 'zonetools zone add')"
                    )
                elif referral and rdataset.rdtype != NAPTR:
                    self.reasons.append(
                        f"{where}: {kind} differs from the store: delegations "
                        "follow ported numbers and Tier2 servers ('zonetools port',"
                        " 'zonetools tier2 set'), not zone files"
                    )
                else:
                    self.reasons.append(
                        f"{where}: {kind} records cannot be imported into a {state.zone.style}-"
                        "style zone: only NAPTR at numbers and wildcard NAPTR at ranges of a "
                        "naptr-style zone"
                    )
        if not referral:  # a referral-style file says nothing about routes
            self.routes(self.templates())
            missing = [n.derelativize(origin) for n in ours.nodes if not n.is_wild()]
            missing = [
                n
                for n in missing
                if n not in theirs.nodes and ours.get_rdataset(n, dns.rdatatype.NAPTR)
            ]
            if missing:
                self.notices.append(
                    f"{len(missing)} number(s) the zone answers are not in the file (first: "
                    f"{min(missing)}): their own routes are removed, ported numbers stay ported"
                )
        if self.reasons:
            raise ZoneFileError(self.reasons)
        return ImportPlan(self.ops, self.notices)

    def naptr(self, name: dns.name.Name, where: str, rdataset: dns.rdataset.Rdataset) -> str | None:
        """File a NAPTR RRset under its number or range holder; the reason when it has none."""
        labels = [label.decode() for label in name.labels]
        star = bool(labels) and labels[0] == "*"
        labels = labels[1:] if star else labels
        if not all(len(label) == 1 and label.isdigit() for label in labels):
            return "NAPTR at a name that is not a number"
        digits = self.state.zone.lead_digits + "".join(reversed(labels))
        number = self.state.number
        if star:
            holder = self.state.wildcard_holder(digits)
            if holder is None:
                return (
                    f"wildcard NAPTR below +{digits}: no range of an operator this zone "
                    "serves holds numbers there"
                )
            self.wild.setdefault(holder, []).append((where, rdataset))
            return None
        holder = number.holder(digits) if labels else None
        if holder is None:
            return f"no range holds +{digits} and it is not ported: nobody serves it"
        if not number.serves(holder):
            return f"+{digits} is served by {holder}, not by this zone's operator"
        self.numbers.append((digits, holder, where, rdataset))
        return None

    def templates(self) -> dict[str, tuple[Route, ...]]:
        """Template operations for changed wildcards; the new templates by holder."""
        state, changed = self.state, {}
        for holder, found in sorted(self.wild.items()):
            where, first = found[0]
            for other_where, other in found[1:]:
                if not _same(first, other, state.origin):
                    self.reasons.append(
                        f"{other_where}: differs from the wildcard at {where}: "
                        f"{holder}'s numbers all answer one set of templates"
                    )
            expected = to_rrsets(tuple(state.wildcard(holder)), state.origin)
            if expected and _same(expected[0], first, state.origin):
                continue
            values = _template_fields(*state.number.operator_chain(holder))
            try:
                records = _records(first, functools.partial(from_backrefs, fields=values))
            except UnicodeDecodeError as exc:
                self.reasons.append(f"{where}: NAPTR text is not UTF-8: {exc}")
                continue
            self.ops.append(Op("set", "template", {"ty": holder, "records": records}, where))
            changed[holder] = tuple(Route(holder, None, **record) for record in records)
        return changed

    def routes(self, changed: dict[str, tuple[Route, ...]]) -> None:
        """Route operations for numbers whose file records differ from what they would answer."""
        state = self.state
        templates = {**state.snapshot.templates, **changed}
        by_templates = state.templates_view(
            dataclasses.replace(state.snapshot, templates=templates)
        )
        skipped, seen = 0, set()
        for digits, holder, where, theirs in self.numbers:
            seen.add(digits)
            name, key = state.name(digits), {"number": f"+{digits}", "ty": holder}
            own = holder in state.routed.get(digits, set())
            if own:
                now = to_rrsets(state.answer(digits).answer, name)
                if now and _same(now[0], theirs, state.origin):
                    continue
            plain = to_rrsets(by_templates.naptrs(digits, holder), name)
            if plain and _same(plain[0], theirs, state.origin):
                if own:
                    self.ops.append(Op("remove", "route", key, where))
                else:
                    skipped += 1
                continue
            try:
                self.ops.append(Op("set", "route", {**key, "records": _records(theirs)}, where))
            except UnicodeDecodeError as exc:
                self.reasons.append(f"{where}: NAPTR text is not UTF-8: {exc}")
        for digits in sorted(state.routed):
            serving = state.number.holder(digits)
            if serving is None or digits in seen or serving not in state.routed[digits]:
                continue
            if state.number.serves(serving):
                where = f"{self.path}: no NAPTR at {state.name(digits)}"
                key = {"number": f"+{digits}", "ty": serving}
                self.ops.append(Op("remove", "route", key, where))
        if skipped:
            self.notices.append(
                f"{skipped} number(s) already answer these records from their "
                "operator's templates: no routes of their own written"
            )
