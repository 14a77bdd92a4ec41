"""Inputs scripts/fuzz found answered wrongly, kept as regressions (docs/reliability.md)."""

from __future__ import annotations

import base64
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from enumserver.engine import Engine

FINDINGS = {
    # UPDATE whose zone section has class ANY: the FORMERR echoed it, and a strict UPDATE
    # parser (dnspython) could not read the reply (RFC 2136 3.1.1: the zone is an SOA of a class).
    "update-zone-class-any": "hYcoAAABAAAAAgABATgBNQEzBGUxNjQEYXJwYQAABgD//sj+yf7K9DQBMwEyATEBMAE0"
    "wAwAIwD/AAAAAAAAwCEAIwABAAABLAAeAAoAZAF1B0UyVStzaXAOIV4uKiQhc2lwOnhAeSEABHR5MDcAAPoA/wAA"
    "AAAAPQtobWFjLXNoYTI1NgAAAGsFrXYBLAAgcl5pOOLWK3LTrbQJZ4yObE2SBRu/sxnyMwutlAQln2eFhwAAAAA=",
}


@pytest.fixture(scope="module")
def engine(demo_store: Path) -> Engine:
    return Engine(demo_store)


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_fuzz_finding_gets_a_readable_reply(engine: Engine, name: str) -> None:
    packet = base64.b64decode(FINDINGS[name])
    for tcp in (False, True):
        reply = engine.handle(packet, tcp)
        assert isinstance(reply, bytes) and reply[:2] == packet[:2] and reply[2] & 0x80
        dns.message.from_wire(reply, question_only=True)


def test_update_for_a_zone_with_non_utf8_labels_is_refused_not_servfail(demo_store: Path) -> None:
    """Zone labels are bytes: an UPDATE naming b'\\xff' must not crash the UPDATE handler."""
    import dns.name
    import dns.update

    from enumserver import extensions
    from enumserver.config import Config

    engine = Engine(demo_store)
    extensions.install(engine, Config(store=str(demo_store)))
    zone = dns.name.Name([b"\xff\xfe", b"8", b"5", b"3", b"e164", b"arpa", b""])
    reply = engine.handle(dns.update.UpdateMessage(zone).to_wire(), False, False, ("127.0.0.1", 1))
    assert isinstance(reply, bytes)
    assert dns.message.from_wire(reply).rcode() in (dns.rcode.REFUSED, dns.rcode.NOTAUTH)
