"""The running server on the demo store, asked by dig and by dnspython over UDP and TCP.

Each test is one DNS rule with the exact answer a tester sees (see examples/demo/README.md).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from enumserver.model import Route
from enumserver.store import StoreWriter
from tests.conftest import RunningServer, ServerFactory, dig

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."  # +358401234567, TY01 -> TY07
RANGE_ONLY = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."  # +358501234567, held by TY05
NO_RANGE = "0.0.0.0.0.0.0.2.8.5.3.e164.arpa."  # +35820000000
SOA_LINE = (
    "8.5.3.e164.arpa. 60 IN SOA ns1.enum.example.fi. hostmaster.enum.example.fi. "
    "1 3600 600 1209600 60"
)


def naptr_lines(owner: str, number: str, domain: str, rn: str) -> list[str]:
    return [
        f'{owner} 300 IN NAPTR 10 100 "u" "E2U+sip" "!^.*$!sip:{number}@{domain};user=phone!" .',
        f'{owner} 300 IN NAPTR 20 100 "u" "E2U+pstn:tel" "!^.*$!tel:{number};npdi;rn={rn}!" .',
    ]


def test_ported_number_answers_recipient_naptr(server: RunningServer) -> None:
    result = dig(server, PORTED, "NAPTR")
    assert result.status == "NOERROR" and result.flags == {"qr", "aa"}
    assert result.answer == naptr_lines(PORTED, "+358401234567", "ims.op07.example.fi", "+35899907")
    assert result.authority == [] and result.additional == []


def test_range_number_answers_holder_template(server: RunningServer) -> None:
    result = dig(server, RANGE_ONLY, "NAPTR")
    assert result.status == "NOERROR" and result.flags == {"qr", "aa"}
    expected = naptr_lines(RANGE_ONLY, "+358501234567", "ims.op05.example.fi", "+35899905")
    assert result.answer == expected


def test_number_of_a_service_operator_uses_its_own_templates(server: RunningServer) -> None:
    owner = "7.6.5.4.3.2.1.5.4.8.5.3.e164.arpa."
    result = dig(server, owner, "NAPTR")
    assert result.answer == naptr_lines(owner, "+358451234567", "ims.op21.example.fi", "+35899921")


def test_po_without_templates_uses_host_templates_and_own_rn(server: RunningServer) -> None:
    owner = "8.7.6.5.4.3.2.0.4.8.5.3.e164.arpa."
    result = dig(server, owner, "NAPTR")
    assert result.answer == naptr_lines(owner, "+358402345678", "ims.op03.example.fi", "+35899922")


def test_per_number_routes_in_order_and_preference(server: RunningServer) -> None:
    owner = "2.2.2.2.1.1.1.1.4.8.5.3.e164.arpa."
    result = dig(server, owner, "NAPTR")
    sip = "!^.*$!sip:+358411112222@{}.op09.example.fi;user=phone!"
    tel = "!^.*$!tel:+358411112222;npdi;rn=+35899909!"
    assert result.answer == [
        f'{owner} 300 IN NAPTR 10 100 "u" "E2U+sip" "{sip.format("ims")}" .',
        f'{owner} 300 IN NAPTR 10 200 "u" "E2U+sip" "{sip.format("backup")}" .',
        f'{owner} 300 IN NAPTR 20 100 "u" "E2U+pstn:tel" "{tel}" .',
    ]


def test_unheld_number_is_nxdomain_with_soa(server: RunningServer) -> None:
    result = dig(server, NO_RANGE, "NAPTR")
    assert result.status == "NXDOMAIN" and result.flags == {"qr", "aa"}
    assert result.answer == [] and result.authority == [SOA_LINE]


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("4.8.5.3.e164.arpa.", "NAPTR"),  # above the mobile ranges
        ("1.0.4.8.5.3.e164.arpa.", "NAPTR"),  # inside a range, shorter than its numbers
        (PORTED, "TXT"),  # a number, another type
        (PORTED, "A"),
        ("8.5.3.e164.arpa.", "NAPTR"),  # the apex
    ],
)
def test_nodata_for_empty_non_terminals_and_other_types(
    server: RunningServer, name: str, qtype: str
) -> None:
    result = dig(server, name, qtype)
    assert result.status == "NOERROR" and result.flags == {"qr", "aa"}
    assert result.answer == [] and result.authority == [SOA_LINE]


def test_apex_soa_and_ns(server: RunningServer) -> None:
    soa = dig(server, "8.5.3.e164.arpa.", "SOA")
    assert soa.flags == {"qr", "aa"}
    assert soa.answer == [SOA_LINE.replace(" 60 IN", " 300 IN")]
    ns = dig(server, "8.5.3.e164.arpa.", "NS")
    assert ns.answer == [
        "8.5.3.e164.arpa. 3600 IN NS ns1.enum.example.fi.",
        "8.5.3.e164.arpa. 3600 IN NS ns2.enum.example.fi.",
    ]


def test_name_outside_served_zones_is_refused(server: RunningServer) -> None:
    for name in ("example.com.", "e164.arpa.", "9.4.e164.arpa."):
        result = dig(server, name, "NAPTR")
        assert result.status == "REFUSED" and result.flags == {"qr"} and result.answer == []


def test_referral_zone_delegates_number_to_recipient_tier2(server: RunningServer) -> None:
    owner = "7.6.5.4.3.2.1.0.4.8.5.3.ie164.arpa."
    result = dig(server, owner, "NAPTR")
    assert result.status == "NOERROR" and result.flags == {"qr"}  # AA clear
    assert result.answer == []
    assert result.authority == [
        f"{owner} 3600 IN NS ns1.tier2.op07.example.fi.",
        f"{owner} 3600 IN NS ns2.tier2.op07.example.fi.",
    ]
    assert result.additional == [
        "ns1.tier2.op07.example.fi. 3600 IN A 192.0.2.17",
        "ns1.tier2.op07.example.fi. 3600 IN AAAA 2001:db8:0:7::53",
        "ns2.tier2.op07.example.fi. 3600 IN A 203.0.113.17",
        "ns2.tier2.op07.example.fi. 3600 IN AAAA 2001:db8:1:7::53",
    ]


def test_referral_of_po_number_goes_to_host_tier2(server: RunningServer) -> None:
    result = dig(server, "7.6.5.4.3.2.1.5.4.8.5.3.ie164.arpa.", "NAPTR")
    assert [line.split()[-1] for line in result.authority] == [
        "ns1.tier2.op03.example.fi.",
        "ns2.tier2.op03.example.fi.",
    ]


def test_names_keep_the_case_they_were_asked_in(server: RunningServer) -> None:
    asked = "7.6.5.4.3.2.1.0.4.8.5.3.E164.ArPa."
    result = dig(server, asked, "NAPTR")
    assert [line.split()[0] for line in result.answer] == [asked, asked]
    missing = dig(server, "0.0.0.0.0.0.0.0.2.8.5.3.E164.ARPA.", "NAPTR")
    assert missing.authority[0].startswith("8.5.3.E164.ARPA. 60 IN SOA")
    wire = server.send_udp(dns.message.make_query(asked, "NAPTR").to_wire())
    assert wire is not None and wire.count(b"\x04E164\x04ArPa\x00") == 1  # echoed question


def test_tcp_gives_the_same_answer(server: RunningServer) -> None:
    udp = dig(server, PORTED, "NAPTR")
    tcp = dig(server, PORTED, "NAPTR", "+tcp")
    assert tcp.answer == udp.answer and "(TCP)" in tcp.text


def test_ipv6_listener(server_factory: ServerFactory, demo_store: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    v6 = server_factory(demo_store, host="::1")
    assert dig(v6, PORTED, "NAPTR").answer == dig(v6, PORTED, "NAPTR", "+tcp").answer
    assert v6.query(PORTED, tcp=True).rcode() == dns.rcode.NOERROR


def test_edns_opt_is_echoed_with_our_payload_and_do_bit(server: RunningServer) -> None:
    response = server.query(PORTED, use_edns=0, payload=4096, want_dnssec=True)
    assert response.edns == 0 and response.payload == 1232
    assert response.ednsflags & dns.flags.DO
    plain = server.query(PORTED, use_edns=False)
    assert plain.edns == -1 and len(plain.answer[0]) == 2


def test_edns_version_above_zero_gets_badvers(server: RunningServer) -> None:
    response = server.query(PORTED, use_edns=1)
    assert response.rcode() == dns.rcode.BADVERS and response.edns == 0
    assert response.answer == []


def test_unknown_opcode_is_notimp(server: RunningServer) -> None:
    result = dig(server, "8.5.3.e164.arpa.", "SOA", "+opcode=status")
    assert result.status == "NOTIMP"


@pytest.fixture
def big_answer_store(writable_store: Path) -> Path:
    """A number with 8 long NAPTR records: about 900 bytes of answer."""
    writer = StoreWriter(writable_store)
    with writer.change("test", "big answer") as change:
        for preference in range(8):
            regexp = (
                f"!^.*$!sip:+358401234567@sbc{preference}.long-name.op07.example.fi;user=phone!"
            )
            change.add_route(
                Route("TY07", "358401234567", 10, preference, "u", "E2U+sip", regexp, ".", 300)
            )
    writer.close()
    return writable_store


def test_udp_answer_too_big_for_512_sets_tc_and_tcp_carries_it(
    server_factory: ServerFactory, big_answer_store: Path
) -> None:
    big = server_factory(big_answer_store)
    truncated = big.query(PORTED, use_edns=False)
    assert truncated.flags & dns.flags.TC and truncated.answer == []
    fits = big.query(PORTED, use_edns=0, payload=1232)
    assert not fits.flags & dns.flags.TC and len(fits.answer[0]) == 8
    small_payload = big.query(PORTED, use_edns=0, payload=600)
    assert small_payload.flags & dns.flags.TC and small_payload.edns == 0
    over_tcp = big.query(PORTED, tcp=True, use_edns=False)
    assert not over_tcp.flags & dns.flags.TC and len(over_tcp.answer[0]) == 8
    result = dig(big, PORTED, "NAPTR", "+noedns")  # dig retries over TCP by itself
    assert len(result.answer) == 8 and "Truncated, retrying in TCP mode" in result.text


def test_new_serial_from_another_process_is_served_within_a_second(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    before = running.query(RANGE_ONLY)
    assert "ims.op05.example.fi" in before.answer[0].to_text()
    writer = StoreWriter(writable_store)
    with writer.change("test", "port", "port +358501234567 to TY09") as change:
        change.bulk_ported([{"number": "358501234567", "recipient": "TY09", "donor": "TY05"}])
    writer.close()
    started = time.monotonic()
    while "ims.op09.example.fi" not in running.query(RANGE_ONLY).answer[0].to_text():
        assert time.monotonic() - started < 1.0, "new data not served within 1 s"
        time.sleep(0.02)
    soa = running.query("8.5.3.e164.arpa.", "SOA").answer[0][0]
    assert soa.serial == 2


def test_idle_tcp_connection_is_closed(
    server_factory: ServerFactory, demo_store: Path, tmp_path: Path
) -> None:
    config = tmp_path / "enumserver.toml"
    config.write_text("[server]\ntcp_idle_timeout = 0.5\n")
    running = server_factory(demo_store, "--config", str(config))
    with socket.create_connection((running.host, running.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server
        assert 0.4 < time.monotonic() - started < 3
