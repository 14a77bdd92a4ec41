"""Publishing as an operator does it: zonetools commands and change-set files, then real queries.

Every change goes through plan/apply (one transaction, serial, journal, audit); a running server
answers the new data within a second; refused input names its reason and writes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dns.rcode
import pytest
from click.testing import CliRunner, Result

from enumserver.store import store_serials
from tests.conftest import RunningServer, ServerFactory, dig
from zonetools.cli import main as zonetools

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."  # +358401234567 (TY07)
RANGE_ONLY = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."  # +358501234567 (TY05)


def zt(store: Path, *args: str) -> Result:
    return CliRunner().invoke(zonetools, ["--store", str(store), "--who", "tester", *args])


def wait_for(server: RunningServer, name: str, text: str, within: float = 1.0) -> float:
    """Seconds until the server's NAPTR answer for name contains text (fails after `within`)."""
    started = time.monotonic()
    while True:
        response = server.query(name)
        if any(text in rrset.to_text() for rrset in response.answer):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{text!r} not served within {within} s"
        time.sleep(0.02)


def test_port_add_is_answered_within_a_second(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    result = zt(writable_store, "port", "add", "+358501234567", "--to", "TY09", "-m", "NP 4711")
    assert result.exit_code == 0, result.output
    assert "+ port +358501234567" in result.output and "applied at serial 2" in result.output
    assert "rn=+35899909" in result.output  # the resulting answer is shown
    wait_for(running, RANGE_ONLY, "ims.op09.example.fi")
    answer = dig(running, RANGE_ONLY, "NAPTR")
    assert answer.answer[1].endswith('"!^.*$!tel:+358501234567;npdi;rn=+35899909!" .')
    deadline = time.monotonic() + 1
    while running.query("8.5.3.e164.arpa.", "SOA").answer[0][0].serial != 2:
        assert time.monotonic() < deadline, "new SOA serial not served within 1 s"
        time.sleep(0.02)


def test_port_remove_returns_number_to_range_holder(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    assert zt(writable_store, "port", "remove", "+358401234567").exit_code == 0
    wait_for(running, PORTED, "ims.op01.example.fi")


def test_route_set_and_remove_for_one_number(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    naptr = '10 50 "u" "E2U+sip" "!^.*$!sip:desk@pbx.op07.example.fi!" .'
    result = zt(writable_store, "route", "set", "+358401234567", "--naptr", naptr, "--ttl", "120")
    assert result.exit_code == 0, result.output
    wait_for(running, PORTED, "desk@pbx.op07.example.fi")
    response = running.query(PORTED)
    assert len(response.answer) == 1 and len(response.answer[0]) == 1
    assert response.answer[0].ttl == 120
    assert zt(writable_store, "route", "remove", "+358401234567").exit_code == 0
    wait_for(running, PORTED, "ims.op07.example.fi")


def test_operator_template_change_moves_all_its_numbers(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    sip = '10 100 "u" "E2U+sip" "!^.*$!sip:{e164}@sbc.op05.example.fi;user=phone!" .'
    tel = '20 100 "u" "E2U+pstn:tel" "!^.*$!tel:{e164};npdi;rn={rn}!" .'
    result = zt(
        writable_store, "route", "set", "TY05", "--template", "--naptr", sip, "--naptr", tel
    )
    assert result.exit_code == 0, result.output
    wait_for(running, RANGE_ONLY, "sip:+358501234567@sbc.op05.example.fi;user=phone")


def test_tier2_change_moves_the_referral(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    result = zt(
        writable_store,
        "tier2",
        "set",
        "TY07",
        "--server",
        "ns9.tier2.op07.example.fi,192.0.2.99,2001:db8::99",
    )
    assert result.exit_code == 0, result.output
    name = "7.6.5.4.3.2.1.0.4.8.5.3.ie164.arpa."
    deadline = time.monotonic() + 1
    while "ns9.tier2" not in " ".join(dig(running, name, "NAPTR").authority):
        assert time.monotonic() < deadline, "referral not changed within 1 s"
        time.sleep(0.05)
    referral = dig(running, name, "NAPTR")
    assert referral.authority == [f"{name} 3600 IN NS ns9.tier2.op07.example.fi."]
    assert referral.additional == [
        "ns9.tier2.op07.example.fi. 3600 IN A 192.0.2.99",
        "ns9.tier2.op07.example.fi. 3600 IN AAAA 2001:db8::99",
    ]


CHANGES = """\
message: June changes
changes:
  - set: operator
    ty: TY13
    name: Uusi Operaattori Oy
    routing_number: "+35899913"
    sip_domain: ims.op13.example.fi
  - set: template
    ty: TY13
    records:
      - {order: 10, preference: 100, service: E2U+sip, regexp: "!^.*$!sip:{e164}@{sip_domain}!"}
      - order: 20
        preference: 100
        service: "E2U+pstn:tel"
        regexp: "!^.*$!tel:{e164};npdi;rn={rn}!"
  - set: range
    prefix: "+358469"
    holder: TY13
  - set: port
    number: "+358501234567"
    recipient: TY13
"""


def test_plan_shows_changes_and_answers_and_writes_nothing(
    writable_store: Path, tmp_path: Path
) -> None:
    changes = tmp_path / "changes.yaml"
    changes.write_text(CHANGES.replace("+358469", "+358479"))
    before = store_serials(writable_store)
    result = zt(writable_store, "plan", str(changes))
    assert result.exit_code == 0, result.output
    assert "+ operator TY13" in result.output and "+ port +358501234567" in result.output
    assert "4 to add, 0 to modify, 0 to remove" in result.output
    assert "sip:+358501234567@ims.op13.example.fi" in result.output  # the answer after
    assert store_serials(writable_store) == before
    as_json = json.loads(zt(writable_store, "plan", str(changes), "--json").output)
    assert as_json["applied"] is False and as_json["counts"]["add"] == 4
    assert {c["entity"] for c in as_json["changes"]} == {"operator", "template", "range", "port"}


def test_apply_with_reviewed_checksum_and_refusal_when_stale(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    running = server_factory(writable_store)
    changes = tmp_path / "changes.yaml"
    changes.write_text(CHANGES.replace("+358469", "+358479"))
    checksum = json.loads(zt(writable_store, "plan", str(changes), "--json").output)["checksum"]
    assert zt(writable_store, "port", "add", "+358411112222", "--to", "TY01").exit_code == 0
    stale = zt(writable_store, "apply", str(changes), "--checksum", checksum)
    assert stale.exit_code == 1 and "store changed since the plan" in stale.output
    assert store_serials(writable_store)["tier1"] == 2
    fresh = json.loads(zt(writable_store, "plan", str(changes), "--json").output)["checksum"]
    applied = zt(writable_store, "apply", str(changes), "--checksum", fresh)
    assert applied.exit_code == 0 and "applied at serial 3" in applied.output
    wait_for(running, RANGE_ONLY, "ims.op13.example.fi")
    history = json.loads(zt(writable_store, "history", "--json", "--limit", "1").output)[0]
    assert history["who"] == "tester" and history["message"] == "June changes"
    assert history["command"] == "apply changes.yaml" and history["changes"] >= 4


def test_invalid_change_set_reports_every_reason_and_writes_nothing(
    writable_store: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""\
        changes:
          - set: port
            number: "+358501234567"
            recipient: TY99
          - set: route
            number: "+358401234567"
            records:
              - {order: 10, preference: 100, flags: u, service: sip, regexp: "!^.*$!sip:x@y"}
          - set: range
            prefix: "+35840"
            holder: TY02
          - set: tier2
            ty: TY07
            servers: [{host: "bad_name.example.fi"}]
          - set: port
            number: "+35820000000"
            recipient: TY07
        """)
    )
    before = store_serials(writable_store)
    result = zt(writable_store, "apply", str(bad))
    assert result.exit_code == 1 and "nothing written" in result.output
    out = result.output
    assert f"{bad}:2: set port: unknown operator TY99" in out
    assert "service 'sip' must be E2U+type" in out and "must be !pattern!replacement!" in out
    assert "+35840 overlaps another holder's range: +358400 (TY01)" in out
    assert "invalid labels ['bad_name']" in out and "needs an IPv4 or IPv6 glue address" in out
    assert "+35820000000 is in no number range" in out
    assert store_serials(writable_store) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["port", "add", "+35850123", "--to", "TY09"], "mobile numbers have 7-10"),
        (["port", "add", "+4912345678", "--to", "TY09"], "not a Finnish number"),
        (["port", "add", "+358501234567", "--to", "TY99"], "unknown operator TY99"),
        (["range", "add", "+358401", "--holder", "TY02"], "overlaps another holder's range"),
        (
            [
                "route",
                "set",
                "+358401234567",
                "--naptr",
                '10 100 "u" "E2U+sip" "!^(.*)$!sip:\\\\2@x!" .',
            ],
            "uses \\2 but the pattern has 1",
        ),
        (
            [
                "route",
                "set",
                "+358401234567",
                "--naptr",
                '10 100 "u" "E2U+sip" "!^.*$!sip:x@y!" x.example.',
            ],
            "replacement must be '.'",
        ),
        (["operator", "remove", "TY07"], "TY07 still has"),
        (["po", "add", "TY23", "--host", "TY21", "--name", "X"], "TY21 is a PO, not a TY"),
    ],
)
def test_refusals_name_the_reason(writable_store: Path, args: list[str], message: str) -> None:
    before = store_serials(writable_store)
    result = zt(writable_store, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert store_serials(writable_store) == before


def test_usage_errors_exit_2(writable_store: Path) -> None:
    assert zt(writable_store, "port", "add", "+358501234567").exit_code == 2  # --to missing


def ported_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.write_text(
        "number,recipient,donor,ported_at\n" + "".join(",".join(row) + "\n" for row in rows)
    )
    return path


def test_bulk_import_reimport_and_snapshot(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    running = server_factory(writable_store)
    rows = [(f"+3585012345{i:02d}", "TY09", "TY05", "2025-06-02T09:30:00Z") for i in range(100)]
    file = ported_csv(tmp_path / "np.csv", rows)
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "zonetools",
            "--store",
            str(writable_store),
            "port",
            "import",
            str(file),
            "-m",
            "NP master",
        ],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    assert "100 to add, 0 to modify, 0 to remove" in first.stdout
    assert "writing" not in first.stderr  # no progress bar when piped
    wait_for(running, RANGE_ONLY, "ims.op09.example.fi")
    again = zt(writable_store, "port", "import", str(file))
    assert "nothing to change" in again.output and store_serials(writable_store)["tier1"] == 2
    snap = zt(writable_store, "port", "import", str(file), "--snapshot")
    assert "0 to add, 0 to modify, 320 to remove" in snap.output  # the demo's own ports
    wait_for(running, PORTED, "ims.op01.example.fi")  # +358401234567 back to its range holder


def test_bulk_import_bad_row_names_file_and_line_and_writes_nothing(
    writable_store: Path, tmp_path: Path
) -> None:
    rows = [
        ("+358501234500", "TY09", "TY05", "2025-06-02T09:30:00Z"),
        ("+358501234501", "TY77", "TY05", "2025-06-02T09:30:00Z"),
        ("+358501234500", "TY08", "TY05", "2025-06-02T09:30:00Z"),
        ("+4940123456", "TY08", "", ""),
        ("+358501234502", "TY08", "TY05", "yesterday"),
    ]
    file = ported_csv(tmp_path / "np.csv", rows)
    before = store_serials(writable_store)
    result = zt(writable_store, "port", "import", str(file))
    assert result.exit_code == 1
    assert f"{file}:3: unknown recipient TY 'TY77'" in result.output
    assert f"{file}:4: +358501234500 is listed twice (also on line 2)" in result.output
    assert f"{file}:5: +4940123456 is not a Finnish number" in result.output
    assert f"{file}:6: porting time 'yesterday' is not ISO 8601" in result.output
    assert store_serials(writable_store) == before


def test_sigkill_during_a_large_apply_leaves_before_or_after(
    writable_store: Path, tmp_path: Path
) -> None:
    file = tmp_path / "big.csv"
    file.write_text("number,recipient\n" + "".join(f"+35844{i:07d},TY09\n" for i in range(300_000)))
    with sqlite3.connect(writable_store) as conn:
        (already,) = conn.execute(
            "SELECT count(*) FROM ported WHERE number LIKE '35844%'"
        ).fetchone()
    wal = Path(f"{writable_store}-wal")
    base = wal.stat().st_size if wal.exists() else 0
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zonetools",
            "--store",
            str(writable_store),
            "port",
            "import",
            str(file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while process.poll() is None:  # kill as soon as the transaction's pages reach the WAL
        if wal.exists() and wal.stat().st_size > base + 4_000_000:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    with sqlite3.connect(writable_store) as conn:
        count = conn.execute("SELECT count(*) FROM ported WHERE number LIKE '35844%'").fetchone()[0]
        serial = conn.execute("SELECT max(serial) FROM zones").fetchone()[0]
        journal = conn.execute("SELECT count(*) FROM journal WHERE serial = 2").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before, after = (already, 1, 0), (300_000 + already, 2, 300_000)
    assert (count, serial, journal) in (before, after)


def test_number_explains_how_it_resolves(writable_store: Path) -> None:
    result = zt(writable_store, "number", "+358401234567", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "mobile" and info["serving_operator"] == "TY07"
    assert info["range"]["holder"] == "TY01" and info["ported"]["donor"] == "TY01"
    assert info["routes"] == "template"
    answer = "\n".join(info["answers"]["tier1"])
    assert "rcode NOERROR" in answer and "rn=+35899907" in answer
    assert "ns1.tier2.op07.example.fi." in "\n".join(info["answers"]["tier1-referral"])
    text = zt(writable_store, "number", "0401234567")
    assert "serving_operator: TY07" in text.output


def test_lists_have_json(writable_store: Path) -> None:
    for args, key in (
        (["operator", "list"], "ty"),
        (["range", "list"], "prefix"),
        (["port", "list"], "number"),
        (["route", "list"], "service"),
        (["tier2", "show"], "host"),
        (["zone", "list"], "apex"),
        (["po", "list"], "host_ty"),
    ):
        result = zt(writable_store, *args, "--json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert rows and key in rows[0], args
    show = json.loads(zt(writable_store, "operator", "show", "TY03", "--json").output)
    assert show["pos"] == ["TY21", "TY22"] and len(show["tier2"]) == 2


def test_server_keeps_answering_during_a_bulk_import(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    running = server_factory(writable_store)
    file = tmp_path / "np.csv"
    file.write_text("number,recipient\n" + "".join(f"+35844{i:07d},TY09\n" for i in range(100_000)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zonetools",
            "--store",
            str(writable_store),
            "port",
            "import",
            str(file),
        ],
        stdout=subprocess.DEVNULL,
    )
    answered = 0
    while process.poll() is None:
        assert running.query(PORTED).rcode() == dns.rcode.NOERROR
        answered += 1
    assert process.returncode == 0 and answered > 10
    wait_for(running, "0.0.0.0.0.0.0.4.4.8.5.3.e164.arpa.", "ims.op09.example.fi")


def test_zone_add_on_an_empty_store(tmp_path: Path) -> None:
    store = tmp_path / "new.sqlite"
    assert zt(store, "init").exit_code == 0
    result = zt(
        store,
        "zone",
        "add",
        "tier1",
        "--apex",
        "8.5.3.e164.arpa.",
        "--mname",
        "ns1.enum.example.fi.",
        "--rname",
        "hostmaster.enum.example.fi.",
        "--ns",
        "ns1.enum.example.fi.",
    )
    assert result.exit_code == 0, result.output
    zones = json.loads(zt(store, "zone", "list", "--json").output)
    assert [(z["name"], z["apex"], z["style"], z["operator"]) for z in zones] == [
        ("tier1", "8.5.3.e164.arpa.", "naptr", None)
    ]
