"""The billing report: Operator-ENUM fees per TY for a month."""

from __future__ import annotations

import click

from zonetools.billing import PRICE_LIST, BillingError, report
from zonetools.cli.output import catalog, emit_json, fail, table


@click.command()
@click.option("--month", required=True, help="The month to bill, YYYY-MM.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--csv", "as_csv", is_flag=True, help="CSV: ty,item,quantity,unit_price,amount,detail."
)
@click.pass_context
def billing(ctx: click.Context, month: str, as_json: bool, as_csv: bool) -> None:
    """Fees per TY for a month: joining, monthly, OpenStack, Tier2 changes, POs, extra licences.

    Euros without VAT, whole months, from the price list of 1.4.2025 (docs/licences.md).

    Example: zonetools billing --month 2026-03 --csv > 2026-03.csv
    """
    try:
        result = report(catalog(ctx), month)
    except BillingError as exc:
        fail(str(exc))
        return
    if as_json:
        emit_json(result.to_dict())
    elif as_csv:
        click.echo(result.to_csv(), nl=False)
    else:
        click.echo(f"Operator-ENUM fees {month}, EUR without VAT (price list {PRICE_LIST})")
        table(result.rows(), ("ty", "item", "quantity", "unit_price", "amount", "detail"))


COMMANDS = [billing]
