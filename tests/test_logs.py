"""Structured logs: formats, the one-line event helpers, and the sampled query log of a server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enumserver import logs, metrics
from enumserver.config import LogConfig
from tests.conftest import ServerFactory, dig, write_config

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("enumserver")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers, logger.level, logger.propagate = handlers, level, propagate


def test_json_lines_carry_the_event_fields(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("info", LogConfig(format="json", target="stdout", timestamps=True))
    before = metrics.ACTIVITY.updates.get(("TY07", "refused"), 0)
    logs.log_update("TY07", "8.5.3.e164.arpa.", False, reason="number not held", records=2)
    line = json.loads(capsys.readouterr().out)
    assert line["msg"] == "update" and line["level"] == "warning"
    assert line["operator"] == "TY07" and line["result"] == "refused" and line["records"] == 2
    assert line["reason"] == "number not held" and line["ts"].endswith("Z")
    assert metrics.ACTIVITY.updates[("TY07", "refused")] == before + 1


def test_logfmt_quotes_values_with_spaces(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("info", LogConfig(format="logfmt", target="stdout"))
    logs.log_publish("alice", "port add", 42, 3, message="port +358401234567 to TY07")
    line = capsys.readouterr().out.strip()
    assert line == (
        'level=info logger=enumserver msg=publish who=alice command="port add" serial=42 '
        'changes=3 source=cli message="port +358401234567 to TY07"'
    )
    logs.setup("warning", LogConfig(format="logfmt", target="stdout"))
    logs.log_transfer("192.0.2.1", "8.5.3.e164.arpa.", "ixfr", 42, "ok")
    assert capsys.readouterr().out == ""  # below the level


def test_query_log_drops_when_its_queue_is_full_and_counts() -> None:
    counters = metrics.Counters()
    querylog = logs.QueryLog(every=1, queue_size=5, counters=counters)
    querylog.logger.disabled = True  # keep the test's output quiet; the counting is the point
    try:
        for _ in range(20_000):
            querylog.offer("192.0.2.1", "udp", b"\x00" * 12, None)
    finally:
        querylog.stop()
        querylog.logger.disabled = False
    assert counters.querylog_dropped > 0
    assert counters.querylog_written + counters.querylog_dropped == 20_000


def test_sampled_query_log_of_a_running_server_in_json(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, '[server]\nlog_level = "warning"\n[log]\nformat = "json"\nquery_sample = 2\n'
    )
    running = server_factory(demo_store, "--config", str(config))
    for _ in range(6):
        dig(running, PORTED, "NAPTR")
    dig(running, "8.5.3.e164.arpa.", "SOA", "+tcp")

    def lines() -> list[dict[str, object]]:
        text = running.log.read_text().splitlines()
        return [json.loads(line) for line in text if '"logger": "enumserver.query"' in line]

    deadline = time.monotonic() + 3
    while len(lines()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # the writer thread is asynchronous by design
    found = lines()
    assert len(found) == 4  # one in two of 8 (the start-up probe + 6 + 1 over TCP)
    naptr = [line for line in found if line.get("qtype") == "NAPTR"]
    assert naptr and naptr[0]["qname"] == PORTED and naptr[0]["rcode"] == "NOERROR"
    assert naptr[0]["client"] == "127.0.0.1" and naptr[0]["proto"] == "udp"
