"""NOTIFY (RFC 1996): sent to the secondaries after every publish, with retries; answered.

A UDP socket of the test plays the secondary: it reads the NOTIFY messages the server sends,
checks their TSIG, and answers (or not) as a secondary would.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import pytest

from tests.conftest import (
    XFR_KEY,
    XFR_SECRET,
    RunningServer,
    ServerFactory,
    free_port,
    wait_for_serial,
    write_config,
    zonetools_run,
)

APEX = "8.5.3.e164.arpa."
KEYRING = dns.tsigkeyring.from_text({XFR_KEY: ("hmac-sha256", XFR_SECRET)})
CONFIG = """
[transfer]
notify_timeout = 0.3
notify_retries = 3
keys = [{ id = "KEY", secret = "SECRET" }]
remotes = [{ id = "secondary", address = "127.0.0.1:PORT", key = "KEY" }]
acls = [
    { id = "notify-local", address = "127.0.0.1", action = ["notify"] },
    { id = "notify-keyed", key = "KEY", action = ["notify"] },
]
zones = [
    { name = "tier1", notify = ["secondary"], acl = ["notify-local"] },
    { name = "test", acl = ["notify-keyed"] },
]
"""


@pytest.fixture
def secondary() -> Iterator[socket.socket]:
    """The test's UDP socket in the role of a secondary server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.settimeout(10)
        yield sock


@pytest.fixture
def primary(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path, secondary: socket.socket
) -> RunningServer:
    text = CONFIG.replace("KEY", XFR_KEY).replace("SECRET", XFR_SECRET)
    text = text.replace("PORT", str(secondary.getsockname()[1]))
    return server_factory(writable_store, "--config", str(write_config(tmp_path, text)))


def receive(sock: socket.socket) -> tuple[dns.message.Message, tuple[str, int]]:
    """The next NOTIFY, its TSIG checked with the shared key."""
    data, peer = sock.recvfrom(65535)
    return dns.message.from_wire(data, keyring=KEYRING), peer


def wait_for_log(server: RunningServer, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in server.log.read_text():
        assert time.monotonic() < deadline, f"{text!r} not logged"
        time.sleep(0.05)


def assert_silence(sock: socket.socket, seconds: float) -> None:
    """No NOTIFY for a while (tries sent before the answer arrived are dropped first)."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65535)
    except BlockingIOError:
        pass
    sock.settimeout(seconds)
    with pytest.raises(TimeoutError):
        receive(sock)


def serial_of(message: dns.message.Message) -> int:
    assert message.opcode() == dns.opcode.NOTIFY and message.flags & dns.flags.AA
    assert message.question[0].name.to_text() == APEX
    assert message.question[0].rdtype == dns.rdatatype.SOA
    return int(message.answer[0][0].serial)


def acknowledge(sock: socket.socket, message: dns.message.Message, peer: tuple[str, int],
                rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> None:  # fmt: skip
    response = dns.message.make_response(message)  # signed, as the NOTIFY was
    response.set_rcode(rcode)
    sock.sendto(response.to_wire(), peer)


def test_notify_is_sent_at_start_and_after_a_publish_until_acknowledged(
    primary: RunningServer, secondary: socket.socket, writable_store: Path
) -> None:
    first, peer = receive(secondary)  # at start: the serial the secondary may have missed
    assert serial_of(first) == 1 and first.had_tsig
    again, peer = receive(secondary)  # not answered: sent again after notify_timeout
    assert serial_of(again) == 1
    acknowledge(secondary, again, peer)
    zonetools_run(writable_store, "port", "add", "+358401234568", "--to", "TY09", "-m", "NP")
    started = time.monotonic()
    notify, peer = receive(secondary)
    assert serial_of(notify) == 2 and time.monotonic() - started < 3
    acknowledge(secondary, notify, peer)
    wait_for_log(primary, f"zone={APEX} serial=2 result=ok remote=secondary rcode=NOERROR")
    assert_silence(secondary, 1.5)  # acknowledged: no more NOTIFY


def test_a_refused_notify_is_not_repeated(primary: RunningServer, secondary: socket.socket) -> None:
    first, peer = receive(secondary)
    acknowledge(secondary, first, peer, dns.rcode.REFUSED)
    wait_for_log(primary, "result=refused remote=secondary rcode=REFUSED")
    assert_silence(secondary, 1.5)


def test_unanswered_notify_gives_up_after_the_retries(
    primary: RunningServer, secondary: socket.socket
) -> None:
    times = []
    for _ in range(4):  # the first and three retries, 0.3 s then doubling
        receive(secondary)
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]
    wait_for_log(primary, "result=timeout remote=secondary")
    assert_silence(secondary, 1.0)


def notify_to(server: RunningServer, apex: str, keyring: object = None) -> dns.message.Message:
    message = dns.message.make_query(apex, "SOA")
    message.flags = dns.flags.AA
    message.set_opcode(dns.opcode.NOTIFY)
    if keyring is not None:
        message.use_tsig(keyring, XFR_KEY)
    return dns.query.udp(message, server.host, port=server.port, timeout=3)


def test_a_notify_sent_to_us_is_acknowledged_or_refused_per_acl(primary: RunningServer) -> None:
    wait_for_serial(primary.host, primary.port, APEX, 1)
    allowed = notify_to(primary, APEX)  # notify-local: 127.0.0.1 unsigned
    assert allowed.rcode() == dns.rcode.NOERROR and allowed.opcode() == dns.opcode.NOTIFY
    assert allowed.flags & dns.flags.AA and allowed.flags & dns.flags.QR
    assert notify_to(primary, "8.5.3.e164enum.test.").rcode() == dns.rcode.REFUSED  # key needed
    signed = notify_to(primary, "8.5.3.e164enum.test.", KEYRING)
    assert signed.rcode() == dns.rcode.NOERROR and signed.had_tsig
    assert notify_to(primary, "8.5.3.ie164.arpa.").rcode() == dns.rcode.REFUSED  # no rule
    assert notify_to(primary, "example.").rcode() == dns.rcode.NOTAUTH
    bad = dns.tsigkeyring.from_text({XFR_KEY: ("hmac-sha256", "d3Jvbmcgc2VjcmV0")})
    with pytest.raises(dns.tsig.PeerBadSignature):
        notify_to(primary, APEX, bad)  # NOTAUTH, TSIG error BADSIG


def collect(sock: socket.socket, seconds: float) -> list[int]:
    """The serials of every NOTIFY for a while, each acknowledged (so none is a retry)."""
    serials, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            message, peer = receive(sock)
        except TimeoutError:
            break
        serials.append(serial_of(message))
        acknowledge(sock, message, peer)
    return serials


def test_with_workers_one_notify_per_serial(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path, secondary: socket.socket
) -> None:
    """Every worker sees the new serial; only the first one tells the secondaries."""
    text = CONFIG.replace("KEY", XFR_KEY).replace("SECRET", XFR_SECRET)
    text = text.replace("PORT", str(secondary.getsockname()[1]))
    config = write_config(tmp_path, text)
    server = server_factory(writable_store, "--config", str(config), "--workers", "2")
    wait_for_log(server, "2 workers serving")
    assert set(collect(secondary, 2.0)) == {1}  # (a try sent before we listened is repeated)
    zonetools_run(writable_store, "port", "add", "+358401234568", "--to", "TY09", "-m", "NP")
    assert collect(secondary, 3.0) == [2]
