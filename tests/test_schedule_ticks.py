"""Schedule ticks (docs/service-numbers.md, "Standard secondaries"): a switch gets a serial of its
own and a NOTIFY, IXFR carries it as a difference at the number, and Knot follows it.

The switch computation is pure (tested across DST changes and holidays); ticks go through the
store's writer (idempotent: two ticks at one instant record one serial); the end-to-end test runs
our server and knotd on loopback ports, with the tick's clock fixed by ENUMSERVER_FAKE_TIME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.zone
import pytest
import yaml

from enumserver.schedule import changed_between, first_switch, parse, set_at
from enumserver.store import StoreReader, StoreWriter, store_serials
from enumserver.ticks import tick
from tests.conftest import (
    XFR_KEY,
    XFR_SECRET,
    RunningServer,
    ServerFactory,
    free_port,
    wait_for_serial,
    write_config,
)
from tests.test_service_numbers import EVENING, NAME, NUMBER, OFFICE, SCHEDULE, at, zt
from tests.test_xfr_knot import APEX, PRIMARY_CONFIG, REFERRAL, Knot
from tests.test_zonefiles import tool

BEFORE = "2026-03-27T13:59:30Z"  # Friday 15:59:30 EET: the office set, 30 s before it closes
AFTER = "2026-03-27T14:00:30Z"  # 16:00:30 EET: after hours
NEIGHBOUR = "8.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."  # +3588001234568: range 0800 1, no routes

HOURS = parse(
    {
        "default": "day",
        "route_sets": {
            name: [{"order": 10, "preference": 100, "service": "E2U+sip", "regexp": f"!^.*$!{u}!"}]
            for name, u in (("day", "sip:a@x"), ("night", "sip:b@x"), ("closed", "sip:c@x"))
        },
        "windows": [{"days": "daily", "start": "03:30", "end": "05:00", "set": "night"}],
        "holidays": {"12-24": "closed", "2026-04-03": "closed"},
    },
    "TY07",
)


# -- the pure part ----------------------------------------------------------------------------


def test_changed_between_names_each_schedule_whose_set_differs() -> None:
    office = parse(yaml.safe_load(SCHEDULE.read_text()), "TY07")
    schedules = {("number", "3588001234567"): office, ("range", "3588001"): HOURS}
    assert changed_between(schedules, at(BEFORE), at(AFTER)) == {
        ("number", "3588001234567"): ("office", "after-hours")
    }
    # Friday 15:00 -> Monday 15:00: office at both ends, though it switched four times between
    assert changed_between(schedules, at("2026-03-27T13:00:00Z"), at("2026-03-30T12:00:00Z")) == {}
    assert changed_between(schedules, at(BEFORE), at(BEFORE)) == {}


def test_changed_between_across_the_spring_jump() -> None:
    # Sunday 29 March 2026: 03:00 EET jumps to 04:00 EEST (01:00 UTC); 03:30 never happens,
    # so the night window opens at the jump
    key = ("number", "358")
    schedules = {key: HOURS}
    assert changed_between(schedules, at("2026-03-29T00:59:59Z"), at("2026-03-29T01:00:00Z")) == {
        key: ("day", "night")
    }
    assert set_at(HOURS, at("2026-03-29T00:59:59Z")) == "day"
    # the window ends at 05:00 EEST = 02:00 UTC (it was 03:00 UTC the day before, in EET)
    assert changed_between(schedules, at("2026-03-29T01:59:59Z"), at("2026-03-29T02:00:00Z")) == {
        key: ("night", "day")
    }
    assert changed_between(schedules, at("2026-03-28T02:59:59Z"), at("2026-03-28T03:00:00Z")) == {
        key: ("night", "day")
    }
    assert first_switch([HOURS], at("2026-03-29T00:00:00Z")) == at("2026-03-29T01:00:00Z")


def test_changed_between_across_the_autumn_repeat() -> None:
    # Sunday 25 October 2026: 04:00 EEST goes back to 03:00 EET (01:00 UTC); 03:30 happens
    # twice, so the window opens at the first 03:30 (00:30 UTC) and ends at 05:00 EET (03:00 UTC)
    key = ("number", "358")
    schedules = {key: HOURS}
    assert changed_between(schedules, at("2026-10-25T00:29:59Z"), at("2026-10-25T00:30:00Z")) == {
        key: ("day", "night")
    }
    assert changed_between(schedules, at("2026-10-25T00:30:00Z"), at("2026-10-25T02:59:59Z")) == {}
    assert changed_between(schedules, at("2026-10-25T02:59:59Z"), at("2026-10-25T03:00:00Z")) == {
        key: ("night", "day")
    }


def test_changed_between_on_holidays() -> None:
    key = ("range", "3588001")
    schedules = {key: HOURS}
    # midnight local (EET = UTC+2) starts Christmas Eve, every year, and Good Friday 2026 once
    for day in ("2026-12-23T22:00:00Z", "2027-12-23T22:00:00Z", "2026-04-02T21:00:00Z"):
        assert changed_between(schedules, at(day) - 1, at(day)) == {key: ("day", "closed")}, day
    assert (
        changed_between(schedules, at("2027-04-02T21:00:00Z") - 1, at("2027-04-02T21:00:00Z")) == {}
    )
    # the holiday wins over the night window, and ends at midnight
    assert set_at(HOURS, at("2026-12-24T02:00:00Z")) == "closed"
    assert changed_between(schedules, at("2026-12-24T21:59:59Z"), at("2026-12-24T22:00:00Z")) == {
        key: ("closed", "day")
    }
    assert first_switch([HOURS], at("2026-12-23T12:00:00Z")) == at("2026-12-23T22:00:00Z")


# -- the write part ---------------------------------------------------------------------------


@pytest.fixture
def scheduled(writable_store: Path) -> Path:
    result = zt(writable_store, "schedule", "set", NUMBER, "--file", str(SCHEDULE), "-m", "hours")
    assert result.exit_code == 0, result.output
    return writable_store


@pytest.fixture
def range_scheduled(scheduled: Path) -> Path:
    """Also the range 0800 1 (TY07's numbers without routes of their own: +3588001234568)."""
    result = zt(scheduled, "schedule", "set", "+3588001", "--range", "--file", str(SCHEDULE))
    assert result.exit_code == 0, result.output
    return scheduled


def serial_of(store: Path) -> int:
    return store_serials(store)["tier1"]


def test_two_ticks_at_one_instant_record_one_serial(scheduled: Path) -> None:
    writer = StoreWriter(scheduled)
    first = tick(writer, at(BEFORE))
    assert first.first and first.serial == serial_of(scheduled)
    assert tick(writer, at(BEFORE)).serial is None  # the same instant
    assert tick(writer, at(BEFORE) + 10).serial is None  # later, but nothing switched
    results = []

    def race() -> None:
        own = StoreWriter(scheduled)
        results.append(tick(own, at(AFTER)))
        own.close()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorded = [r for r in results if r.serial is not None]
    assert len(recorded) == 1, results
    assert recorded[0].switched == {("number", "3588001234567"): ("office", "after-hours")}
    assert serial_of(scheduled) == first.serial + 1
    assert StoreReader(scheduled).schedule_moment() == at(AFTER)
    assert tick(writer, at(BEFORE)).serial is None  # a clock behind the moment records nothing
    writer.close()


def test_a_range_schedule_switches_its_wildcards(
    server_factory: ServerFactory, range_scheduled: Path, tmp_path: Path
) -> None:
    assert zt(range_scheduled, "schedule", "tick", fake_time=BEFORE).exit_code == 0
    old = serial_of(range_scheduled)
    switched = zt(range_scheduled, "schedule", "tick", fake_time=AFTER)
    assert "range +3588001: office -> after-hours" in switched.output, switched.output
    config = write_config(tmp_path, TRANSFERS)
    running = server_factory(range_scheduled, "--config", str(config))
    query = dns.message.make_query(APEX, "IXFR")
    query.authority.append(dns.rrset.from_text(APEX, 0, "IN", "SOA", f". . {old} 0 0 0 0"))
    response = dns.query.tcp(
        query, running.host, port=running.port, timeout=5, one_rr_per_rrset=True
    )
    body = response.answer[1:-1]
    assert body[0].rdtype == dns.rdatatype.SOA and body[0][0].serial == old  # incremental
    cut = next(i for i, r in enumerate(body) if i and r.rdtype == dns.rdatatype.SOA)
    deleted, added = body[1:cut], body[cut + 1 :]
    wildcards = {r.name.to_text() for r in added if r.name.is_wild()}
    assert "*.1.0.0.8.8.5.3.e164.arpa." in wildcards and len(wildcards) > 10
    assert {r.name.to_text() for r in deleted} == {r.name.to_text() for r in added}
    assert naptr_uris(added) == {EVENING}
    # the office set's tel: record, with a backreference at wildcards, spelled out at the
    # names inside the range that are numbers themselves (ancestors of ported numbers)
    tels = naptr_uris(deleted) - {OFFICE}
    assert "tel:\\1;npdi;rn=+35899907" in tels and "tel:+358800123;npdi;rn=+35899907" in tels
    assert all(t.startswith("tel:") and t.endswith(";npdi;rn=+35899907") for t in tels)
    # the whole zone at the new serial says the same
    zone = dns.zone.from_xfr(dns.query.xfr(running.host, APEX, port=running.port))
    wildcard = zone.find_rdataset("*.1.0.0.8.8.5.3.e164.arpa.", dns.rdatatype.NAPTR)
    assert {r.regexp.decode() for r in wildcard} == {f"!^.*$!{EVENING}!"}


def test_tick_records_nothing_without_schedules(writable_store: Path) -> None:
    before = serial_of(writable_store)
    result = zt(writable_store, "schedule", "tick", "--json", fake_time=BEFORE)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["serial"] is None
    assert serial_of(writable_store) == before


def test_tick_command_reports_the_switch_and_the_audit_keeps_it(scheduled: Path) -> None:
    result = zt(scheduled, "schedule", "tick", fake_time=BEFORE)
    assert result.exit_code == 0, result.output
    assert "(the first tick)" in result.output
    assert "next switch: 2026-03-27 16:00 EET (14:00 UTC)" in result.output
    result = zt(scheduled, "schedule", "tick", "--json", fake_time=AFTER)
    found = json.loads(result.output)
    assert found["switched"] == [{"target": NUMBER, "from": "office", "to": "after-hours"}]
    assert found["serial"] == serial_of(scheduled)
    assert found["moment"] == "2026-03-27T14:00:30+00:00"
    assert found["next_switch"] == "2026-03-28T08:00:00+00:00"  # Saturday 10:00 EET
    history = zt(scheduled, "history", "--limit", "1")
    assert "schedule tick" in history.output and "office -> after-hours" in history.output


# -- transfers ---------------------------------------------------------------------------------

TRANSFERS = """\
[[acl]]
id = "local"
address = ["127.0.0.0/8"]
action = ["transfer"]

[[zone]]
name = "*"
acl = ["local"]
"""


def naptr_uris(rrsets: list[dns.rrset.RRset]) -> set[str]:
    return {
        rdata.regexp.decode().split("!")[2]
        for rrset in rrsets
        if rrset.rdtype == dns.rdatatype.NAPTR
        for rdata in rrset
    }


def test_ixfr_of_a_switch_is_the_difference_at_the_number(
    server_factory: ServerFactory, scheduled: Path, tmp_path: Path
) -> None:
    assert zt(scheduled, "schedule", "tick", fake_time=BEFORE).exit_code == 0
    old = serial_of(scheduled)
    config = write_config(tmp_path, TRANSFERS + "\n[server]\nreload_interval = 0.1\n")
    running = server_factory(scheduled, "--config", str(config))
    zone = dns.zone.from_xfr(dns.query.xfr(running.host, APEX, port=running.port))
    naptrs = zone.find_rdataset(NAME, dns.rdatatype.NAPTR)
    assert {r.regexp.decode().split("!")[2] for r in naptrs} >= {OFFICE} and naptrs.ttl == 30
    assert zt(scheduled, "schedule", "tick", fake_time=AFTER).exit_code == 0
    wait_for_serial(running.host, running.port, APEX, old + 1)
    query = dns.message.make_query(APEX, "IXFR")
    query.authority.append(dns.rrset.from_text(APEX, 0, "IN", "SOA", f". . {old} 0 0 0 0"))
    response = dns.query.tcp(
        query, running.host, port=running.port, timeout=5, one_rr_per_rrset=True
    )
    soas = [r for r in response.answer if r.rdtype == dns.rdatatype.SOA]
    assert [r[0].serial for r in soas] == [old + 1, old, old + 1, old + 1]  # incremental
    body = response.answer[1:-1]
    cut = next(i for i, r in enumerate(body) if i and r.rdtype == dns.rdatatype.SOA)
    deleted, added = body[1:cut], body[cut + 1 :]
    assert {r.name.to_text() for r in deleted + added} == {NAME}
    assert naptr_uris(deleted) == {OFFICE, "tel:+3588001234567;npdi;rn=+35899907"}
    assert naptr_uris(added) == {EVENING}
    assert added[0].ttl == 300  # the next switch (Monday 08:00) is far
    zone = dns.zone.from_xfr(dns.query.xfr(running.host, APEX, port=running.port))
    assert {r.regexp.decode().split("!")[2] for r in zone.find_rdataset(NAME, "NAPTR")} == {EVENING}
    assert f"type=ixfr serial={old + 1} result=ok style=ixfr" in running.log.read_text()


# -- Knot as a real secondary -------------------------------------------------------------------


@pytest.fixture
def knot_pair(
    server_factory: ServerFactory, range_scheduled: Path, tmp_path: Path
) -> Iterator[tuple[RunningServer, Knot]]:
    scheduled = range_scheduled
    assert zt(scheduled, "schedule", "tick", fake_time=BEFORE).exit_code == 0
    knot_port = free_port()
    text = PRIMARY_CONFIG.replace("KEY", XFR_KEY).replace("SECRET", XFR_SECRET)
    config = write_config(tmp_path, text.replace("KNOT", str(knot_port)))
    ours = server_factory(scheduled, "--config", str(config), env={"ENUMSERVER_FAKE_TIME": BEFORE})
    knot = Knot(tmp_path, ours.port, knot_port)
    try:
        for apex in (APEX, REFERRAL):
            wait_for_serial("127.0.0.1", knot.port, apex, serial_of(scheduled), timeout=30)
        yield ours, knot
    finally:
        knot.stop()


def kdig(port: int, name: str) -> str:
    cmd = [tool("kdig"), "@127.0.0.1", "-p", str(port), "+norec", "+short", name, "NAPTR"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10).stdout


def test_knot_follows_a_switch_by_notify_and_ixfr(
    knot_pair: tuple[RunningServer, Knot], range_scheduled: Path
) -> None:
    scheduled = range_scheduled
    ours, knot = knot_pair
    assert OFFICE in kdig(knot.port, NAME)
    assert OFFICE in kdig(knot.port, NEIGHBOUR)  # the range's wildcard
    old = serial_of(scheduled)
    before = len(knot.log_text())
    result = zt(scheduled, "schedule", "tick", fake_time=AFTER)
    assert result.exit_code == 0 and "office -> after-hours" in result.output, result.output
    for apex in (APEX, REFERRAL):
        wait_for_serial("127.0.0.1", knot.port, apex, old + 1, timeout=20)
    log = knot.log_text()[before:]
    assert f"[{APEX}] notify, incoming, remote 127.0.0.1@" in log, log
    assert f"[{APEX}] IXFR, incoming" in log and "AXFR-style" not in log, log
    assert f"serial {old} -> {old + 1}" in log, log
    for name in (NAME, NEIGHBOUR):
        answer = kdig(knot.port, name)
        assert EVENING in answer and OFFICE not in answer, (name, answer)
    server_log = ours.log.read_text()
    assert f"notify peer=127.0.0.1:{knot.port} zone={APEX} serial={old + 1} result=ok" in server_log
    assert f"zone={APEX} type=ixfr serial={old + 1} result=ok style=ixfr" in server_log


# -- the ticker as a service ----------------------------------------------------------------------


def test_watch_ticks_at_start_and_again_after_a_publish(scheduled: Path, tmp_path: Path) -> None:
    env = {"ENUMSERVER_FAKE_TIME": BEFORE, "ENUM_STORE": str(scheduled)}
    process = subprocess.Popen(
        [sys.executable, "-m", "zonetools", "schedule", "tick", "--watch", "--json",
         "--poll", "0.1"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["first"] and first["next_switch"] == "2026-03-27T14:00:00+00:00"
        result = zt(scheduled, "schedule", "set", "+3588001234568", "--file", str(SCHEDULE),
                    "--window", "fri 15:00-15:59 office")  # fmt: skip
        assert result.exit_code == 0, result.output
        again = json.loads(process.stdout.readline())  # woken by the publish, re-read
        assert again["serial"] is None and again["next_switch"] == "2026-03-27T14:00:00+00:00"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
