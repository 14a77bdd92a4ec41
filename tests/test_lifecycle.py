"""Signals to a running server: SIGTERM drains TCP and exits 0, SIGHUP reloads the configuration
without dropping queries (and keeps the old one when the new one is invalid), systemd is told
READY/RELOADING/STOPPING through $NOTIFY_SOCKET.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.conftest import APEX, RunningServer, ServerFactory, free_port, scrape, write_config
from tests.test_limits import closed_by_server, connect, recv_exactly, tcp_query

SOA_QUERY = dns.message.make_query(APEX, "SOA").to_wire()
FRAMED = struct.pack("!H", len(SOA_QUERY)) + SOA_QUERY


def answers(port: int, timeout: float = 1.0) -> bool:
    """True when 127.0.0.1:port answers an SOA query over UDP."""
    try:
        query = dns.message.make_query(APEX, "SOA")
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout).rcode() == 0
    except (dns.exception.Timeout, OSError):
        return False


def wait_for(predicate: object, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_sigterm_finishes_in_flight_tcp_stops_accepting_and_exits_0(
    server_factory: ServerFactory, demo_store: Path
) -> None:
    running = server_factory(demo_store)
    idle, busy = connect(running), connect(running)
    busy.sendall(FRAMED[:20])  # a query half sent when the signal comes
    time.sleep(0.2)
    running.process.send_signal(signal.SIGTERM)
    assert closed_by_server(idle)  # idle connections are closed at once

    def refused() -> bool:
        try:
            connect(running).close()
        except ConnectionRefusedError:
            return True
        return False

    assert wait_for(refused, 2)  # no new connections
    busy.sendall(FRAMED[20:])
    size = struct.unpack("!H", recv_exactly(busy, 2))[0]
    reply = dns.message.from_wire(recv_exactly(busy, size))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer  # the in-flight query answered
    assert closed_by_server(busy)
    assert running.process.wait(timeout=5) == 0
    assert "stopped" in running.log.read_text()


def test_sigterm_gives_up_on_a_stalled_query_after_shutdown_timeout(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "[server]\nshutdown_timeout = 0.5\n")
    running = server_factory(demo_store, "--config", str(config))
    stalled = connect(running)
    stalled.sendall(FRAMED[:10])
    time.sleep(0.1)
    started = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.5
    assert closed_by_server(stalled)
    stalled.close()


class Asker(threading.Thread):
    """Asks an SOA over UDP back to back until stopped; counts answers and losses."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.answered = self.lost = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            if answers(self.port, timeout=1.0):
                self.answered += 1
            else:
                self.lost += 1


def reload_lines(log: Path) -> list[dict[str, object]]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines if "configuration" in line]


def test_sighup_reloads_configuration_without_dropping_queries(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    port, second, metrics = free_port(), free_port(), free_port()
    path = write_config(tmp_path, f'[server]\nlisten = ["127.0.0.1:{port}"]\n')
    running = server_factory(demo_store, "--config", str(path), port=port, listen_flag=False)
    asker = Asker(port)
    asker.start()
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}", "127.0.0.1:{second}"]\ntcp_max_clients = 10\n'
        f'[log]\nformat = "json"\n[rrl]\nenabled = true\nrate = 100000\nburst = 100000\n'
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{metrics}"\n'
    )
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: answers(second, 0.2))  # the new listener is bound
    assert wait_for(lambda: reload_lines(running.log))
    reloaded = reload_lines(running.log)[0]
    assert reloaded["level"] == "info" and reloaded["ok"] is True
    assert set(str(reloaded["changed"]).split(",")) == {
        "server.listen", "server.tcp_max_clients", "metrics.enabled", "metrics.listen",
        "log.format", "rrl.enabled", "rrl.rate", "rrl.burst",
    }  # fmt: skip
    assert scrape(metrics).value("enum_config_reloads_total", result="ok") == 1

    path.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\n[rrl]\nrate = "fast"\n')
    running.process.send_signal(signal.SIGHUP)  # invalid: the previous configuration stays
    assert wait_for(lambda: "rrl.rate must be a number, not str" in running.log.read_text())
    assert answers(second) and scrape(metrics).value("enum_config_reloads_total", result="error")

    path.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\n')
    running.process.send_signal(signal.SIGHUP)  # the second listener goes away again

    def second_closed() -> bool:
        try:
            socket.create_connection(("127.0.0.1", second), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    assert wait_for(second_closed)
    time.sleep(0.3)
    asker.stopping.set()
    asker.join()
    assert asker.lost == 0 and asker.answered > 20
    assert running.query(APEX, "SOA").answer


def test_systemd_is_notified_ready_reloading_and_stopping(
    server_factory: ServerFactory, demo_store: Path
) -> None:
    directory = tempfile.mkdtemp(prefix="notify-")  # short: AF_UNIX paths are limited
    path = f"{directory}/notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(5)
        running: RunningServer = server_factory(demo_store, env={"NOTIFY_SOCKET": path})
        assert notify.recv(4096).startswith(b"READY=1\nSTATUS=serving ")
        running.process.send_signal(signal.SIGHUP)
        reloading = notify.recv(4096).decode()
        assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert notify.recv(4096) == b"READY=1"
        with connect(running) as sock:
            assert tcp_query(sock).answer
        running.process.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        assert running.process.wait(timeout=5) == 0
    Path(path).unlink()
    Path(directory).rmdir()


def test_sighup_applies_a_new_transfer_acl(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    """An operator lets a new secondary transfer the zone: no restart, a SIGHUP."""
    rules = (
        '[transfer]\nacls = [{{ id = "a", address = ["{}"] }}]\n'
        'zones = [{{ name = "tier1", acl = ["a"] }}]\n'
    )
    config = write_config(tmp_path, rules.format("192.0.2.0/24"))
    running = server_factory(demo_store, "--config", str(config))
    axfr = dns.message.make_query(APEX, "AXFR")

    def first_rcode() -> int:
        reply = dns.query.tcp(axfr, running.host, port=running.port, timeout=5)
        return reply.rcode()

    assert first_rcode() == dns.rcode.REFUSED
    config.write_text(rules.format("127.0.0.1/32"))
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: first_rcode() == dns.rcode.NOERROR), "the new ACL was not applied"
    config.write_text(rules.format("192.0.2.0/24"))  # and taken away again
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: first_rcode() == dns.rcode.REFUSED), "the old ACL stayed"
