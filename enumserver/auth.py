"""Licences as TSIG keys (RFC 8945) and what a licence may change by DNS UPDATE (RFC 2136).

A licence is one HMAC-SHA256 key of one TY. The key is looked up in the store on every signed
message, so a revoked, expired or rotated key is refused from the moment the change commits,
by every server process. :class:`Verifier` checks a message's TSIG and answers the TSIG errors
(BADKEY and BADSIG unsigned, BADTIME signed). The grant is data, evaluated against the store as
it stands (BIND's ``update-policy external``, in Knot's ``update-owner``/``update-type`` words):

| name in the zone                    | types   | who may change it                          |
|-------------------------------------|---------|--------------------------------------------|
| a number (naptr-style zone)         | NAPTR   | its serving operator: the TY or a PO of it |
| ``<ty>.template.<apex>``            | NAPTR   | that TY, or the host TY of that PO         |
| ``<ty>.tier2.<apex>``               | NS      | that TY (its Tier2 name servers)           |
| ``<host>.<ty>.tier2.<apex>``        | A, AAAA | that TY (glue of one of its servers)       |

Nothing else (the apex, other names, other types) is ever granted. A test licence writes only
to a test zone of a store that holds no production zone: routes and Tier2 servers are shared by
every zone of a store, so a change through a test zone would reach production answers too.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig

from enumserver import logs
from enumserver.engine import Engine, Peer, first_message
from enumserver.model import Operator, Zone
from enumserver.store import StoreReader
from enumserver.wire import Query, error_response, udp_limit

ALGORITHM = "hmac-sha256"
MAX_FUDGE = 300  # seconds: the widest time window accepted, whatever the client asks for
NAPTR, NS, A, AAAA, TSIG, IXFR, AXFR = 35, 2, 1, 28, 250, 251, 252
R = dns.rcode.Rcode
TSIG_ERRORS = {R.BADSIG: "BADSIG", R.BADKEY: "BADKEY", R.BADTIME: "BADTIME"}  # 16 is BADVERS too
GRANTED_TYPES = {
    "number": (NAPTR,),
    "template": (NAPTR,),
    "tier2": (NS,),
    "tier2-host": (A, AAAA),
}
KIND_TEXT = {
    "apex": "the zone apex",
    "number": "a number",
    "template": "route templates",
    "tier2": "Tier2 name servers",
    "tier2-host": "Tier2 glue",
    "other": "a name that is neither a number nor a publishing name",
}


def now_text(moment: float | None = None) -> str:
    """A UTC time as the store keeps it: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def licence_status(row: Mapping[str, Any], now: str | None = None) -> str:
    """``active``, ``revoked`` or ``expired`` (an expiry is the first moment it is refused)."""
    if row.get("revoked"):
        return "revoked"
    expires = row.get("expires")
    if expires and expires <= (now or now_text()):
        return "expired"
    return "active"


@dataclass(frozen=True)
class Licence:
    """The licence a verified message was signed with."""

    id: str
    ty: str
    kind: str
    key_name: str


class KeyLookup:
    """A dnspython keyring callable: key name -> the key of a live licence, else None (BADKEY).

    Remembers the licence it found (``licence``) or why it found none (``refusal``), for the
    one message it is used for.
    """

    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self.licence: Licence | None = None
        self.key: dns.tsig.Key | None = None
        self.refusal = ""

    def __call__(self, message: object, name: dns.name.Name) -> dns.tsig.Key | None:
        key_name = name.to_text(omit_final_dot=True).lower()
        row = self.reader.licence_by_key(key_name)
        if row is None:
            self.refusal = f"unknown key {key_name}"
            return None
        status = licence_status(row)
        if status != "active":
            self.refusal = f"licence {row['id']} is {status}"
            return None
        self.licence = Licence(row["id"], row["ty"], row["kind"], key_name)
        self.key = dns.tsig.Key(name, row["secret"], row["algorithm"])
        return self.key


@dataclass(frozen=True)
class Target:
    """What a name in a zone stands for: its kind, the operator it belongs to, its details."""

    kind: str
    name: dns.name.Name
    ty: str | None = None
    digits: str = ""
    host: str = ""

    def describe(self) -> str:
        if self.kind == "number":
            return f"+{self.digits}"
        return self.name.to_text()


def classify(
    name: dns.name.Name, zone: Zone, holder: Callable[[str], str | None] | None = None
) -> Target:
    """The target a name inside a zone stands for; ``holder`` finds a number's serving operator.

    A number's ``ty`` is None when nobody serves it in this zone (no range, not ported).
    """
    apex = dns.name.from_text(zone.apex)
    labels = [label.decode("latin-1").lower() for label in name.relativize(apex).labels]
    if name == apex:
        return Target("apex", name)
    if all(len(label) == 1 and label.isdigit() for label in labels):
        if zone.style != "naptr":
            return Target("other", name)
        digits = zone.lead_digits + "".join(reversed(labels))
        return Target("number", name, holder(digits) if holder else None, digits)
    if len(labels) == 2 and labels[1] in ("template", "tier2"):
        return Target(labels[1], name, labels[0].upper())
    if len(labels) > 2 and labels[-1] == "tier2":
        return Target("tier2-host", name, labels[-2].upper(), host=".".join(labels[:-2]) + ".")
    return Target("other", name)


def refusal(
    licence: Licence, target: Target, rdtype: int, operators: Mapping[str, Operator]
) -> str | None:
    """Why the licence may not change this RRset (the failed rule), or None when it may."""
    type_text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
    what = f"{type_text} at {target.describe()}"
    if rdtype not in GRANTED_TYPES.get(target.kind, ()):
        return f"{what}: {KIND_TEXT[target.kind]} takes no {type_text} updates"
    owner = target.ty
    if owner is None:
        return f"{what}: no operator serves this number in this zone"
    operator = operators.get(owner)
    if operator is None:
        return f"{what}: unknown operator {owner}"
    if target.kind.startswith("tier2"):
        allowed = owner == licence.ty
    else:
        allowed = owner == licence.ty or operator.host_ty == licence.ty
    if not allowed:
        return f"{what}: belongs to {owner}, not to {licence.ty} (licence {licence.id})"
    return None


def environment_refusal(licence: Licence, zone: Zone, zones: Mapping[str, Zone]) -> str | None:
    """Why this licence may not write through this zone (test vs production), or None."""
    if licence.kind != "test":
        return None
    if zone.environment != "test":
        return f"licence {licence.id} is a test licence; zone {zone.name} is production"
    shared = sorted(name for name, other in zones.items() if other.environment != "test")
    if shared:
        return (
            f"licence {licence.id} is a test licence; zone {zone.name} shares its data with "
            f"production zone(s) {', '.join(shared)} (test licences publish to test stores)"
        )
    return None


class Verifier:
    """Parses signed messages for an engine and checks their TSIG against the licence table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last_signed: dict[str, int] = {}  # key name -> newest Time Signed accepted

    def verify(
        self, data: bytes, query: Query
    ) -> tuple[dns.message.Message, Licence | None] | bytes:
        """The parsed message and the licence it is signed with (None: unsigned), or the
        error response to send instead (FORMERR, or NOTAUTH with a TSIG error)."""
        lookup = KeyLookup(self.engine.reader)
        try:
            message = dns.message.from_wire(data, keyring=lookup)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return self.tsig_error(data, query, R.BADKEY, None)
        except dns.tsig.BadSignature:
            return self.tsig_error(data, query, R.BADSIG, None)
        except dns.tsig.BadTime:
            return self.tsig_error(data, query, R.BADTIME, lookup.key)
        except Exception:  # anything dnspython cannot read
            return error_response(query, R.FORMERR, self.engine.max_payload)
        licence = lookup.licence if message.had_tsig else None
        if licence is not None:
            signed = message.tsig[0].time_signed  # type: ignore[index]
            newest = self.last_signed.get(licence.key_name, 0)
            if abs(time.time() - signed) > MAX_FUDGE or signed < newest:
                return self.tsig_error(data, query, R.BADTIME, lookup.key)  # RFC 8945 5.2.3
            self.last_signed[licence.key_name] = signed
        return message, licence

    def tsig_error(
        self, data: bytes, query: Query, error: dns.rcode.Rcode, key: dns.tsig.Key | None
    ) -> bytes:
        """NOTAUTH with a TSIG error (see ``tsig_error``), logged as a refused UPDATE."""
        answer = tsig_error(data, query, error, key, self.engine.max_payload)
        try:
            keyname = dns.message.from_wire(data, keyring=False).keyname
        except Exception:
            return answer  # (FORMERR: nothing to log)
        reason = f"TSIG {TSIG_ERRORS[error]}"
        logs.log_update("-", "-", False, reason, key=keyname, rcode="NOTAUTH")
        return answer

    def signed(self, data: bytes, query: Query, peer: Peer | None, tcp: bool) -> Any:
        """The engine's ``signed`` handler: a TSIG-signed query, verified, answered as if
        unsigned, the answer signed. Signed transfers go to the transfer handlers."""
        kinds: dict[int, str] = {AXFR: "axfr", IXFR: "ixfr"}
        transfer = self.engine.handlers.get(kinds.get(query.qtype, ""))
        if transfer is not None:
            return transfer(data, query, peer, tcp)  # transfers check their own keys
        verified = self.verify(data, query)
        if not isinstance(verified, tuple):
            return verified
        message = verified[0]
        return answer_signed(self.engine, message, query, peer, tcp)


def answer_signed(
    engine: Engine, message: dns.message.Message, query: Query, peer: Peer | None, tcp: bool
) -> bytes | None:
    """A verified signed query answered as the engine answers it unsigned, then signed."""
    plain = dns.message.Message(id=message.id)
    plain.flags, plain.question = message.flags, message.question
    if message.edns >= 0:
        options = list(message.options)
        plain.use_edns(message.edns, message.ednsflags, message.payload, options=options)
    v6 = peer is not None and ":" in peer[0]
    answer = first_message(engine.handle(plain.to_wire(), tcp, v6, peer))
    if answer is None:
        return None
    response = dns.message.from_wire(answer)
    algorithm = message.keyalgorithm or dns.tsig.default_algorithm
    response.use_tsig(message.keyring, original_id=message.id, algorithm=algorithm)
    response.request_mac = message.mac or b""
    limit = 65535 if tcp else udp_limit(query, engine.max_payload)
    return response.to_wire(max_size=limit, prefer_truncation=True)


def tsig_error(
    data: bytes, query: Query, error: int, key: dns.tsig.Key | None, payload: int
) -> bytes:
    """NOTAUTH with a TSIG error (RFC 8945 5.2): BADKEY/BADSIG unsigned with an empty MAC,
    BADTIME signed, with the server's time in Other Data."""
    try:
        request = dns.message.from_wire(data, keyring=False)
    except Exception:
        return error_response(query, R.FORMERR, payload)
    response = dns.message.make_response(request, our_payload=payload)
    response.set_rcode(R.NOTAUTH)
    wire = response.to_wire()
    tsig: Any = request.tsig[0]  # type: ignore[index]
    now = int(time.time())
    if key is None:
        rdata = tsig.replace(time_signed=now, mac=b"", error=error, other=b"")
    else:
        rdata = tsig.replace(mac=b"", error=error, other=struct.pack("!Q", now)[2:])
        rdata = dns.tsig.sign(wire, key, rdata, tsig.time_signed, request.mac)[0]  # type: ignore[no-untyped-call]
    owner: bytes = request.keyname.to_wire()  # type: ignore[union-attr,assignment]
    body: bytes = rdata.to_wire()
    (arcount,) = struct.unpack_from("!H", wire, 10)
    rr = struct.pack("!HHIH", TSIG, dns.rdataclass.ANY, 0, len(body))
    return wire[:10] + struct.pack("!H", arcount + 1) + wire[12:] + owner + rr + body
