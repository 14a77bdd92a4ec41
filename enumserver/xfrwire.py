"""Transfer messages on the wire: zone image RRsets packed into TCP messages, TSIG-signed.

Owner names are compressed against what the message already holds (the question names the
apex; every number name points at its longest prefix written before), and a message stays
under 16 KB so that every name in it can be a pointer target. NAPTR RDATA is never compressed
(RFC 3403). ``enumserver.wire`` encodes the RDATA; ``dns.tsig`` computes the MACs.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from enumserver.wire import Query, rdata_wire
from enumserver.zoneimage import Entry, ZoneState

TSIG, OPT = 250, 41
R = dns.rcode.Rcode
MESSAGE_LIMIT = 16_000  # bytes before the TSIG: every name written stays a pointer target
FUDGE = 300
_FIXED = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")


class Tsig:
    """Signs the messages of one answer in turn (RFC 8945 5.3.1: each MAC covers the last)."""

    def __init__(self, key: dns.tsig.Key, request: dns.message.Message) -> None:
        self.key = key
        self.request_mac = request.mac or b""
        self.original_id = request.id
        self.ctx: Any = None

    def sign(self, wire: bytes) -> bytes:
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, self.key.algorithm, 0, FUDGE, b"",
            self.original_id, 0, b"",
        )  # fmt: skip
        rdata, self.ctx = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, self.key, template, int(time.time()), self.request_mac, self.ctx, True
        )
        body: bytes = rdata.to_wire()
        owner: bytes = self.key.name.to_wire() or b"\x00"
        rr = owner + _FIXED.pack(TSIG, dns.rdataclass.ANY, 0, len(body)) + body
        (arcount,) = _U16.unpack_from(wire, 10)
        return wire[:10] + _U16.pack(arcount + 1) + wire[12:] + rr


class Writer:
    """The messages of a transfer: header, the question, RRs with compressed owner names."""

    def __init__(
        self, query: Query, state: ZoneState, tsig: Tsig | None, limit: int, payload: int
    ) -> None:
        self.header = _U16.pack(query.id) + _U16.pack(0x8400 | (query.flags & 0x0100))
        ttl = 0x8000 if query.do else 0  # EDNS (RFC 6891): an OPT in every message
        self.opt = b"\x00" + _FIXED.pack(OPT, payload, ttl, 0) if query.edns else b""
        self.question = query.question
        self.apex = state.origin.to_wire() or b"\x00"
        self.lead = state.lead
        self.tsig = tsig
        self.limit = limit
        self.messages: list[bytes] = []
        self.tails: dict[int, tuple[tuple[Any, ...], list[bytes]]] = {}
        self._start()

    def _start(self) -> None:
        self.body = bytearray(12) + self.question
        self.count = 0
        self.offsets: dict[str, int] = {self.lead: 12}

    def _name(self, out: bytearray, digits: str, at: int) -> None:
        """Append the name of the digits to ``out`` (which starts at offset ``at`` of the
        message), pointing into what the message already holds."""
        offsets, size = self.offsets, len(digits)
        cut = size
        while cut > len(self.lead) and digits[:cut] not in offsets:
            cut -= 1
        for index in range(size, cut, -1):
            if at + len(out) < 0x4000:
                offsets[digits[:index]] = at + len(out)
            out += b"\x01" + digits[index - 1].encode()
        found = offsets.get(digits[:cut])
        out += _U16.pack(0xC000 | found) if found is not None else self.apex

    def _encode(self, entry: Entry, at: int) -> bytes:
        out = bytearray()
        if entry.host is not None:
            out += dns.name.from_text(entry.host).to_wire() or b"\x00"
        else:
            out += b"\x01*" if entry.wildcard else b""
            self._name(out, entry.digits, at)
        owner = bytes(out)
        if len(owner) > 2 and at < 0x4000:
            owner = _U16.pack(0xC000 | at)  # the other RRs of the RRset point at the first
        tails = self._tails(entry)
        out += tails[0]
        for tail in tails[1:]:
            out += owner + tail
        return bytes(out)

    def _tails(self, entry: Entry) -> list[bytes]:
        """Type, class, TTL and RDATA of each record (a wildcard's: encoded once)."""
        cached = self.tails.get(id(entry.records)) if entry.wildcard else None
        if cached is not None and cached[0] is entry.records:
            return cached[1]
        ttl = entry.ttl
        found = []
        for record in entry.records:
            rdata = rdata_wire(record.rtype, record.rdata)
            found.append(_FIXED.pack(record.rtype, 1, ttl, len(rdata)) + rdata)
        if entry.wildcard:  # the records of every wildcard of a holder are one tuple
            self.tails[id(entry.records)] = (entry.records, found)  # (kept: ids stay apart)
        return found

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._add(entry)

    def _add(self, entry: Entry) -> None:
        at = len(self.body)
        data = self._encode(entry, at)
        if self.count and at + len(data) + len(self.opt) > self.limit:
            self.flush()
            at = len(self.body)
            data = self._encode(entry, at)
        self.body += data
        self.count += len(entry.records)

    def stream(self, parts: Iterable[Iterable[Entry]]) -> Iterator[bytes]:
        """The messages of the parts' entries as each fills, the last one at the end; between
        them an empty ``b""`` every 256 entries: a point where the sender may pause."""
        for entries in parts:
            for index, entry in enumerate(entries):
                self._add(entry)
                if self.messages:
                    done, self.messages = self.messages, []
                    yield from done
                elif index & 255 == 255:
                    yield b""
        yield from self.finish()

    def flush(self) -> None:
        header = self.header + struct.pack("!HHHH", 1, self.count, 0, 1 if self.opt else 0)
        wire = header + bytes(self.body[12:]) + self.opt
        self.messages.append(self.tsig.sign(wire) if self.tsig else wire)
        self._start()

    def finish(self) -> list[bytes]:
        self.flush()
        return self.messages
