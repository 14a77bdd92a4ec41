"""Pure resolution, table-driven: (name, type) -> kind, rcode, AA and exact sections.

The store is a real SQLite store built here with the write API (no mocks); no sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enumserver.model import Operator, Route
from enumserver.resolve import (
    AAAA,
    ANY,
    DS,
    NAPTR,
    NS,
    SOA,
    Address,
    Answer,
    Kind,
    Naptr,
    NsData,
    View,
    expand,
    resolve,
    zones_by_apex,
)
from enumserver.store import StoreReader, StoreWriter

SIP = "!^.*$!sip:{e164}@{sip_domain};user=phone!"
TEL = "!^.*$!tel:{e164};npdi;rn={rn}!"


def _operator(
    ty: str, rn: str | None, domain: str | None, host: str | None = None
) -> dict[str, object]:
    return {
        "ty": ty,
        "name": f"Operator {ty}",
        "kind": "PO" if host else "TY",
        "host_ty": host,
        "routing_number": rn,
        "sip_domain": domain,
        "joined": "2025-04-01",
        "openstack": 0,
    }


def _zone(
    name: str, apex: str, style: str = "naptr", role: str = "tier1", operator: str | None = None
) -> dict[str, object]:
    return {
        "name": name,
        "apex": apex,
        "role": role,
        "style": style,
        "environment": "production",
        "operator": operator,
        "mname": "ns1.enum.example.fi.",
        "rname": "hostmaster.enum.example.fi.",
        "ns": "ns1.enum.example.fi. ns2.enum.example.fi.",
        "minimum": 60,
        "soa_ttl": 300,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resolve") / "store.sqlite"
    writer = StoreWriter.create(path)
    with writer.change("test", "fixture") as change:
        change.put("operators", _operator("TY01", "+35899901", "ims.op01.example.fi"))
        change.put("operators", _operator("TY02", "+35899902", "ims.op02.example.fi"))
        change.put("operators", _operator("TY03", "+35899903", "ims.op03.example.fi"))
        change.put("operators", _operator("PO31", "+35899931", None, host="TY03"))
        for zone in (
            _zone("t1", "8.5.3.e164.arpa."),
            _zone("ref", "8.5.3.ie164.arpa.", "referral"),
            _zone("i", "i.8.5.3.e164.arpa."),
            _zone("t2", "8.5.3.e164enum.net.", role="tier2", operator="TY03"),
        ):
            change.put("zones", zone)
        for prefix, holder in (
            ("35840", "TY01"),
            ("35850", "TY02"),
            ("358457", "PO31"),
            ("358800", "TY03"),
        ):
            change.put(
                "ranges", {"prefix": prefix, "holder": holder, "min_digits": 10, "max_digits": 13}
            )
        change.put(
            "tier2_servers",
            {
                "ty": "TY02",
                "host": "ns1.t2.op02.example.fi.",
                "ipv4": "192.0.2.2",
                "ipv6": "2001:db8::2",
                "ttl": 3600,
            },
        )
        change.put(
            "tier2_servers",
            {
                "ty": "TY03",
                "host": "ns1.t2.op03.example.fi.",
                "ipv4": "192.0.2.3",
                "ipv6": None,
                "ttl": 1800,
            },
        )
        for ty in ("TY01", "TY02", "TY03"):
            change.add_route(Route(ty, None, 10, 100, "u", "E2U+sip", SIP, ".", 300))
            change.add_route(Route(ty, None, 20, 100, "u", "E2U+pstn:tel", TEL, ".", 300))
        # A per-number route left by the donor, and one of the current holder.
        change.add_route(
            Route(
                "TY01",
                "358401234567",
                10,
                100,
                "u",
                "E2U+sip",
                "!^.*$!sip:old@op01.example.fi!",
                ".",
                300,
            )
        )
        change.add_route(
            Route(
                "TY03",
                "3588001234567",
                10,
                100,
                "u",
                "E2U+sip",
                "!^.*$!sip:support@cc.op03.example.fi!",
                ".",
                120,
            )
        )
        change.bulk_ported(
            [
                {"number": "358401234567", "recipient": "TY02", "donor": "TY01"},
                {"number": "358501111111", "recipient": "PO31", "donor": "TY02"},
                {"number": "35891112223", "recipient": "TY03", "donor": None},  # outside any range
            ]
        )
    writer.close()
    return path


@pytest.fixture(scope="module")
def view(store: Path) -> Iterator[View]:
    reader = StoreReader(store)
    snapshot = reader.snapshot()
    yield View(zones_by_apex(list(snapshot.zones.values())), snapshot, reader)
    reader.close()


def name(digits: str, apex: str = "8.5.3.e164.arpa") -> list[str]:
    """Lowercased labels of a number's name under an apex whose digits are 358."""
    return [*reversed(digits[3:]), *apex.split(".")]


@dataclass
class Case:
    labels: list[str]
    qtype: int
    kind: Kind
    aa: bool


def naptrs(answer: Answer) -> list[tuple[int, int, str, str, str]]:
    out = []
    for record in answer.answer:
        assert record.rtype == NAPTR and record.owner == 0
        assert isinstance(record.rdata, Naptr)
        rd = record.rdata
        out.append((rd.order, rd.preference, rd.service, rd.regexp, rd.replacement))
    return out


def test_ported_number_overrides_range_holder(view: View) -> None:
    answer = resolve(name("358401234567"), NAPTR, view)
    assert (answer.kind, answer.rcode, answer.aa) == (Kind.ANSWER, 0, True)
    assert naptrs(answer) == [
        (10, 100, "E2U+sip", "!^.*$!sip:+358401234567@ims.op02.example.fi;user=phone!", "."),
        (20, 100, "E2U+pstn:tel", "!^.*$!tel:+358401234567;npdi;rn=+35899902!", "."),
    ]  # the donor's per-number route is not served any more
    assert answer.authority == () and answer.additional == ()


def test_range_holder_answers_its_template(view: View) -> None:
    answer = resolve(name("358501234567"), NAPTR, view)
    assert naptrs(answer)[1][3] == "!^.*$!tel:+358501234567;npdi;rn=+35899902!"


def test_per_number_route_of_the_holder_replaces_its_template(view: View) -> None:
    answer = resolve(name("3588001234567"), NAPTR, view)
    assert naptrs(answer) == [(10, 100, "E2U+sip", "!^.*$!sip:support@cc.op03.example.fi!", ".")]
    assert answer.answer[0].ttl == 120


def test_service_operator_resolves_through_host_templates_with_its_own_rn(view: View) -> None:
    answer = resolve(name("358501111111"), NAPTR, view)
    assert naptrs(answer) == [
        (10, 100, "E2U+sip", "!^.*$!sip:+358501111111@ims.op03.example.fi;user=phone!", "."),
        (20, 100, "E2U+pstn:tel", "!^.*$!tel:+358501111111;npdi;rn=+35899931!", "."),
    ]


@pytest.mark.parametrize(
    "case",
    [
        Case(name("35820000000"), NAPTR, Kind.NXDOMAIN, True),  # no range holds it
        Case(name("3584012345678901"[:15] + "9"), NAPTR, Kind.NXDOMAIN, True),  # too long
        Case(name("35840123456789"), NAPTR, Kind.NXDOMAIN, True),  # longer than the range allows
        Case(name("3584"), NAPTR, Kind.NODATA, True),  # above ranges: empty non-terminal
        Case(name("358401"), NAPTR, Kind.NODATA, True),  # inside a range, shorter
        Case(name("3589111222"), NAPTR, Kind.NODATA, True),  # above a ported number
        Case(name("35891112223"), NAPTR, Kind.ANSWER, True),  # ported, outside ranges
        Case(name("358401234567"), ANY, Kind.ANSWER, True),
        Case(name("358401234567"), 16, Kind.NODATA, True),  # TXT at a number
        Case(["_sip", *name("358401234567")], NAPTR, Kind.NXDOMAIN, True),
        Case(["x", "8", "5", "3", "e164", "arpa"], NAPTR, Kind.NXDOMAIN, True),
        Case(["8", "5", "3", "e164", "arpa"], NAPTR, Kind.NODATA, True),
        Case(["example", "com"], NAPTR, Kind.REFUSED, False),
        Case(["e164", "arpa"], SOA, Kind.REFUSED, False),
    ],
    ids=lambda c: f"{'.'.join(c.labels)}/{c.qtype}",
)
def test_existence_rules(view: View, case: Case) -> None:
    answer = resolve(case.labels, case.qtype, view)
    assert (answer.kind, answer.aa) == (case.kind, case.aa)
    expected_rcode = {Kind.NXDOMAIN: 3, Kind.REFUSED: 5}.get(case.kind, 0)
    assert answer.rcode == expected_rcode
    if case.kind in (Kind.NXDOMAIN, Kind.NODATA):
        assert answer.answer == ()
        (soa,) = answer.authority
        assert soa.rtype == SOA and soa.ttl == 60  # min(SOA TTL 300, MINIMUM 60)
        assert soa.owner == len(case.labels) - 5  # the apex, as a suffix of the question


def test_apex_answers_soa_and_ns(view: View) -> None:
    labels = ["8", "5", "3", "e164", "arpa"]
    soa = resolve(labels, SOA, view)
    assert soa.kind is Kind.ANSWER and soa.answer[0].rtype == SOA and soa.answer[0].ttl == 300
    ns = resolve(labels, NS, view)
    assert [r.rdata for r in ns.answer] == [
        NsData("ns1.enum.example.fi."),
        NsData("ns2.enum.example.fi."),
    ]


def test_branch_label_apex_is_its_own_zone(view: View) -> None:
    answer = resolve(name("358501234567", "i.8.5.3.e164.arpa"), NAPTR, view)
    assert answer.kind is Kind.ANSWER and answer.zone == "i"


def test_referral_to_holder_tier2_with_glue_and_aa_clear(view: View) -> None:
    labels = name("358401234567", "8.5.3.ie164.arpa")
    answer = resolve(labels, NAPTR, view)
    assert (answer.kind, answer.rcode, answer.aa) == (Kind.REFERRAL, 0, False)
    assert [(r.owner, r.rtype, r.ttl, r.rdata) for r in answer.authority] == [
        (0, NS, 3600, NsData("ns1.t2.op02.example.fi."))
    ]
    assert [(r.owner, r.rtype, r.rdata) for r in answer.additional] == [
        ("ns1.t2.op02.example.fi.", 1, Address("192.0.2.2")),
        ("ns1.t2.op02.example.fi.", AAAA, Address("2001:db8::2")),
    ]


def test_referral_below_a_number_cuts_at_the_number(view: View) -> None:
    answer = resolve(["_sip", *name("358401234567", "8.5.3.ie164.arpa")], NAPTR, view)
    assert answer.kind is Kind.REFERRAL and answer.authority[0].owner == 1


def test_referral_for_a_po_uses_host_tier2(view: View) -> None:
    answer = resolve(name("358501111111", "8.5.3.ie164.arpa"), NAPTR, view)
    assert [r.rdata for r in answer.authority] == [NsData("ns1.t2.op03.example.fi.")]
    assert answer.authority[0].ttl == 1800


def test_ds_at_a_delegation_is_answered_by_the_parent(view: View) -> None:
    answer = resolve(name("358401234567", "8.5.3.ie164.arpa"), DS, view)
    assert (answer.kind, answer.aa) == (Kind.NODATA, True)


def test_referral_zone_keeps_nxdomain_and_empty_non_terminals(view: View) -> None:
    assert resolve(name("35820000000", "8.5.3.ie164.arpa"), NAPTR, view).kind is Kind.NXDOMAIN
    assert resolve(name("358401", "8.5.3.ie164.arpa"), NAPTR, view).kind is Kind.NODATA


def test_tier2_zone_answers_only_its_operators_numbers(view: View) -> None:
    apex = "8.5.3.e164enum.net"
    assert resolve(name("3588001234567", apex), NAPTR, view).kind is Kind.ANSWER
    assert resolve(name("358501111111", apex), NAPTR, view).kind is Kind.ANSWER  # its PO
    assert resolve(name("358501234567", apex), NAPTR, view).kind is Kind.NXDOMAIN


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("!^.*$!sip:{e164}@{sip_domain}!", "!^.*$!sip:+358401234567@sip.host.example!"),
        ("!^.*$!tel:{e164};npdi;rn={rn}!", "!^.*$!tel:+358401234567;npdi;rn=RN%{digits}!"),
        ("{digits}{digits}-{e164}", "358401234567358401234567-+358401234567"),
        ("no fields, 100% literal", "no fields, 100% literal"),
        ("{unknown} {rn", "{unknown} {rn"),
        ("{sip_domain}{rn}{sip_domain}", "sip.host.exampleRN%{digits}sip.host.example"),
    ],
)
def test_template_fields_expand_in_one_pass(template: str, expected: str) -> None:
    """Every field is replaced once (a value that looks like a field is not expanded again);
    a PO without a SIP domain of its own takes its host TY's."""
    po = Operator("PO01", "Service operator", "PO", "TY02", "RN%{digits}", None)
    host = Operator("TY02", "Host", "TY", None, "RN-HOST", "sip.host.example")
    assert expand(template, "358401234567", po, host) == expected
