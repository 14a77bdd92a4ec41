"""`zonetools number` explains a scheduled number: which schedule answers (its own, else its
range's), the set in force now and the next switches, in text and JSON; clock fixed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_service_numbers import NUMBER, SCHEDULE, zt

NOW = "2026-03-27T13:59:30Z"  # Friday 15:59:30 EET
NEIGHBOUR = "+3588001234568"  # the same range, no routes of its own


def test_number_shows_its_own_schedule_in_force_and_next_switches(writable_store: Path) -> None:
    assert zt(writable_store, "schedule", "set", NUMBER, "--file", str(SCHEDULE)).exit_code == 0
    result = zt(writable_store, "number", NUMBER, fake_time=NOW)
    assert result.exit_code == 0, result.output
    assert (
        "schedule: +3588001234567 (operator TY07, Europe/Helsinki)\n"
        "  in force now: office (2026-03-27 15:59 EET (13:59 UTC))\n"
        "  from 2026-03-27 16:00 EET (14:00 UTC): after-hours\n"
        "  from 2026-03-28 10:00 EET (08:00 UTC): office\n"
    ) in result.output
    found = json.loads(zt(writable_store, "number", NUMBER, "--json", fake_time=NOW).output)
    schedule = found["schedule"]
    assert schedule["target"] == NUMBER and schedule["ty"] == "TY07"
    assert schedule["in_force"] == "office"
    assert schedule["switches"][:2] == [
        {"at": "2026-03-27T14:00:00+00:00", "set": "after-hours"},
        {"at": "2026-03-28T08:00:00+00:00", "set": "office"},
    ]


def test_number_shows_the_range_schedule_unless_its_own_routes_win(writable_store: Path) -> None:
    result = zt(writable_store, "schedule", "set", "+3588001", "--range", "--file", str(SCHEDULE))
    assert result.exit_code == 0, result.output
    found = json.loads(zt(writable_store, "number", NEIGHBOUR, "--json", fake_time=NOW).output)
    assert found["schedule"]["target"] == "range +3588001"
    assert found["schedule"]["in_force"] == "office"
    christmas = "2026-12-24T10:00:00Z"
    later = json.loads(
        zt(writable_store, "number", NEIGHBOUR, "--json", fake_time=christmas).output
    )
    assert later["schedule"]["in_force"] == "closed"
    # 0800 123 4567 has routes of its own: they win over the range's schedule
    own = zt(writable_store, "number", NUMBER, fake_time=NOW)
    assert "schedule: none" in own.output and "routes: per-number" in own.output


def test_number_without_schedule_says_none(writable_store: Path) -> None:
    result = zt(writable_store, "number", "+358401234567", "--json")
    assert json.loads(result.output)["schedule"] is None
