"""Answers as dnspython records: text for tools, RRsets for zone files and transfers."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rrset

from enumserver.resolve import AAAA, A, Address, Answer, Naptr, NsData, Record, Soa

IN = dns.rdataclass.IN


def to_rdata(record: Record) -> dns.rdata.Rdata:
    """The dnspython rdata of one resolved record."""
    data = record.rdata
    rdtype = dns.rdatatype.RdataType.make(record.rtype)
    if isinstance(data, Naptr):
        return dns.rdtypes.IN.NAPTR.NAPTR(  # type: ignore[no-untyped-call]
            IN,
            rdtype,
            data.order,
            data.preference,
            data.flags.encode(),
            data.service.encode(),
            data.regexp.encode(),
            dns.name.from_text(data.replacement),
        )
    if isinstance(data, Soa):
        return dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
            IN,
            rdtype,
            dns.name.from_text(data.mname),
            dns.name.from_text(data.rname),
            data.serial,
            data.refresh,
            data.retry,
            data.expire,
            data.minimum,
        )
    if isinstance(data, NsData):
        return dns.rdtypes.ANY.NS.NS(IN, rdtype, dns.name.from_text(data.host))  # type: ignore[no-untyped-call]
    if isinstance(data, Address) and record.rtype == A:
        return dns.rdtypes.IN.A.A(IN, rdtype, data.address)  # type: ignore[no-untyped-call]
    if isinstance(data, Address) and record.rtype == AAAA:
        return dns.rdtypes.IN.AAAA.AAAA(IN, rdtype, data.address)  # type: ignore[no-untyped-call]
    raise TypeError(f"cannot present {record!r}")


def owner_name(record: Record, qname: dns.name.Name) -> dns.name.Name:
    """Absolute owner of a record resolved for a question name."""
    if isinstance(record.owner, int):
        return qname.split(len(qname) - record.owner)[1] if record.owner else qname
    return dns.name.from_text(record.owner)


def to_rrsets(records: tuple[Record, ...], qname: dns.name.Name) -> list[dns.rrset.RRset]:
    """Group records into RRsets in order of first appearance (TTL: the smallest)."""
    rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    for record in records:
        owner = owner_name(record, qname)
        key = (owner, record.rtype)
        if key not in rrsets:
            rrsets[key] = dns.rrset.RRset(owner, IN, dns.rdatatype.RdataType.make(record.rtype))
        rrsets[key].add(to_rdata(record), record.ttl)
    return list(rrsets.values())


def answer_lines(answer: Answer, qname: str) -> list[str]:
    """The answer as dig prints it: status line, then the records of every section."""
    name = dns.name.from_text(qname)
    flags = "aa" if answer.aa else "-"
    lines = [f";; {answer.kind.value} rcode={answer.rcode} {flags}"]
    for records in (answer.answer, answer.authority, answer.additional):
        for rrset in to_rrsets(records, name):
            lines.extend(rrset.to_text().splitlines())
    return lines
