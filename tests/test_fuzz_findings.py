"""Inputs scripts/fuzz found answered wrongly, kept as regressions (docs/reliability.md)."""

from __future__ import annotations

import base64
from pathlib import Path

import dns.message
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
