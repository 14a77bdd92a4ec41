"""Schedule commands: set, show, list, remove (routing of a number by time of day), tick."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
import yaml

from enumserver import ticks
from enumserver.schedule import ZONE, evaluate, local_text, parse, switches
from enumserver.ticks import Tick, next_wake, tick
from zonetools import rules
from zonetools.changes import ChangeSet, Op
from zonetools.cli.numbers import _naptr_records
from zonetools.cli.output import (
    catalog,
    emit_json,
    fail,
    json_option,
    message_option,
    run,
    writer,
)
from zonetools.schedules import describe, key_of, now, timeline

range_option = click.option(
    "--range", "is_range", is_flag=True, help="TARGET is a range prefix the operator holds."
)


def _target(target: str, is_range: bool) -> tuple[str, str]:
    try:
        return ("range", rules.prefix(target)) if is_range else ("number", rules.number(target))
    except rules.RuleError as exc:
        fail(str(exc))
        raise


def _load(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path}: a schedule is a mapping of default, route_sets, windows, holidays")
    return dict(data)


def _pair(text: str, option: str) -> tuple[str, str]:
    first, _, rest = text.strip().partition(" ")
    if not rest.strip():
        raise click.BadParameter(f"{text!r}: expected two parts", param_hint=option)
    return first, rest.strip()


def _document(
    file: str | None,
    default: str | None,
    sets: tuple[str, ...],
    windows: tuple[str, ...],
    holidays: tuple[str, ...],
    ttl: int,
) -> dict[str, Any]:
    """The schedule document of a file, with the options added to it."""
    fields = _load(file) if file else {}
    if default:
        fields["default"] = default
    route_sets = dict(fields.get("route_sets") or {})
    for text in sets:
        name, _, naptr = text.partition("=")
        if not naptr:
            raise click.BadParameter(f"{text!r}: NAME=NAPTR", param_hint="--set")
        route_sets.setdefault(name.strip(), [])
        route_sets[name.strip()] = [*route_sets[name.strip()], *_naptr_records((naptr,), ttl)]
    if route_sets:
        fields["route_sets"] = route_sets
    for text in windows:  # 'mon-fri 08:00-16:00 office'
        parts = text.split()
        start, _, end = parts[1].partition("-") if len(parts) == 3 else ("", "", "")
        if not end:
            raise click.BadParameter(f"{text!r}: 'DAYS HH:MM-HH:MM SET'", param_hint="--window")
        window = {"days": parts[0], "start": start, "end": end, "set": parts[2]}
        fields["windows"] = [*(fields.get("windows") or []), window]
    for text in holidays:  # '2026-12-24 closed'
        day, name = _pair(text, "--holiday")
        fields["holidays"] = {**(fields.get("holidays") or {}), day: name}
    return fields


@click.group()
def schedule() -> None:
    """Route a number (or a range) by time of day: windows, holidays, a default set."""


@schedule.command("set")
@click.argument("target")
@range_option
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), help="YAML/JSON.")
@click.option("--default", help="Route set outside every window.")
@click.option("--set", "sets", multiple=True, help="A record of a set: NAME=NAPTR; repeat.")
@click.option("--window", "windows", multiple=True, help="'DAYS HH:MM-HH:MM SET'; repeat.")
@click.option("--holiday", "holidays", multiple=True, help="'YYYY-MM-DD SET' or 'MM-DD SET'.")
@click.option("--ttl", type=int, default=300, show_default=True, help="TTL of --set records.")
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change; write nothing.")
@message_option
@json_option
@click.pass_context
def schedule_set(
    ctx: click.Context,
    target: str,
    is_range: bool,
    file: str | None,
    default: str | None,
    sets: tuple[str, ...],
    windows: tuple[str, ...],
    holidays: tuple[str, ...],
    ttl: int,
    plan_only: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Set the schedule of a number (or a range): the plan shows what answers now and at
    each next switch.

    Example: zonetools schedule set +3588001234567 --file support-hours.yaml -m "office hours"
    """
    scope, digits = _target(target, is_range)
    fields = _document(file, default, sets, windows, holidays, ttl)
    fields[scope] = f"+{digits}"
    op = Op("set", "schedule", fields, file or "command line")
    run(ctx, ChangeSet([op], message=message), "schedule set", apply=not plan_only, as_json=as_json)


def _moment(text: str | None) -> float:
    """Epoch of --at: ISO 8601; without a zone, Helsinki time. Default: now."""
    if not text:
        return now()
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not ISO 8601", param_hint="--at") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZONE)).timestamp()


@schedule.command("show")
@click.argument("target")
@range_option
@click.option("--at", "at", help="Show it at this moment (ISO 8601; Helsinki time unless Z).")
@click.option("--switches", "count", type=int, default=4, show_default=True)
@json_option
@click.pass_context
def schedule_show(
    ctx: click.Context, target: str, is_range: bool, at: str | None, count: int, as_json: bool
) -> None:
    """Show a schedule, the route set in force and the next switches.

    Example: zonetools schedule show +3588001234567 --at 2026-12-24T12:00
    """
    scope, digits = _target(target, is_range)
    rows = [r for r in catalog(ctx).schedules() if (r["scope"], r["target"]) == (scope, digits)]
    if not rows:
        fail(f"{key_of(scope, digits)} has no schedule")
    row, moment = rows[0], _moment(at)
    found = parse(row["body"], row["ty"])
    if as_json:
        steps = switches(found, moment, count)
        emit_json(
            {
                "target": key_of(scope, digits),
                "ty": row["ty"],
                "schedule": row["body"],
                "in_force": evaluate(found, moment)[0],
                "switches": [
                    {"at": dt.datetime.fromtimestamp(t, dt.UTC).isoformat(), "set": name}
                    for t, name in steps[1:]
                ],
            }
        )
        return
    click.echo(f"schedule of {key_of(scope, digits)} (operator {row['ty']}, Europe/Helsinki):")
    for line in [*describe(found), *timeline(found, moment, count)]:
        click.echo(f"  {line}")


@schedule.command("list")
@click.option("--operator", "ty", help="Only this operator's schedules.")
@json_option
@click.pass_context
def schedule_list(ctx: click.Context, ty: str | None, as_json: bool) -> None:
    """List schedules with the route set in force now.

    Example: zonetools schedule list --operator TY07
    """
    rows = catalog(ctx).schedules(ty)
    moment = now()
    for row in rows:
        name, switch = evaluate(parse(row["body"], row["ty"]), moment)
        row["in_force"] = name
        row["until"] = None if switch is None else local_text(switch)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("(none)")
    for row in rows:
        until = f" until {row['until']}" if row["until"] else ""
        target = key_of(row["scope"], row["target"])
        click.echo(f"{target}  {row['ty']}  now {row['in_force']}{until}")


@schedule.command("remove")
@click.argument("target")
@range_option
@message_option
@json_option
@click.pass_context
def schedule_remove(
    ctx: click.Context, target: str, is_range: bool, message: str | None, as_json: bool
) -> None:
    """Remove a schedule: the number answers its routes (or templates) again.

    Example: zonetools schedule remove +3588001234567 -m "no more office hours"
    """
    scope, digits = _target(target, is_range)
    op = Op("remove", "schedule", {scope: f"+{digits}"}, "command line")
    run(ctx, ChangeSet([op], message=message), "schedule remove", as_json=as_json)


def _tick_lines(done: Tick, wake: float | None) -> list[str]:
    """A tick as lines: the serial and the switches it recorded, or why nothing was."""
    if done.serial is None:
        moment = "none yet" if done.moment is None else local_text(done.moment)
        lines = [f"nothing to record (schedule moment: {moment})"]
    elif done.first:
        lines = [f"serial {done.serial}: transfers follow schedules as of now (the first tick)"]
    else:
        lines = [f"serial {done.serial}: switches as of {local_text(done.moment or 0)}"]
        lines += [f"  {key_of(*key)}: {old} -> {new}" for key, (old, new) in done.switched.items()]
    if wake is not None:
        lines.append(f"next switch: {local_text(wake)}")
    return lines


def _tick_json(done: Tick, wake: float | None) -> dict[str, Any]:
    def iso(moment: float | None) -> str | None:
        return None if moment is None else dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()

    return {
        "serial": done.serial,
        "first": done.first,
        "moment": iso(done.moment),
        "switched": [
            {"target": key_of(*key), "from": old, "to": new}
            for key, (old, new) in done.switched.items()
        ],
        "next_switch": iso(wake),
    }


@schedule.command("tick")
@click.option("--watch", is_flag=True, help="Keep running: tick at every switch (a service).")
@click.option("--poll", type=float, default=1.0, show_default=True,
              help="With --watch: seconds between looks for publishes.")  # fmt: skip
@json_option
@click.pass_context
def schedule_tick(ctx: click.Context, watch: bool, poll: float, as_json: bool) -> None:
    """Record the schedule switches due since the last tick under a new serial, so standard
    secondaries get a NOTIFY and transfer the route sets in force (nothing when none switched).

    With --watch, tick, then sleep until the next switch of any schedule (waking early after a
    publish), and tick again, until SIGTERM: run it as a service (examples/systemd/).

    Example: zonetools schedule tick --watch
    """
    store = writer(ctx)
    path, who = store.path, ctx.obj["who"]

    def report(done: Tick, wake: float | None) -> None:
        text = json.dumps(_tick_json(done, wake), sort_keys=True) if as_json else None
        click.echo(text or "\n".join(_tick_lines(done, wake)))
        sys.stdout.flush()

    if not watch:
        try:
            done = tick(store, now(), who)
        finally:
            store.close()
        report(done, next_wake(path, now()))
        return
    store.close()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        ticks.watch(path, now, report, poll, stopping.is_set, who)


COMMANDS = [schedule]
