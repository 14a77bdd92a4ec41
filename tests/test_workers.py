"""`--workers N`: processes on one address, each with its own caches, all current within 1 s.

And the engine's read path: resolution reads the store as one commit left it until the next
refresh, so a miss never mixes data of two serials, nor outruns the answers already cached.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from enumserver.engine import Engine
from tests.conftest import RunningServer, ServerFactory, free_port, zonetools_run

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."  # +358401234567, ported to TY07 in the demo
RANGE_ONLY = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."  # +358501234567, TY05's range, not ported


def workers_of(server: RunningServer) -> list[int]:
    """PIDs of the supervisor's worker processes."""
    found: list[int] = []
    for task in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        found += [int(pid) for pid in task.read_text().split()]
    return sorted(found)


def regexps(server: RunningServer, name: str, source_port: int) -> set[str]:
    """The NAPTR regexps of the answer to a query sent from ``source_port``."""
    query = dns.message.make_query(name, "NAPTR")
    for attempt in range(3):
        try:
            reply = dns.query.udp(query, server.host, port=server.port, timeout=1,
                                  source_port=source_port)  # fmt: skip
            return {rd.regexp.decode() for rrset in reply.answer for rd in rrset}
        except dns.exception.Timeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_every_worker_answers_a_publish_within_a_second(
    writable_store: Path, server_factory: ServerFactory
) -> None:
    server = server_factory(writable_store, "--workers", "2")
    assert len(workers_of(server)) == 2
    port = free_port()  # datagrams go to a random worker: 24 reach both (but for 2 ** -23)
    before = {frozenset(regexps(server, RANGE_ONLY, port)) for _ in range(24)}  # now cached
    assert len(before) == 1
    zonetools_run(writable_store, "port", "add", "+358501234567", "--to", "TY09", "-m", "NP")
    published = time.monotonic()
    while True:  # until a round of 24 answers holds no stale one: every worker is current
        stale = sum(frozenset(regexps(server, RANGE_ONLY, port)) in before for _ in range(24))
        if not stale:
            break
        assert time.monotonic() - published < 1.0, f"{stale} of 24 answers still stale"
        time.sleep(0.02)


def test_both_workers_take_queries(demo_store: Path, server_factory: ServerFactory) -> None:
    server = server_factory(demo_store, "--workers", "2")
    stopped = workers_of(server)[0]
    os.kill(stopped, signal.SIGSTOP)  # the queries given to this worker go unanswered
    try:
        unanswered = 0
        for _ in range(16):
            try:
                dns.query.udp(dns.message.make_query(PORTED, "NAPTR"), server.host,
                              port=server.port, timeout=0.3, source_port=free_port())  # fmt: skip
            except dns.exception.Timeout:
                unanswered += 1
        assert 0 < unanswered < 16
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_one_client_socket_is_spread_over_the_workers(
    demo_store: Path, server_factory: ServerFactory
) -> None:
    """A SIP proxy that resolves through one socket still keeps every worker busy: by source
    address hash, all its queries would go to one worker (all answered here, or none)."""
    server = server_factory(demo_store, "--workers", "2")
    stopped = workers_of(server)[0]
    port = free_port()
    os.kill(stopped, signal.SIGSTOP)
    try:
        unanswered = 0
        for _ in range(24):
            try:
                dns.query.udp(dns.message.make_query(PORTED, "NAPTR"), server.host,
                              port=server.port, timeout=0.2, source_port=port)  # fmt: skip
            except dns.exception.Timeout:
                unanswered += 1
        assert 0 < unanswered < 24, f"{unanswered} of 24 queries from one socket unanswered"
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_a_worker_that_dies_is_started_again(
    demo_store: Path, server_factory: ServerFactory
) -> None:
    server = server_factory(demo_store, "--workers", "2")
    deadline = time.monotonic() + 10
    while "2 workers serving" not in server.log.read_text():  # start-up is over
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = workers_of(server)
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while len(workers := workers_of(server)) < 2 or first[0] in workers:
        assert time.monotonic() < deadline, f"worker not restarted: {workers}"
        time.sleep(0.1)
    time.sleep(0.5)  # the new worker binds
    for _ in range(8):
        reply = dns.query.udp(dns.message.make_query(PORTED, "NAPTR"), server.host,
                              port=server.port, timeout=2, source_port=free_port())  # fmt: skip
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert "starting it again" in server.log.read_text()


def test_sigterm_stops_every_worker(demo_store: Path, server_factory: ServerFactory) -> None:
    server = server_factory(demo_store, "--workers", "3")
    workers = workers_of(server)
    assert len(workers) == 3
    server.process.terminate()
    assert server.process.wait(timeout=10) == 0
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_a_worker_that_cannot_start_stops_the_server(
    demo_store: Path, server_factory: ServerFactory, tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nzones = ["nosuchzone"]\n')
    from tests.conftest import start_server

    try:
        start_server(demo_store, tmp_path, "--workers", "2", "--config", str(config))
    except RuntimeError as exc:
        assert "nosuchzone" in str(exc) and "worker" in str(exc)
    else:
        raise AssertionError("the server started with a zone it does not have")


def answer_of(engine: Engine, name: str) -> set[str]:
    reply = engine.handle(dns.message.make_query(name, "NAPTR").to_wire())
    assert isinstance(reply, bytes)
    return {rd.regexp.decode() for rrset in dns.message.from_wire(reply).answer for rd in rrset}


def test_a_miss_reads_the_commit_the_cache_was_filled_from(writable_store: Path) -> None:
    engine = Engine(writable_store)
    ported_before = answer_of(engine, PORTED)  # cached
    range_before = answer_of(engine, RANGE_ONLY)
    engine.clear_caches()
    answer_of(engine, PORTED)  # cached again; RANGE_ONLY will be a miss
    zonetools_run(writable_store, "port", "add", "+358501234567", "--to", "TY09", "-m", "NP")
    # Until the engine refreshes, a miss still reads the commit its snapshot came from.
    assert answer_of(engine, RANGE_ONLY) == range_before
    assert answer_of(engine, PORTED) == ported_before
    assert engine.refresh()
    assert answer_of(engine, RANGE_ONLY) != range_before
    assert answer_of(engine, PORTED) == ported_before
