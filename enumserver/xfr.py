"""Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995), access control, signed queries.

A transfer sends the zone image of ``enumserver.zoneimage`` (what ``zonetools export`` writes),
read in one read transaction, in messages of at most 16 KB (every owner name stays reachable
by a compression pointer), SOA first and last. IXFR sends the differences of
``enumserver.ixfr``; when the journal cannot give them, the whole zone (AXFR-style). IXFR over
UDP gets the differences when they fit in one datagram, else the current SOA alone (the client
then asks over TCP, RFC 1995 section 2). AXFR over UDP gets NOTIMP.

Who may transfer a zone is decided by the zone's ``[[acl]]`` rules, in order, as Knot does:
address ranges and TSIG keys of the configuration, or a live publishing licence whose TY may
read the zone (a Tier1 zone of its environment, or its own Tier2 zone). REFUSED otherwise;
NOTAUTH with a TSIG error (RFC 8945) for an unknown key, a bad MAC or a bad time. TSIG-signed
answers are signed message by message (``dns.tsig`` keeps the running MAC).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from enumserver import logs
from enumserver.auth import answer_signed, tsig_error
from enumserver.config import Config, TransferConfig
from enumserver.engine import Engine, Peer
from enumserver.ixfr import Difference, Unreachable, differences, soa_entry
from enumserver.model import Zone
from enumserver.resolve import zones_by_apex
from enumserver.store import StoreReader
from enumserver.wire import Query, error_response, udp_limit
from enumserver.xfrwire import MESSAGE_LIMIT, Tsig, Writer
from enumserver.zoneimage import Entry, ZoneState, at_schedule_moment

log = logging.getLogger("enumserver")

AXFR, IXFR, SOA, TSIG = 252, 251, 6, 250
R = dns.rcode.Rcode


@dataclass(frozen=True)
class Signer:
    """Who signed a message: a configured key (``key_id``) or a licence (``ty``, ``kind``)."""

    key: dns.tsig.Key
    key_id: str | None = None
    ty: str | None = None
    kind: str | None = None


class KeyFinder:
    """A dnspython keyring callable: configured keys first, then live licence keys."""

    def __init__(self, keys: dict[dns.name.Name, dns.tsig.Key], reader: StoreReader) -> None:
        self.keys = keys
        self.reader = reader
        self.signer: Signer | None = None
        self.key: dns.tsig.Key | None = None

    def __call__(self, message: object, name: dns.name.Name) -> dns.tsig.Key | None:
        key = self.keys.get(name)
        if key is not None:
            self.signer = Signer(key, key_id=name.to_text(omit_final_dot=True))
        else:
            key = self._licence(message, name)
        self.key = key
        return key

    def _licence(self, message: object, name: dns.name.Name) -> dns.tsig.Key | None:
        try:
            from enumserver.auth import KeyLookup
        except ImportError:  # licences not installed: configured keys only
            return None
        lookup = KeyLookup(self.reader)
        key = lookup(message, name)
        if key is not None and lookup.licence is not None:
            self.signer = Signer(key, ty=lookup.licence.ty, kind=lookup.licence.kind)
        return key


class Access:
    """The ``[[acl]]`` rules and ``[[key]]`` keys of a configuration, asked per message."""

    def __init__(self, config: TransferConfig) -> None:
        self.config = config
        self.keys = {
            dns.name.from_text(key.id): dns.tsig.Key(key.id, key.secret, key.algorithm)
            for key in config.keys
        }
        self.acls = {acl.id: acl for acl in config.acls}
        self.networks = {
            acl.id: [ipaddress.ip_network(a, strict=False) for a in acl.address]
            for acl in config.acls
        }

    def allows(self, action: str, zone: Zone, peer: Peer | None, signer: Signer | None) -> bool:
        """The first rule of the zone that matches decides; no rule: refused."""
        entry = self.config.zone(zone.name)
        for acl_id in entry.acl if entry is not None else ():
            acl = self.acls[acl_id]
            if action not in acl.action:
                continue
            if acl.address:
                address = ipaddress.ip_address(peer[0]) if peer else None
                if address is None or not any(address in n for n in self.networks[acl_id]):
                    continue
            if acl.key or acl.licence:
                if signer is None or not (
                    signer.key_id in acl.key or (acl.licence and may_read(signer, zone))
                ):
                    continue
            elif signer is not None and not acl.deny:
                continue  # a rule without keys allows unsigned messages only (as Knot's)
            return not acl.deny
        return False


def may_read(signer: Signer, zone: Zone) -> bool:
    """A licence reads the Tier1 zones of its environment and its own Tier2 zones."""
    if signer.ty is None or signer.kind != zone.environment:
        return False
    return zone.role == "tier1" or zone.operator == signer.ty


class Transfers:
    """The engine's ``axfr``, ``ixfr`` and ``signed`` handlers for one configuration."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.settings = config.transfer
        self.access = Access(config.transfer)
        self.reader = StoreReader(engine.reader.path)
        self.previous = engine.handlers.get("signed")

    def install(self) -> None:
        self.engine.register("axfr", self.transfer)
        self.engine.register("ixfr", self.transfer)
        self.engine.register("signed", self.signed)

    # -- messages in -----------------------------------------------------------------------
    def verify(
        self, data: bytes, query: Query
    ) -> tuple[dns.message.Message, Signer | None] | bytes:
        """The parsed message and who signed it, or the answer to send instead."""
        finder = KeyFinder(self.access.keys, self.reader)
        try:
            message = dns.message.from_wire(data, keyring=finder)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return tsig_error(data, query, R.BADKEY, None, self.engine.max_payload)
        except dns.tsig.BadSignature:
            return tsig_error(data, query, R.BADSIG, None, self.engine.max_payload)
        except dns.tsig.BadTime:
            return tsig_error(data, query, R.BADTIME, finder.key, self.engine.max_payload)
        except Exception:
            return error_response(query, R.FORMERR, self.engine.max_payload)
        return message, finder.signer if message.had_tsig else None

    def zone(self, query: Query, snapshot_zones: dict[str, Zone]) -> Zone | None:
        """The served zone whose apex the question names."""
        names = self.engine.zone_names or tuple(snapshot_zones)
        zones = zones_by_apex([snapshot_zones[n] for n in names if n in snapshot_zones])
        return zones.get(tuple(query.labels))

    def signed(self, data: bytes, query: Query, peer: Peer | None, tcp: bool) -> Any:
        """Signed transfers, and signed queries with a configured key, are ours; other signed
        queries go to the handler installed before (licences), else are answered here."""
        if query.qtype in (AXFR, IXFR):
            return self.transfer(data, query, peer, tcp)
        try:
            request = dns.message.from_wire(data, keyring=False)
        except Exception:
            return error_response(query, R.FORMERR, self.engine.max_payload)
        if self.previous is not None and request.keyname not in self.access.keys:
            return self.previous(data, query, peer, tcp)
        verified = self.verify(data, query)
        if isinstance(verified, bytes):
            return verified
        return answer_signed(self.engine, verified[0], query, peer, tcp)

    # -- transfers -------------------------------------------------------------------------
    def transfer(self, data: bytes, query: Query, peer: Peer | None, tcp: bool) -> Any:
        """AXFR/IXFR: over TCP an iterator of messages, produced as the connection sends them
        (see transport.TcpProtocol.pump) from a read transaction of its own; over UDP (IXFR
        only) one message."""
        kind = "axfr" if query.qtype == AXFR else "ixfr"
        client = peer[0] if peer else "-"
        if kind == "axfr" and not tcp:
            return error_response(query, R.NOTIMP, self.engine.max_payload)
        verified = self.verify(data, query)
        if isinstance(verified, bytes):
            logs.log_transfer(client, "-", kind, 0, "refused", reason="TSIG")
            return verified
        request, signer = verified
        if kind == "ixfr" and client_serial(request) is None:
            logs.log_transfer(client, ".".join(query.labels), kind, 0, "refused", rcode="FORMERR")
            return refusal(request, R.FORMERR, self.engine.max_payload)  # no SOA of theirs
        if tcp:
            return self._stream(kind, request, query, peer, signer)
        reader = self.reader
        reader.conn.execute("BEGIN")
        try:
            opened = self._open(kind, request, query, peer, signer, reader)
            if isinstance(opened, bytes):
                return opened
            state, tsig = opened
            started = time.perf_counter()
            limit = udp_limit(query, self.engine.max_payload) - 100
            parts, style = self._parts(kind, request, state, reader, False)
            writer = Writer(query, state, tsig, limit, self.engine.max_payload)
            for entries in parts:
                writer.add(entries)
            messages = writer.finish()
            if len(messages) > 1:  # does not fit a datagram: the SOA says "use TCP"
                if tsig is not None:
                    tsig.ctx = None  # (the MACs of the messages not sent do not count)
                writer = Writer(query, state, tsig, limit, self.engine.max_payload)
                writer.add([soa_entry(state, state.zone.serial)])
                messages, style = writer.finish(), "tcp"
        finally:
            reader.conn.execute("COMMIT")
        logs.log_transfer(
            client, state.zone.apex, kind, state.zone.serial, "ok", style=style, messages=1,
            bytes=len(messages[0]), seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip
        return messages[0]

    def _stream(
        self,
        kind: str,
        request: dns.message.Message,
        query: Query,
        peer: Peer | None,
        signer: Signer | None,
    ) -> Iterator[bytes]:
        """The messages of a transfer over TCP, built while they are sent: the zone is read in
        one read transaction of a connection of its own, held until the last message."""
        reader = StoreReader(self.reader.path)
        try:
            reader.conn.execute("BEGIN")
            opened = self._open(kind, request, query, peer, signer, reader)
            if isinstance(opened, bytes):
                yield opened
                return
            state, tsig = opened
            started = time.perf_counter()
            parts, style = self._parts(kind, request, state, reader, True)
            writer = Writer(query, state, tsig, MESSAGE_LIMIT, self.engine.max_payload)
            count = size = 0
            for message in writer.stream(parts):
                if message:
                    count += 1
                    size += len(message)
                yield message
            logs.log_transfer(
                peer[0] if peer else "-", state.zone.apex, kind, state.zone.serial, "ok",
                style=style, messages=count, bytes=size,
                seconds=round(time.perf_counter() - started, 3),
            )  # fmt: skip
        finally:
            reader.close()  # (ends the read transaction)

    def _open(
        self,
        kind: str,
        request: dns.message.Message,
        query: Query,
        peer: Peer | None,
        signer: Signer | None,
        reader: StoreReader,
    ) -> tuple[ZoneState, Tsig | None] | bytes:
        """The zone to transfer as the reader's transaction sees it, or the refusal to send."""
        client = peer[0] if peer else "-"
        snapshot = reader.snapshot()
        zone = self.zone(query, snapshot.zones)
        if zone is None or query.qclass != dns.rdataclass.IN:
            logs.log_transfer(client, ".".join(query.labels), kind, 0, "refused", rcode="NOTAUTH")
            return refusal(request, R.NOTAUTH, self.engine.max_payload)
        if not self.access.allows("transfer", zone, peer, signer):
            logs.log_transfer(client, zone.apex, kind, zone.serial, "refused", rcode="REFUSED")
            return refusal(request, R.REFUSED, self.engine.max_payload)
        state = ZoneState(zone, at_schedule_moment(snapshot, reader), reader)
        return state, Tsig(request.keyring, request) if request.had_tsig else None

    def _parts(
        self,
        kind: str,
        request: dns.message.Message,
        state: ZoneState,
        reader: StoreReader,
        tcp: bool,
    ) -> tuple[list[Iterable[Entry]], str]:
        """What to send, in order (entries are read as they are sent), and the style."""
        current = [soa_entry(state, state.zone.serial)]
        if kind == "axfr":
            return [whole(state)], "axfr"
        theirs = client_serial(request)
        assert theirs is not None  # (transfer refused the IXFR that has none)
        try:
            steps = differences(
                state, reader, theirs, self.settings.ixfr_max_depth,
                self.settings.ixfr_max_changes if tcp else 20,
            )  # fmt: skip
        except Unreachable as exc:
            if not tcp:
                return [current], "tcp"
            log.info("IXFR of %s from serial %d: whole zone: %s", state.zone.apex, theirs, exc)
            return [whole(state)], "axfr"
        if steps:
            return [current, incremental(state, steps), current], "ixfr"
        return [current], "current"


def whole(state: ZoneState) -> Iterator[Entry]:
    """The whole zone: the image, then its SOA again."""
    yield from state.image()
    yield soa_entry(state, state.zone.serial)


def incremental(state: ZoneState, steps: list[Difference]) -> Iterator[Entry]:
    """RFC 1995 differences: per step the old SOA, deletions, the new SOA, additions."""
    for step in steps:
        yield soa_entry(state, step.old)
        yield from step.deleted
        yield soa_entry(state, step.new)
        yield from step.added


def client_serial(request: dns.message.Message) -> int | None:
    """The serial of the SOA an IXFR query carries in its authority section."""
    for rrset in request.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(rrset[0].serial)
    return None


def refusal(request: dns.message.Message, rcode: dns.rcode.Rcode, payload: int) -> bytes:
    """A response with only an rcode (signed when the request was)."""
    response = dns.message.make_response(request, our_payload=payload)
    response.set_rcode(rcode)
    if rcode == R.NOTAUTH:
        response.flags &= ~dns.flags.AA
    return response.to_wire()
