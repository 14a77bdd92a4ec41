"""Who called, when: a running server counts the queries of service and scheduled numbers per
hour and client network into its stats file, and `zonetools stats` shows exactly those counts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import dns.message
import dns.query
from click.testing import CliRunner, Result

from enumserver.store.stats import MAX_KEYS, QueryTally, StatsReader, StatsWriter, network_of
from tests.conftest import ServerFactory, free_port, write_config
from zonetools.cli import main as zonetools

NUMBER = "+3588001234567"
NAME = "7.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."  # TY07's free number
OTHER = "8.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."  # +3588001234568, TY07 too
MOBILE = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."  # not a service number: not counted
UNASSIGNED = "0.0.0.0.0.0.0.9.0.0.8.8.5.3.e164.arpa."  # 0800 9000000: no range, not counted
FAKE_TIME = "2026-03-27T10:15:00Z"  # Friday 12:15 EET


def zt(store: Path, *args: str) -> Result:
    return CliRunner().invoke(zonetools, ["--store", str(store), *args])


def stats_json(store: Path, *args: str) -> dict[str, object]:
    result = zt(store, "stats", *args, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_counts_match_the_queries_sent(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "[stats]\nflush_interval = 0.2\n")
    v6_port = free_port()
    running = server_factory(
        writable_store, "--config", str(config), "--listen", f"[::1]:{v6_port}",
        env={"ENUMSERVER_FAKE_TIME": FAKE_TIME},
    )  # fmt: skip
    for _ in range(5):
        running.query(NAME)
    for _ in range(3):
        running.query(NAME, tcp=True)
    for _ in range(2):
        query = dns.message.make_query(NAME, "NAPTR")
        dns.query.udp(query, "::1", port=v6_port, timeout=3)
    running.query(OTHER)
    for name in (MOBILE, MOBILE, UNASSIGNED):
        running.query(name)
    deadline = time.monotonic() + 3
    while True:
        found = (
            stats_json(writable_store, NUMBER, "--from", "2026-03-27")
            if Path(f"{writable_store}.stats.sqlite").exists()
            else {"total": 0}
        )
        if found["total"] == 10 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found["total"] == 10, found
    assert found["per"] == "hour" and found["target"] == "+3588001234567 (free)"
    counts = {entry["start"]: entry["count"] for entry in found["counts"]}  # type: ignore[attr-defined]
    assert len(counts) == 24 and counts["2026-03-27T12:00:00+02:00"] == 10
    assert sum(counts.values()) == 10
    assert found["networks"] == [
        {"network": "127.0.0.0/24", "count": 8},
        {"network": "::/56", "count": 2},
    ]
    operator = stats_json(writable_store, "--operator", "TY07", "--from", "2026-03-27")
    assert operator["total"] == 11
    assert operator["numbers"] == [
        {"number": "+3588001234567", "count": 10},
        {"number": "+3588001234568", "count": 1},
    ]
    assert stats_json(writable_store, "--operator", "TY05", "--from", "2026-03-27")["total"] == 0
    week = stats_json(writable_store, NUMBER, "--from", "2026-03-23", "--days", "7")
    assert week["per"] == "day" and len(week["counts"]) == 7  # type: ignore[arg-type]
    assert week["counts"][4] == {"start": "2026-03-27T00:00:00+02:00", "count": 10}  # type: ignore[index]
    chart = zt(writable_store, "stats", NUMBER, "--from", "2026-03-27T00:00", "--to", "2026-03-28")
    assert chart.exit_code == 0, chart.output
    assert "+3588001234567 (free): 10 queries" in chart.output
    assert "Fri 27.03. 12:00  " + "█" * 40 + " 10" in chart.output
    assert "▁▁▁▁▁▁▁▁▁▁▁▁█▁▁▁▁▁▁▁▁▁▁▁" in chart.output
    assert "127.0.0.0/24" in chart.output


def test_stats_command_refusals(writable_store: Path) -> None:
    assert zt(writable_store, "stats").exit_code == 1  # neither a number nor an operator
    missing = zt(writable_store, "stats", NUMBER)
    assert missing.exit_code == 1 and "no stats file" in missing.output
    assert zt(writable_store, "stats", NUMBER, "--from", "Friday").exit_code == 2


def test_networks_of_clients() -> None:
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("2001:db8:1:2ff:1::5") == "2001:db8:1:200::/56"
    assert network_of("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert network_of("fe80::1%eth0") == "fe80::/56"
    assert network_of("not an address") == "-"


def test_tally_takes_and_caps_distinct_networks() -> None:
    tally = QueryTally()
    for index in range(MAX_KEYS + 10):
        tally.add(7200.5, "3588001234567", "TY07", f"10.{index // 256 % 256}.{index % 256}.1")
    counts = tally.take()
    assert sum(counts.values()) == MAX_KEYS + 10 and not tally.counts
    assert len(counts) == MAX_KEYS + 1  # the rest under "other"


def test_retention_deletes_old_hours(tmp_path: Path) -> None:
    path = tmp_path / "stats.sqlite"
    now, old = 1_800_000_000.0, 1_800_000_000.0 - 91 * 86400
    hour, old_hour = int(now) // 3600 * 3600, int(old) // 3600 * 3600
    writer = StatsWriter(path, retention_days=90)
    writer.add({(old_hour, "3588001234567", "-", "TY07"): 4}, old)
    reader = StatsReader(path)
    assert reader.totals("hour", "3588001234567", None, 0, now + 3600) == [(old_hour, 4)]
    writer.add({(hour, "3588001234567", "-", "TY07"): 2}, now)  # a new hour: prunes
    writer.add({(hour, "3588001234567", "-", "TY07"): 1}, now)
    writer.close()
    assert reader.totals("hour", "3588001234567", None, 0, now + 3600) == [(hour, 3)]
    reader.close()


def _total(store: Path) -> object:
    if not Path(f"{store}.stats.sqlite").exists():
        return 0
    return stats_json(store, NUMBER, "--from", "2026-03-27")["total"]


def _wait_for_line(log: Path, text: str, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text().count(text) < count:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_sighup_flushes_the_counts_first_even_when_the_engine_is_replaced(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "[stats]\nflush_interval = 3600\n")
    running = server_factory(
        writable_store, "--config", str(config), env={"ENUMSERVER_FAKE_TIME": FAKE_TIME}
    )
    for _ in range(7):
        running.query(NAME)
    running.query(NAME, tcp=True)
    assert _total(writable_store) == 0  # an hour to the next flush
    running.process.send_signal(signal.SIGHUP)
    _wait_for_line(running.log, "configuration reloaded", 1)
    assert _total(writable_store) == 8
    # a reload that serves other zones replaces the engine (and its tally): nothing is lost
    for _ in range(5):
        running.query(NAME)
    config.write_text('[server]\nzones = ["tier1"]\n[stats]\nflush_interval = 3600\n')
    running.process.send_signal(signal.SIGHUP)
    _wait_for_line(running.log, "configuration reloaded", 2)
    assert _total(writable_store) == 13
    running.query(NAME)
    running.process.send_signal(signal.SIGHUP)
    _wait_for_line(running.log, "configuration reloaded", 3)
    assert _total(writable_store) == 14


def test_sigterm_flushes_the_counts_after_the_last_answer(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "[stats]\nflush_interval = 3600\n")
    running = server_factory(
        writable_store, "--config", str(config), env={"ENUMSERVER_FAKE_TIME": FAKE_TIME}
    )
    for _ in range(4):
        running.query(NAME)
    running.query(OTHER, tcp=True)
    running.process.terminate()
    assert running.process.wait(timeout=10) == 0
    assert _total(writable_store) == 4
    operator = stats_json(writable_store, "--operator", "TY07", "--from", "2026-03-27")
    assert operator["total"] == 5
