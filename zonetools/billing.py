"""Operator-ENUM fees per TY and month, from the price list (euros without VAT, 1.4.2025).

Whole months, pro-rated nowhere: whatever starts in a month is billed for that whole month.

| item                         | EUR  | billed to the TY in a month                          |
|------------------------------|------|------------------------------------------------------|
| joining fee                  | 5500 | of its ``joined`` date (2 production + 1 test licence) |
| monthly fee                  | 6000 | every month from the month of joining                |
| OpenStack                    | 578  | every month while its publishing runs on OpenStack   |
| Tier2 server change          | 540  | each change of its Tier2 server information          |
| PO onboarding                | 1000 | each of its POs in the PO's month of joining         |
| PO monthly                   | 250  | each of its POs, from the PO's month of joining      |
| additional publishing system | 60   | each production licence beyond two in force          |

Tier2 server changes are the store's billable events (recorded in the same transaction as the
change, whatever made it: CLI, change-set file or DNS UPDATE); setting the first servers is part
of joining. A licence is in force in a month when it was issued before the month's end and was
neither revoked nor expired before its start. The OpenStack flag and the operators are read as
they are now (an operator removed from the store is no longer billed); an operator without a
joining date is billed every month but never a joining or onboarding fee.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from enumserver.store import Catalog

PRICE_LIST = "1.4.2025"
PRICES = {
    "joining fee": 5500,
    "monthly fee": 6000,
    "OpenStack": 578,
    "Tier2 server change": 540,
    "PO onboarding": 1000,
    "PO monthly": 250,
    "additional publishing system": 60,
}
INCLUDED_PRODUCTION_LICENCES = 2
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class BillingError(ValueError):
    """A month that is not YYYY-MM."""


@dataclass(frozen=True)
class Line:
    """One billed item: how many, at what unit price, and which things it counts."""

    item: str
    quantity: int
    detail: str = ""

    @property
    def unit_price(self) -> int:
        return PRICES[self.item]

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass
class Bill:
    """A TY's fees for the month."""

    ty: str
    name: str
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    def add(self, item: str, things: list[str]) -> None:
        if things:
            self.lines.append(Line(item, len(things), ", ".join(things)))


@dataclass
class Report:
    """Every TY's bill for one month, and the total."""

    month: str
    bills: list[Bill]

    @property
    def total(self) -> int:
        return sum(bill.total for bill in self.bills)

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "currency": "EUR",
            "vat": "excluded",
            "price_list": PRICE_LIST,
            "operators": [
                {
                    "ty": bill.ty,
                    "name": bill.name,
                    "lines": [
                        {
                            "item": line.item,
                            "quantity": line.quantity,
                            "unit_price": line.unit_price,
                            "amount": line.amount,
                            "detail": line.detail,
                        }
                        for line in bill.lines
                    ],
                    "total": bill.total,
                }
                for bill in self.bills
            ],
            "total": self.total,
        }

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (CSV, tables): one per line, a total per TY, and the overall total."""
        out: list[dict[str, Any]] = []
        for bill in self.bills:
            for line in bill.lines:
                out.append({"ty": bill.ty, "item": line.item, "quantity": line.quantity,
                            "unit_price": line.unit_price, "amount": line.amount,
                            "detail": line.detail})  # fmt: skip
            out.append({"ty": bill.ty, "item": "total", "quantity": "", "unit_price": "",
                        "amount": bill.total, "detail": ""})  # fmt: skip
        out.append({"ty": "ALL", "item": "total", "quantity": "", "unit_price": "",
                    "amount": self.total, "detail": ""})  # fmt: skip
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        columns = ["ty", "item", "quantity", "unit_price", "amount", "detail"]
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buffer.getvalue()


def month_bounds(month: str) -> tuple[str, str]:
    """The first moment of the month and of the next one, as UTC store times."""
    found = MONTH.match(month)
    if found is None:
        raise BillingError(f"month {month!r} must be YYYY-MM, e.g. 2026-03")
    year, number = int(found.group(1)), int(found.group(2))
    after = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return f"{month}-01T00:00:00Z", f"{after}-01T00:00:00Z"


def in_force(licence: dict[str, Any], start: str, end: str) -> bool:
    """Whether a licence was in force at some moment of [start, end)."""
    ended = min(t for t in (licence.get("revoked"), licence.get("expires"), "9999") if t)
    return bool(licence["issued"] < end and ended > start)


def report(catalog: Catalog, month: str) -> Report:
    """The fees of every TY that had joined by the end of the month."""
    start, end = month_bounds(month)
    operators = catalog.operators()
    events = catalog.billable_events(start, end)
    licences = catalog.licences()
    bills = []
    for operator in operators:
        joined = str(operator.get("joined") or "")[:7]
        if operator["kind"] != "TY" or joined > month:
            continue  # (no joining date: a customer from before the store kept one)
        ty = operator["ty"]
        bill = Bill(ty, operator["name"])
        bill.add("joining fee", [operator["joined"]] if joined == month else [])
        bill.add("monthly fee", [month])
        bill.add("OpenStack", [month] if operator.get("openstack") else [])
        bill.add("Tier2 server change", [e["at"] for e in events if e["ty"] == ty])
        pos = [
            (po["ty"], str(po.get("joined") or "")[:7]) for po in operators
            if po["kind"] == "PO" and po["host_ty"] == ty
        ]  # fmt: skip
        pos = [(po, start_month) for po, start_month in pos if start_month <= month]
        bill.add("PO onboarding", [po for po, start_month in pos if start_month == month])
        bill.add("PO monthly", [po for po, _ in pos])
        production = [
            lic["id"] for lic in licences
            if lic["ty"] == ty and lic["kind"] == "production" and in_force(lic, start, end)
        ]  # fmt: skip
        bill.add("additional publishing system", production[INCLUDED_PRODUCTION_LICENCES:])
        bills.append(bill)
    return Report(month, bills)
