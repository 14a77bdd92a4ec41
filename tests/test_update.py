"""DNS UPDATE signed with licence keys, through real nsupdate and dnspython against a real server.

Accepted updates are served within a second and audited with the licence; every refusal
answers the rcode RFC 2136 / RFC 8945 name and leaves the store exactly as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest
from click.testing import CliRunner

from enumserver.store import Catalog, store_serials
from tests.conftest import Licensed, RunningServer, ServerFactory, dig
from zonetools.cli import main as zonetools

APEX = "8.5.3.e164.arpa."
PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."  # +358401234567, ported from TY01 to TY07
TY05_NUMBER = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."  # +358501234567, TY05's range
UNHELD = "0.0.0.0.0.0.0.2.8.5.3.e164.arpa."  # +35820000000, in no range
DESK = '10 100 "u" "E2U+sip" "!^.*$!sip:desk@pbx.op07.example.fi!" .'


def zt(store: Path, *args: str) -> Any:
    result = CliRunner().invoke(zonetools, ["--store", str(store), "--who", "registry", *args])
    assert result.exit_code == 0, result.output
    return result


def key_of(path: Path) -> dns.tsig.Key:
    key = next(iter(dns.tsigkeyring.from_file(path).values()))
    assert isinstance(key, dns.tsig.Key)
    return key


def nsupdate(server: RunningServer, key: Path, script: str, *flags: str) -> str:
    """Run the real nsupdate (bind9-dnsutils); its output, with 'update failed: RCODE' if any."""
    if shutil.which("nsupdate") is None:
        pytest.fail("nsupdate is not installed: run scripts/test (it installs bind9-dnsutils)")
    text = f"server {server.host} {server.port}\n{script.strip()}\nsend\n"
    done = subprocess.run(
        ["nsupdate", "-k", str(key), "-t", "3", *flags],
        input=text, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return done.stdout + done.stderr


def exchange(server: RunningServer, message: dns.message.Message | bytes) -> dns.message.Message:
    """Send over UDP and read the reply without checking its TSIG (rcode and TSIG error)."""
    wire = message if isinstance(message, bytes) else message.to_wire()
    reply = server.send_udp(wire, timeout=3)
    assert reply is not None, "no reply"
    return dns.message.from_wire(reply, keyring=False)


def state(store: Path) -> tuple[Any, ...]:
    """Everything an update could change: serials, routes, Tier2 servers, audit, events."""
    catalog = Catalog(store)
    try:
        return (
            store_serials(store),
            catalog.routes(),
            catalog.tier2(),
            len(catalog.history(limit=10_000)),
            catalog.billable_events("0", "9"),
        )
    finally:
        catalog.close()


@contextlib.contextmanager
def unchanged(store: Path) -> Iterator[None]:
    before = state(store)
    yield
    assert state(store) == before, "a refused update changed the store"


def naptr_update(name: str, key: dns.tsig.Key | None, zone: str = APEX) -> dns.update.UpdateMessage:
    update = dns.update.UpdateMessage(zone, keyring=key)
    update.replace(name, 300, "NAPTR", DESK)
    return update


@pytest.fixture
def running(server_factory: ServerFactory, licensed_store: Licensed) -> RunningServer:
    return server_factory(licensed_store.store)


def test_nsupdate_route_change_is_served_within_a_second(
    running: RunningServer, licensed_store: Licensed
) -> None:
    started = time.monotonic()
    output = nsupdate(
        running, licensed_store.key("TY07-P1"),
        f"update delete {PORTED} NAPTR\nupdate add {PORTED} 300 NAPTR {DESK}",
    )  # fmt: skip
    assert "update failed" not in output and "error" not in output.lower(), output
    sent = time.monotonic()
    while "desk@pbx.op07.example.fi" not in " ".join(dig(running, PORTED, "NAPTR").answer):
        assert time.monotonic() - sent < 1.0, "route not served within 1 s of nsupdate"
        time.sleep(0.02)
    assert time.monotonic() - started < 5
    assert dig(running, PORTED, "NAPTR").answer == [f"{PORTED} 300 IN NAPTR {DESK}"]
    entry = Catalog(licensed_store.store).history(limit=1)[0]
    assert (entry["who"], entry["licence"], entry["command"]) == ("TY07", "TY07-P1", "dns update")
    assert entry["changes"] == 1 and "ty07-p1-k1" in entry["message"]


def test_nsupdate_over_tcp_with_prerequisites(
    running: RunningServer, licensed_store: Licensed
) -> None:
    key = licensed_store.key("TY07-P1")
    fails = nsupdate(
        running, key, f"prereq nxrrset {PORTED} NAPTR\nupdate add {PORTED} 60 NAPTR {DESK}", "-v"
    )
    assert "update failed: YXRRSET" in fails
    done = nsupdate(
        running, key, f"prereq yxrrset {PORTED} NAPTR\nupdate add {PORTED} 60 NAPTR {DESK}", "-v"
    )
    assert "update failed" not in done, done
    # RFC 2136 add: the record joins the RRset the zone answered (TY07's two template records)
    answer = dig(running, PORTED, "NAPTR").answer
    assert len(answer) == 3 and all(" 60 IN NAPTR " in line for line in answer)


def test_refused_updates_answer_their_rcode_and_change_nothing(
    running: RunningServer, licensed_store: Licensed, tmp_path: Path
) -> None:
    store = licensed_store.store
    replace = f"update delete {TY05_NUMBER} NAPTR\nupdate add {TY05_NUMBER} 300 NAPTR {DESK}"
    with unchanged(store):  # the same key on another TY's number
        assert "update failed: REFUSED" in nsupdate(running, licensed_store.key("TY07-P1"), replace)
    own = f"update delete {PORTED} NAPTR\nupdate add {PORTED} 300 NAPTR {DESK}"
    with unchanged(store):  # a test licence on a production zone
        assert "update failed: REFUSED" in nsupdate(running, licensed_store.key("TY07-T1"), own)
    wrong = tmp_path / "wrong.key"
    text = licensed_store.key("TY07-P1").read_text()
    wrong.write_text(text.replace(text.split('secret "')[1].split('"')[0], "A" * 43 + "="))
    with unchanged(store):  # a wrong MAC
        assert "NOTAUTH(BADSIG)" in nsupdate(running, wrong, f"zone {APEX}\n{own}")
    with unchanged(store):  # unsigned
        assert exchange(running, naptr_update(PORTED, None)).rcode() == dns.rcode.REFUSED
    key = key_of(licensed_store.key("TY07-P1"))
    with unchanged(store):  # a zone this server does not serve
        reply = exchange(running, naptr_update("1.2.example.org.", key, "example.org."))
        assert reply.rcode() == dns.rcode.NOTAUTH
    zt(store, "licence", "revoke", "TY07-P2", "-m", "system stolen")
    with unchanged(store):  # revoked: refused from the moment the revocation committed
        assert "NOTAUTH(BADKEY)" in nsupdate(running, licensed_store.key("TY07-P2"), own)
    assert "NOTAUTH(BADKEY)" in nsupdate(running, licensed_store.key("TY07-P2"), own, "-v")


def test_expired_key_and_replay_outside_the_time_window_are_refused(
    running: RunningServer, licensed_store: Licensed
) -> None:
    store = licensed_store.store
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat(timespec="seconds")
    zt(store, "licence", "issue", "TY07", "--expires", soon, "--out", str(licensed_store.keys))
    expiring = key_of(licensed_store.key("TY07-P3"))
    update = naptr_update(PORTED, key_of(licensed_store.key("TY07-P1")))
    update.use_tsig(key_of(licensed_store.key("TY07-P1")), fudge=1)
    wire = update.to_wire()
    assert exchange(running, wire).rcode() == dns.rcode.NOERROR
    before_expiry = exchange(running, naptr_update(PORTED, expiring))
    assert before_expiry.rcode() == dns.rcode.NOERROR
    time.sleep(2.2)
    with unchanged(store):
        replay = exchange(running, wire)  # the same bytes, 2 s later, fudge 1 s
        assert (replay.rcode(), replay.tsig_error) == (dns.rcode.NOTAUTH, dns.rcode.BADTIME)
        tsig: Any = replay.tsig[0]  # type: ignore[index]
        assert len(tsig.mac) == 32 and len(tsig.other) == 6  # signed; our time in Other Data
        expired = exchange(running, naptr_update(PORTED, expiring))
        assert (expired.rcode(), expired.tsig_error) == (dns.rcode.NOTAUTH, dns.rcode.BADKEY)
        assert expired.tsig[0].mac == b""  # type: ignore[index]  # BADKEY: unsigned


def test_signed_queries_get_signed_answers(
    running: RunningServer, licensed_store: Licensed
) -> None:
    key = key_of(licensed_store.key("TY05-P1"))
    query = dns.message.make_query(TY05_NUMBER, "NAPTR")
    query.use_tsig(key)
    answer = dns.query.udp(query, running.host, port=running.port, timeout=3)  # verifies the MAC
    assert answer.had_tsig and "ims.op05.example.fi" in answer.answer[0].to_text()
    soa = dns.message.make_query(APEX, "SOA")
    soa.use_tsig(key)
    assert dns.query.tcp(soa, running.host, port=running.port, timeout=3).had_tsig
    unknown = dns.message.make_query(APEX, "SOA")
    unknown.use_tsig(dns.tsig.Key("nobody.", b"x" * 32, "hmac-sha256"))
    reply = exchange(running, unknown)
    assert (reply.rcode(), reply.tsig_error) == (dns.rcode.NOTAUTH, dns.rcode.BADKEY)


def adds_type_any(key: dns.tsig.Key) -> bytes:
    """A signed UPDATE that adds an RR of type ANY (FORMERR, RFC 2136 3.4.1.2)."""
    plain = dns.update.UpdateMessage(APEX)
    plain.add(PORTED, 300, "NAPTR", DESK)
    wire = bytearray(plain.to_wire())
    at = wire.index(b"\x00\x23\x00\x01")  # type NAPTR, class IN of the added RR
    wire[at : at + 2] = b"\x00\xff"
    message = dns.message.from_wire(bytes(wire))
    message.use_tsig(key)
    return message.to_wire()


def test_prerequisites_and_format_errors_answer_the_rfc_2136_rcodes(
    running: RunningServer, licensed_store: Licensed
) -> None:
    key = key_of(licensed_store.key("TY07-P1"))
    own = dns.name.from_text(PORTED)
    desk = dns.rdata.from_text("IN", "NAPTR", DESK)
    cases: list[tuple[str, Any, dns.rcode.Rcode]] = [
        ("name in use", lambda u: u.absent(own), dns.rcode.YXDOMAIN),
        ("name not in use", lambda u: u.present(UNHELD), dns.rcode.NXDOMAIN),
        ("RRset exists", lambda u: u.absent(own, "NAPTR"), dns.rcode.YXRRSET),
        ("RRset missing", lambda u: u.present(own, "TXT"), dns.rcode.NXRRSET),
        ("RRset differs", lambda u: u.present(own, desk), dns.rcode.NXRRSET),
        ("outside the zone", lambda u: u.present("www.example.org."), dns.rcode.NOTZONE),
        ("holds", lambda u: u.present(own, "NAPTR"), dns.rcode.NOERROR),
    ]
    for case, prerequisite, rcode in cases:
        update = dns.update.UpdateMessage(APEX, keyring=key)
        prerequisite(update)
        update.replace(own, 300, "NAPTR", DESK)
        if rcode == dns.rcode.NOERROR:
            assert exchange(running, update).rcode() == rcode, case
            continue
        with unchanged(licensed_store.store):
            assert exchange(running, update).rcode() == rcode, case
    with unchanged(licensed_store.store):
        assert exchange(running, adds_type_any(key)).rcode() == dns.rcode.FORMERR


def test_tier2_change_by_update_is_referred_and_billed(
    running: RunningServer, licensed_store: Licensed
) -> None:
    key = key_of(licensed_store.key("TY07-P1"))
    ns = "ty07.tier2." + APEX
    update = dns.update.UpdateMessage(APEX, keyring=key)
    update.replace(ns, 1800, "NS", "ns9.tier2.op07.example.fi.")
    update.replace("ns9.tier2.op07.example.fi." + ns, 1800, "A", "192.0.2.99")
    assert exchange(running, update).rcode() == dns.rcode.NOERROR
    referral = dig(running, "7.6.5.4.3.2.1.0.4.8.5.3.ie164.arpa.", "NAPTR")
    assert referral.authority == [
        "7.6.5.4.3.2.1.0.4.8.5.3.ie164.arpa. 1800 IN NS ns9.tier2.op07.example.fi."
    ]
    assert referral.additional == ["ns9.tier2.op07.example.fi. 1800 IN A 192.0.2.99"]
    events = Catalog(licensed_store.store).billable_events("0", "9")
    assert [(e["ty"], e["item"], e["licence"]) for e in events] == [
        ("TY07", "tier2_change", "TY07-P1")
    ]
