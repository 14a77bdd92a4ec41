"""Limits against abuse on a running server: RRL slips and drops a flood from one prefix while
other clients (another prefix, TCP) are answered; TCP connection limits refuse and time out;
ANY is answered minimally (RFC 8482).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import APEX, RunningServer, ServerFactory, dig, free_port, scrape, write_config

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."
OTHER_PREFIX = "127.0.1.1"  # another /24 on the loopback interface


def flood(server: RunningServer, count: int, source: str = "127.0.0.1") -> list[bytes]:
    """Send ``count`` NAPTR queries at once from one socket; every reply within a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for qid in range(count):
            query = dns.message.make_query(PORTED, "NAPTR", id=qid)
            sock.sendto(query.to_wire(), (server.host, server.port))
        replies, deadline = [], time.monotonic() + 1.0
        while time.monotonic() < deadline and len(replies) < count:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                replies.append(sock.recv(65535))
            except TimeoutError:
                break
    return replies


def ask_from(server: RunningServer, source: str) -> dns.message.Message:
    query = dns.message.make_query(PORTED, "NAPTR")
    return dns.query.udp(query, server.host, port=server.port, timeout=2, source=source)


def test_rrl_slips_and_drops_a_flood_but_other_clients_are_answered(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    metrics = free_port()
    config = write_config(
        tmp_path,
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{metrics}"\n'
        "[rrl]\nenabled = true\nrate = 2\nburst = 5\nslip = 2\n",
    )
    running = server_factory(demo_store, "--config", str(config))
    replies = [dns.message.from_wire(r) for r in flood(running, 60)]
    full = [r for r in replies if r.answer]
    slipped = [r for r in replies if r.flags & dns.flags.TC]
    assert 3 <= len(full) <= 8  # the burst (less the start-up probe), plus a refill or two
    assert all(not r.answer and not r.authority and r.rcode() == 0 for r in slipped)
    limited = 60 - len(full)
    assert abs(len(slipped) - limited / 2) <= 2  # slip 2: every second limited answer is TC=1
    assert len(replies) < 60  # the rest were dropped
    # A client in another /24 is not limited, nor is TCP from the flooded prefix.
    assert ask_from(running, OTHER_PREFIX).answer
    assert dig(running, PORTED, "NAPTR", "+tcp").answer
    after = scrape(metrics)
    assert after.value("enum_rrl_slipped_total") == len(slipped)
    assert after.value("enum_rrl_dropped_total") == limited - len(slipped)
    assert after.value("enum_dns_dropped_total", reason="rrl") == limited - len(slipped)


def test_rrl_exempt_networks_are_never_limited(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, '[rrl]\nenabled = true\nrate = 1\nburst = 1\nexempt = ["127.0.0.0/24"]\n'
    )
    running = server_factory(demo_store, "--config", str(config))
    replies = [dns.message.from_wire(r) for r in flood(running, 40)]
    assert len(replies) == 40 and all(r.answer for r in replies)


def tcp_query(sock: socket.socket, name: str = APEX, rdtype: str = "SOA") -> dns.message.Message:
    """One query over an open TCP connection (RFC 7766 framing)."""
    wire = dns.message.make_query(name, rdtype).to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    size = struct.unpack("!H", recv_exactly(sock, 2))[0]
    return dns.message.from_wire(recv_exactly(sock, size))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF or reset) within 2 s."""
    sock.settimeout(2)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect(server: RunningServer, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(
        (server.host, server.port), timeout=5, source_address=(source, 0)
    )


def test_tcp_connection_limits_refuse_and_others_are_served(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    metrics = free_port()
    config = write_config(
        tmp_path,
        "[server]\ntcp_max_clients = 3\ntcp_max_clients_per_ip = 2\n"
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{metrics}"\n',
    )
    running = server_factory(demo_store, "--config", str(config))
    first, second = connect(running), connect(running)
    assert tcp_query(first).rcode() == tcp_query(second).rcode() == dns.rcode.NOERROR
    third = connect(running)  # a third from the same address: over tcp_max_clients_per_ip
    assert closed_by_server(third)
    other = connect(running, OTHER_PREFIX)  # another address still gets in (3 of 3)
    assert tcp_query(other).rcode() == dns.rcode.NOERROR
    fourth = connect(running, "127.0.2.1")  # over tcp_max_clients
    assert closed_by_server(fourth)
    assert running.query(PORTED).answer  # UDP unaffected
    assert tcp_query(first, PORTED, "NAPTR").answer  # open connections unaffected
    first.close()
    time.sleep(0.2)
    with connect(running, "127.0.2.1") as fifth:
        assert tcp_query(fifth).rcode() == dns.rcode.NOERROR
    for sock in (second, third, other, fourth):
        sock.close()
    after = scrape(metrics)
    assert after.value("enum_tcp_refused_total", reason="max_clients_per_ip") == 1
    assert after.value("enum_tcp_refused_total", reason="max_clients") == 1


def test_tcp_connection_is_closed_after_max_duration_and_max_queries(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, "[server]\ntcp_max_duration = 1.0\ntcp_idle_timeout = 5\ntcp_max_queries = 3\n"
    )
    running = server_factory(demo_store, "--config", str(config))
    with connect(running) as busy:  # never idle, but closed after 1 s in total
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            while time.monotonic() - started < 5:
                tcp_query(busy)
                time.sleep(0.35)  # two queries, then the duration limit
        assert 0.9 < time.monotonic() - started < 3
    with connect(running) as pipelined:
        wire = dns.message.make_query(APEX, "SOA").to_wire()
        pipelined.sendall((struct.pack("!H", len(wire)) + wire) * 5)
        answers = 0
        with pytest.raises(ConnectionError):
            while True:
                size = struct.unpack("!H", recv_exactly(pipelined, 2))[0]
                recv_exactly(pipelined, size)
                answers += 1
        assert answers == 3


def test_any_at_the_apex_is_answered_with_the_soa_alone(server: RunningServer) -> None:
    result = dig(server, APEX, "ANY")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert len(result.answer) == 1 and " SOA " in result.answer[0]
    number = dig(server, PORTED, "ANY")
    assert [line.split()[3] for line in number.answer] == ["NAPTR", "NAPTR"]
