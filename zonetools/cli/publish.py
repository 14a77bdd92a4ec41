"""Store and publishing commands: init, load-example, plan, apply, history."""

from __future__ import annotations

import json
from pathlib import Path

import click

from enumserver.store import StoreError, StoreWriter, store_serials
from zonetools.changes import ChangeError, load
from zonetools.cli.output import catalog, emit_json, fail, json_option, message_option, run, table


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty store (or bring an existing one to the current schema).

    Example: zonetools --store enum.sqlite init
    """
    path = Path(ctx.obj["store"])
    StoreWriter.create(path).close()
    click.echo(f"store {path} ready")


@click.command("load-example")
@json_option
@click.pass_context
def load_example(ctx: click.Context, as_json: bool) -> None:
    """Load the demo data set of examples/demo into the store (creating it if needed).

    Example: zonetools --store demo.sqlite load-example
    """
    from enumserver.demo import load_demo

    path = Path(ctx.obj["store"])
    writer = StoreWriter.create(path)
    try:
        counts = load_demo(writer)
    except (ValueError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        writer.close()
    if as_json:
        click.echo(
            json.dumps({"store": str(path), "counts": counts, "serials": store_serials(path)})
        )
    else:
        summary = ", ".join(f"{count} {table}" for table, count in counts.items())
        click.echo(f"loaded into {path}: {summary}")


def _changes(path: str, message: str | None, snapshot: bool = False):  # type: ignore[no-untyped-def]
    try:
        return load(path, message, snapshot)
    except ChangeError as exc:
        fail(str(exc))


@click.command()
@click.argument("change_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--snapshot", is_flag=True, help="For a ported-numbers CSV: the full list.")
@json_option
@click.pass_context
def plan(ctx: click.Context, change_file: str, snapshot: bool, as_json: bool) -> None:
    """Show what a change-set file (YAML or CSV) would change, and the answers it would give.

    Nothing is written. The plan ends with a checksum: 'zonetools apply --checksum' applies
    exactly the reviewed plan and refuses if the store changed in between.

    Example: zonetools plan changes.yaml
    """
    run(ctx, _changes(change_file, None, snapshot), "plan", apply=False, as_json=as_json)


@click.command()
@click.argument("change_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--checksum", help="Apply only if the plan still has this checksum.")
@click.option("--snapshot", is_flag=True, help="For a ported-numbers CSV: the full list.")
@message_option
@json_option
@click.pass_context
def apply(
    ctx: click.Context,
    change_file: str,
    checksum: str | None,
    snapshot: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Apply a change-set file in one transaction with a new serial, journal and audit entry.

    Example: zonetools apply changes.yaml --checksum 3f2a9c0e11d47b65 -m "June ports"
    """
    changes = _changes(change_file, message, snapshot)
    run(ctx, changes, f"apply {Path(change_file).name}", checksum=checksum, as_json=as_json)


@click.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--changes", "with_changes", is_flag=True, help="Show the journal of each entry.")
@json_option
@click.pass_context
def history(ctx: click.Context, limit: int, with_changes: bool, as_json: bool) -> None:
    """The audit trail: who changed what, when, with which command or licence, and why.

    Example: zonetools history --limit 5 --changes
    """
    store = catalog(ctx)
    rows = store.history(limit)
    if with_changes or as_json:
        for row in rows:
            row["journal"] = store.journal(row["id"])
    if as_json:
        emit_json(rows)
        return
    table(rows, ("id", "at", "who", "command", "licence", "serial", "changes", "message"))
    if with_changes:
        for row in rows:
            click.echo(f"#{row['id']}:")
            for entry in row["journal"]:
                click.echo(f"  {entry['entity']} {entry['key']}: {entry['old']} -> {entry['new']}")


COMMANDS = [init, load_example, plan, apply, history]
