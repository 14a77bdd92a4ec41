"""`zonetools stats`: who called a service number, when and from where, with a terminal chart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from enumserver.numbers import classify
from enumserver.schedule import ZONE
from enumserver.store.stats import StatsReader, stats_path
from zonetools import rules
from zonetools.cli.output import emit_json, fail, json_option
from zonetools.schedules import now

SPARKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 40
NETWORKS_SHOWN = 10


def _when(text: str, option: str) -> dt.datetime:
    """A date (local midnight) or an ISO 8601 time; Helsinki time unless it names a zone."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        message = f"{text!r} is not a date or ISO 8601 time"
        raise click.BadParameter(message, param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZONE)


def period(start: str | None, end: str | None, days: int) -> tuple[dt.datetime, dt.datetime]:
    """The period asked for: --from/--to, either one plus the span, or the span up to now."""
    span = dt.timedelta(days=days)
    if start and end:
        return _when(start, "--from"), _when(end, "--to")
    if start:
        return _when(start, "--from"), _when(start, "--from") + span
    if end:
        return _when(end, "--to") - span, _when(end, "--to")
    hour = dt.datetime.fromtimestamp(now(), ZONE).replace(minute=0, second=0, microsecond=0)
    return hour + dt.timedelta(hours=1) - span, hour + dt.timedelta(hours=1)


def buckets(
    hours: list[tuple[Any, int]], start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, int]]:
    """Counts per local hour (periods up to two days) or per local day, zeros included."""
    hourly = end - start <= dt.timedelta(days=2)
    counts: dict[dt.datetime, int] = {}
    for hour, count in hours:
        local = dt.datetime.fromtimestamp(int(hour), ZONE)
        key = local if hourly else local.replace(hour=0, minute=0)
        counts[key] = counts.get(key, 0) + count
    out, step = [], start.astimezone(ZONE).replace(minute=0, second=0, microsecond=0)
    if not hourly:
        step = step.replace(hour=0)
    while step < end:
        out.append((step, counts.get(step, 0)))
        if hourly:  # in UTC: the spring day has 23 hours, the autumn day 25
            step = (step.astimezone(dt.UTC) + dt.timedelta(hours=1)).astimezone(ZONE)
        else:
            step = step + dt.timedelta(days=1)  # wall-clock arithmetic: the next midnight
    return out


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return SPARKS[1] * len(values)
    return "".join(SPARKS[max(1, round(v / top * (len(SPARKS) - 1)))] for v in values)


def _chart(series: list[tuple[dt.datetime, int]], hourly: bool) -> None:
    click.echo(sparkline([count for _, count in series]))
    top = max((count for _, count in series), default=0) or 1
    for start, count in series:
        label = f"{start:%a %d.%m. %H:%M}" if hourly else f"{start:%a %Y-%m-%d}"
        bar = "█" * round(count / top * BAR_WIDTH) if count else ""
        click.echo(f"{label}  {bar}{' ' if bar else ''}{count}")


@click.command("stats")
@click.argument("number", required=False)
@click.option("--operator", "ty", help="All counted numbers an operator serves.")
@click.option("--from", "start", help="Start: a date or time (Helsinki time unless Z).")
@click.option("--to", "end", help="End (excluded); default: --from plus --days, or now.")
@click.option("--days", type=int, default=1, show_default=True, help="Length: 1 or 7, say.")
@click.option("--stats", "stats_file", help="Stats file (default: <store>.stats.sqlite).")
@json_option
@click.pass_context
def stats(
    ctx: click.Context,
    number: str | None,
    ty: str | None,
    start: str | None,
    end: str | None,
    days: int,
    stats_file: str | None,
    as_json: bool,
) -> None:
    """Who called, when: queries answered for a service or scheduled number (or all an
    operator serves) per hour (per day beyond two days) and per client network.

    Example: zonetools stats +3588001234567 --from 2026-03-23 --days 7
    """
    if (number is None) == (ty is None):
        fail("give a NUMBER or --operator TY")
    digits = None
    if number is not None:
        try:
            digits = rules.number(number)
        except rules.RuleError as exc:
            fail(str(exc))
    first, last = period(start, end, days)
    path = Path(stats_file) if stats_file else stats_path(ctx.obj["store"])
    try:
        reader = StatsReader(path)
    except FileNotFoundError as exc:
        fail(str(exc))
        return
    span = (first.timestamp(), last.timestamp())
    try:
        hours = reader.totals("hour", digits, ty, *span)
        networks = reader.totals("network", digits, ty, *span)
        per_number = reader.totals("number", digits, ty, *span) if ty else []
    finally:
        reader.close()
    series = buckets(hours, first, last)
    hourly = last - first <= dt.timedelta(days=2)
    what = f"+{digits} ({classify(digits).kind})" if digits else f"operator {ty}"
    total = sum(count for _, count in series)
    if as_json:
        emit_json(
            {
                "target": what,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "total": total,
                "per": "hour" if hourly else "day",
                "counts": [{"start": s.isoformat(), "count": c} for s, c in series],
                "networks": [{"network": n, "count": c} for n, c in networks],
                "numbers": [{"number": f"+{n}", "count": c} for n, c in per_number],
            }
        )
        return
    click.echo(f"{what}: {total} queries, {first:%Y-%m-%d %H:%M} - {last:%Y-%m-%d %H:%M %Z}")
    _chart(series, hourly)
    for title, rows, prefix in (("networks", networks, ""), ("numbers", per_number, "+")):
        if rows:
            click.echo(f"{title}:")
            for name, count in rows[:NETWORKS_SHOWN]:
                click.echo(f"  {prefix}{name:<24} {count}")


COMMANDS = [stats]
