"""`zonetools`: the operator's publishing CLI. Thin: parse options, call the library, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from enumserver.store import StoreError, StoreWriter, store_serials

DEFAULT_STORE = "enum.sqlite"


@click.group()
@click.version_option(package_name="operator-enum")
@click.option(
    "--store",
    "store_path",
    envvar="ENUM_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="Store file (SQLite). Env: ENUM_STORE.",
)
@click.pass_context
def main(ctx: click.Context, store_path: str) -> None:
    """Publish Operator-ENUM data: operators, ranges, ported numbers, routes, Tier2 servers."""
    ctx.obj = {"store": store_path}


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty store (or bring an existing one to the current schema).

    Example: zonetools --store enum.sqlite init
    """
    path = Path(ctx.obj["store"])
    StoreWriter.create(path).close()
    click.echo(f"store {path} ready")


@main.command("load-example")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
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
