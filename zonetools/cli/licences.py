"""Licence commands (issue, list, show, revoke, rotate) and remote publishing (publish)."""

from __future__ import annotations

from pathlib import Path

import click

from enumserver.store import StoreWriter
from zonetools import licences as logic
from zonetools.changes import ChangeError, load
from zonetools.cli.output import catalog, emit_json, fail, json_option, message_option, table
from zonetools.publish import PublishError, publish

LIST_COLUMNS = ("id", "ty", "kind", "status", "issued", "expires", "revoked", "key_name")
out_option = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the key file(s), named KEYNAME.key.",
)


def _writer(ctx: click.Context) -> StoreWriter:
    """The store, brought to the current schema (licence tables of older stores)."""
    path = Path(ctx.obj["store"])
    if not path.exists():
        fail(f"store {path} does not exist; create it with 'zonetools --store {path} init'")
    return StoreWriter.create(path)


def _refused(exc: ChangeError) -> None:
    for reason in exc.reasons:
        click.echo(f"error: {reason}", err=True)
    fail(f"nothing written: refused ({len(exc.reasons)} reason(s))")


def _issued(files: list[logic.KeyFile], as_json: bool) -> None:
    if as_json:
        emit_json([{**vars(f), "path": str(f.path)} for f in files])
        return
    for f in files:
        click.echo(f"issued {f.licence} ({f.ty}, {f.kind}): key {f.key_name} in {f.path}")
    click.echo("the secret is only in the key file(s): keep them safe, it is never shown again")


@click.group()
def licence() -> None:
    """Publishing licences (TSIG keys): issue, list, show, revoke, rotate."""


@licence.command("issue")
@click.argument("ty")
@click.option("--kind", type=click.Choice(logic.KINDS), default="production", show_default=True)
@click.option("--joining", is_flag=True, help="The joining set: 2 production + 1 test licence.")
@click.option("--expires", help="Refused from then on: YYYY-MM-DD (UTC) or ISO 8601 time.")
@out_option
@message_option
@json_option
@click.pass_context
def licence_issue(
    ctx: click.Context,
    ty: str,
    kind: str,
    joining: bool,
    expires: str | None,
    out_dir: Path,
    message: str | None,
    as_json: bool,
) -> None:
    """Issue a licence to a TY and write its TSIG key file (nsupdate -k, BIND).

    Example: zonetools licence issue TY13 --joining --out keys/
    """
    kinds = logic.JOINING if joining else (kind,)
    writer = _writer(ctx)
    try:
        _, files = logic.issue(
            writer, ty, kinds, out_dir, who=ctx.obj["who"], expires=expires,
            message=message, joining=joining,
        )  # fmt: skip
    except ChangeError as exc:
        _refused(exc)
        return
    except logic.LicenceError as exc:
        fail(str(exc))
        return
    finally:
        writer.close()
    _issued(files, as_json)


@licence.command("list")
@click.option("--ty", help="Only this TY's licences.")
@json_option
@click.pass_context
def licence_list(ctx: click.Context, ty: str | None, as_json: bool) -> None:
    """List licences with their status (active, revoked, expired); never a secret.

    Example: zonetools licence list --ty TY13
    """
    rows = logic.listing(catalog(ctx), ty)
    emit_json(rows) if as_json else table(rows, LIST_COLUMNS)


@licence.command("show")
@click.argument("licence_id")
@json_option
@click.pass_context
def licence_show(ctx: click.Context, licence_id: str, as_json: bool) -> None:
    """Show one licence (never its secret).

    Example: zonetools licence show TY13-P1
    """
    rows = [row for row in logic.listing(catalog(ctx)) if row["id"] == licence_id]
    if not rows:
        fail(f"no licence {licence_id} (see 'zonetools licence list')")
    if as_json:
        emit_json(rows[0])
        return
    for key, value in rows[0].items():
        click.echo(f"{key}: {'' if value is None else value}")


@licence.command("revoke")
@click.argument("licence_id")
@message_option
@click.pass_context
def licence_revoke(ctx: click.Context, licence_id: str, message: str | None) -> None:
    """Revoke a licence: every server refuses its key (BADKEY) from now on.

    Example: zonetools licence revoke TY13-P2 -m "system decommissioned"
    """
    writer = _writer(ctx)
    try:
        logic.revoke(writer, licence_id, who=ctx.obj["who"], message=message)
    except ChangeError as exc:
        _refused(exc)
    finally:
        writer.close()
    click.echo(f"revoked {licence_id}")


@licence.command("rotate")
@click.argument("licence_id")
@out_option
@message_option
@json_option
@click.pass_context
def licence_rotate(
    ctx: click.Context, licence_id: str, out_dir: Path, message: str | None, as_json: bool
) -> None:
    """Give a licence a new key (new name and secret); the old key is refused from now on.

    Example: zonetools licence rotate TY13-P1 --out keys/
    """
    writer = _writer(ctx)
    try:
        _, key = logic.rotate(writer, licence_id, out_dir, who=ctx.obj["who"], message=message)
    except ChangeError as exc:
        _refused(exc)
        return
    except logic.LicenceError as exc:
        fail(str(exc))
        return
    finally:
        writer.close()
    _issued([key], as_json)


@click.command("publish")
@click.argument("change_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--server", required=True, help="HOST:PORT of the server taking the updates.")
@click.option("--licence", "key_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The licence's key file (from 'zonetools licence issue').")  # fmt: skip
@click.option("--zone", default="8.5.3.e164.arpa.", show_default=True, help="Zone to update.")
@json_option
def publish_command(change_file: str, server: str, key_file: str, zone: str, as_json: bool) -> None:
    """Send a change-set file's route, template and tier2 changes as signed DNS UPDATEs.

    One UPDATE per change, reported as accepted or refused with the server's rcode and reason.
    Exit code 1 when any change was refused.

    Example: zonetools publish --server 192.0.2.53:53 --licence ty13-p1-k1.key routes.yaml
    """
    try:
        results = publish(load(change_file), server, key_file, zone)
    except ChangeError as exc:
        _refused(exc)
        return
    except PublishError as exc:
        fail(str(exc))
        return
    if as_json:
        emit_json([result.to_dict() for result in results])
    else:
        for r in results:
            verdict = "accepted" if r.accepted else "refused "
            reason = f": {r.reason}" if r.reason else ""
            click.echo(f"{verdict} {r.change} ({r.rcode}){reason}")
    accepted = sum(r.accepted for r in results)
    click.echo(f"{accepted} accepted, {len(results) - accepted} refused", err=as_json)
    if accepted < len(results):
        raise click.exceptions.Exit(1)


COMMANDS = [licence, publish_command]
