"""One place for output: plans, tables and JSON; and running a change set from a command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from enumserver.store import Catalog, StoreError, StoreWriter
from zonetools.changes import ChangeError, ChangeSet, Op, Plan, execute

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
message_option = click.option("-m", "--message", help="Why (kept in the audit trail).")


def fail(message: str) -> None:
    """Refuse with a message on stderr and exit code 1."""
    raise click.ClickException(message)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def catalog(ctx: click.Context) -> Catalog:
    path = Path(ctx.obj["store"])
    try:
        return Catalog(path)
    except (StoreError, Exception) as exc:
        fail(f"cannot open store {path}: {exc}")
        raise


def writer(ctx: click.Context) -> StoreWriter:
    path = Path(ctx.obj["store"])
    if not path.exists():
        fail(f"store {path} does not exist; create it with 'zonetools --store {path} init'")
    return StoreWriter(path)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Rows as an aligned text table."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _value(value: Any) -> list[str]:
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict) and "service" in item:
                out.append(
                    f'{item["order"]} {item["preference"]} "{item["flags"]}" "{item["service"]}" '
                    f'"{item["regexp"]}" {item["replacement"]} (ttl {item["ttl"]})'
                )
            else:
                out.append(_inline(item))
        return out
    return [_inline(value)]


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return str(value)


def print_plan(plan: Plan, verb: str) -> None:
    """The plan as a reviewer reads it: changes per name, counts, answers before and after."""
    for diff in plan.diffs:
        sign = {"add": "+", "remove": "-", "modify": "~"}[diff.action]
        click.echo(f"{sign} {diff.entity} {diff.key}")
        if diff.old is not None and diff.new is not None:
            for line in _value(diff.old):
                click.echo(f"    - {line}")
            for line in _value(diff.new):
                click.echo(f"    + {line}")
        else:
            for line in _value(diff.new if diff.new is not None else diff.old):
                click.echo(f"    {line}")
    total = sum(plan.counts.values())
    if total > len(plan.diffs):
        click.echo(f"  ... and {total - len(plan.diffs)} more")
    counts = plan.counts
    click.echo(
        f"{counts['add']} to add, {counts['modify']} to modify, {counts['remove']} to remove"
    )
    for number, answers in plan.answers.items():
        if answers["before"] == answers["after"]:
            continue
        click.echo(f"answer for {number}:")
        for when in ("before", "after"):
            click.echo(f"  {when}:")
            for line in answers[when]:
                click.echo(f"    {line}")
    if plan.empty:
        click.echo("nothing to change")
    elif verb == "plan":
        click.echo(
            f"plan checksum {plan.checksum} at serial {plan.base_serial}; apply it with "
            f"'zonetools apply --checksum {plan.checksum} FILE'"
        )
    elif plan.applied:
        click.echo(f"applied at serial {plan.serial}")


def run(
    ctx: click.Context,
    changes: ChangeSet,
    command: str,
    *,
    apply: bool = True,
    as_json: bool = False,
    checksum: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Plan or apply a change set for a command; refusals become exit code 1."""
    store = writer(ctx)
    try:
        plan = execute(
            store,
            changes,
            who=ctx.obj["who"],
            command=command,
            apply=apply,
            checksum=checksum,
            progress=progress,
        )
    except ChangeError as exc:
        for reason in exc.reasons:
            click.echo(f"error: {reason}", err=True)
        verb = "apply" if apply else "plan"
        raise click.ClickException(
            f"nothing written: {verb} refused ({len(exc.reasons)} reason(s))"
        ) from exc
    finally:
        store.close()
    if as_json:
        emit_json(plan.to_dict())
    else:
        print_plan(plan, "apply" if apply else "plan")
    return plan


def single(
    ctx: click.Context,
    action: str,
    entity: str,
    fields: dict[str, Any],
    command: str,
    message: str | None,
    as_json: bool = False,
) -> Plan:
    """Run one operation built by a command."""
    op = Op(action, entity, {k: v for k, v in fields.items() if v is not None}, "command line")
    return run(ctx, ChangeSet([op], message=message), command, as_json=as_json)


def is_terminal() -> bool:
    return sys.stderr.isatty()
