"""Every (licence kind x zone x record owner x record type) UPDATE, against a real server.

TY03's licences (TY03 hosts the POs TY21 and TY22). A cell is accepted exactly when the
licence's kind may write through the zone (auth.environment_refusal) and the grant covers the
owner and type (auth.refusal); a refused cell changes nothing.
"""

from __future__ import annotations

import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update

from enumserver.store import StoreWriter, store_serials
from tests.conftest import Licensed, RunningServer, ServerFactory
from tests.test_update import exchange
from zonetools.changes import ChangeSet, Op, execute

PRODUCTION_APEX = "8.5.3.e164.arpa."
TEST_APEX = "8.5.3.e164enum.test."
NAPTR = '10 100 "u" "E2U+sip" "!^.*$!sip:matrix@pbx.op03.example.fi!" .'
RDATA = {
    "NAPTR": [NAPTR],
    "NS": ["ns1.tier2.op03.example.fi.", "ns2.tier2.op03.example.fi."],
    "A": ["192.0.2.33"],
    "AAAA": ["2001:db8::33"],
    "TXT": ['"matrix"'],
}
# owner -> (name relative to the apex, the record type its owner may change, or None)
OWNERS = {
    "own range number": ("1.1.1.1.1.1.3.0.4", "NAPTR"),  # +358403111111, TY03's range
    "number ported in": ("3.6.7.1.0.6.8.5.4", "NAPTR"),  # +358458601763, TY22 -> TY03
    "PO's number": ("2.9.7.5.6.5.3.0.4", "NAPTR"),  # +358403565792, TY03 -> TY21 (PO)
    "number ported away": ("6.0.4.9.8.9.0.9.2", None),  # +358290989406, TY03 -> TY06
    "other TY's number": ("7.6.5.4.3.2.1.0.5", None),  # +358501234567, TY05
    "number of no range": ("0.0.0.0.0.0.0.2", None),  # +35820000000
    "own templates": ("ty03.template", "NAPTR"),
    "PO's templates": ("ty21.template", "NAPTR"),
    "other TY's templates": ("ty05.template", None),
    "own Tier2 servers": ("ty03.tier2", "NS"),
    "other TY's Tier2 servers": ("ty05.tier2", None),
    "own Tier2 glue": ("ns1.tier2.op03.example.fi.ty03.tier2", "A AAAA"),
    "other TY's Tier2 glue": ("ns1.tier2.op05.example.fi.ty05.tier2", None),
    "zone apex": ("", None),
}


def key(licensed: Licensed, licence_id: str) -> dns.tsig.Key:
    found = next(iter(dns.tsigkeyring.from_file(licensed.key(licence_id)).values()))
    assert isinstance(found, dns.tsig.Key)
    return found


def run_matrix(
    server: RunningServer, licensed: Licensed, apex: str, kind: str, writes: bool
) -> list[str]:
    """Send every (owner, type) cell with the TY03 licence of this kind; the wrong cells."""
    licence = key(licensed, "TY03-P1" if kind == "production" else "TY03-T1")
    wrong = []
    for owner, (relative, granted) in OWNERS.items():
        name = f"{relative}.{apex}" if relative else apex
        for rdtype, rdatas in RDATA.items():
            update = dns.update.UpdateMessage(apex, keyring=licence)
            update.replace(name, 1800, rdtype, *rdatas)
            expected = writes and granted is not None and rdtype in granted.split()
            before = store_serials(licensed.store)
            rcode = exchange(server, update).rcode()
            want = dns.rcode.NOERROR if expected else dns.rcode.REFUSED
            if rcode != want or (not expected and store_serials(licensed.store) != before):
                wrong.append(f"{kind} licence, {apex}, {owner}, {rdtype}: {rcode.name}")
    return wrong


def test_matrix_in_a_store_with_production_and_test_zones(
    server_factory: ServerFactory, licensed_store: Licensed
) -> None:
    server = server_factory(licensed_store.store)
    wrong = [
        *run_matrix(server, licensed_store, PRODUCTION_APEX, "production", writes=True),
        *run_matrix(server, licensed_store, PRODUCTION_APEX, "test", writes=False),
        *run_matrix(server, licensed_store, TEST_APEX, "production", writes=True),
        # the test zone shares routes and Tier2 servers with the production zones
        *run_matrix(server, licensed_store, TEST_APEX, "test", writes=False),
    ]
    assert not wrong, "\n".join(wrong)


def test_matrix_in_a_store_of_test_zones(
    server_factory: ServerFactory, licensed_store: Licensed
) -> None:
    writer = StoreWriter(licensed_store.store)
    to_test = [
        Op("set", "zone", {"name": name, "environment": "test"})
        for name in ("tier1", "tier1-referral")
    ]
    execute(writer, ChangeSet(to_test), who="registry", command="test store", apply=True)
    writer.close()
    server = server_factory(licensed_store.store)
    wrong = [
        *run_matrix(server, licensed_store, TEST_APEX, "test", writes=True),
        *run_matrix(server, licensed_store, PRODUCTION_APEX, "test", writes=True),
        *run_matrix(server, licensed_store, TEST_APEX, "production", writes=True),
    ]
    assert not wrong, "\n".join(wrong)
