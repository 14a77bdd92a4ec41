"""Zone file commands: export a zone as it answers, import a master file back into routes."""

from __future__ import annotations

from pathlib import Path

import click

from zonetools.changes import ChangeSet
from zonetools.cli.output import message_option, run
from zonetools.exports import ZoneFileError, export_zone
from zonetools.zoneimport import plan_import


def _refuse(exc: ZoneFileError, verb: str) -> click.ClickException:
    for reason in exc.reasons:
        click.echo(f"error: {reason}", err=True)
    written = "nothing written: " if verb == "import" else ""
    return click.ClickException(f"{written}{verb} refused ({len(exc.reasons)} reason(s))")


@click.command("export")
@click.argument("zone")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@click.pass_context
def export(ctx: click.Context, zone: str, output: str | None) -> None:
    """Write ZONE as it answers as an RFC 1035 master file (sorted; named-checkzone and
    kzonecheck accept it): NAPTR at ported and routed numbers, wildcards with backreferences
    for the ranges, or NS delegations for a referral-style zone. What a standard server
    cannot express is left out with a warning on stderr.

    Example: zonetools export tier1 -o tier1.zone
    """
    try:
        result = export_zone(Path(ctx.obj["store"]), zone)
    except ZoneFileError as exc:
        raise _refuse(exc, "export") from exc
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output is None:
        click.echo(result.text, nl=False)
        return
    Path(output).write_text(result.text, encoding="utf-8")
    click.echo(
        f"wrote {output}: zone {zone} at serial {result.serial}, {result.names} names, "
        f"{result.rrsets} RRsets, {len(result.text.encode())} bytes",
        err=True,
    )


@click.command("import")
@click.argument("zone")
@click.argument("zone_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change; write nothing.")
@message_option
@click.pass_context
def import_(
    ctx: click.Context, zone: str, zone_file: str, plan_only: bool, message: str | None
) -> None:
    """Read a master file of ZONE back into routes, as one change set (plan, then apply).

    NAPTR at a number becomes that number's routes (unless its operator's templates already
    give them); a wildcard at a range becomes its holder's templates. A record that maps to
    no number, range holder or route refuses the whole file.

    Example: zonetools import tier1 tier1.zone --plan
    """
    path = Path(zone_file)
    try:
        mapped = plan_import(Path(ctx.obj["store"]), zone, path)
    except ZoneFileError as exc:
        raise _refuse(exc, "import") from exc
    for notice in mapped.notices:
        click.echo(f"notice: {notice}", err=True)
    changes = ChangeSet(mapped.ops, message=message)
    run(ctx, changes, f"import {zone} {path.name}", apply=not plan_only)


COMMANDS = [export, import_]
