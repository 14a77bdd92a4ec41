"""The Prometheus endpoint of a running server, scraped over real HTTP after real queries."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from enumserver.config import Config
from enumserver.store import StoreWriter
from tests.conftest import APEX, RunningServer, dig, free_port, scrape, write_config

PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."
RANGE_ONLY = "7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa."
NO_RANGE = "0.0.0.0.0.0.0.2.8.5.3.e164.arpa."


@pytest.fixture
def metered(server_factory, writable_store: Path, tmp_path: Path) -> tuple[RunningServer, int]:  # type: ignore[no-untyped-def]
    """A server on a private store with the metrics endpoint on a free loopback port."""
    port = free_port()
    config = write_config(tmp_path, f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    return server_factory(writable_store, "--config", str(config)), port


def test_metrics_are_off_and_loopback_by_default() -> None:
    assert Config().metrics.enabled is False
    assert Config().metrics.listen.startswith("127.0.0.1:")


def test_query_counters_move_after_real_queries(metered: tuple[RunningServer, int]) -> None:
    running, port = metered
    before = scrape(port)
    assert dig(running, PORTED, "NAPTR").status == "NOERROR"
    running.query(PORTED)
    running.query(PORTED)  # the same bytes but the ID: a response-cache hit
    running.query(PORTED, tcp=True)
    assert dig(running, NO_RANGE, "NAPTR").status == "NXDOMAIN"
    assert dig(running, "example.com.", "A").status == "REFUSED"
    after = scrape(port)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = "enum_dns_requests_total"
    assert delta(requests, zone=APEX, proto="udp", family="1", type="NAPTR") == 4
    assert delta(requests, zone=APEX, proto="tcp", family="1", type="NAPTR") == 1
    assert delta(requests, zone="none", proto="udp", type="A") == 1
    responses = "enum_dns_responses_total"
    assert delta(responses, zone=APEX, proto="udp", rcode="NOERROR", kind="answer") == 3
    assert delta(responses, zone=APEX, rcode="NXDOMAIN", kind="nxdomain") == 1
    assert delta(responses, zone="none", rcode="REFUSED", kind="refused") == 1
    assert delta("enum_cache_hits_total", cache="response", proto="udp") == 1
    assert delta("enum_cache_misses_total", cache="response", proto="udp") == 4
    assert delta("enum_dns_request_duration_seconds_count", proto="udp") == 5
    assert delta("enum_dns_request_duration_seconds_count", proto="tcp") == 1
    assert delta("enum_dns_request_duration_seconds_sum", proto="udp") > 0
    assert delta("enum_tcp_connections_total") == 1
    assert after.value("enum_cache_entries", cache="response_udp") >= 4
    assert after.value("process_resident_memory_bytes") > 10_000_000
    assert after.value("enum_build_info") == 1


def test_zone_serial_gauge_follows_a_publish(
    metered: tuple[RunningServer, int], writable_store: Path
) -> None:
    running, port = metered
    assert scrape(port).value("enum_zone_serial", zone=APEX) == 1
    writer = StoreWriter(writable_store)
    with writer.change("test", "port", "port +358501234567 to TY09") as change:
        change.bulk_ported([{"number": "358501234567", "recipient": "TY09", "donor": "TY05"}])
    writer.close()
    deadline = time.monotonic() + 2
    while scrape(port).value("enum_zone_serial", zone=APEX) != 2:
        assert time.monotonic() < deadline, "serial gauge not updated within 2 s"
        time.sleep(0.05)
    assert scrape(port).value("enum_store_reloads_total") == 1
    assert "ims.op09.example.fi" in running.query(RANGE_ONLY).answer[0].to_text()


def test_placeholders_for_publish_update_and_transfer_counters_are_exposed(
    metered: tuple[RunningServer, int],
) -> None:
    text = scrape(metered[1]).text
    for name in ("enum_publish", "enum_update", "enum_transfers", "enum_notify"):
        name += "_total"
        assert f"# TYPE {name} counter" in text
    assert 'enum_tcp_refused_total{reason="max_clients"} 0.0' in text
    assert "enum_rrl_slipped_total 0.0" in text


def test_health_and_ready_endpoints(metered: tuple[RunningServer, int]) -> None:
    port = metered[1]
    for path in ("health", "ready"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as response:
            assert response.status == 200 and response.read() == b"ok\n"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=5)
    assert missing.value.code == 404


def test_every_metric_is_documented_in_operations_md(metered: tuple[RunningServer, int]) -> None:
    names = re.findall(r"^# TYPE (enum_\w+) ", scrape(metered[1]).text, re.M)
    assert len(names) > 20
    operations = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    assert [name for name in names if f"`{name}`" not in operations] == []
