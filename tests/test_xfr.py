"""Zone transfers out: AXFR and IXFR asked by the real dig and by dnspython's XFR client.

What a transfer sends is exactly what `zonetools export` writes (the zone image); IXFR sends
the differences a publish made, and the zone a client builds from them is the zone a fresh
AXFR gives. Transfers are allowed by address and TSIG key rules, refused otherwise.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.versioned
import dns.xfr
import dns.zone
import pytest

from enumserver.store import store_serials
from tests.conftest import (
    XFR_KEY,
    XFR_SECRET,
    RunningServer,
    ServerFactory,
    start_server,
    stop_server,
    wait_for_serial,
    write_config,
    zonetools_run,
)
from zonetools.exports import export_zone

APEX = "8.5.3.e164.arpa."
REFERRAL_APEX = "8.5.3.ie164.arpa."
TEST_APEX = "8.5.3.e164enum.test."
SOA = "{} 300 IN SOA ns1.enum.example.fi. hostmaster.enum.example.fi. {} 3600 600 1209600 60"
DESK = '10 100 "u" "E2U+sip" "!^.*$!sip:desk@op07.example.fi!" .'
KEYRING = dns.tsigkeyring.from_text({XFR_KEY: ("hmac-sha256", XFR_SECRET)})
NEIGHBOUR = "+358401234568"  # next to the ported +358401234567: its empty non-terminals exist
NEIGHBOUR_NAME = "8.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."
TRANSFER_CONFIG = """
[transfer]
ixfr_max_depth = DEPTH
keys = [{ id = "KEY", secret = "SECRET" }]
acls = [
    { id = "keyed", address = ["127.0.0.0/8"], key = ["KEY"] },
    { id = "local", address = ["127.0.0.1/32"] },
    { id = "elsewhere", address = ["192.0.2.0/24", "2001:db8::/32"] },
]
zones = [
    { name = "tier1", acl = ["keyed", "local"] },
    { name = "tier1-referral", acl = ["keyed"] },
    { name = "test", acl = ["elsewhere"] },
]
""".replace("KEY", XFR_KEY).replace("SECRET", XFR_SECRET)


def transfer_server(
    factory: ServerFactory, store: Path, tmp_path: Path, depth: int = 1000
) -> RunningServer:
    text = TRANSFER_CONFIG.replace("DEPTH", str(depth))
    config = write_config(tmp_path, text, f"xfr-{depth}.toml")
    return factory(store, "--config", str(config))


@pytest.fixture
def xfr(server_factory: ServerFactory, writable_store: Path, tmp_path: Path) -> RunningServer:
    """A server allowing tier1 to 127.0.0.1 (signed or not), the referral zone with the key
    only, and the test zone to documentation networks only, on a store the test may change."""
    return transfer_server(server_factory, writable_store, tmp_path)


@pytest.fixture(scope="module")
def demo(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The same on the shared demo store, for the tests that publish nothing."""
    directory = tmp_path_factory.mktemp("xfr")
    config = write_config(directory, TRANSFER_CONFIG.replace("DEPTH", "1000"))
    running = start_server(demo_store, directory, "--config", str(config))
    yield running
    stop_server(running)


def store_of(server: RunningServer) -> Path:
    args = server.process.args
    assert isinstance(args, list)
    return Path(str(args[args.index("--store") + 1]))


def records(text: str) -> list[str]:
    """Resource record lines of dig or zone text, one space between fields (no TSIG)."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line and line[0] not in ";$"]
    return [line for line in lines if " ANY TSIG " not in line]


def exported(store: Path, zone: str) -> list[str]:
    """The export's records as absolute lines, as dig prints them."""
    origin = APEX if zone == "tier1" else REFERRAL_APEX if zone == "tier1-referral" else TEST_APEX
    image = dns.zone.from_text(export_zone(store, zone).text, origin=origin, relativize=False)
    return records(image.to_text(relativize=False))


def dig_xfr(server: RunningServer, *args: str) -> str:
    cmd = ["dig", f"@{server.host}", "-p", str(server.port), "+nocmd", "+nostats", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout


def ask_tcp(server: RunningServer, wire: bytes) -> bytes:
    """Send one message over TCP; the first message of the answer."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        stream = sock.makefile("rb")
        (size,) = struct.unpack("!H", stream.read(2))
        return bytes(stream.read(size))


def inbound(server: RunningServer, apex: str, zone: dns.versioned.Zone | None = None,
            serial: int | None = None, **kwargs: object) -> dns.versioned.Zone:  # fmt: skip
    """Transfer a zone with dnspython's XFR client (AXFR, or IXFR from ``serial``), EDNS on."""
    zone = zone or dns.versioned.Zone(apex)
    query, _ = dns.xfr.make_query(
        zone, serial=serial, use_edns=0, payload=1232, keyring=KEYRING, keyname=XFR_KEY
    )
    dns.query.inbound_xfr(server.host, zone, query, port=server.port, timeout=10, **kwargs)  # type: ignore[arg-type]
    return zone


def zone_records(zone: dns.versioned.Zone) -> list[str]:
    """A transferred zone's records as absolute lines, sorted."""
    assert zone.origin is not None
    with zone.reader() as txn:
        lines = [
            line
            for name, rdataset in txn.iterate_rdatasets()
            for line in rdataset.to_text(name.derelativize(zone.origin)).splitlines()
        ]
    return sorted(records("\n".join(lines)))


# -- AXFR --------------------------------------------------------------------------------
def test_dig_axfr_sends_the_exported_zone_soa_first_and_last(demo: RunningServer) -> None:
    key = f"hmac-sha256:{XFR_KEY}:{XFR_SECRET}"
    cmd = ["dig", f"@{demo.host}", "-p", str(demo.port), "-y", key, APEX, "AXFR"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    lines = records(text)
    soa = SOA.format(APEX, 1)
    assert lines[0] == lines[-1] == soa
    assert sorted(lines[:-1]) == sorted(exported(store_of(demo), "tier1"))
    assert '*.0.5.8.5.3.e164.arpa. 300 IN NAPTR 10 100 "u" "E2U+sip" ' in text.replace("\t", " ")
    assert "failure" not in text and "Transfer failed" not in text  # dig checked every TSIG
    messages = int(text.split("messages ")[1].split(",")[0])
    assert messages > 10  # 16 KB messages


def test_unsigned_axfr_from_an_allowed_address(demo: RunningServer) -> None:
    lines = records(dig_xfr(demo, APEX, "AXFR"))
    assert len(lines) == len(exported(store_of(demo), "tier1")) + 1


@pytest.mark.parametrize("zone", ["tier1", "tier1-referral"])
def test_dnspython_axfr_equals_the_export(demo: RunningServer, zone: str) -> None:
    apex = APEX if zone == "tier1" else REFERRAL_APEX
    assert zone_records(inbound(demo, apex)) == sorted(exported(store_of(demo), zone))


def test_axfr_over_udp_is_not_implemented(demo: RunningServer) -> None:
    response = dns.query.udp(
        dns.message.make_query(APEX, "AXFR"), demo.host, port=demo.port, timeout=2
    )
    assert response.rcode() == dns.rcode.NOTIMP


# -- access control -------------------------------------------------------------------------
def test_transfer_to_an_address_no_rule_allows_is_refused(demo: RunningServer) -> None:
    for keyring in (None, KEYRING):  # the test zone: 192.0.2.0/24 and 2001:db8::/32 only
        query = dns.message.make_query(TEST_APEX, "AXFR")
        if keyring is not None:
            query.use_tsig(keyring, XFR_KEY)
        answer = ask_tcp(demo, query.to_wire())
        assert dns.message.from_wire(answer, keyring=False).rcode() == dns.rcode.REFUSED
    assert "Transfer failed" in dig_xfr(demo, TEST_APEX, "AXFR")


def test_a_zone_that_needs_the_key_refuses_unsigned_transfers(demo: RunningServer) -> None:
    answer = ask_tcp(demo, dns.message.make_query(REFERRAL_APEX, "AXFR").to_wire())
    assert dns.message.from_wire(answer).rcode() == dns.rcode.REFUSED
    assert records(
        dig_xfr(demo, "-y", f"hmac-sha256:{XFR_KEY}:{XFR_SECRET}", REFERRAL_APEX, "AXFR")
    )


@pytest.mark.parametrize(
    ("name", "secret", "error"),
    [
        (XFR_KEY, "d3Jvbmcgc2VjcmV0", dns.rcode.BADSIG),
        ("unknown-key", XFR_SECRET, dns.rcode.BADKEY),
    ],
)
def test_a_bad_key_gets_notauth_with_the_tsig_error(
    demo: RunningServer, name: str, secret: str, error: int
) -> None:
    query = dns.message.make_query(APEX, "AXFR")
    query.use_tsig(dns.tsigkeyring.from_text({name: secret}), name)
    answer = ask_tcp(demo, query.to_wire())
    response = dns.message.from_wire(answer, keyring=False)
    assert response.rcode() == dns.rcode.NOTAUTH
    assert response.tsig is not None and response.tsig[0].error == error
    assert response.tsig[0].mac == b""  # unsigned: we do not know (or trust) the key
    text = dig_xfr(demo, "-y", f"hmac-sha256:{name}:{secret}", APEX, "AXFR")
    assert "Transfer failed" in text or "NOTAUTH" in text or "tsig" in text.lower()


def test_a_zone_not_served_here_gets_notauth(demo: RunningServer) -> None:
    answer = ask_tcp(demo, dns.message.make_query("example.", "AXFR").to_wire())
    assert dns.message.from_wire(answer).rcode() == dns.rcode.NOTAUTH


def test_a_query_signed_with_a_transfer_key_is_answered_signed(demo: RunningServer) -> None:
    query = dns.message.make_query(APEX, "SOA")
    query.use_tsig(KEYRING, XFR_KEY)
    response = dns.query.udp(query, demo.host, port=demo.port, timeout=2)  # verifies the TSIG
    assert response.had_tsig and response.answer[0][0].serial == 1


# -- IXFR --------------------------------------------------------------------------------------
def publish_neighbour(store: Path, server: RunningServer, serial: int) -> None:
    zonetools_run(store, "port", "add", NEIGHBOUR, "--to", "TY09", "-m", "NP 1")
    wait_for_serial(server.host, server.port, APEX, serial)


def test_dig_ixfr_shows_what_a_port_changed(xfr: RunningServer) -> None:
    publish_neighbour(store_of(xfr), xfr, 2)
    soa = SOA
    naptr = NEIGHBOUR_NAME + ' 300 IN NAPTR {} 100 "u" "{}" "!^.*$!{}:+358401234568{}!" .'
    wild = "*." + NEIGHBOUR_NAME + ' 300 IN NAPTR {} 100 "u" "{}" "!^(.*)$!{}:\\\\1{}!" .'
    assert records(dig_xfr(xfr, APEX, "IXFR=1")) == [
        soa.format(APEX, 2),
        soa.format(APEX, 1),  # nothing deleted: a range number had no records of its own
        soa.format(APEX, 2),
        naptr.format(10, "E2U+sip", "sip", "@ims.op09.example.fi;user=phone"),
        naptr.format(20, "E2U+pstn:tel", "tel", ";npdi;rn=+35899909"),
        wild.format(10, "E2U+sip", "sip", "@ims.op01.example.fi;user=phone"),  # longer numbers
        wild.format(20, "E2U+pstn:tel", "tel", ";npdi;rn=+35899901"),  # of TY01's range
        soa.format(APEX, 2),
    ]
    zonetools_run(store_of(xfr), "port", "remove", NEIGHBOUR, "-m", "back")
    wait_for_serial(xfr.host, xfr.port, APEX, 3)
    lines = records(dig_xfr(xfr, APEX, "IXFR=2"))
    assert lines[1] == soa.format(APEX, 2) and lines[6] == soa.format(APEX, 3)
    assert lines[2:6] == [
        naptr.format(10, "E2U+sip", "sip", "@ims.op09.example.fi;user=phone"),
        naptr.format(20, "E2U+pstn:tel", "tel", ";npdi;rn=+35899909"),
        wild.format(10, "E2U+sip", "sip", "@ims.op01.example.fi;user=phone"),
        wild.format(20, "E2U+pstn:tel", "tel", ";npdi;rn=+35899901"),
    ]  # deleted; nothing added
    assert len(lines) == 8
    assert len(records(dig_xfr(xfr, APEX, "IXFR=1"))) == 14  # two steps, SOA pairs each


def test_ixfr_of_an_up_to_date_secondary_is_the_soa_alone(demo: RunningServer) -> None:
    soa = SOA.format(APEX, 1)
    assert records(dig_xfr(demo, APEX, "IXFR=1")) == [soa]
    assert records(dig_xfr(demo, APEX, "IXFR=7")) == [soa]  # a newer serial: ours, alone
    assert records(dig_xfr(demo, "+notcp", APEX, "IXFR=1")) == [soa]  # over UDP too


def test_ixfr_over_udp_sends_a_small_difference_and_the_soa_for_a_large_one(
    xfr: RunningServer,
) -> None:
    zone = inbound(xfr, APEX)
    publish_neighbour(store_of(xfr), xfr, 2)
    inbound(xfr, APEX, zone, serial=1, udp_mode=dns.query.UDPMode.ONLY)  # fits a datagram
    assert zone_records(zone) == zone_records(inbound(xfr, APEX))
    zonetools_run(store_of(xfr), "port", "add", "+358501234567", "--to", "TY09", "-m", "NP 2")
    wait_for_serial(xfr.host, xfr.port, APEX, 3)
    with pytest.raises(dns.xfr.UseTCP):
        inbound(xfr, APEX, zone, serial=2, udp_mode=dns.query.UDPMode.ONLY)
    inbound(xfr, APEX, zone, serial=2, udp_mode=dns.query.UDPMode.TRY_FIRST)
    assert zone_records(zone) == zone_records(inbound(xfr, APEX))


CHANGES = [
    ["port", "add", NEIGHBOUR, "--to", "TY09"],  # a number next to a ported one
    ["port", "add", "+358501234567", "--to", "TY09"],  # new empty non-terminals and wildcards
    ["route", "set", "+358401234567", "--naptr", DESK],  # routes of its own
    ["port", "add", "+358401234567", "--to", "TY03"],  # ported on: TY07's routes stay unused
    ["port", "remove", "+358501234567"],  # back to the range holder: the names go again
    ["port", "add", "+358401234567", "--to", "TY07"],  # back: its routes answer again
    ["route", "remove", "+358401234567"],
    ["port", "add", "+358451234567", "--to", "TY22"],  # to a PO: its host's templates
    ["port", "add", "+3588001234567", "--to", "TY02"],  # a service number with routes of TY07
]  # fmt: skip


def test_ixfr_gives_the_zone_a_fresh_axfr_gives_after_every_kind_of_publish(
    xfr: RunningServer,
) -> None:
    store = store_of(xfr)
    step_by_step, first = inbound(xfr, APEX), inbound(xfr, APEX)
    for serial, change in enumerate(CHANGES, start=2):
        zonetools_run(store, *change, "-m", f"change {serial}")
        wait_for_serial(xfr.host, xfr.port, APEX, serial)
        inbound(xfr, APEX, step_by_step, serial=serial - 1)
        assert zone_records(step_by_step) == zone_records(inbound(xfr, APEX)), change
    inbound(xfr, APEX, first, serial=1)  # all the steps in one IXFR
    assert zone_records(first) == zone_records(step_by_step)
    assert zone_records(first) == sorted(exported(store, "tier1"))


def test_ixfr_falls_back_to_the_whole_zone(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    running = transfer_server(server_factory, writable_store, tmp_path, depth=2)
    for serial, change in enumerate(CHANGES[:3], start=2):
        zonetools_run(writable_store, *change, "-m", f"change {serial}")
    wait_for_serial(running.host, running.port, APEX, 4)
    whole = len(exported(writable_store, "tier1")) + 1
    assert len(records(dig_xfr(running, APEX, "IXFR=2"))) < whole / 20  # two steps: incremental
    assert len(records(dig_xfr(running, APEX, "IXFR=1"))) == whole  # three: beyond the depth
    assert len(records(dig_xfr(running, APEX, "IXFR=0"))) == whole  # before the zone existed
    template = '10 100 "u" "E2U+sip" "!^.*$!sip:{e164}@new.op05.example.fi!" .'
    zonetools_run(writable_store, "route", "set", "TY05", "--template", "--naptr", template)
    wait_for_serial(running.host, running.port, APEX, 5)
    lines = records(dig_xfr(running, APEX, "IXFR=4"))  # a template reaches the whole zone
    assert len(lines) == len(exported(writable_store, "tier1")) + 1
    assert "new.op05.example.fi" in " ".join(lines)
    assert set(store_serials(writable_store).values()) == {5}
