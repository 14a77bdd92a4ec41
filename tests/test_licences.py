"""Licence commands: issue, list, show, revoke, rotate; key files; refusals; rotation and
revocation seen by every server process; `zonetools publish` against a real server."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
from pathlib import Path

import dns.rcode
import dns.tsigkeyring
import pytest
from click.testing import CliRunner, Result

from enumserver.store import Catalog, store_serials
from tests.conftest import Licensed, ServerFactory, dig
from tests.test_update import PORTED, TY05_NUMBER, exchange, key_of, naptr_update
from zonetools.cli import main as zonetools


def zt(store: Path, *args: str) -> Result:
    return CliRunner().invoke(zonetools, ["--store", str(store), "--who", "registry", *args])


def secret_of(path: Path) -> str:
    return path.read_text().split('secret "')[1].split('"')[0]


def test_joining_issues_two_production_and_one_test_licence(
    writable_store: Path, tmp_path: Path
) -> None:
    result = zt(writable_store, "licence", "issue", "TY07", "--joining", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.glob("*.key"))
    assert files == ["ty07-p1-k1.key", "ty07-p2-k1.key", "ty07-t1-k1.key"]
    for path in tmp_path.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert text.startswith(f'key "{path.stem}" {{\n\talgorithm hmac-sha256;\n\tsecret "')
        keyring = dns.tsigkeyring.from_file(path)  # the format dnspython reads
        assert len(next(iter(keyring.values())).secret) == 32
        if shutil.which("named-checkconf"):  # and BIND's configuration parser
            check = subprocess.run(["named-checkconf", str(path)], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        assert secret_of(path) not in result.output
    listing = zt(writable_store, "licence", "list", "--ty", "TY07", "--json")
    rows = json.loads(listing.output)
    assert [(r["id"], r["kind"], r["status"]) for r in rows] == [
        ("TY07-P1", "production", "active"),
        ("TY07-P2", "production", "active"),
        ("TY07-T1", "test", "active"),
    ]
    shown = zt(writable_store, "licence", "show", "TY07-P1").output
    history = zt(writable_store, "history", "--limit", "1", "--json").output
    assert "key_name: ty07-p1-k1" in shown and '"licence issue --joining"' in history
    for path in tmp_path.glob("*.key"):  # never shown, never journaled
        assert secret_of(path) not in listing.output + shown + history


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["TY21"], "TY21 is a PO: it publishes with its host TY03's licences"),
        (["TY99"], "unknown operator TY99"),
        (["TY07", "--kind", "test"], "TY07 has a live test licence"),
        (["TY07", "--joining"], "TY07 has licences already"),
        (["TY07", "--expires", "2020-01-01"], "expiry 2020-01-01 is not in the future"),
        (["TY07", "--expires", "soon"], "expiry 'soon' is not YYYY-MM-DD or ISO 8601"),
    ],
)
def test_refused_issues_write_nothing(
    licensed_store: Licensed, tmp_path: Path, args: list[str], reason: str
) -> None:
    before = store_serials(licensed_store.store)
    out = tmp_path / "out"
    out.mkdir()
    result = zt(licensed_store.store, "licence", "issue", *args, "--out", str(out))
    assert result.exit_code == 1 and reason in result.output, result.output
    assert store_serials(licensed_store.store) == before and not list(out.iterdir())


def test_an_existing_key_file_is_never_overwritten(licensed_store: Licensed) -> None:
    (licensed_store.keys / "ty07-p3-k1.key").write_text("mine")
    result = zt(licensed_store.store, "licence", "issue", "TY07", "--out", str(licensed_store.keys))
    assert result.exit_code == 1 and "exist already" in result.output
    assert (licensed_store.keys / "ty07-p3-k1.key").read_text() == "mine"
    assert Catalog(licensed_store.store).licence("TY07-P3") is None


def test_rotation_and_revocation_reach_every_server_process_at_once(
    server_factory: ServerFactory, licensed_store: Licensed
) -> None:
    store, keys = licensed_store.store, licensed_store.keys
    servers = [server_factory(store), server_factory(store)]
    old = key_of(licensed_store.key("TY07-P1"))
    for server in servers:
        assert exchange(server, naptr_update(PORTED, old)).rcode() == dns.rcode.NOERROR
    rotated = zt(store, "licence", "rotate", "TY07-P1", "--out", str(keys), "-m", "yearly")
    assert rotated.exit_code == 0 and "key ty07-p1-k2" in rotated.output, rotated.output
    new = key_of(licensed_store.key("TY07-P1", generation=2))
    for server in servers:  # no reload, no wait: the key is read on every message
        assert exchange(server, naptr_update(PORTED, old)).tsig_error == dns.rcode.BADKEY
        assert exchange(server, naptr_update(PORTED, new)).rcode() == dns.rcode.NOERROR
    revoked = zt(store, "licence", "revoke", "TY07-P1", "-m", "system decommissioned")
    assert revoked.exit_code == 0, revoked.output
    started = time.monotonic()
    for server in servers:
        reply = exchange(server, naptr_update(PORTED, new))
        assert (reply.rcode(), reply.tsig_error) == (dns.rcode.NOTAUTH, dns.rcode.BADKEY)
    assert time.monotonic() - started < 1.0
    again = zt(store, "licence", "revoke", "TY07-P1")
    assert again.exit_code == 1 and "was revoked at" in again.output
    assert "revoked" in zt(store, "licence", "show", "TY07-P1").output
    rotate_revoked = zt(store, "licence", "rotate", "TY07-P1", "--out", str(keys))
    assert rotate_revoked.exit_code == 1 and "is revoked" in rotate_revoked.output


CHANGES = """\
message: routes from TY07's publishing system
changes:
  - set: route
    number: "+358401234567"
    records:
      - {order: 10, preference: 100, service: E2U+sip, regexp: "!^.*$!sip:ops@pbx.op07.example.fi!"}
  - set: route
    number: "+358501234567"
    records:
      - {order: 10, preference: 100, service: E2U+sip, regexp: "!^.*$!sip:x@pbx.op07.example.fi!"}
  - set: template
    ty: TY07
    records:
      - {order: 10, preference: 100, service: E2U+sip, regexp: "!^.*$!sip:{e164}@n.op07.fi!"}
  - set: tier2
    ty: TY07
    servers:
      - {host: ns1.tier2.op07.example.fi, ipv4: 192.0.2.77}
  - set: operator
    ty: TY07
    name: Renamed Oy
"""


def test_publish_sends_each_change_and_reports_it(
    server_factory: ServerFactory, licensed_store: Licensed, tmp_path: Path
) -> None:
    server = server_factory(licensed_store.store)
    changes = tmp_path / "changes.yaml"
    changes.write_text(CHANGES)
    key = str(licensed_store.key("TY07-P1"))
    address = f"{server.host}:{server.port}"
    result = CliRunner().invoke(
        zonetools, ["publish", "--server", address, "--licence", key, str(changes), "--json"]
    )
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert [(r["change"], r["accepted"], r["rcode"]) for r in rows] == [
        ("set route +358401234567", True, "NOERROR"),
        ("set route +358501234567", False, "REFUSED"),
        ("set template TY07", True, "NOERROR"),
        ("set tier2 TY07", True, "NOERROR"),
        ("set operator TY07", False, "not sent"),
    ]
    assert "belongs to TY05, not to TY07 (licence TY07-P1)" in rows[1]["reason"]
    assert "4 accepted" not in result.stdout and "3 accepted, 2 refused" in result.stderr
    assert "ops@pbx.op07.example.fi" in " ".join(dig(server, PORTED, "NAPTR").answer)
    assert "ims.op05.example.fi" in " ".join(dig(server, TY05_NUMBER, "NAPTR").answer)
    referral = dig(server, "7.6.5.4.3.2.1.0.4.8.5.3.ie164.arpa.", "NAPTR").additional
    assert referral == ["ns1.tier2.op07.example.fi. 3600 IN A 192.0.2.77"]
    text = CliRunner().invoke(zonetools, ["publish", "--server", address, "--licence", key,
                                          str(changes)])  # fmt: skip
    assert "accepted set route +358401234567 (NOERROR)" in text.output
    assert "refused  set route +358501234567 (REFUSED): UPDATE tier1" in text.output
