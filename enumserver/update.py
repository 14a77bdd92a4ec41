"""DNS UPDATE (RFC 2136) signed with a licence's TSIG key (RFC 8945).

dnspython parses the message and :class:`~enumserver.auth.Verifier` checks its TSIG against the
key of a live licence (signed queries are answered there too). An accepted UPDATE becomes one
operation of a change set run by ``zonetools.changes.execute``, the one publishing path: inside
its transaction the operation checks the prerequisites against what the zone holds (RFC 2136
3.2), authorises every RR (:func:`~enumserver.auth.refusal`), applies the RRs in order to those
RRsets (3.4.2) and hands every changed RRset to the ``route``, ``template`` or ``tier2``
operation, which validate it as for the CLI. One serial, journal rows, an audit row (who = the
licence's TY, licence = its id, command ``dns update``); anything refused rolls the whole update
back.

Answers: NOERROR; NOTAUTH with TSIG error BADKEY/BADSIG (unsigned, empty MAC) or BADTIME
(signed, the server's time in Other Data); FORMERR; NOTZONE and the prerequisite rcodes;
NOTAUTH for a zone not served here; REFUSED for an unsigned update or any RR outside the
licence's rights. With EDNS, a refusal carries the reason as an Extended DNS Error (RFC 8914).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

from enumserver import logs
from enumserver.auth import (
    GRANTED_TYPES,
    Licence,
    Target,
    Verifier,
    classify,
    environment_refusal,
    refusal,
)
from enumserver.engine import Engine, Peer
from enumserver.present import to_rrsets
from enumserver.resolve import (
    Address,
    Kind,
    Naptr,
    NsData,
    NumberView,
    Record,
    View,
    resolve,
    zones_by_apex,
)
from enumserver.store import Change, StoreWriter
from enumserver.wire import Query, error_response, udp_limit
from zonetools.changes import ChangeError, ChangeSet, Op, execute
from zonetools.ops import OPERATIONS, OpError, Recorder, operation

T, R = dns.rdatatype.RdataType, dns.rcode.Rcode
A, NS, SOA, AAAA, NAPTR, ANY = T.A, T.NS, T.SOA, T.AAAA, T.NAPTR, T.ANY
META_TYPES = frozenset({ANY, T.AXFR, T.IXFR, T.MAILA, T.MAILB})
NOERROR, FORMERR, SERVFAIL, REFUSED = R.NOERROR, R.FORMERR, R.SERVFAIL, R.REFUSED
NXDOMAIN, YXDOMAIN, YXRRSET, NXRRSET = R.NXDOMAIN, R.YXDOMAIN, R.YXRRSET, R.NXRRSET
NOTAUTH, NOTZONE = R.NOTAUTH, R.NOTZONE
CLASS_ANY, CLASS_NONE = dns.rdataclass.ANY, dns.rdataclass.NONE
EDE: dict[int, dns.edns.EDECode] = {
    REFUSED: dns.edns.EDECode.PROHIBITED,
    NOTAUTH: dns.edns.EDECode.NOT_AUTHORITATIVE,
}
LOCK_WAIT = 0.5  # seconds an UPDATE waits for another writer (queries wait meanwhile)

RRsets = dict[int, tuple[int, list[dns.rdata.Rdata]]]  # type -> (TTL, records in order)


class UpdateError(OpError):
    """An update refused with an rcode other than the default REFUSED (or REFUSED itself)."""

    def __init__(self, rcode: dns.rcode.Rcode, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


@dataclass
class Outcome:
    """The rcode an operation refused with (execute keeps only the reasons)."""

    rcode: dns.rcode.Rcode = REFUSED


class ZoneData:
    """The RRsets a zone holds at the names an update touches, as the store stands now."""

    def __init__(self, change: Change, zone_name: str) -> None:
        reader = change.reader()
        self.snapshot = reader.snapshot()
        zone = self.snapshot.zones.get(zone_name)
        if zone is None:
            raise UpdateError(NOTAUTH, f"zone {zone_name} is not served")
        self.zone = zone
        self.apex = dns.name.from_text(zone.apex)
        self.view = View(zones_by_apex([zone]), self.snapshot, reader)
        self.numbers = NumberView(zone, self.view)
        self._held: dict[dns.name.Name, RRsets] = {}

    def holder(self, digits: str) -> str | None:
        """The operator serving a number in this zone, or None."""
        found = self.numbers.holder(digits)
        return found if found is not None and self.numbers.serves(found) else None

    def target(self, name: dns.name.Name) -> Target:
        return classify(name, self.zone, self.holder)

    def held(self, name: dns.name.Name) -> RRsets:
        """The RRsets at a name before the update (a fresh copy each call)."""
        if name not in self._held:
            self._held[name] = self._read(self.target(name))
        return {t: (ttl, list(rds)) for t, (ttl, rds) in self._held[name].items()}

    def _read(self, target: Target) -> RRsets:
        if target.kind in ("apex", "number"):
            labels = [label.decode("latin-1").lower() for label in target.name.labels if label]
            records: list[Record] = []
            for rdtype in (SOA, NS) if target.kind == "apex" else (NAPTR,):
                answer = resolve(labels, rdtype, self.view)
                if answer.kind is Kind.ANSWER:
                    records.extend(answer.answer)
            return _rrsets(records, target.name)
        if target.kind == "template":
            records = [
                Record(0, NAPTR, r.ttl, Naptr(r.order, r.preference, r.flags, r.service,
                                              r.regexp, r.replacement))
                for r in self.snapshot.templates.get(target.ty or "", ())
            ]  # fmt: skip
            return _rrsets(records, target.name)
        servers = self.snapshot.tier2.get(target.ty or "", ())
        if target.kind == "tier2":
            return _rrsets([Record(0, NS, s.ttl, NsData(s.host)) for s in servers], target.name)
        if target.kind == "tier2-host":
            records = []
            for s in servers:
                if s.host.lower().rstrip(".") == target.host.rstrip("."):
                    records += [Record(0, A, s.ttl, Address(s.ipv4))] if s.ipv4 else []
                    records += [Record(0, AAAA, s.ttl, Address(s.ipv6))] if s.ipv6 else []
            return _rrsets(records, target.name)
        return {}


def _rrsets(records: list[Record], name: dns.name.Name) -> RRsets:
    return {rrset.rdtype: (rrset.ttl, list(rrset)) for rrset in to_rrsets(tuple(records), name)}


def prescan(message: dns.update.UpdateMessage, apex: dns.name.Name) -> None:
    """Format checks of RFC 2136 3.2 and 3.4.1: FORMERR, or NOTZONE for a name outside."""
    for section, rrsets in (("prerequisite", message.prerequisite), ("update", message.update)):
        for rrset in rrsets:
            if not rrset.name.is_subdomain(apex):
                raise UpdateError(NOTZONE, f"{rrset.name} is outside the zone {apex}")
            adding = rrset.deleting is None
            if section == "prerequisite" and rrset.ttl != 0:
                raise UpdateError(FORMERR, f"prerequisite {rrset.name} has a TTL")
            if adding and rrset.rdtype in META_TYPES and section == "update":
                raise UpdateError(FORMERR, f"cannot add type {rrset.rdtype} at {rrset.name}")
            if rrset.deleting == CLASS_NONE and section == "update" and rrset.rdtype == ANY:
                raise UpdateError(FORMERR, f"class NONE type ANY at {rrset.name}")


def check_prerequisites(message: dns.update.UpdateMessage, data: ZoneData) -> None:
    """RFC 2136 3.2: every prerequisite against the zone's data; the first failure's rcode."""
    wanted: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = {}
    rdtype: int
    for rrset in message.prerequisite:
        held, rdtype, name = data.held(rrset.name), rrset.rdtype, rrset.name
        if rrset.deleting == CLASS_ANY and rdtype == ANY and not held:
            raise UpdateError(NXDOMAIN, f"prerequisite: {name} is not in use")
        if rrset.deleting == CLASS_ANY and rdtype != ANY and rdtype not in held:
            raise UpdateError(NXRRSET, f"prerequisite: no {_type(rdtype)} at {name}")
        if rrset.deleting == CLASS_NONE and rdtype == ANY and held:
            raise UpdateError(YXDOMAIN, f"prerequisite: {name} is in use")
        if rrset.deleting == CLASS_NONE and rdtype != ANY and rdtype in held:
            raise UpdateError(YXRRSET, f"prerequisite: {name} has {_type(rdtype)}")
        if rrset.deleting is None:
            wanted.setdefault((name, rdtype), []).extend(rrset)
    for (name, rdtype), rdatas in wanted.items():
        if set(rdatas) != set(data.held(name).get(rdtype, (0, []))[1]):
            raise UpdateError(NXRRSET, f"prerequisite: {_type(rdtype)} at {name} differs")


def apply_rrs(
    message: dns.update.UpdateMessage, data: ZoneData, licence: Licence
) -> dict[dns.name.Name, RRsets]:
    """RFC 2136 3.3 and 3.4.2: authorise every RR, then apply them in order; new RRsets."""
    work: dict[dns.name.Name, RRsets] = {}
    reasons: list[str] = []
    for rrset in message.update:
        name, rdtype = rrset.name, rrset.rdtype
        target = data.target(name)
        held = work.setdefault(name, data.held(name))
        types = (
            [rdtype] if rdtype != ANY else list(held) or list(GRANTED_TYPES.get(target.kind, [ANY]))
        )
        for each in types:
            why = refusal(licence, target, each, data.snapshot.operators)
            if why is not None and why not in reasons:
                reasons.append(why)
        if reasons:
            continue
        if rrset.deleting is None:
            records = held.get(rdtype, (rrset.ttl, []))[1]
            records.extend(rd for rd in rrset if rd not in records)
            held[rdtype] = (rrset.ttl, records)  # RFC 2181 5.2: one TTL per RRset
        elif rrset.deleting == CLASS_ANY:
            held.clear() if rdtype == ANY else held.pop(rdtype, None)
        elif rdtype in held:
            ttl, records = held[rdtype]
            left = [rd for rd in records if rd not in rrset]
            held[rdtype] = (ttl, left)
            if not left:
                del held[rdtype]
    if reasons:
        raise UpdateError(REFUSED, "; ".join(reasons))
    return {name: rrsets for name, rrsets in work.items() if rrsets != data.held(name)}


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


def _naptr_records(ttl: int, rdatas: list[Any]) -> list[dict[str, Any]]:
    try:
        return [
            {"order": rd.order, "preference": rd.preference, "flags": rd.flags.decode(),
             "service": rd.service.decode(), "regexp": rd.regexp.decode(),
             "replacement": rd.replacement.to_text(), "ttl": ttl}
            for rd in rdatas
        ]  # fmt: skip
    except UnicodeDecodeError as exc:
        raise UpdateError(REFUSED, f"NAPTR strings must be UTF-8: {exc}") from exc


def publish(
    change: Change, data: ZoneData, work: dict[dns.name.Name, RRsets], rec: Recorder
) -> None:
    """Hand every changed RRset to the route, template or tier2 operation of the change set."""
    tier2: list[str] = []
    for name, rrsets in work.items():
        target = data.target(name)
        ty = target.ty or ""
        if target.kind == "number":
            number = f"+{target.digits}"
            if NAPTR in rrsets:
                fields = {"number": number, "ty": ty, "records": _naptr_records(*rrsets[NAPTR])}
                OPERATIONS[("set", "route")](change, fields, rec)
            elif change.routes_of(ty, target.digits):  # its operator's templates answer again
                OPERATIONS[("remove", "route")](change, {"number": number, "ty": ty}, rec)
        elif target.kind == "template":
            if NAPTR in rrsets:
                records = _naptr_records(*rrsets[NAPTR])
                OPERATIONS[("set", "template")](change, {"ty": ty, "records": records}, rec)
            else:
                OPERATIONS[("remove", "template")](change, {"ty": ty}, rec)
        elif ty not in tier2:
            tier2.append(ty)
    for ty in tier2:
        servers = _tier2_servers(data, work, ty)
        OPERATIONS[("set", "tier2")](change, {"ty": ty, "servers": servers}, rec)


def _tier2_servers(
    data: ZoneData, work: dict[dns.name.Name, RRsets], ty: str
) -> list[dict[str, Any]]:
    """A TY's Tier2 servers after the update: NS at <ty>.tier2.<apex>, glue below it."""

    def now(name: dns.name.Name) -> RRsets:
        return work[name] if name in work else data.held(name)

    ns_name = dns.name.from_text(f"{ty.lower()}.tier2", origin=data.apex)
    ttl, hosts = now(ns_name).get(NS, (0, []))
    if not hosts:
        raise UpdateError(REFUSED, f"{ty} needs at least one Tier2 name server (NS at {ns_name})")
    names = [host.target.to_text().lower() for host in hosts]  # type: ignore[attr-defined]
    reasons = [
        f"{name}: no NS record at {ns_name} names {target.host}"
        for name, rrsets in work.items()
        if (target := data.target(name)).kind == "tier2-host" and target.ty == ty
        and rrsets and target.host not in names
    ]  # fmt: skip
    servers = []
    for host in names:
        glue = now(dns.name.from_text(host.rstrip("."), origin=ns_name))
        v4 = [rd.address for rd in glue.get(A, (0, []))[1]]  # type: ignore[attr-defined]
        v6 = [rd.address for rd in glue.get(AAAA, (0, []))[1]]  # type: ignore[attr-defined]
        if len(v4) > 1 or len(v6) > 1:
            reasons.append(f"{host}: a Tier2 server has one IPv4 and one IPv6 address")
        servers.append({"host": host, "ipv4": next(iter(v4), None),
                        "ipv6": next(iter(v6), None), "ttl": ttl})  # fmt: skip
    if reasons:
        raise UpdateError(REFUSED, "; ".join(reasons))
    return servers


@operation("update", "dns")
def apply_update(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    """One verified DNS UPDATE as an operation of a change set (see the module docstring)."""
    outcome: Outcome = fields["outcome"]
    try:
        data = ZoneData(change, fields["zone"])
        licence: Licence = fields["licence"]
        reason = environment_refusal(licence, data.zone, data.snapshot.zones)
        if reason is not None:
            raise UpdateError(REFUSED, reason)
        check_prerequisites(fields["message"], data)
        publish(change, data, apply_rrs(fields["message"], data, licence), rec)
    except UpdateError as exc:
        outcome.rcode = exc.rcode
        raise


class UpdateHandler:
    """The engine's ``update`` and ``signed`` handlers for one store."""

    def __init__(self, engine: Engine, store: str) -> None:
        self.engine = engine
        self.store = store
        self.writer: StoreWriter | None = None
        self.verifier = Verifier(engine)

    def install(self) -> None:
        self.engine.register("update", self.update)
        self.engine.register("signed", self.verifier.signed)

    def update(self, data: bytes, query: Query, peer: Peer | None, tcp: bool) -> bytes | None:
        verified = self.verifier.verify(data, query)
        if not isinstance(verified, tuple):
            return verified
        message, licence = verified
        if not isinstance(message, dns.update.UpdateMessage):
            return error_response(query, FORMERR, self.engine.max_payload)
        zone_name = message.zone[0].name
        zone = self.engine.view.zones.get(
            tuple(label.decode("latin-1").lower() for label in zone_name.labels if label)
        )
        if licence is None:
            rcode, reason = REFUSED, "unsigned UPDATE: sign it with a licence key (nsupdate -k)"
        elif zone is None:
            rcode, reason = NOTAUTH, f"zone {zone_name} is not served here"
        else:
            rcode, reason = self._run(message, licence, zone.name, peer)
        logs.log_update(
            licence.ty if licence else "-", zone_name.to_text(), rcode == NOERROR, reason,
            licence=licence.id if licence else "-", rcode=dns.rcode.to_text(rcode),
            peer=peer[0] if peer else "-",
        )  # fmt: skip
        return self._answer(message, query, tcp, rcode, reason)

    def _run(
        self, message: dns.update.UpdateMessage, licence: Licence, zone: str, peer: Peer | None
    ) -> tuple[dns.rcode.Rcode, str]:
        try:
            prescan(message, message.zone[0].name)
        except UpdateError as exc:
            return exc.rcode, str(exc)
        outcome = Outcome()
        fields = {"message": message, "zone": zone, "licence": licence, "outcome": outcome}
        sender = f"UPDATE from {peer[0] if peer else 'local'} with key {licence.key_name}"
        changes = ChangeSet([Op("update", "dns", fields, f"UPDATE {zone}")], message=sender)
        try:
            plan = execute(
                self._writer(), changes, who=licence.ty, command="dns update",
                licence=licence.id, apply=True,
            )  # fmt: skip
        except ChangeError as exc:
            return outcome.rcode, "; ".join(exc.reasons)
        except sqlite3.OperationalError as exc:  # another writer holds the store
            return SERVFAIL, f"store busy ({exc}); send the update again"
        if plan.applied:
            self.engine.refresh()
            logs.log_publish(
                licence.ty, "dns update", plan.serial, sum(plan.counts.values()), "update",
                licence=licence.id,
            )  # fmt: skip
        return NOERROR, ""

    def _writer(self) -> StoreWriter:
        if self.writer is None:
            self.writer = StoreWriter(self.store)
            self.writer.wait_for_lock(LOCK_WAIT)
        return self.writer

    def _answer(self, message: Any, query: Query, tcp: bool, rcode: int, reason: str) -> bytes:
        """The response, signed with the request's key when it had one; the reason as EDE."""
        response = dns.message.make_response(message, our_payload=self.engine.max_payload)
        response.set_rcode(R.make(rcode))
        if reason and message.edns >= 0:
            code = EDE.get(rcode, dns.edns.EDECode.OTHER)
            option = dns.edns.EDEOption(code, reason[:400])
            response.use_edns(0, 0, self.engine.max_payload, options=[option])
        limit = 65535 if tcp else udp_limit(query, self.engine.max_payload)
        return response.to_wire(max_size=limit, prefer_truncation=True)
