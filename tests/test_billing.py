"""The billing report against hand-computed totals (DOMAIN.md price list, whole months)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

from click.testing import CliRunner, Result

from zonetools.cli import main as zonetools


def zt(store: Path, *args: str) -> Result:
    result = CliRunner().invoke(zonetools, ["--store", str(store), "--who", "registry", *args])
    assert result.exit_code == 0, result.output
    return result


def months() -> tuple[str, str, str]:
    """This month (UTC), the one before and the one after, as YYYY-MM."""
    today = dt.datetime.now(dt.UTC).date().replace(day=1)
    before = (today - dt.timedelta(days=1)).replace(day=1)
    after = (today + dt.timedelta(days=32)).replace(day=1)
    return today.strftime("%Y-%m"), before.strftime("%Y-%m"), after.strftime("%Y-%m")


def registry(this: str, after: str) -> str:
    return f"""\
changes:
  - set: operator
    ty: TY31
    name: Uusi Oy
    joined: "{this}-03"
    openstack: true
  - set: operator
    ty: TY32
    name: Vanha Oy
    joined: "2024-05-01"
  - set: operator
    ty: TY33
    name: Tuleva Oy
    joined: "{after}-01"
  - set: po
    ty: TY41
    host_ty: TY32
    name: Uusi Palvelu Oy
    joined: "{this}-10"
  - set: po
    ty: TY42
    host_ty: TY32
    name: Vanha Palvelu Oy
    joined: "2025-01-10"
  - set: tier2
    ty: TY32
    servers: [{{host: ns1.tier2.op32.example.fi, ipv4: 192.0.2.32}}]
"""


def test_billing_matches_hand_computed_totals(tmp_path: Path) -> None:
    this, before, after = months()
    store = tmp_path / "billing.sqlite"
    zt(store, "init")
    changes = tmp_path / "registry.yaml"
    changes.write_text(registry(this, after))
    zt(store, "apply", str(changes))  # setting TY32's first Tier2 servers is not billed
    for address in ("192.0.2.132", "192.0.2.232"):  # two changes: 2 x 540
        zt(store, "tier2", "set", "TY32", "--server", f"ns1.tier2.op32.example.fi,{address}")
    keys = tmp_path / "keys"
    keys.mkdir()
    zt(store, "licence", "issue", "TY32", "--joining", "--out", str(keys))
    zt(store, "licence", "issue", "TY32", "--out", str(keys))  # TY32-P3
    zt(store, "licence", "issue", "TY32", "--out", str(keys))  # TY32-P4, revoked this month:
    zt(store, "licence", "revoke", "TY32-P4")  # still in force this month -> 2 additional
    zt(store, "licence", "issue", "TY31", "--joining", "--out", str(keys))

    report = json.loads(zt(store, "billing", "--month", this, "--json").output)
    bills = {bill["ty"]: bill for bill in report["operators"]}
    assert sorted(bills) == ["TY31", "TY32"]  # TY33 joins next month; POs bill to their host
    lines = {(b["ty"], line["item"]): line for b in bills.values() for line in b["lines"]}
    assert {key: (line["quantity"], line["amount"]) for key, line in lines.items()} == {
        ("TY31", "joining fee"): (1, 5500),
        ("TY31", "monthly fee"): (1, 6000),
        ("TY31", "OpenStack"): (1, 578),
        ("TY32", "monthly fee"): (1, 6000),
        ("TY32", "Tier2 server change"): (2, 1080),
        ("TY32", "PO onboarding"): (1, 1000),
        ("TY32", "PO monthly"): (2, 500),
        ("TY32", "additional publishing system"): (2, 120),
    }
    assert lines[("TY32", "additional publishing system")]["detail"] == "TY32-P3, TY32-P4"
    assert lines[("TY32", "PO onboarding")]["detail"] == "TY41"
    assert bills["TY31"]["total"] == 5500 + 6000 + 578 == 12078
    assert bills["TY32"]["total"] == 6000 + 2 * 540 + 1000 + 2 * 250 + 2 * 60 == 8700
    assert report["total"] == 20778 and report["currency"] == "EUR"

    earlier = json.loads(zt(store, "billing", "--month", before, "--json").output)
    assert [(b["ty"], b["total"]) for b in earlier["operators"]] == [("TY32", 6000 + 250)]

    rows = list(csv.DictReader(io.StringIO(zt(store, "billing", "--month", this, "--csv").output)))
    assert rows[-1] == {"ty": "ALL", "item": "total", "quantity": "", "unit_price": "",
                        "amount": "20778", "detail": ""}  # fmt: skip
    assert sum(int(r["amount"]) for r in rows if r["item"] not in ("total",)) == 20778
    table = zt(store, "billing", "--month", this).output
    assert "Tier2 server change" in table and "20778" in table


def test_billing_refuses_a_month_that_is_not_yyyy_mm(tmp_path: Path) -> None:
    store = tmp_path / "billing.sqlite"
    zt(store, "init")
    result = CliRunner().invoke(zonetools, ["--store", str(store), "billing", "--month", "2026-13"])
    assert result.exit_code == 1 and "must be YYYY-MM" in result.output
