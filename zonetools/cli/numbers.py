"""Number commands: port (one and bulk), route (per number and templates), number (explain)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import dns.exception
import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from enumserver.engine import Engine
from enumserver.numbers import kind_of, to_name
from enumserver.resolve import NumberView, View, zones_by_apex
from enumserver.schedule import switches
from enumserver.store import StoreReader
from zonetools import rules
from zonetools.changes import ChangeSet
from zonetools.cli.output import (
    catalog,
    emit_json,
    fail,
    is_terminal,
    json_option,
    message_option,
    run,
    single,
    table,
)
from zonetools.imports import FileError, read_ported_csv
from zonetools.schedules import SWITCHES_SHOWN, key_of, now, timeline


@click.group()
def port() -> None:
    """Ported numbers: add, remove, list, and bulk import from the NP master."""


@port.command("add")
@click.argument("number")
@click.option("--to", "recipient", required=True, help="Recipient TY (serves the number now).")
@click.option("--from", "donor", help="Donor TY (default: the number's current operator).")
@click.option("--at", "ported_at", help="Time of porting, ISO 8601 (2025-06-02T09:30:00Z).")
@message_option
@json_option
@click.pass_context
def port_add(
    ctx: click.Context,
    number: str,
    recipient: str,
    donor: str | None,
    ported_at: str | None,
    message: str | None,
    as_json: bool,
) -> None:
    """Port one number to a recipient operator.

    Example: zonetools port add +358501234567 --to TY09 -m "NP order 4711"
    """
    fields = {"number": number, "recipient": recipient, "donor": donor, "ported_at": ported_at}
    single(ctx, "set", "port", fields, "port add", message, as_json)


@port.command("remove")
@click.argument("number")
@message_option
@click.pass_context
def port_remove(ctx: click.Context, number: str, message: str | None) -> None:
    """Remove a ported entry: the number goes back to its range holder.

    Example: zonetools port remove +358501234567
    """
    single(ctx, "remove", "port", {"number": number}, "port remove", message)


@port.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--snapshot",
    is_flag=True,
    help="The file is the full list: remove ported entries absent from it.",
)
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change; write nothing.")
@message_option
@json_option
@click.pass_context
def port_import(
    ctx: click.Context,
    csv_file: str,
    snapshot: bool,
    plan_only: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Import ported numbers from a CSV (number,recipient,donor,ported_at) as one change set.

    Example: zonetools port import np-master.csv --snapshot -m "NP master 2025-06-02"
    """
    try:
        raw = read_ported_csv(csv_file, snapshot=snapshot)
    except FileError as exc:
        fail(str(exc))
        return
    changes = ChangeSet(bulk=raw, message=message)
    if not is_terminal() or as_json:
        run(ctx, changes, "port import", apply=not plan_only, as_json=as_json)
        return
    bar: Any = click.progressbar(length=len(raw.rows), label="writing", file=sys.stderr)
    with bar:
        run(ctx, changes, "port import", apply=not plan_only, progress=bar.update)


@port.command("list")
@click.option("--operator", "recipient", help="Only numbers ported to this TY.")
@click.option("--prefix", default="", help="Only numbers starting with these digits (+358...).")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@click.pass_context
def port_list(
    ctx: click.Context, recipient: str | None, prefix: str, limit: int, as_json: bool
) -> None:
    """List ported numbers.

    Example: zonetools port list --operator TY07 --limit 20
    """
    digits = prefix.lstrip("+")
    rows = catalog(ctx).ported(recipient, digits, limit)
    emit_json(rows) if as_json else table(rows, ("number", "recipient", "donor", "ported_at"))


def _naptr_records(texts: tuple[str, ...], ttl: int) -> list[dict[str, Any]]:
    """NAPTR records given in presentation format: 'ORDER PREF "FLAGS" "SERVICE" "REGEXP" REPL'."""
    records = []
    for text in texts:
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NAPTR, text)
        except dns.exception.DNSException as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="--naptr") from exc
        naptr: Any = rdata
        records.append(
            {
                "order": naptr.order,
                "preference": naptr.preference,
                "flags": naptr.flags.decode(),
                "service": naptr.service.decode(),
                "regexp": naptr.regexp.decode(),
                "replacement": naptr.replacement.to_text(),
                "ttl": ttl,
            }
        )
    return records


@click.group()
def route() -> None:
    """NAPTR routes of a number, or an operator's templates for all its numbers."""


@route.command("set")
@click.argument("target")
@click.option(
    "--naptr",
    "naptrs",
    multiple=True,
    required=True,
    help='A record: ORDER PREF "FLAGS" "SERVICE" "REGEXP" REPLACEMENT; repeat.',
)
@click.option("--ttl", type=int, default=300, show_default=True)
@click.option("--template", is_flag=True, help="TARGET is a TY: set its templates.")
@message_option
@json_option
@click.pass_context
def route_set(
    ctx: click.Context,
    target: str,
    naptrs: tuple[str, ...],
    ttl: int,
    template: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Replace the routes of a number (or with --template, an operator's templates).

    Example: zonetools route set +3588001234567
    --naptr '10 100 "u" "E2U+sip" "!^.*$!sip:cc@op07.example.fi!" .'
    """
    records = _naptr_records(naptrs, ttl)
    if template:
        single(
            ctx,
            "set",
            "template",
            {"ty": target, "records": records},
            "route set",
            message,
            as_json,
        )
    else:
        single(
            ctx,
            "set",
            "route",
            {"number": target, "records": records},
            "route set",
            message,
            as_json,
        )


@route.command("list")
@click.argument("target", required=False)
@click.option("--templates", is_flag=True, help="Only operators' templates.")
@json_option
@click.pass_context
def route_list(ctx: click.Context, target: str | None, templates: bool, as_json: bool) -> None:
    """List routes: of a number (+358...), of an operator (TY), or all.

    Example: zonetools route list TY07 --templates
    """
    store = catalog(ctx)
    if target and (target.startswith("+") or target[:1].isdigit()):
        rows = store.routes(number=rules.number(target))
    else:
        rows = store.routes(ty=target, templates=templates)
    columns = ("ty", "number", "order", "preference", "flags", "service", "regexp", "ttl")
    emit_json(rows) if as_json else table(rows, columns)


@route.command("remove")
@click.argument("target")
@click.option("--template", is_flag=True, help="TARGET is a TY: remove its templates.")
@message_option
@click.pass_context
def route_remove(ctx: click.Context, target: str, template: bool, message: str | None) -> None:
    """Remove a number's own routes (it falls back to the templates), or a TY's templates.

    Example: zonetools route remove +3588001234567
    """
    if template:
        single(ctx, "remove", "template", {"ty": target}, "route remove", message)
    else:
        single(ctx, "remove", "route", {"number": target}, "route remove", message)


@click.command("number")
@click.argument("number")
@json_option
@click.pass_context
def number_explain(ctx: click.Context, number: str, as_json: bool) -> None:
    """Explain how a number resolves: kind, range, holder, port, routes and the DNS answers.

    Example: zonetools number +358401234567
    """
    try:
        digits = rules.number(number)
    except rules.RuleError as exc:
        fail(str(exc))
        return
    store = catalog(ctx)
    ranges = [r for r in store.ranges() if digits.startswith(r["prefix"])]
    found = max(ranges, key=lambda r: len(r["prefix"])) if ranges else None
    ported = store.port(digits)
    holder = ported["recipient"] if ported else found["holder"] if found else None
    own = store.routes(number=digits)
    info: dict[str, Any] = {
        "number": f"+{digits}",
        "kind": kind_of(digits),
        "range": found,
        "ported": ported,
        "serving_operator": holder,
        "routes": "per-number" if any(r["ty"] == holder for r in own) else "template",
        "schedule": schedule_info(Path(ctx.obj["store"]), digits, holder),
        "answers": {},
    }
    for zone in store.zones():
        engine = Engine(Path(ctx.obj["store"]), [zone["name"]])
        qname = to_name(digits, zone["apex"])
        query = dns.message.make_query(qname, "NAPTR", use_edns=False)
        wire = engine.handle(query.to_wire(), tcp=True)
        response = dns.message.from_wire(wire) if isinstance(wire, bytes) else None
        info["answers"][zone["name"]] = response.to_text().splitlines() if response else []
    if as_json:
        emit_json(info)
        return
    for key in ("number", "kind", "range", "ported", "serving_operator", "routes"):
        value = info[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key}: {value}")
    found = info["schedule"]
    if found is None:
        click.echo("schedule: none")
    else:
        click.echo(f"schedule: {found['target']} (operator {found['ty']}, Europe/Helsinki)")
        for line in found["timeline"]:
            click.echo(f"  {line}")
    for zone_name, lines in info["answers"].items():
        click.echo(f"answer in zone {zone_name}:")
        for line in lines:
            if not line.startswith(("id ", "opcode ")):
                click.echo(f"  {line}")


def schedule_info(store: Path, digits: str, holder: str | None) -> dict[str, Any] | None:
    """The schedule that answers for a number (as the server chooses it: its own, else its
    range's, only the serving operator's), the set in force now and the next switches."""
    reader = StoreReader(store)
    try:
        snapshot = reader.snapshot()
        zone = next(iter(snapshot.zones.values()), None)
        if zone is None or holder is None:
            return None
        view = View(zones_by_apex([zone]), snapshot, reader)
        found, _ = NumberView(zone, view).schedule_of(digits, holder)
    finally:
        reader.close()
    if found is None:
        return None
    if snapshot.schedules.get(digits) is found:
        scope, target = "number", digits
    else:
        scope = "range"
        target = next(p for p, s in snapshot.range_schedules.items() if s is found)
    moment = now()
    steps = switches(found, moment, SWITCHES_SHOWN)
    return {
        "target": key_of(scope, target),
        "ty": found.ty,
        "in_force": steps[0][1],
        "switches": [
            {"at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(), "set": name}
            for at, name in steps[1:]
        ],
        "timeline": timeline(found, moment),
    }


COMMANDS = [port, route, number_explain]
