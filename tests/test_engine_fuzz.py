"""The whole request handler in-process, fed random and mutated packets (hypothesis).

Never an exception, always silence or a reply that carries the query's ID, QR=1 and parses.
"""

from __future__ import annotations

from pathlib import Path

import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enumserver.engine import Engine

SEEDS = [
    dns.message.make_query("7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa.", "NAPTR").to_wire(),
    dns.message.make_query("8.5.3.e164.arpa.", "SOA", use_edns=0, payload=4096).to_wire(),
    dns.message.make_query(
        "7.6.5.4.3.2.1.0.5.8.5.3.ie164.arpa.", "NAPTR", want_dnssec=True
    ).to_wire(),
]


@pytest.fixture(scope="module")
def engine(demo_store: Path) -> Engine:
    return Engine(demo_store)


def parse_reply(reply: bytes) -> None:
    """A reply parses; dnspython insists on one zone in UPDATE messages, even in error replies."""
    if (reply[2] >> 3) & 0xF == 5 and reply[4:6] == b"\x00\x00":
        assert reply[3] & 0xF in (1, 4)  # FORMERR/NOTIMP without the (non-SOA) zone section
        return
    dns.message.from_wire(reply, question_only=True)


def check(engine: Engine, packet: bytes) -> None:
    for tcp in (False, True):
        reply = engine.handle(packet, tcp=tcp)
        if reply is None:
            continue
        assert reply[:2] == packet[:2] and reply[2] & 0x80
        parse_reply(reply)
        if not tcp:
            assert len(reply) <= 1232


SETTINGS = settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.binary(max_size=700))
def test_random_packets(engine: Engine, packet: bytes) -> None:
    check(engine, packet)


@SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 80),
)
def test_mutated_queries(
    engine: Engine, seed: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    packet = bytearray(seed)
    for position, value in flips:
        if position < len(packet):
            packet[position] = value
    check(engine, bytes(packet[: len(packet) - cut] if cut < len(packet) else packet))
