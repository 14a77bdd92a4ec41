"""The query hot path keeps its meaning while it gets faster: parser, caches, digit labels."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enumserver import numbers
from enumserver.cache import Cache
from enumserver.engine import Engine
from enumserver.wire import parse_query

LABEL = st.binary(min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(labels=st.lists(LABEL, min_size=0, max_size=8), qtype=st.integers(1, 65535))
def test_parser_reads_the_question_as_dnspython_does(labels: list[bytes], qtype: int) -> None:
    name = dns.name.Name([*labels, b""])
    wire = dns.message.make_query(name, qtype).to_wire()
    query = parse_query(wire)
    assert query is not None and not query.error
    assert query.labels == tuple(label.lower().decode("latin-1") for label in labels)
    assert query.qtype == qtype
    assert query.question == wire[12:]
    assert query.key == wire[12:].lower()
    for label, offset in zip(labels, query.offsets, strict=True):
        assert wire[offset] == len(label) and wire[offset + 1 : offset + 1 + len(label)] == label


ONE_BYTE = st.binary(min_size=1, max_size=1)


@settings(max_examples=500, deadline=None)
@given(
    head=st.lists(st.one_of(ONE_BYTE, LABEL), max_size=3),
    digits=st.lists(ONE_BYTE, max_size=125),
    e164=st.sampled_from([b"e164", b"E164"]),
    arpa=st.sampled_from([b"arpa", b"ARPA", b"aRpA"]),
    qtype=st.integers(1, 65535),
)
def test_enum_names_read_as_dnspython_does(
    head: list[bytes], digits: list[bytes], e164: bytes, arpa: bytes, qtype: int
) -> None:
    """Names ending in e164.arpa (the parser's short cut), up to and past 255 bytes."""
    labels = [*head, *digits, e164, arpa]
    wire = bytes.fromhex("123400000001000000000000")
    wire += b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    wire += qtype.to_bytes(2, "big") + b"\x00\x01"
    query = parse_query(wire)
    assert query is not None
    if sum(1 + len(label) for label in labels) + 1 > 255:
        assert query.error == 1  # FORMERR: name over 255 bytes
        return
    name = dns.name.Name([*labels, b""])
    assert dns.message.from_wire(wire).question[0].name == name
    assert not query.error
    assert query.labels == tuple(label.lower().decode("latin-1") for label in labels)
    assert (query.qtype, query.qclass) == (qtype, 1)
    assert query.question == wire[12:] and query.key == wire[12:].lower()


def ask(engine: Engine, name: str, rdtype: str = "NAPTR") -> dns.message.Message:
    reply = engine.handle(dns.message.make_query(name, rdtype).to_wire())
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply)


def test_full_caches_evict_the_oldest_and_answers_stay_right(demo_store: Path) -> None:
    engine = Engine(demo_store, cache_size=3)
    names = [f"{d}.6.5.4.3.2.1.0.4.8.5.3.e164.arpa." for d in range(10)]
    first = [ask(engine, name).answer for name in names]
    assert len(engine.udp_cache) == 3 and len(engine.bodies) == 3
    assert [ask(engine, name).answer for name in names] == first  # misses again, same answers
    keys = list(engine.udp_cache)  # oldest first
    assert len(keys) == 3 and keys[0] != keys[-1]


def test_big_caches_are_sharded_and_bounded() -> None:
    """Each shard evicts its oldest; the whole stays within the size; the newest stay."""
    cache: Cache[int] = Cache(8192)
    assert len(cache.shards) == 64
    for n in range(30_000):
        cache.put(f"key {n}".encode(), n)
    assert len(cache) <= 8192 and all(len(shard) <= cache.cap for shard in cache.shards)
    assert all(cache.get(f"key {n}".encode()) == n for n in range(29_900, 30_000))
    assert cache.get(b"key 0") is None
    cache.pop(b"key 29999")
    assert cache.get(b"key 29999") is None
    cache.resize(10)
    assert len(cache.shards) == 1 and not cache


@pytest.mark.parametrize("label", ["\u00b2", "\u00b9"])  # superscripts: str.isdigit() is True
def test_only_ascii_digits_make_a_number(demo_store: Path, label: str) -> None:
    engine = Engine(demo_store)
    digits = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."
    wire = bytearray(dns.message.make_query(digits, "NAPTR").to_wire())
    assert wire[12:14] == b"\x017"
    wire[13] = label.encode("latin-1")[0]
    reply = engine.handle(bytes(wire))
    assert isinstance(reply, bytes)
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.NXDOMAIN and not message.answer


def test_a_name_of_one_byte_labels_over_255_bytes_is_formerr() -> None:
    header = bytes.fromhex("123400000001000000000000")
    for count, error in ((127, 0), (128, 1), (200, 1)):  # 127 labels: 255 bytes with the root
        query = parse_query(header + b"\x015" * count + b"\x00\x00\x23\x00\x01")
        assert query is not None and query.error == error
        if not error:
            assert query.labels == ("5",) * count


@settings(max_examples=2000, deadline=None)
@given(digits=st.text("0123456789", max_size=15))
def test_plan_entry_is_the_longest_matching_block(digits: str) -> None:
    nsn = digits[3:] if digits.startswith("358") else None
    longest = None
    if nsn is not None:
        for entry in numbers.PLAN:
            if nsn.startswith(entry.prefix) and (
                longest is None or len(entry.prefix) > len(longest.prefix)
            ):
                longest = entry
    assert numbers.plan_entry(digits) == longest


@settings(max_examples=3000, deadline=None)
@given(
    digits=st.one_of(
        st.text("0123456789", max_size=15), st.from_regex(r"3580?[0-9]{0,12}", fullmatch=True)
    )
)
def test_is_service_is_the_kind_of_the_number(digits: str) -> None:
    """The remembered service-number check agrees with the plan for every number."""
    assert numbers.is_service(digits) == (numbers.kind_of(digits) in numbers.SERVICE_KINDS)


def _enum_name(digits: str, apex: str) -> str:
    return ".".join(reversed(digits)) + "." + apex


def test_templated_answers_are_the_records_encoded(demo_store: Path) -> None:
    """A number answered by its operator's templates alone is encoded once per operator and
    number length, then filled with the digits (Engine._templated): byte for byte what
    encoding its records gives, for every ported number of the demo, numbers of every length
    of every range, PO-hosted, per-number routes and service numbers, NAPTR and ANY, with and
    without EDNS, in both served ENUM trees."""
    rng = random.Random(358)
    with sqlite3.connect(demo_store) as conn:
        numbers = [row[0] for row in conn.execute("SELECT number FROM ported")]
        numbers += [row[0] for row in conn.execute("SELECT number FROM routes WHERE number != ''")]
        for prefix, low, high in conn.execute("SELECT prefix, min_digits, max_digits FROM ranges"):
            for size in range(max(low, len(prefix)), high + 1):
                tail = size - len(prefix)
                numbers += [prefix + "".join(rng.choices("0123456789", k=tail)) for _ in range(3)]
    numbers += ["358100", "3581001", "358600123456", "358200012345", "35830012"]  # short, service
    engine = Engine(demo_store)
    compared = 0
    for digits in numbers:
        for apex in ("e164.arpa.", "E164enum.TEST."):
            for rdtype, edns in (("NAPTR", 0), ("NAPTR", -1), ("ANY", 0)):
                query = dns.message.make_query(_enum_name(digits, apex), rdtype, use_edns=edns)
                wire = query.to_wire()
                engine.templating = True
                engine.clear_caches()
                templated = engine.handle(wire)
                engine.templating = False
                engine.clear_caches()
                assert templated == engine.handle(wire), (digits, apex, rdtype, edns)
                compared += 1
    engine.templating = True
    engine.clear_caches()
    for digits in numbers:
        engine.handle(dns.message.make_query(_enum_name(digits, "e164.arpa."), "NAPTR").to_wire())
    filled = [parts for parts in engine.templates.values() if parts]
    assert compared > 3000 and len(filled) >= 10  # many operators and lengths were templated
