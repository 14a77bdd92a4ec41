"""`zonetools`: the operator's publishing CLI. Thin: parse options, build a change set, print.

Exit codes: 0 ok, 1 invalid input or refused, 2 usage.
"""

from __future__ import annotations

import getpass
import os

import click

from zonetools.cli import billing, licences, numbers, publish, registry, schedules, stats, zonefiles


def _default_who() -> str:
    try:
        return os.environ.get("ENUM_WHO") or getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@click.group()
@click.version_option(package_name="operator-enum")
@click.option(
    "--store",
    "store_path",
    envvar="ENUM_STORE",
    default="enum.sqlite",
    show_default=True,
    help="Store file (SQLite). Env: ENUM_STORE.",
)
@click.option("--who", default=_default_who, help="Who makes the change (audit). Env: ENUM_WHO.")
@click.pass_context
def main(ctx: click.Context, store_path: str, who: str) -> None:
    """Publish Operator-ENUM data: operators, ranges, ported numbers, routes, Tier2 servers.

    Every change is validated, applied in one transaction with a new SOA serial, journaled and
    audited; a running enumserver serves it within a second.
    """
    ctx.obj = {"store": store_path, "who": who}


for module in (publish, registry, numbers, zonefiles, schedules, stats, licences, billing):
    for command in module.COMMANDS:
        main.add_command(command)
