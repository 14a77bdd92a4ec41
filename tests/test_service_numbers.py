"""Service numbers: the numbering plan's kinds, and schedules answered by a running server whose
clock is fixed (ENUMSERVER_FAKE_TIME): windows, weekends, holidays, the daylight saving changes
and TTLs that never reach past the next switch; published with `zonetools schedule`."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest
from click.testing import CliRunner, Result

from enumserver.engine import Engine
from enumserver.numbers import KINDS, PLAN, classify, is_service, kind_of, plan_entry
from enumserver.resolve import NAPTR, View, resolve, zones_by_apex
from enumserver.store import StoreReader
from tests.conftest import ROOT, RunningServer, ServerFactory, build_demo_store, dig
from zonetools.cli import main as zonetools

NUMBER = "+3588001234567"  # 0800 123 4567: TY07's free number with routes of its own
NAME = "7.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."
SCHEDULE = ROOT / "examples" / "service-numbers" / "support-hours.yaml"
OFFICE = "sip:support@cc.op07.example.fi"
EVENING = "sip:evening@desk.op07.example.fi"
CLOSED = "sip:closed-message@ivr.op07.example.fi"
OWN_ROUTE = "sip:asiakaspalvelu@contact.op07.example.fi"


def zt(store: Path, *args: str, fake_time: str | None = None) -> Result:
    env = {"ENUMSERVER_FAKE_TIME": fake_time} if fake_time else None
    return CliRunner().invoke(zonetools, ["--store", str(store), "--who", "tester", *args], env=env)


@pytest.fixture(scope="module")
def scheduled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store with the example schedule on 0800 123 4567 (tests must not write)."""
    store = build_demo_store(tmp_path_factory.mktemp("scheduled") / "store.sqlite")
    result = zt(store, "schedule", "set", NUMBER, "--file", str(SCHEDULE), "-m", "hours")
    assert result.exit_code == 0, result.output
    return store


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the numbering plan ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("national", "kind", "block"),
    [
        ("0401234567", "mobile", "040"),
        ("091234567", "geographic", "09"),
        ("08001234567", "free", "0800"),
        ("06001234567", "premium-errands", "0600"),
        ("06061234567", "premium-errands", "0606"),
        ("07071234567", "premium-entertainment", "0707"),
        ("07081234567", "premium-entertainment", "0708"),
        ("01001234", "non-profit", "0100"),
        ("0100100123", "directory", "0100100"),
        ("02001234", "non-profit", "0200"),
        ("0202021234", "directory", "02020"),
        ("0202212345", "non-profit", "02022"),
        ("0209812345", "errands", "02098"),
        ("0201234567", "business", "0201"),
        ("0291234567", "business", "029"),
        ("0301234567", "business", "0301"),
        ("03001234", "non-profit", "0300"),
        ("0712345678", "business", "071"),
        ("0751001234", "directory", "0751"),
        ("0750011234", "non-profit", "075001"),
        ("0753221234", "errands", "075322"),
        ("0759831234", "business", "075983"),
    ],
)
def test_kind_of_every_block(national: str, kind: str, block: str) -> None:
    digits = "358" + national[1:]
    found = classify(digits)
    assert (kind_of(digits), found.kind, found.block) == (kind, kind, block)
    assert found.service == is_service(digits) == (kind not in ("mobile", "geographic"))
    assert classify("358" + national[1:]).description == KINDS[kind][1]


def test_price_groups_of_the_payment_service_blocks() -> None:
    assert classify("3586061234567").group == "payment services (0606)"
    assert classify("3586001234567").group == ""


def test_long_blocks_keep_the_lengths_of_their_three_digit_parent() -> None:
    """The length check looks at three digits only (zonetools.rules.nsn_lengths)."""
    for entry in PLAN:
        if len(entry.prefix) > 3:
            parent = plan_entry("358" + entry.prefix[:3])
            assert parent is not None
            assert (entry.min_nsn, entry.max_nsn) == (parent.min_nsn, parent.max_nsn), entry
    assert {entry.kind for entry in PLAN} | {"unknown"} == set(KINDS)


# -- resolution with a fixed clock (pure) ---------------------------------------------------


@pytest.fixture(scope="module")
def view(scheduled_store: Path) -> Iterator[View]:
    reader = StoreReader(scheduled_store)
    snapshot = reader.snapshot()
    yield View(zones_by_apex([snapshot.zones["tier1"]]), snapshot, reader)
    reader.close()


def labels(name: str) -> list[str]:
    return name.rstrip(".").split(".")


def test_resolution_answers_the_set_in_force_with_ttls_capped(view: View) -> None:
    friday = resolve(labels(NAME), NAPTR, view, at("2026-03-27T08:00:00Z"))
    assert OFFICE in friday.answer[0].rdata.regexp  # type: ignore[union-attr]
    assert [r.ttl for r in friday.answer] == [300, 300]
    assert friday.expires == at("2026-03-27T14:00:00Z") - 300
    assert friday.counted == ("3588001234567", "TY07")
    last = resolve(labels(NAME), NAPTR, view, at("2026-03-27T13:59:30Z"))
    assert [r.ttl for r in last.answer] == [30, 30] and last.expires == at("2026-03-27T13:59:30Z")
    late = resolve(labels(NAME), NAPTR, view, at("2026-03-27T13:59:59.5Z"))
    assert [r.ttl for r in late.answer] == [1, 1]  # at least 1


def test_unscheduled_answers_do_not_expire_and_mobiles_are_not_counted(view: View) -> None:
    mobile = resolve(labels("7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."), NAPTR, view, 0.0)
    assert mobile.answer and mobile.expires is None and mobile.counted is None
    free = resolve(labels("8.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."), NAPTR, view, 0.0)
    assert free.answer and free.expires is None and free.counted == ("3588001234568", "TY07")


def test_engine_keeps_scheduled_answers_out_of_the_response_cache(scheduled_store: Path) -> None:
    engine = Engine(scheduled_store, ["tier1"])
    now = at("2026-03-27T13:59:00Z")
    engine.clock = lambda: now
    query = dns.message.make_query(NAME, "NAPTR").to_wire()
    first = dns.message.from_wire(engine.handle(query, peer=("192.0.2.1", 5000)))  # type: ignore[arg-type]
    assert first.answer[0].ttl == 60 and OFFICE in first.answer[0].to_text()
    assert not engine.udp_cache and len(engine.bodies) == 1
    engine.handle(query, peer=("192.0.2.1", 5000))
    assert engine.counters.section_hits == 0  # expiry reached at once: TTLs are capped
    now = at("2026-03-27T14:00:00Z")
    after = dns.message.from_wire(engine.handle(query, peer=("192.0.2.1", 5000)))  # type: ignore[arg-type]
    assert EVENING in after.answer[0].to_text() and after.answer[0].ttl == 300
    engine.handle(query, peer=("192.0.2.1", 5000))
    assert engine.counters.section_hits == 1 and not engine.udp_cache
    hour = int(at("2026-03-27T13:00:00Z"))
    assert engine.tally.counts[(hour, "3588001234567", "192.0.2.0/24", "TY07")] == 2
    mobile = dns.message.make_query("7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa.", "NAPTR").to_wire()
    engine.handle(mobile)
    assert len(engine.udp_cache) == 1  # everything else takes the fast path as before


# -- a running server with a fixed clock ----------------------------------------------------

MOMENTS = [
    # (ENUMSERVER_FAKE_TIME, the URI answered, its TTL)
    ("2026-03-27T08:00:00Z", OFFICE, 300),  # Friday 10:00 EET: office hours
    ("2026-03-27T13:59:30Z", OFFICE, 30),  # 30 s before the 16:00 switch
    ("2026-03-27T15:00:00Z", EVENING, 300),  # Friday 17:00: after hours
    ("2026-03-28T10:00:00Z", OFFICE, 300),  # Saturday 12:00: the weekend window
    ("2026-03-29T09:00:00Z", EVENING, 300),  # Sunday: no window
    ("2026-03-30T04:59:50Z", EVENING, 10),  # Monday 07:59:50 EEST: summer time began Sunday
    ("2026-10-26T05:59:50Z", EVENING, 10),  # Monday 07:59:50 EET: summer time ended Sunday
    ("2026-12-23T21:59:00Z", EVENING, 60),  # 23:59 before Christmas Eve
    ("2026-12-24T10:00:00Z", CLOSED, 3600),  # Christmas Eve: the holiday set all day
]


@pytest.mark.parametrize(("fake_time", "uri", "ttl"), MOMENTS)
def test_server_answers_the_set_in_force(
    server_factory: ServerFactory, scheduled_store: Path, fake_time: str, uri: str, ttl: int
) -> None:
    running = server_factory(scheduled_store, env={"ENUMSERVER_FAKE_TIME": fake_time})
    for _ in range(2):  # the second answer comes from the sections cache, or not: the same
        response = running.query(NAME)
        assert len(response.answer) == 1 and uri in response.answer[0].to_text()
        assert response.answer[0].ttl == ttl


def test_dig_sees_the_capped_ttl_over_udp_and_tcp(
    server_factory: ServerFactory, scheduled_store: Path
) -> None:
    running = server_factory(scheduled_store, env={"ENUMSERVER_FAKE_TIME": "2026-03-27T13:59:30Z"})
    for transport in ("+notcp", "+tcp"):
        answer = dig(running, NAME, "NAPTR", transport)
        assert answer.status == "NOERROR" and "aa" in answer.flags
        assert answer.answer[0].startswith(f"{NAME} 30 IN NAPTR 10 100")
        assert OFFICE in answer.answer[0] and "rn=+35899907" in answer.answer[1]


# -- publishing -----------------------------------------------------------------------------


def wait_for(server: RunningServer, name: str, text: str, within: float = 1.5) -> None:
    deadline = time.monotonic() + within
    while not any(text in rrset.to_text() for rrset in server.query(name).answer):
        assert time.monotonic() < deadline, f"{text!r} not served within {within} s"
        time.sleep(0.05)


def test_schedule_set_show_and_remove_are_served(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store, env={"ENUMSERVER_FAKE_TIME": "2026-03-27T15:00:00Z"})
    planned = zt(writable_store, "schedule", "set", NUMBER, "--file", str(SCHEDULE), "--plan")
    assert planned.exit_code == 0, planned.output
    assert "+ schedule +3588001234567" in planned.output and "in force now:" in planned.output
    assert "otherwise: after-hours" in planned.output and "plan checksum" in planned.output
    assert OWN_ROUTE in running.query(NAME).answer[0].to_text()  # the plan wrote nothing
    applied = zt(writable_store, "schedule", "set", NUMBER, "--file", str(SCHEDULE), "-m", "hours")
    assert applied.exit_code == 0 and "applied at serial 2" in applied.output
    wait_for(running, NAME, EVENING)
    shown = zt(writable_store, "schedule", "show", NUMBER, "--at", "2026-12-24T12:00")
    assert "in force now: closed (2026-12-24 12:00 EET (10:00 UTC))" in shown.output
    assert "from 2026-12-27 00:00 EET (22:00 UTC): after-hours" in shown.output
    listed = json.loads(zt(writable_store, "schedule", "list", "--json").output)
    assert [(row["target"], row["ty"]) for row in listed] == [("3588001234567", "TY07")]
    history = zt(writable_store, "history", "--limit", "1", "--changes").output
    assert "schedules" in history and "hours" in history
    assert zt(writable_store, "schedule", "remove", NUMBER).exit_code == 0
    wait_for(running, NAME, OWN_ROUTE)


def test_options_instead_of_a_file(writable_store: Path) -> None:
    result = zt(
        writable_store, "schedule", "set", "+358501234567",
        "--set", 'day=10 100 "u" "E2U+sip" "!^.*$!sip:day@pbx.op05.example.fi!" .',
        "--set", 'night=10 100 "u" "E2U+sip" "!^.*$!sip:night@pbx.op05.example.fi!" .',
        "--window", "mon-fri 07:00-19:00 day", "--holiday", "12-24 night", "--default", "night",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["applied"] and plan["changes"][0]["key"] == "+358501234567"
    assert "mon-fri 07:00-19:00: day" in plan["changes"][0]["new"]


def test_range_schedule_covers_numbers_without_routes_of_their_own(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store, env={"ENUMSERVER_FAKE_TIME": "2026-03-27T08:00:00Z"})
    result = zt(writable_store, "schedule", "set", "+3588001", "--range", "--file", str(SCHEDULE))
    assert result.exit_code == 0, result.output
    other = "8.6.5.4.3.2.1.0.0.8.8.5.3.e164.arpa."  # +3588001234568: templates until now
    wait_for(running, other, "sip:support@cc.op07.example.fi")
    assert "tel:+3588001234568;npdi;rn=+35899907" in running.query(other).answer[0].to_text()
    assert OWN_ROUTE in running.query(NAME).answer[0].to_text()  # its own routes win
    assert zt(writable_store, "port", "add", "+3588001234568", "--to", "TY09").exit_code == 0
    wait_for(running, other, "ims.op09.example.fi")  # ported out: TY07's schedule is not TY09's


def test_change_set_file_plan_and_apply_with_checksum(writable_store: Path, tmp_path: Path) -> None:
    body = SCHEDULE.read_text().replace("\n", "\n    ")
    changes = tmp_path / "hours.yaml"
    changes.write_text(
        f"message: support hours\nchanges:\n  - set: schedule\n    number: '{NUMBER}'\n    {body}"
    )
    plan = zt(writable_store, "plan", str(changes), "--json", fake_time="2026-03-27T08:00:00Z")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.output)
    assert "in force now: office (2026-03-27 10:00 EET (08:00 UTC))" in planned["changes"][0]["new"]
    assert "from 2026-03-27 16:00 EET (14:00 UTC): after-hours" in planned["changes"][0]["new"]
    later = zt(writable_store, "plan", str(changes), "--json", fake_time="2026-03-27T15:00:00Z")
    again = json.loads(later.output)  # another "now", the same checksum: it is the clock's
    assert (
        "in force now: after-hours (2026-03-27 17:00 EET (15:00 UTC))" in again["changes"][0]["new"]
    )
    assert again["checksum"] == planned["checksum"]
    applied = zt(writable_store, "apply", str(changes), "--checksum", planned["checksum"])
    assert applied.exit_code == 0, applied.output


def test_refusals_name_every_reason_and_write_nothing(writable_store: Path, tmp_path: Path) -> None:
    document = tmp_path / "bad.yaml"
    document.write_text(
        "default: closed\n"
        "route_sets:\n"
        "  office:\n"
        "    - {order: 10, preference: 100, service: SIP, regexp: '!^.*$!sip:a@b.example.fi!'}\n"
        "windows:\n"
        "  - {days: mon-fri, start: 08:00, end: 16:00, set: office}\n"
    )
    result = zt(writable_store, "schedule", "set", NUMBER, "--file", str(document), "--ty", "TY01")
    assert result.exit_code == 2  # --ty is no option: usage error
    result = zt(writable_store, "schedule", "set", NUMBER, "--file", str(document))
    assert result.exit_code == 1
    for reason in (
        "route set 'office': record 1: service 'SIP' must be E2U+type",
        "default: no route set 'closed'",
        "window 1: end 960: write the time in quotes, '16:00'",
    ):
        assert reason in result.output, result.output
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"changes:\n  - set: schedule\n    number: '{NUMBER}'\n    ty: TY01\n")
    refused = zt(writable_store, "apply", str(wrong))
    assert refused.exit_code == 1 and "is served by TY07, not TY01" in refused.output
    assert zt(writable_store, "schedule", "list").output.strip() == "(none)"
