"""Registry data commands: operator, po, range, tier2, zone."""

from __future__ import annotations

import click

from zonetools.cli.output import (
    catalog,
    emit_json,
    fail,
    json_option,
    message_option,
    single,
    table,
)

OPERATOR_COLUMNS = ("ty", "name", "kind", "host_ty", "routing_number", "sip_domain", "joined")


@click.group()
def operator() -> None:
    """Telecom operators (TY): add, list, show, remove."""


@operator.command("add")
@click.argument("ty")
@click.option("--name", help="Company name.")
@click.option("--rn", "routing_number", help="Routing number for rn= (e.g. +35899907).")
@click.option("--sip-domain", help="SIP domain used by route templates ({sip_domain}).")
@click.option("--joined", help="Date of joining Operator-ENUM (YYYY-MM-DD; default today).")
@click.option("--openstack/--vmware", default=None, help="Where its publishing runs (billing).")
@message_option
@json_option
@click.pass_context
def operator_add(
    ctx: click.Context,
    ty: str,
    name: str | None,
    routing_number: str | None,
    sip_domain: str | None,
    joined: str | None,
    openstack: bool | None,
    message: str | None,
    as_json: bool,
) -> None:
    """Add an operator, or change its fields.

    Example: zonetools operator add TY13 --name "Uusi Oy" --rn +35899913
    --sip-domain ims.op13.example.fi
    """
    fields = {
        "ty": ty,
        "name": name,
        "routing_number": routing_number,
        "sip_domain": sip_domain,
        "joined": joined,
        "openstack": openstack,
    }
    single(ctx, "set", "operator", fields, "operator add", message, as_json)


@operator.command("list")
@json_option
@click.pass_context
def operator_list(ctx: click.Context, as_json: bool) -> None:
    """List operators and service operators.

    Example: zonetools operator list --json
    """
    rows = catalog(ctx).operators()
    emit_json(rows) if as_json else table(rows, OPERATOR_COLUMNS)


@operator.command("show")
@click.argument("ty")
@json_option
@click.pass_context
def operator_show(ctx: click.Context, ty: str, as_json: bool) -> None:
    """Show an operator with its ranges, Tier2 servers, templates and POs.

    Example: zonetools operator show TY07
    """
    store = catalog(ctx)
    row = store.operator(ty)
    if row is None:
        fail(f"unknown operator {ty}")
        return
    detail = {
        **row,
        "ranges": [r["prefix"] for r in store.ranges(ty)],
        "tier2": store.tier2(ty),
        "templates": store.routes(ty, templates=True),
        "pos": [o["ty"] for o in store.operators("PO") if o["host_ty"] == ty],
        "ported_in": len(store.ported(recipient=ty)),
    }
    if as_json:
        emit_json(detail)
        return
    for key, value in detail.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            click.echo(f"{key}:")
            for item in value:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in item.items() if k != "id"))
        else:
            click.echo(f"{key}: {value}")


@operator.command("remove")
@click.argument("ty")
@message_option
@click.pass_context
def operator_remove(ctx: click.Context, ty: str, message: str | None) -> None:
    """Remove an operator that holds no ranges, ported numbers or POs any more.

    Example: zonetools operator remove TY13 -m "left the service"
    """
    single(ctx, "remove", "operator", {"ty": ty}, "operator remove", message)


@click.group()
def po() -> None:
    """Service operators (PO) working inside a TY's network: add, list, remove."""


@po.command("add")
@click.argument("ty")
@click.option("--host", "host_ty", required=True, help="The TY whose network the PO works in.")
@click.option("--name", help="Company name.")
@click.option("--rn", "routing_number", help="Its own routing number (else the host's).")
@click.option("--sip-domain", help="Its own SIP domain (else the host's).")
@message_option
@click.pass_context
def po_add(
    ctx: click.Context,
    ty: str,
    host_ty: str,
    name: str | None,
    routing_number: str | None,
    sip_domain: str | None,
    message: str | None,
) -> None:
    """Add a service operator under a host TY.

    Example: zonetools po add TY23 --host TY03 --name "Palvelu Oy" --rn +35899923
    """
    fields = {
        "ty": ty,
        "host_ty": host_ty,
        "name": name,
        "routing_number": routing_number,
        "sip_domain": sip_domain,
    }
    single(ctx, "set", "po", fields, "po add", message)


@po.command("list")
@json_option
@click.pass_context
def po_list(ctx: click.Context, as_json: bool) -> None:
    """List service operators.

    Example: zonetools po list
    """
    rows = catalog(ctx).operators("PO")
    emit_json(rows) if as_json else table(rows, OPERATOR_COLUMNS)


@po.command("remove")
@click.argument("ty")
@message_option
@click.pass_context
def po_remove(ctx: click.Context, ty: str, message: str | None) -> None:
    """Remove a service operator.

    Example: zonetools po remove TY23
    """
    single(ctx, "remove", "po", {"ty": ty}, "po remove", message)


@click.group("range")
def range_() -> None:
    """Number ranges (prefix -> holder): add, list, remove."""


@range_.command("add")
@click.argument("prefix")
@click.option("--holder", required=True, help="TY holding the range.")
@click.option("--min-digits", type=int, help="Shortest number (total E.164 digits).")
@click.option("--max-digits", type=int, help="Longest number (total E.164 digits).")
@message_option
@click.pass_context
def range_add(
    ctx: click.Context,
    prefix: str,
    holder: str,
    min_digits: int | None,
    max_digits: int | None,
    message: str | None,
) -> None:
    """Add a number range (or change its holder); ranges of other holders may not overlap.

    Example: zonetools range add +358454 --holder TY12
    """
    fields = {
        "prefix": prefix,
        "holder": holder,
        "min_digits": min_digits,
        "max_digits": max_digits,
    }
    single(ctx, "set", "range", fields, "range add", message)


@range_.command("list")
@click.option("--holder", help="Only this holder's ranges.")
@json_option
@click.pass_context
def range_list(ctx: click.Context, holder: str | None, as_json: bool) -> None:
    """List number ranges.

    Example: zonetools range list --holder TY05
    """
    rows = catalog(ctx).ranges(holder)
    emit_json(rows) if as_json else table(rows, ("prefix", "holder", "min_digits", "max_digits"))


@range_.command("remove")
@click.argument("prefix")
@message_option
@click.pass_context
def range_remove(ctx: click.Context, prefix: str, message: str | None) -> None:
    """Remove a number range.

    Example: zonetools range remove +358454
    """
    single(ctx, "remove", "range", {"prefix": prefix}, "range remove", message)


@click.group()
def tier2() -> None:
    """A TY's Tier2 name servers (where Tier1 refers its numbers): set, show."""


@tier2.command("set")
@click.argument("ty")
@click.option(
    "--server",
    "servers",
    multiple=True,
    required=True,
    help="HOST[,IPV4][,IPV6]; repeat for each name server.",
)
@click.option("--ttl", type=int, default=3600, show_default=True)
@message_option
@click.pass_context
def tier2_set(
    ctx: click.Context, ty: str, servers: tuple[str, ...], ttl: int, message: str | None
) -> None:
    """Replace a TY's Tier2 name servers (a billed change of Tier2 server information).

    Example: zonetools tier2 set TY07 --server ns1.t2.op07.example.fi,192.0.2.7,2001:db8::7
    """
    parsed = []
    for text in servers:
        host, *addresses = [part.strip() for part in text.split(",")]
        entry: dict[str, object] = {"host": host, "ttl": ttl}
        for address in addresses:
            entry["ipv6" if ":" in address else "ipv4"] = address
        parsed.append(entry)
    single(ctx, "set", "tier2", {"ty": ty, "servers": parsed}, "tier2 set", message)


@tier2.command("show")
@click.argument("ty", required=False)
@json_option
@click.pass_context
def tier2_show(ctx: click.Context, ty: str | None, as_json: bool) -> None:
    """Show Tier2 name servers (of one TY, or all).

    Example: zonetools tier2 show TY07
    """
    rows = catalog(ctx).tier2(ty)
    emit_json(rows) if as_json else table(rows, ("ty", "host", "ipv4", "ipv6", "ttl"))


@click.group()
def zone() -> None:
    """Served zones (apex, role, answer style, SOA): add, list, show."""


@zone.command("add")
@click.argument("name")
@click.option("--apex", help="e.g. 8.5.3.e164.arpa.")
@click.option("--role", type=click.Choice(["tier1", "tier2"]))
@click.option("--style", type=click.Choice(["naptr", "referral"]), help="Tier1 answer style.")
@click.option("--environment", type=click.Choice(["production", "test"]))
@click.option("--operator", help="For a Tier2 zone: the TY whose numbers it answers.")
@click.option("--mname", help="SOA MNAME (primary name server).")
@click.option("--rname", help="SOA RNAME (hostmaster mailbox as a name).")
@click.option("--ns", multiple=True, help="Apex NS host; repeat.")
@click.option("--minimum", type=int, help="SOA MINIMUM (negative caching), seconds.")
@click.option("--soa-ttl", type=int, help="TTL of the SOA record, seconds.")
@message_option
@click.pass_context
def zone_add(
    ctx: click.Context,
    name: str,
    apex: str | None,
    role: str | None,
    style: str | None,
    environment: str | None,
    operator: str | None,
    mname: str | None,
    rname: str | None,
    ns: tuple[str, ...],
    minimum: int | None,
    soa_ttl: int | None,
    message: str | None,
) -> None:
    """Add a zone or change its fields.

    Example: zonetools zone add tier1 --apex 8.5.3.e164.arpa. --mname ns1.enum.example.fi.
    --rname hostmaster.enum.example.fi. --ns ns1.enum.example.fi.
    """
    fields = {
        "name": name,
        "apex": apex,
        "role": role,
        "style": style,
        "environment": environment,
        "operator": operator,
        "mname": mname,
        "rname": rname,
        "ns": list(ns) or None,
        "minimum": minimum,
        "soa_ttl": soa_ttl,
    }
    single(ctx, "set", "zone", fields, "zone add", message)


@zone.command("list")
@json_option
@click.pass_context
def zone_list(ctx: click.Context, as_json: bool) -> None:
    """List zones with their serials.

    Example: zonetools zone list
    """
    rows = catalog(ctx).zones()
    columns = ("name", "apex", "role", "style", "environment", "operator", "serial")
    emit_json(rows) if as_json else table(rows, columns)


@zone.command("show")
@click.argument("name")
@json_option
@click.pass_context
def zone_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one zone.

    Example: zonetools zone show tier1 --json
    """
    row = catalog(ctx).zone(name)
    if row is None:
        fail(f"no zone {name}")
        return
    if as_json:
        emit_json(row)
    else:
        for key, value in row.items():
            click.echo(f"{key}: {value}")


COMMANDS = [operator, po, range_, tier2, zone]
