"""Malformed packets over real sockets: exact FORMERR/NOTIMP/BADVERS bytes or silence, and the
server keeps answering after each one (in the spirit of BIND's formerr and Knot's dnsheader tests).
"""

from __future__ import annotations

import socket
import struct

import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer
from tests.test_engine_fuzz import parse_reply

QUERY_FLAGS_RD = 0x0100


def header(
    qid: int = 0x1234, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def qname(*labels: str) -> bytes:
    return b"".join(bytes((len(lb),)) + lb.encode() for lb in labels) + b"\x00"


SOA_QUESTION = qname("8", "5", "3", "e164", "arpa") + struct.pack("!HH", 6, 1)
OPT_RR = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


def formerr(qid: int = 0x1234, flags: int = 0, question: bytes = b"") -> bytes:
    """The exact FORMERR reply: QR, opcode and RD copied, rcode 1, the question if it was read."""
    return header(qid, 0x8000 | (flags & 0x7910) | 1, 1 if question else 0) + question


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        pytest.param(header(qd=2) + SOA_QUESTION * 2, formerr(), id="two-questions"),
        pytest.param(header(qd=0), formerr(), id="no-question"),
        pytest.param(
            header(flags=QUERY_FLAGS_RD) + b"\xc0\x0c" + b"\x00\x06\x00\x01",
            formerr(flags=QUERY_FLAGS_RD),
            id="compression-loop",
        ),
        pytest.param(
            header() + b"\x40" + b"a" * 64 + b"\x00\x00\x06\x00\x01", formerr(), id="label-over-63"
        ),
        pytest.param(
            header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x06\x00\x01",
            formerr(),
            id="name-over-255",
        ),
        pytest.param(header() + b"\x01", formerr(), id="truncated-name"),
        pytest.param(
            header() + qname("8", "5", "3", "e164", "arpa") + b"\x00",
            formerr(),
            id="truncated-type",
        ),
        pytest.param(
            header(ar=1) + SOA_QUESTION, formerr(question=SOA_QUESTION), id="missing-additional"
        ),
        pytest.param(
            header() + SOA_QUESTION + b"junk", formerr(question=SOA_QUESTION), id="trailing-bytes"
        ),
        pytest.param(
            header(ar=2) + SOA_QUESTION + OPT_RR * 2, formerr(question=SOA_QUESTION), id="two-opt"
        ),
        pytest.param(
            header(ar=1) + SOA_QUESTION + b"\x01a" + OPT_RR,
            formerr(question=SOA_QUESTION),
            id="opt-not-at-root",
        ),
        pytest.param(
            header(flags=5 << 11) + SOA_QUESTION,
            header(flags=0x8000 | (5 << 11) | 5) + SOA_QUESTION,
            id="unsigned-update-refused",
        ),
        pytest.param(
            header(flags=2 << 11) + SOA_QUESTION,
            header(flags=0x8000 | (2 << 11) | 4) + SOA_QUESTION,
            id="status-notimp",
        ),
        pytest.param(
            header(ar=1) + SOA_QUESTION + b"\x00" + struct.pack("!HHIH", 41, 4096, 1 << 16, 0),
            header(flags=0x8000, ar=1)
            + SOA_QUESTION
            + b"\x00"
            + struct.pack("!HHIH", 41, 1232, 1 << 24, 0),
            id="edns-version-1-badvers",
        ),
    ],
)
def test_malformed_query_gets_exact_reply_and_server_goes_on(
    server: RunningServer, packet: bytes, expected: bytes
) -> None:
    assert server.send_udp(packet) == expected
    assert server.alive()


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"", id="empty-datagram"),
        pytest.param(b"\x12\x34\x01", id="truncated-header"),
        pytest.param(header(flags=0x8000) + SOA_QUESTION, id="a-response"),
    ],
)
def test_unanswerable_packets_are_dropped_silently(server: RunningServer, packet: bytes) -> None:
    assert server.send_udp(packet, timeout=0.3) is None
    assert server.alive()


def _tcp(server: RunningServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=3)
    return sock


def test_oversized_tcp_length_then_hang_up_leaves_server_serving(server: RunningServer) -> None:
    with _tcp(server) as sock:
        sock.sendall(b"\xff\xff" + b"\x00" * 100)  # promises 65535 bytes, sends 100
    with _tcp(server) as sock:
        sock.sendall(b"\x00\x05abcde")  # a complete but garbage message: hung up on
        assert sock.recv(10) == b""
    assert server.alive()
    assert server.query("8.5.3.e164.arpa.", "SOA", tcp=True).rcode() == 0


def test_tcp_carries_several_queries_on_one_connection(server: RunningServer) -> None:
    with _tcp(server) as sock:
        wires = []
        for qid in (1, 2, 3):
            message = dns.message.make_query("8.5.3.e164.arpa.", "SOA", id=qid)
            wires.append(message.to_wire(prepend_length=True))
        sock.sendall(b"".join(wires))  # pipelined in one segment
        ids = []
        for _ in range(3):
            (size,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
            reply = dns.message.from_wire(sock.recv(size, socket.MSG_WAITALL))
            ids.append(reply.id)
        assert ids == [1, 2, 3]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=600).filter(lambda b: b[:2] != b"\xbe\xef"))
def test_random_bytes_never_break_the_server(server: RunningServer, packet: bytes) -> None:
    """Garbage, then a valid query on the same socket: the valid one is always answered, and
    anything said to the garbage is a well-formed reply with its ID and QR set."""
    probe = dns.message.make_query("8.5.3.e164.arpa.", "SOA", id=0xBEEF)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (server.host, server.port))
        sock.sendto(probe.to_wire(), (server.host, server.port))
        reply = sock.recv(65535)
        if reply[:2] != b"\xbe\xef":
            assert reply[:2] == packet[:2] and reply[2] & 0x80
            parse_reply(reply)
            reply = sock.recv(65535)
        answer = dns.message.from_wire(reply)
        assert answer.id == 0xBEEF and answer.rcode() == 0 and len(answer.answer) == 1
