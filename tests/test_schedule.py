"""Schedules evaluated with a fixed clock: windows, weekends, holidays, overnight windows and the
daylight saving changes of the last Sundays of March and October (Europe/Helsinki)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from enumserver.schedule import (
    ZONE,
    Schedule,
    ScheduleError,
    evaluate,
    in_force,
    parse,
    set_at,
    switches,
    to_dict,
)

UTC = dt.UTC


def records(user: str, ttl: int = 300) -> list[dict[str, Any]]:
    regexp = f"!^.*$!sip:{user}@cc.example.fi!"
    return [{"order": 10, "preference": 100, "service": "E2U+sip", "regexp": regexp, "ttl": ttl}]


def support(**extra: Any) -> Schedule:
    """Office hours mon-fri 08-16 and sat 10-14, holidays closed, otherwise after-hours."""
    document: dict[str, Any] = {
        "default": "after-hours",
        "route_sets": {
            "office": records("office"),
            "after-hours": records("evening"),
            "closed": records("closed", 3600),
        },
        "windows": [
            {"days": "mon-fri", "start": "08:00", "end": "16:00", "set": "office"},
            {"days": "sat", "start": "10:00", "end": "14:00", "set": "office"},
        ],
        "holidays": {"2026-12-24": "closed", "12-25": "closed", "12-26": "closed"},
    }
    document.update(extra)
    return parse(document, "TY07")


def local(y: int, m: int, d: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hour, minute, second, tzinfo=ZONE)


def utc(y: int, m: int, d: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hour, minute, second, tzinfo=UTC)


def test_office_window_answers_until_its_end() -> None:
    route_set, until = in_force(support(), local(2026, 3, 27, 10, 0))  # a Friday
    assert route_set.name == "office"
    assert route_set.routes[0].regexp == "!^.*$!sip:office@cc.example.fi!"
    assert until == utc(2026, 3, 27, 14, 0)  # 16:00 EET


def test_window_start_is_inclusive_and_end_exclusive() -> None:
    schedule = support()
    assert set_at(schedule, local(2026, 3, 27, 7, 59, 59)) == "after-hours"
    assert set_at(schedule, local(2026, 3, 27, 8, 0)) == "office"
    assert set_at(schedule, local(2026, 3, 27, 15, 59, 59)) == "office"
    assert set_at(schedule, local(2026, 3, 27, 16, 0)) == "after-hours"


def test_weekend_has_its_own_window_and_sunday_the_default() -> None:
    schedule = support()
    assert set_at(schedule, local(2026, 3, 28, 12, 0)) == "office"  # Saturday 10-14
    assert set_at(schedule, local(2026, 3, 28, 15, 0)) == "after-hours"
    assert set_at(schedule, local(2026, 3, 22, 12, 0)) == "after-hours"  # Sunday


def test_friday_evening_to_monday_across_the_spring_change() -> None:
    """Last Sunday of March 2026 (29th): 03:00 EET becomes 04:00 EEST at 01:00 UTC."""
    steps = switches(support(), local(2026, 3, 27, 17, 0), 3)
    assert [(dt.datetime.fromtimestamp(t, UTC), name) for t, name in steps[1:]] == [
        (utc(2026, 3, 28, 8, 0), "office"),  # Saturday 10:00 EET
        (utc(2026, 3, 28, 12, 0), "after-hours"),
        (utc(2026, 3, 30, 5, 0), "office"),  # Monday 08:00 EEST, one hour earlier in UTC
    ]
    assert steps[3][0] - steps[2][0] == 41 * 3600  # Saturday 14:00 to Monday 08:00: 41 hours


def test_saturday_to_monday_across_the_autumn_change() -> None:
    """Last Sunday of October 2026 (25th): 04:00 EEST becomes 03:00 EET at 01:00 UTC."""
    name, switch = evaluate(support(), local(2026, 10, 24, 14, 0))
    assert name == "after-hours"
    assert switch == utc(2026, 10, 26, 6, 0).timestamp()  # Monday 08:00 EET
    assert switch - local(2026, 10, 24, 14, 0).timestamp() == 43 * 3600


def test_sunday_night_window_on_both_change_days() -> None:
    schedule = support(windows=[{"days": "sun", "start": "02:00", "end": "05:00", "set": "closed"}])
    march = switches(schedule, utc(2026, 3, 28, 23, 0), 2)
    assert [dt.datetime.fromtimestamp(t, UTC) for t, _ in march[1:]] == [
        utc(2026, 3, 29, 0, 0),  # 02:00 EET
        utc(2026, 3, 29, 2, 0),  # 05:00 EEST: the window lasted two hours
    ]
    october = switches(schedule, utc(2026, 10, 24, 22, 0), 2)
    assert [dt.datetime.fromtimestamp(t, UTC) for t, _ in october[1:]] == [
        utc(2026, 10, 24, 23, 0),  # 02:00 EEST
        utc(2026, 10, 25, 3, 0),  # 05:00 EET: four hours
    ]


def test_boundary_in_the_skipped_spring_hour_takes_effect_at_the_jump() -> None:
    schedule = support(windows=[{"days": "sun", "start": "03:30", "end": "06:00", "set": "closed"}])
    name, switch = evaluate(schedule, utc(2026, 3, 29, 0, 59, 59))  # 02:59:59 EET
    assert name == "after-hours"
    assert switch == utc(2026, 3, 29, 1, 0).timestamp()  # the clock jumps to 04:00 EEST
    assert set_at(schedule, utc(2026, 3, 29, 1, 0)) == "closed"


def test_boundary_in_the_repeated_autumn_hour_follows_the_wall_clock() -> None:
    """03:30 happens twice on 25 October: the window opens, the clock goes back, it opens again."""
    schedule = support(windows=[{"days": "sun", "start": "03:30", "end": "06:00", "set": "closed"}])
    steps = switches(schedule, utc(2026, 10, 25, 0, 0), 4)
    assert [(dt.datetime.fromtimestamp(t, UTC), name) for t, name in steps[1:]] == [
        (utc(2026, 10, 25, 0, 30), "closed"),  # 03:30 EEST
        (utc(2026, 10, 25, 1, 0), "after-hours"),  # back to 03:00 EET
        (utc(2026, 10, 25, 1, 30), "closed"),  # 03:30 EET
        (utc(2026, 10, 25, 4, 0), "after-hours"),  # 06:00 EET
    ]


def test_holiday_wins_over_windows_for_the_whole_local_day() -> None:
    schedule = support()
    name, switch = evaluate(schedule, local(2026, 12, 23, 17, 0))
    assert (name, switch) == ("after-hours", local(2026, 12, 24, 0, 0).timestamp())
    assert set_at(schedule, local(2026, 12, 24, 10, 0)) == "closed"  # a Thursday
    name, switch = evaluate(schedule, local(2026, 12, 24, 10, 0))
    assert switch == local(2026, 12, 27, 0, 0).timestamp()  # 25th and 26th: every year


def test_yearly_holidays_come_back() -> None:
    schedule = support()
    assert set_at(schedule, local(2027, 12, 25, 12, 0)) == "closed"
    assert set_at(schedule, local(2027, 12, 24, 12, 0)) == "office"  # only 2026-12-24


def test_overnight_window_runs_past_midnight() -> None:
    schedule = support(windows=[{"days": "fri", "start": "22:00", "end": "06:00", "set": "closed"}])
    assert set_at(schedule, local(2026, 3, 27, 23, 0)) == "closed"
    name, switch = evaluate(schedule, local(2026, 3, 28, 5, 0))  # Saturday morning
    assert (name, switch) == ("closed", local(2026, 3, 28, 6, 0).timestamp())
    assert set_at(schedule, local(2026, 3, 27, 5, 0)) == "after-hours"  # Friday morning


def test_first_matching_window_wins() -> None:
    schedule = support(
        windows=[
            {"days": "mon", "start": "12:00", "end": "13:00", "set": "closed"},
            {"days": "mon-fri", "start": "08:00", "end": "16:00", "set": "office"},
        ]
    )
    assert set_at(schedule, local(2026, 3, 30, 12, 30)) == "closed"
    assert set_at(schedule, local(2026, 3, 31, 12, 30)) == "office"


def test_no_switch_ahead_and_a_far_holiday() -> None:
    constant = parse({"default": "a", "route_sets": {"a": records("a")}})
    assert evaluate(constant, 0.0) == ("a", None)
    route_set, until = in_force(constant, utc(2026, 1, 1))
    assert route_set.name == "a" and until is None
    far = parse(
        {"default": "a", "route_sets": {"a": records("a"), "b": records("b")},
         "holidays": {"2030-01-01": "b"}}
    )  # fmt: skip
    assert evaluate(far, utc(2026, 6, 1)) == ("a", local(2030, 1, 1).timestamp())


def test_evaluation_is_the_same_in_any_order() -> None:
    """Results are remembered between switches; asking out of order gives the same answers."""
    schedule = support()
    moments = [local(2026, 3, 27, 15, 0), local(2026, 3, 27, 9, 0), local(2026, 3, 27, 17, 0)]
    expected = [evaluate(support(), moment) for moment in moments]
    assert [evaluate(schedule, moment) for moment in moments] == expected
    assert [evaluate(schedule, moment) for moment in reversed(moments)] == expected[::-1]


def test_document_round_trip_is_canonical() -> None:
    schedule = support(
        windows=[{"days": ["sat", "sun"], "start": "22:00", "end": "24:00", "set": "office"}]
    )
    document = to_dict(schedule)
    assert document["windows"] == [
        {"days": "sat-sun", "start": "22:00", "end": "24:00", "set": "office"}
    ]
    assert document["holidays"] == {"2026-12-24": "closed", "12-25": "closed", "12-26": "closed"}
    assert parse(document, "TY07") == schedule


@pytest.mark.parametrize(
    ("days", "expected"),
    [("mon-fri", {0, 1, 2, 3, 4}), ("weekend", {5, 6}), ("fri-mon", {4, 5, 6, 0}),
     ("daily", set(range(7))), ("Tue, thu", {1, 3})],
)  # fmt: skip
def test_day_specifications(days: str, expected: set[int]) -> None:
    window = {"days": days, "start": "08:00", "end": "09:00", "set": "office"}
    assert support(windows=[window]).windows[0].days == expected


def test_every_reason_is_given_at_once() -> None:
    with pytest.raises(ScheduleError) as refused:
        parse(
            {
                "default": "nights",
                "route_sets": {"office": records("office"), "empty": []},
                "windows": [
                    {"days": "mon-fry", "start": "08:00", "end": "16:00", "set": "office"},
                    {"days": "sat", "start": 600, "end": "10:00", "set": "lunch"},
                    {"days": "sun", "start": "09:00", "end": "09:00", "set": "office"},
                ],
                "holidays": {"2026-02-30": "office", "12-24": "closed"},
                "timezone": "Europe/Stockholm",
            }
        )
    text = str(refused.value)
    for reason in (
        "unknown field(s) ['timezone']",
        "route set 'empty'",
        "default: no route set 'nights'",
        "window 1: days 'mon-fry'",
        "window 2: start 600: write the time in quotes, '10:00'",
        "window 2: set 'lunch' is not a route set",
        "window 3: start and end are the same time",
        "holiday '2026-02-30' must be a date",
        "holiday 12-24: 'closed' is not a route set",
    ):
        assert reason in text, (reason, text)
