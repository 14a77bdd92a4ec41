"""Publish a change-set file to a server as DNS UPDATE messages signed with a licence key.

Each ``route``, ``template`` and ``tier2`` change of the file (docs/publishing.md's YAML)
becomes one UPDATE (RFC 2136) signed with TSIG (RFC 8945) and sent over TCP; the answer's rcode
says whether that change was accepted. Nothing here knows operator-enum: any server that keeps
the names below (docs/licences.md) takes the same messages.

| change          | UPDATE                                                                   |
|-----------------|--------------------------------------------------------------------------|
| set route       | delete NAPTR at the number's name, add the records                       |
| remove route    | delete NAPTR at the number's name (its operator's templates answer again) |
| set template    | delete NAPTR at ``<ty>.template.<zone>``, add the records                 |
| remove template | delete NAPTR at ``<ty>.template.<zone>``                                 |
| set tier2       | replace NS at ``<ty>.tier2.<zone>`` and A/AAAA at ``<host>.<ty>.tier2.<zone>`` |
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.tsig
import dns.tsigkeyring
import dns.update

from enumserver.numbers import NumberError, to_name
from zonetools import rules
from zonetools.changes import ChangeSet, Op

IN = dns.rdataclass.IN
NAPTR, NS = dns.rdatatype.NAPTR, dns.rdatatype.NS
DEFAULT_ZONE = "8.5.3.e164.arpa."
TIMEOUT = 5.0


class PublishError(ValueError):
    """The key file or server address cannot be used."""


@dataclass
class Result:
    """What happened to one change: accepted, refused (with the rcode and reason) or skipped."""

    change: str
    accepted: bool
    rcode: str
    reason: str = ""
    milliseconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_key(path: str) -> dns.tsig.Key:
    """The one key of a tsig-keygen key file (as ``licence issue`` writes it)."""
    try:
        keyring = dns.tsigkeyring.from_file(path)
    except Exception as exc:
        raise PublishError(f"{path}: not a key file ({exc})") from exc
    key = next(iter(keyring.values()))
    if not isinstance(key, dns.tsig.Key):
        raise PublishError(f"{path}: the key names no algorithm")
    return key


def server_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or HOST (port 53)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise PublishError(f"server {text!r}: give HOST:PORT")
    return host, int(port)


def _naptrs(records: Any) -> list[tuple[int, dns.rdata.Rdata]]:
    if not isinstance(records, list) or not records:
        raise ValueError("records: give at least one NAPTR record")
    out: list[tuple[int, dns.rdata.Rdata]] = []
    for record in records:
        r = {"flags": "u", "replacement": ".", "ttl": 300, **record}
        rdata = dns.rdtypes.IN.NAPTR.NAPTR(  # type: ignore[no-untyped-call]
            IN, NAPTR, int(r["order"]), int(r["preference"]), str(r["flags"]),
            str(r["service"]), str(r["regexp"]), dns.name.from_text(str(r["replacement"])),
        )  # fmt: skip
        out.append((int(r["ttl"]), rdata))
    return out


def _replace(update: dns.update.UpdateMessage, name: dns.name.Name, records: Any) -> None:
    update.delete(name, NAPTR)
    for ttl, rdata in _naptrs(records):
        update.add(name, ttl, rdata)


def _tier2(update: dns.update.UpdateMessage, zone: dns.name.Name, op: Op) -> None:
    servers = op.fields.get("servers")
    if not isinstance(servers, list) or not servers:
        raise ValueError("servers: give at least one Tier2 name server")
    ns_name = dns.name.from_text(f"{str(op.fields['ty']).lower()}.tier2", origin=zone)
    ttl = min(int(server.get("ttl") or 3600) for server in servers)
    update.delete(ns_name, NS)
    for server in servers:
        host = dns.name.from_text(str(server["host"]))
        update.add(ns_name, ttl, dns.rdtypes.ANY.NS.NS(IN, NS, host))  # type: ignore[no-untyped-call]
        glue = dns.name.from_text(host.to_text(omit_final_dot=True), origin=ns_name)
        update.delete(glue)
        if server.get("ipv4"):
            update.add(glue, ttl, dns.rdtypes.IN.A.A(IN, dns.rdatatype.A, server["ipv4"]))  # type: ignore[no-untyped-call]
        if server.get("ipv6"):
            aaaa = dns.rdtypes.IN.AAAA.AAAA(IN, dns.rdatatype.AAAA, server["ipv6"])  # type: ignore[no-untyped-call]
            update.add(glue, ttl, aaaa)


def describe(op: Op) -> str:
    """How a change is named in reports: ``set route +358401234567``."""
    key = op.fields.get("number") or op.fields.get("ty") or op.fields.get("name") or ""
    return f"{op.action} {op.entity} {key}".strip()


def to_update(op: Op, zone: dns.name.Name, key: dns.tsig.Key) -> dns.update.UpdateMessage:
    """The signed UPDATE of one change.

    :raises ValueError: the change cannot be sent (what it is, or which field is wrong).
    """
    update = dns.update.UpdateMessage(zone, keyring=key)
    update.use_edns(0, payload=1232)  # so that refusals come back with their reason (EDE)
    kind = (op.action, op.entity)
    if op.entity == "route" and op.action in ("set", "remove"):
        digits = rules.number(str(op.fields.get("number", "")))
        try:
            name = dns.name.from_text(to_name(digits, zone.to_text()))
        except NumberError as exc:
            raise ValueError(str(exc)) from exc
        if op.action == "set":
            _replace(update, name, op.fields.get("records"))
        else:
            update.delete(name, NAPTR)
    elif op.entity == "template" and op.action in ("set", "remove"):
        name = dns.name.from_text(f"{str(op.fields['ty']).lower()}.template", origin=zone)
        if op.action == "set":
            _replace(update, name, op.fields.get("records"))
        else:
            update.delete(name, NAPTR)
    elif kind == ("set", "tier2"):
        _tier2(update, zone, op)
    else:
        raise ValueError("registry data, not publishable over DNS UPDATE (the registry sets it)")
    return update


def _reason(response: dns.message.Message) -> str:
    return "; ".join(
        option.text or ""
        for option in response.options
        if isinstance(option, dns.edns.EDEOption) and option.text
    )


def send(update: dns.update.UpdateMessage, host: str, port: int) -> tuple[str, str, float]:
    """Send one UPDATE over TCP; (rcode, reason, milliseconds). TSIG errors come as rcodes."""
    started = time.perf_counter()
    try:
        response = dns.query.tcp(update, host, port=port, timeout=TIMEOUT)
    except dns.tsig.PeerBadKey:
        return "NOTAUTH", "BADKEY: the server does not know this key, or its licence is not live", 0
    except dns.tsig.PeerBadSignature:
        return "NOTAUTH", "BADSIG: the key's secret does not match", 0
    except dns.tsig.PeerBadTime:
        return "NOTAUTH", "BADTIME: the clocks differ by more than the time window", 0
    elapsed = (time.perf_counter() - started) * 1000
    return dns.rcode.to_text(response.rcode()), _reason(response), elapsed


def publish(
    changes: ChangeSet, server: str, key_file: str, zone: str = DEFAULT_ZONE
) -> list[Result]:
    """Send every change as its own signed UPDATE; one result each, in file order."""
    key = read_key(key_file)
    host, port = server_address(server)
    origin = dns.name.from_text(zone)
    results = []
    for op in changes.ops:
        what = describe(op)
        try:
            update = to_update(op, origin, key)
        except (ValueError, KeyError, TypeError, dns.exception.DNSException) as exc:
            results.append(Result(what, False, "not sent", str(exc)))
            continue
        try:
            rcode, reason, ms = send(update, host, port)
        except (OSError, dns.exception.DNSException) as exc:
            results.append(Result(what, False, "no answer", f"{server}: {exc}"))
            continue
        results.append(Result(what, rcode == "NOERROR", rcode, reason, round(ms, 2)))
    return results
