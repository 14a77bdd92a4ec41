"""Knot DNS as a real secondary: it transfers our zones, answers like us, follows every publish.

knotd (Debian package knot) runs on a loopback port with its own configuration and storage in
a temporary directory. It AXFRs the naptr-style and the referral-style Tier1 zones of the demo
store with a TSIG key; then thousands of questions (ported numbers, range numbers, numbers with
routes of their own, templates of service operators, empty non-terminals, names no range holds,
the apex) get the same answer from both servers: rcode, flags, and sections (NAPTR records
compared as the URI a client makes of them: our records spell the number out, Knot's wildcard
uses a backreference). The differences a standard secondary has by design (docs/scaling.md) are
asserted to be exactly those. A publish then reaches Knot by NOTIFY and IXFR.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from enumserver.store import Catalog
from tests.conftest import (
    ROOT,
    XFR_KEY,
    XFR_SECRET,
    RunningServer,
    ServerFactory,
    free_port,
    wait_for_serial,
    write_config,
    zonetools_run,
)
from tests.test_zonefiles import tool

APEX = "8.5.3.e164.arpa."
REFERRAL = "8.5.3.ie164.arpa."
NAPTR = dns.rdatatype.NAPTR
Verdict = tuple[int, str, tuple[tuple[str, ...], ...]]


def knot_config(run: Path, port: int, primary: int) -> str:
    """examples/secondaries/knot.conf with the test's ports, directory and key."""
    text = (ROOT / "examples" / "secondaries" / "knot.conf").read_text()
    return (
        text.replace("/var/lib/knot", str(run))
        .replace("/run/knot", str(run))
        .replace("192.0.2.10@53", f"127.0.0.1@{primary}")
        .replace("192.0.2.10", "127.0.0.1")
        .replace("0.0.0.0@53", f"127.0.0.1@{port}")
        .replace("REPLACE-WITH-BASE64-SECRET", XFR_SECRET)
        .replace("xfr-knot2", XFR_KEY)
        .replace("/var/log/knot/knot.log", str(run / "knot.log"))
    )


class Knot:
    """A knotd secondary started (and stopped, by PID) by the test."""

    def __init__(self, tmp_path: Path, primary: int, port: int) -> None:
        self.port = port
        self.run = tmp_path / "knot"
        self.run.mkdir()
        config = self.run / "knot.conf"
        config.write_text(knot_config(self.run, self.port, primary))
        self.log = self.run / "knot.log"
        self.process = subprocess.Popen(
            [tool("knotd"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.run / "stderr").open("wb"),
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


PRIMARY_CONFIG = """
[transfer]
notify_timeout = 0.5
keys = [{ id = "KEY", secret = "SECRET" }]
remotes = [{ id = "knot", address = "127.0.0.1:KNOT", key = "KEY" }]
acls = [{ id = "knot", address = "127.0.0.1/32", key = "KEY", action = ["transfer"] }]
zones = [
    { name = "tier1", acl = ["knot"], notify = ["knot"] },
    { name = "tier1-referral", acl = ["knot"], notify = ["knot"] },
]
"""


@pytest.fixture
def pair(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> Iterator[tuple[RunningServer, Knot]]:
    """Our server (primary, NOTIFY to Knot) and knotd (secondary of both Tier1 zones)."""
    knot_port = free_port()
    text = PRIMARY_CONFIG.replace("KEY", XFR_KEY).replace("SECRET", XFR_SECRET)
    config = write_config(tmp_path, text.replace("KNOT", str(knot_port)))
    ours = server_factory(writable_store, "--config", str(config))  # first: Knot starts with AXFR
    knot = Knot(tmp_path, ours.port, knot_port)
    try:
        for apex in (APEX, REFERRAL):
            wait_for_serial("127.0.0.1", knot.port, apex, 1, timeout=30)
        yield ours, knot
    finally:
        knot.stop()


def ask(host: str, port: int, name: str, rdtype: str = "NAPTR") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    for _ in range(3):
        try:
            return dns.query.udp(query, host, port=port, timeout=2)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer from {host}:{port} for {name} {rdtype}")


def uri(regexp: bytes, digits: str) -> str:
    """What a client makes of a NAPTR regexp for a number (RFC 3402 on the +digits AUS)."""
    text = regexp.decode()
    pattern, subst, _ = text[1:].split(text[0])
    return re.sub(pattern, re.sub(r"\\(\d)", r"\\g<\1>", subst), "+" + digits, count=1)


def verdict(response: dns.message.Message, digits: str) -> Verdict:
    """rcode, flags and the sections of a response, NAPTR records as a client applies them."""
    sections = []
    for section in (response.answer, response.authority, response.additional):
        lines = []
        for rrset in section:
            for rdata in rrset:
                if rrset.rdtype == NAPTR:
                    data = (
                        f"{rdata.order} {rdata.preference} {rdata.flags!r} {rdata.service!r} "
                        f"{uri(rdata.regexp, digits)} {rdata.replacement}"
                    )
                else:
                    data = rdata.to_text()
                lines.append(
                    f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {data}"
                )
        sections.append(tuple(sorted(lines)))
    return response.rcode(), dns.flags.to_text(response.flags), tuple(sections)


def name_of(digits: str, apex: str) -> str:
    return ".".join(reversed(digits[3:])) + ("." if len(digits) > 3 else "") + apex


def questions(store: Path, seed: int = 6116) -> dict[str, set[str]]:
    """Digit strings to ask, by kind: ported, routed, range, short, long, below, none."""
    catalog = Catalog(store)
    ported = [str(row["number"]) for row in catalog.ported()]
    routed = {str(row["number"]) for row in catalog.routes() if row["number"]}
    ranges = catalog.ranges()
    catalog.close()
    rng = random.Random(seed)
    found: dict[str, set[str]] = {kind: set() for kind in ("ported", "routed", "range", "ent",
                                                           "short", "long", "none")}  # fmt: skip
    found["ported"] = set(ported)
    found["routed"] = routed
    for number in ported:  # neighbours of ported numbers share their empty non-terminals
        found["range"].add(number[:-1] + rng.choice("0123456789"))
        found["ent"].update(number[:size] for size in range(4, len(number)))
    for row in ranges:
        prefix, low, high = str(row["prefix"]), int(row["min_digits"]), int(row["max_digits"])
        for size in range(low, high + 1):
            for _ in range(12):
                tail = "".join(rng.choice("0123456789") for _ in range(size - len(prefix)))
                found["range"].add(prefix + tail)
        found["ent"].update(prefix[:size] for size in range(4, len(prefix) + 1))
        short = prefix + "".join(
            rng.choice("0123456789") for _ in range(max(low - len(prefix) - 1, 0))
        )
        found["short"].add(short)
        found["long"].add(
            prefix + "".join(rng.choice("0123456789") for _ in range(high + 1 - len(prefix)))
        )
    for _ in range(300):
        digits = (
            "358"
            + rng.choice("0123456789")
            + "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 10)))
        )
        found["none"].add(digits)
    return found


def compare_naptr_zone(ours: RunningServer, knot: Knot, asked: dict[str, set[str]]) -> Counter[str]:
    """Ask both servers every question; the same answer, or a documented difference."""
    same: Counter[str] = Counter()
    for kind, numbers in sorted(asked.items()):
        for digits in sorted(numbers):
            name = name_of(digits, APEX)
            theirs = verdict(ask("127.0.0.1", knot.port, name), digits)
            mine = verdict(ask(ours.host, ours.port, name), digits)
            if mine == theirs:
                same[kind] += 1
                continue
            # a name that is no number (too short or too long for its range): Knot's wildcard
            assert kind in ("short", "long", "none", "ent"), (kind, digits, mine, theirs)
            assert mine[0] in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) and not mine[2][0], digits
            assert theirs[0] == dns.rcode.NOERROR and theirs[2][0], (digits, theirs)
            same["documented difference: " + kind] += 1
    return same


def compare_referral_zone(
    ours: RunningServer, knot: Knot, asked: dict[str, set[str]]
) -> Counter[str]:
    """Delegations of ported numbers: the same NS; only we send glue outside the zone; only we
    refer numbers served by their range holder (a standard secondary says NXDOMAIN)."""
    same: Counter[str] = Counter()
    for digits in sorted(asked["ported"] | asked["range"]):
        name = name_of(digits, REFERRAL)
        mine = verdict(ask(ours.host, ours.port, name), digits)
        theirs = verdict(ask("127.0.0.1", knot.port, name), digits)
        assert mine[:2] == (dns.rcode.NOERROR, "QR") and " NS " in mine[2][1][0], digits
        if theirs[2][1] and " NS " in theirs[2][1][0]:  # a delegation in the zone
            assert mine[:2] == theirs[:2] and mine[2][:2] == theirs[2][:2], digits
            assert theirs[2][2] == () and mine[2][2], digits  # glue outside the zone: ours only
            same["referral: same delegation, glue ours only"] += 1
        else:
            assert digits not in asked["ported"], digits
            assert theirs[0] in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR) and not theirs[2][0]
            same["referral: range number, only we refer"] += 1
    return same


def publish_reaches_knot(
    ours: RunningServer, knot: Knot, store: Path, serial: int, *change: str
) -> str:
    """Publish with zonetools; Knot is notified and transfers the change: its log lines."""
    before = len(knot.log_text())
    zonetools_run(store, *change, "-m", f"publish {serial}")
    wait_for_serial(ours.host, ours.port, APEX, serial)
    for apex in (APEX, REFERRAL):
        wait_for_serial("127.0.0.1", knot.port, apex, serial, timeout=20)
    text = knot.log_text()[before:]
    assert f"[{APEX}] notify, incoming" in text, text
    assert f"serial {serial - 1} -> {serial}" in text, text
    return text


DESK = '10 100 "u" "E2U+sip" "!^.*$!sip:desk@op07.example.fi!" .'
TEMPLATE = '10 100 "u" "E2U+sip" "!^.*$!sip:{e164}@new.op05.example.fi!" .'


def test_knot_secondary_answers_like_us_and_follows_publishes(
    pair: tuple[RunningServer, Knot], writable_store: Path
) -> None:
    ours, knot = pair
    assert f"[{APEX}] AXFR, incoming" in knot.log_text()
    asked = questions(writable_store)
    same = compare_naptr_zone(ours, knot, asked)
    for apex_type in ("SOA", "NS", "NAPTR", "A"):
        mine = verdict(ask(ours.host, ours.port, APEX, apex_type), "")
        assert verdict(ask("127.0.0.1", knot.port, APEX, apex_type), "") == mine, apex_type
    assert same["ported"] == len(asked["ported"]) and same["routed"] == len(asked["routed"])
    assert same["range"] == len(asked["range"]) and sum(same.values()) > 5000
    same += compare_referral_zone(ours, knot, asked)

    log = publish_reaches_knot(ours, knot, writable_store, 2, "port", "add", "+358401234568",
                               "--to", "TY09")  # fmt: skip
    assert f"[{APEX}] IXFR, incoming" in log and "AXFR-style" not in log, log
    assert f"[{REFERRAL}] IXFR, incoming" in log, log  # a new delegation
    log = publish_reaches_knot(ours, knot, writable_store, 3, "route", "set", "+358401234567",
                               "--naptr", DESK)  # fmt: skip
    assert f"[{APEX}] IXFR, incoming" in log and "AXFR-style" not in log, log
    changed = {kind: {d for d in numbers if d.startswith("35840123456")}
               for kind, numbers in asked.items()}  # fmt: skip
    changed["ported"] |= {"358401234568"}
    after = compare_naptr_zone(ours, knot, changed)
    assert after["ported"] == len(changed["ported"]) >= 2
    mine = ask(ours.host, ours.port, name_of("358401234567", APEX))
    assert "desk@op07" in mine.to_text()

    log = publish_reaches_knot(ours, knot, writable_store, 4, "route", "set", "TY05",
                               "--template", "--naptr", TEMPLATE)  # fmt: skip
    assert f"[{APEX}] IXFR, incoming, remote 127.0.0.1@{ours.port}, receiving AXFR-style" in log
    assert f"[{REFERRAL}] IXFR, incoming, remote 127.0.0.1@{ours.port}, finished" in log, log
    ty05 = {kind: {d for d in numbers if d.startswith("35850")} for kind, numbers in asked.items()}
    after += compare_naptr_zone(ours, knot, ty05)
    assert after["range"] >= 10
    mine = ask("127.0.0.1", knot.port, name_of("358501234567", APEX))
    assert "new.op05.example.fi" in mine.to_text()
    print(f"knot differential: {dict(same)}; after publishes: {dict(after)}")
