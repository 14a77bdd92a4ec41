"""A scheduled number in a zone transfer (docs/service-numbers.md, "Standard secondaries"): the
route set in force, every TTL bounded by the next switch. Runs once transfers (enumserver.xfr)
have landed; skipped before."""

from __future__ import annotations

import time
from pathlib import Path

import dns.name
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from enumserver.schedule import evaluate, parse, set_at
from enumserver.store import Catalog
from tests.conftest import ServerFactory, write_config
from tests.test_service_numbers import NAME, NUMBER, SCHEDULE, zt

pytest.importorskip("enumserver.xfr")

TRANSFERS = """\
[[acl]]
id = "local"
address = ["127.0.0.0/8"]
action = ["transfer"]

[[zone]]
name = "tier1"
acl = ["local"]
"""


URIS = {"office": "support@cc", "after-hours": "evening@desk", "closed": "closed-message@ivr"}


def test_axfr_carries_the_set_in_force_with_ttls_bounded_by_the_switch(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    result = zt(writable_store, "schedule", "set", NUMBER, "--file", str(SCHEDULE))
    assert result.exit_code == 0, result.output
    row = Catalog(writable_store).schedules()[0]
    schedule = parse(row["body"], row["ty"])
    running = server_factory(writable_store, "--config", str(write_config(tmp_path, TRANSFERS)))
    before = time.time()  # the real clock: transfers are made at the moment they are asked
    zone = dns.zone.from_xfr(dns.query.xfr(running.host, "8.5.3.e164.arpa.", port=running.port))
    after = time.time()
    naptrs = zone.find_rdataset(dns.name.from_text(NAME), dns.rdatatype.NAPTR)
    sips = [item.regexp.decode() for item in naptrs if b"sip:" in item.regexp]
    served = {regexp.split("sip:")[1].split(".op07")[0] for regexp in sips}
    in_force = {URIS[set_at(schedule, before)], URIS[set_at(schedule, after)]}
    assert served <= in_force and served, (served, in_force)  # a switch may fall in between
    switch = evaluate(schedule, before)[1]
    if switch is not None:
        assert 1 <= naptrs.ttl <= max(1, int(switch - before))
