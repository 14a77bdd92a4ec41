"""DNS wire format on the hot path: question parsing with triage, answer encoding, EDNS, TC.

Knows no business rules. The parser reads only the header, the question and the additional
section (for OPT); it never raises on malformed input but reports FORMERR or "drop". Answers
are encoded with owner names as compression pointers into the client's question, so the
client's letter case is kept and the encoded sections can be cached for every spelling.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import dns.name

from enumserver.resolve import AAAA, Address, Answer, Naptr, NsData, Record, Soa

FORMERR, NOTIMP, BADVERS = 1, 4, 16
OPT, TSIG = 41, 250
MIN_UDP = 512

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")
_U16X2 = struct.Struct("!HH")
_LENGTH = tuple(bytes((size,)) for size in range(256))  # a character-string's length byte
_ONE_BYTE_LABELS = re.compile(rb"(?:\x01[\x00-\xff])*")  # a run of one-byte labels
_E164_ARPA = b"\x04e164\x04arpa\x00"
_E164_ARPA_LABELS = ("e164", "arpa")
_ONES = b"\x01" * 127  # the length bytes of up to 127 one-byte labels


class Query:
    """A parsed query: header fields, the question as sent, lowercased labels, EDNS, triage."""

    __slots__ = (
        "do",
        "edns",
        "error",
        "flags",
        "id",
        "key",
        "labels",
        "opcode",
        "payload",
        "qclass",
        "qtype",
        "question",
        "signed",
        "version",
    )

    def __init__(self, qid: int, flags: int) -> None:
        self.id = qid
        self.flags = flags
        self.opcode = (flags >> 11) & 0xF
        self.question = b""
        self.key = b""  # cache key of the question: lowercased name, type and class
        self.labels: tuple[str, ...] = ()
        self.qtype = 0
        self.qclass = 0
        self.edns = False
        self.payload = MIN_UDP
        self.version = 0
        self.do = False
        self.error = 0
        self.signed = False

    @property
    def offsets(self) -> tuple[int, ...]:
        """Offset of each label of the question name in the message (for compression pointers)."""
        offsets = []
        pos = 12
        for label in self.labels:
            offsets.append(pos)
            pos += 1 + len(label)
        return tuple(offsets)


def _skip_name(data: bytes, pos: int) -> int:
    """Offset after a (possibly compressed) name in an RR; -1 when malformed."""
    size = len(data)
    while pos < size:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2 if pos + 2 <= size else -1
        if length & 0xC0:
            return -1
        pos += 1 + length
    return -1


def _read_additional(query: Query, data: bytes, pos: int, counts: tuple[int, int, int]) -> None:
    """Skip answer/authority RRs and read OPT from the additional section; set FORMERR if broken."""
    an, ns, ar = counts
    size = len(data)
    for index in range(an + ns + ar):
        start = pos
        pos = _skip_name(data, pos)
        if pos < 0 or pos + 10 > size:
            query.error = FORMERR
            return
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10 + rdlen
        if pos > size:
            query.error = FORMERR
            return
        if rtype == TSIG:
            if index != an + ns + ar - 1:
                query.error = FORMERR  # TSIG must be the last record (RFC 8945 5.1)
                return
            query.signed = True
        elif rtype == OPT:
            if index < an + ns or query.edns or data[start] != 0:
                query.error = FORMERR  # OPT only once, only in additional, owner the root
                return
            query.edns = True
            query.payload = max(rclass, MIN_UDP)
            query.version = (ttl >> 16) & 0xFF
            query.do = bool(ttl & 0x8000)
            if not _options_ok(data, pos - rdlen, pos):
                query.error = FORMERR
                return
    if pos != size:
        query.error = FORMERR  # trailing bytes


def _options_ok(data: bytes, pos: int, end: int) -> bool:
    while pos < end:
        if pos + 4 > end:
            return False
        pos += 4 + _U16.unpack_from(data, pos + 2)[0]
    return pos == end


def parse_query(data: bytes) -> Query | None:
    """Parse a query; None means drop it silently (too short to answer, or a response).

    The message is lowercased and decoded (latin-1: one char per byte) once; each label is a
    slice of that text, and one-character labels (the digits of ENUM names) are shared strs.
    """
    size = len(data)
    if size < 12:
        return None
    qid, flags, qdcount, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0x8000:
        return None  # never answer a response
    query = Query(qid, flags)
    if qdcount != 1:
        query.error = FORMERR
        return query
    lowered = data.lower()
    text = lowered.decode("latin-1")
    # The usual question: one-byte labels (the digits), then e164.arpa. Found with one search
    # and one comparison; anything else goes through the loop over its labels below.
    pos = lowered.find(_E164_ARPA, 12, 266)
    if pos > 0 and not (pos & 1) and data[12:pos:2] == _ONES[: (pos - 12) >> 1]:
        labels = list(text[13:pos:2])
        labels += _E164_ARPA_LABELS
        pos += len(_E164_ARPA)
        return _question_end(query, data, lowered, pos, labels, qdcount, an, ns, ar)
    pos = _ONE_BYTE_LABELS.match(data, 12).end()  # type: ignore[union-attr]  # (always matches)
    if pos > 266:
        query.error = FORMERR  # name > 255
        return query
    labels = list(text[13:pos:2])  # the digits of an ENUM name, without a loop in Python
    append = labels.append
    while True:
        if pos >= size:
            query.error = FORMERR
            return query
        length = data[pos]
        if not length:
            pos += 1
            break
        end = pos + 1 + length
        if length & 0xC0 or end > size or end > 266:
            query.error = FORMERR  # pointer, extended label type, truncated or name > 255
            return query
        append(text[pos + 1 : end])
        pos = end
    return _question_end(query, data, lowered, pos, labels, qdcount, an, ns, ar)


def _question_end(
    query: Query,
    data: bytes,
    lowered: bytes,
    pos: int,
    labels: list[str],
    qdcount: int,
    an: int,
    ns: int,
    ar: int,
) -> Query:
    """After the question name (at ``pos``): type, class, then OPT/TSIG in the other sections."""
    size = len(data)
    if pos + 4 > size:
        query.error = FORMERR
        return query
    query.qtype, query.qclass = _U16X2.unpack_from(data, pos)
    pos += 4
    query.question = data[12:pos]
    query.key = lowered[12:pos]
    query.labels = tuple(labels)
    if an or ns or ar:
        _read_additional(query, data, pos, (an, ns, ar))
        if not query.error and query.edns and query.version > 0:
            query.error = BADVERS
    elif pos != size:
        query.error = FORMERR  # trailing bytes
    return query


@lru_cache(maxsize=65536)
def name_wire(text: str) -> bytes:
    """Uncompressed wire form of an absolute name (validated by dnspython)."""
    return dns.name.from_text(text).to_wire() or b"\x00"


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"character-string over 255 bytes: {text[:40]}...")
    return _LENGTH[len(raw)] + raw


_NAPTR_HEADS: dict[tuple[int, int, str, str], bytes] = {}


def _naptr_head(order: int, preference: int, flags: str, service: str) -> bytes:
    """Order, preference, flags and service of a NAPTR, encoded once per distinct value."""
    key = (order, preference, flags, service)
    head = _NAPTR_HEADS.get(key)
    if head is None:
        if len(_NAPTR_HEADS) >= 4096:
            _NAPTR_HEADS.clear()
        head = _NAPTR_HEADS[key] = (
            _U16X2.pack(order, preference) + _string(flags) + _string(service)
        )
    return head


_NAMES: dict[str, bytes] = {}  # name_wire's answers, looked up without lru_cache's call


def _name(text: str) -> bytes:
    if len(_NAMES) >= 4096:
        _NAMES.clear()
    wire = _NAMES[text] = name_wire(text)
    return wire


def rdata_wire(rtype: int, rdata: object) -> bytes:
    """RDATA bytes of one record (names uncompressed, as RFC 3597 asks for NAPTR)."""
    if isinstance(rdata, Naptr):
        return (
            _naptr_head(rdata.order, rdata.preference, rdata.flags, rdata.service)
            + _string(rdata.regexp)
            + name_wire(rdata.replacement)
        )
    if isinstance(rdata, Soa):
        return (
            name_wire(rdata.mname)
            + name_wire(rdata.rname)
            + struct.pack(
                "!IIIII", rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum
            )
        )
    if isinstance(rdata, NsData):
        return name_wire(rdata.host)
    if isinstance(rdata, Address):
        family = socket.AF_INET6 if rtype == AAAA else socket.AF_INET
        return socket.inet_pton(family, rdata.address)
    raise TypeError(f"cannot encode {rdata!r}")


_QUESTION_POINTER = _U16.pack(0xC000 | 12)  # owner 0: the question name, always at offset 12


def _records(records: tuple[Record, ...], labels: Sequence[str]) -> bytes:
    """Encoded RRs; an int owner is a pointer to the question name minus that many labels."""
    if not records:
        return b""
    out: list[bytes] = []  # the pieces of every RR, joined once
    for record in records:
        owner = record.owner
        if owner == 0 and labels:
            name = _QUESTION_POINTER
        elif isinstance(owner, int):
            if owner < len(labels):  # its offset: the header, then the labels dropped
                name = _U16.pack(0xC000 | (12 + owner + sum(map(len, labels[:owner]))))
            else:
                name = b"\x00"
        else:
            name = name_wire(owner)
        data = record.rdata
        if type(data) is Naptr:  # rdata_wire's first case, inlined: every answer is one
            regexp = data.regexp.encode()
            if len(regexp) > 255:
                raise ValueError(f"character-string over 255 bytes: {data.regexp[:40]}...")
            head = _NAPTR_HEADS.get((data.order, data.preference, data.flags, data.service))
            if head is None:
                head = _naptr_head(data.order, data.preference, data.flags, data.service)
            replacement = _NAMES.get(data.replacement) or _name(data.replacement)
            size = len(head) + 1 + len(regexp) + len(replacement)
            fixed = _RR_FIXED.pack(record.rtype, 1, record.ttl, size)
            out += (name, fixed, head, _LENGTH[len(regexp)], regexp, replacement)
            continue
        rdata = rdata_wire(record.rtype, data)
        out += (name, _RR_FIXED.pack(record.rtype, 1, record.ttl, len(rdata)), rdata)
    return b"".join(out)


@dataclass(slots=True)  # not frozen: one per miss (see resolve.Naptr); never mutated
class Body:
    """Encoded sections of an answer, valid for every spelling of the same question."""

    aa: bool
    rcode: int
    counts: tuple[int, int, int]
    answer: bytes
    authority: bytes
    additional: bytes


def encode_body(answer: Answer, labels: Sequence[str]) -> Body:
    """Encode an Answer's sections against the question's labels (owners point into it)."""
    an, ns, ar = answer.answer, answer.authority, answer.additional
    return Body(
        answer.aa,
        answer.rcode,
        (len(an), len(ns), len(ar)),
        _records(an, labels) if an else b"",
        _records(ns, labels) if ns else b"",
        _records(ar, labels) if ar else b"",
    )


def naptr_template(
    render: Callable[[str], Answer], length: int, insertions: int
) -> tuple[bytes, ...]:
    """The answer section of a templated NAPTR answer (resolve.Plain), split where a number
    of ``length`` digits goes: encoded once per operator, then ``digits.join(parts)`` for any
    number of that length. ``render`` makes the Answer for given digits; a marker of NUL bytes
    stands in for them. Empty when the marker is not found exactly ``insertions`` times (then
    encode each answer as usual).
    """
    marker = "\x00" * length
    try:
        encoded = _records(render(marker).answer, ("",))  # owner 0: the question's pointer
    except ValueError:  # the marker in a replacement name
        return ()
    parts = tuple(encoded.split(marker.encode()))
    return parts if len(parts) == insertions + 1 else ()


def _opt(query: Query, max_payload: int, ext_rcode: int = 0) -> bytes:
    ttl = (ext_rcode << 24) | (0x8000 if query.do else 0)
    return b"\x00" + _RR_FIXED.pack(OPT, max_payload, ttl, 0)


def _flags(query: Query, aa: bool, tc: bool, rcode: int) -> int:
    return (
        0x8000
        | (query.flags & 0x7910)
        | (0x0400 if aa else 0)
        | (0x0200 if tc else 0)
        | (rcode & 0xF)
    )


def encode_response(query: Query, body: Body, limit: int, max_payload: int) -> bytes:
    """The full response for a query: header, its question, sections, OPT; TC past ``limit``."""
    opt = _opt(query, max_payload) if query.edns else b""
    an, ns, ar = body.counts
    size = 12 + len(query.question) + len(opt)
    sections = body.answer + body.authority
    tc = False
    if size + len(sections) + len(body.additional) <= limit:
        sections += body.additional
    elif size + len(sections) <= limit:
        ar = 0
    else:
        sections, an, ns, ar, tc = b"", 0, 0, 0, True
    flags = 0x8000 | (query.flags & 0x7910) | (body.rcode & 0xF)  # _flags, inlined
    if body.aa:
        flags |= 0x0400
    if tc:
        flags |= 0x0200
    header = _HEADER.pack(query.id, flags, 1, an, ns, ar + (1 if opt else 0))
    return header + query.question + sections + opt


def error_response(query: Query, rcode: int, max_payload: int) -> bytes:
    """FORMERR/NOTIMP/REFUSED/BADVERS: header, the question when it was read, OPT when sent."""
    ext = rcode >> 4
    opt = _opt(query, max_payload, ext) if query.edns and query.error != FORMERR else b""
    if query.opcode == 5 and (query.qtype != 6 or query.qclass in (254, 255)):
        query.question = b""  # an UPDATE's zone names an SOA of a real class, else not echoed
    qd = 1 if query.question else 0
    header = _HEADER.pack(query.id, _flags(query, False, False, rcode), qd, 0, 0, 1 if opt else 0)
    return header + query.question + opt


def udp_limit(query: Query, max_payload: int) -> int:
    """Largest UDP answer for this client: 512 without EDNS, else its size capped by ours."""
    if not query.edns:
        return MIN_UDP
    return max(MIN_UDP, min(query.payload, max_payload))


def truncated_response(data: bytes, max_payload: int) -> bytes | None:
    """An empty TC=1 answer to a readable query (rate limiting's 'slip'), else None."""
    query = parse_query(data)
    if query is None or query.error:
        return None
    opt = _opt(query, max_payload) if query.edns else b""
    header = _HEADER.pack(query.id, _flags(query, False, True, 0), 1, 0, 0, 1 if opt else 0)
    return header + query.question + opt
