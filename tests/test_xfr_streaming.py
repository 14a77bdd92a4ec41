"""A big zone transfer is sent while it is built, a slice at a time: the server answers queries
in between, a secondary that stops reading or hangs up costs nothing, and what is sent is one
state of the store however long the transfer takes (publishes meanwhile go to the next one)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from enumserver.store import StoreWriter, store_serials
from tests.conftest import RunningServer, build_demo_store, start_server, stop_server, write_config

APEX = "8.5.3.e164.arpa."
NUMBERS = 40_000  # ported numbers added to the demo data: an AXFR of ~1.5 s to build
CONFIG = """
[transfer]
acls = [{ id = "local", address = ["127.0.0.1/32"] }]
zones = [{ name = "tier1", acl = ["local"] }]
"""


def port_many(store: Path, first: int, count: int, recipient: str = "TY07") -> None:
    writer = StoreWriter(store)
    try:
        with writer.change("test", "port", "many numbers") as change:
            rows = (
                (f"35850{n:07d}", recipient, None, "2026-01-01")
                for n in range(first, first + count)
            )
            change.put_ported_many(rows, old={})
    finally:
        writer.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("xfr-big")
    store = build_demo_store(directory / "big.sqlite")
    port_many(store, 0, NUMBERS)
    running = start_server(store, directory, "--config", str(write_config(directory, CONFIG)))
    yield running
    stop_server(running)


def axfr_socket(server: RunningServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    wire = dns.message.make_query(APEX, "AXFR").to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    return sock


def read_raw(stream: object) -> bytes:
    read = stream.read  # type: ignore[attr-defined]
    (size,) = struct.unpack("!H", read(2))
    return bytes(read(size))


def read_message(stream: object) -> dns.message.Message:
    return dns.message.from_wire(read_raw(stream))


def answer_types(wire: bytes) -> list[int]:
    """The types of a message's answer RRs, walked without decoding (dnspython would take
    seconds for a big transfer); messages holding an SOA are decoded by the caller."""

    def skip_name(pos: int) -> int:
        while wire[pos] and wire[pos] < 0xC0:
            pos += 1 + wire[pos]
        return pos + (2 if wire[pos] else 1)

    types, pos = [], skip_name(12) + 4
    for _ in range(struct.unpack_from("!H", wire, 6)[0]):
        pos = skip_name(pos)
        rtype, _, _, size = struct.unpack_from("!HHIH", wire, pos)
        types.append(rtype)
        pos += 10 + size
    assert pos <= len(wire)
    return types


def read_transfer(stream: object, soas: int = 2) -> tuple[list[int], int, int]:
    """Read (the rest of) an AXFR, up to its last SOA: (the SOA serials, records, messages)."""
    serials, records, messages = [], 0, 0
    while len(serials) < soas:
        wire = read_raw(stream)
        messages += 1
        types = answer_types(wire)
        records += len(types)
        if dns.rdatatype.SOA in types:
            answer = dns.message.from_wire(wire, one_rr_per_rrset=True).answer
            serials += [rrset[0].serial for rrset in answer if rrset.rdtype == dns.rdatatype.SOA]
    return serials, records, messages


def naptr_latency(server: RunningServer, number: int) -> float:
    name = ".".join(reversed(f"35850{number:07d}")) + ".e164.arpa."
    started = time.perf_counter()
    reply = dns.query.udp(
        dns.message.make_query(name, "NAPTR"), server.host, port=server.port, timeout=5
    )
    assert reply.answer, f"no answer for {name}"
    return time.perf_counter() - started


def test_queries_are_answered_while_a_big_zone_is_transferred(big: RunningServer) -> None:
    done: dict[str, object] = {}

    def transfer() -> None:
        started = time.perf_counter()
        with axfr_socket(big) as sock:
            done["result"] = read_transfer(sock.makefile("rb"))
        done["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=transfer)
    thread.start()
    latencies = []
    while thread.is_alive():
        latencies.append(naptr_latency(big, len(latencies) % NUMBERS))
    thread.join()
    serials, records, messages = done["result"]  # type: ignore[misc]
    seconds = float(done["seconds"])  # type: ignore[arg-type]
    assert serials[0] == serials[1] and records > 2 * NUMBERS and messages > 100
    # Answered all along: many queries during the transfer, none waiting for it to finish.
    assert len(latencies) >= 20, (seconds, latencies)
    assert max(latencies) < seconds / 4 and max(latencies) < 0.25, (seconds, max(latencies))


def test_a_secondary_that_stops_reading_or_hangs_up_costs_nothing(big: RunningServer) -> None:
    stalled = axfr_socket(big)  # reads one message, then nothing: the transfer waits for it
    read_message(stalled.makefile("rb"))
    for _ in range(10):  # and ten that hang up after the first message
        with axfr_socket(big) as sock:
            read_message(sock.makefile("rb"))
    assert max(naptr_latency(big, n) for n in range(50)) < 0.25
    with axfr_socket(big) as sock:  # a whole transfer still works beside the stalled one
        serials, records, _ = read_transfer(sock.makefile("rb"))
    assert serials[0] == serials[1] and records > 2 * NUMBERS
    stalled.close()


def test_a_transfer_is_one_state_while_a_publish_lands(tmp_path: Path, big: RunningServer) -> None:
    store = Path(str(big.process.args[big.process.args.index("--store") + 1]))  # type: ignore[index, union-attr, arg-type]
    before = store_serials(store)["tier1"]
    with axfr_socket(big) as sock:
        stream = sock.makefile("rb")
        first = read_message(stream)  # the transfer has begun: its read transaction is open
        port_many(store, NUMBERS, 500, recipient="TY05")  # a publish lands meanwhile
        assert store_serials(store)["tier1"] != before
        serials, records, _ = read_transfer(stream, soas=1)
    assert [first.answer[0][0].serial, *serials] == [before, before]
    records += sum(len(rrset) for rrset in first.answer)
    with axfr_socket(big) as sock:  # the next transfer has the publish
        after, more, _ = read_transfer(sock.makefile("rb"))
    assert after[0] == after[1] == store_serials(store)["tier1"]
    assert more > records + 500
