"""Zone files: `zonetools export` writes a zone as it answers, `zonetools import` reads it back.

The exported files are checked by the real named-checkzone (BIND) and kzonecheck (Knot), served
by a real knotd that must answer every range number like operator-enum, compared byte for byte
with golden files, and round-tripped export -> import -> export without a byte of difference.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from click.testing import CliRunner, Result

from enumserver.demo import load_demo
from enumserver.store import Catalog, StoreWriter, store_serials
from tests.conftest import ROOT, RunningServer, ServerFactory, free_port
from zonetools.cli import main as zonetools
from zonetools.exports import MARK, to_backrefs
from zonetools.zoneimport import from_backrefs

GOLDEN = ROOT / "tests" / "golden"
PORTED = "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."  # +358401234567, ported TY01 -> TY07
DEMO_APEXES = {"tier1": "8.5.3.e164.arpa.", "tier1-referral": "8.5.3.ie164.arpa."}


def zt(store: Path, *args: str) -> Result:
    return CliRunner().invoke(zonetools, ["--store", str(store), "--who", "tester", *args])


def export(store: Path, zone: str, path: Path) -> str:
    result = zt(store, "export", zone, "-o", str(path))
    assert result.exit_code == 0, result.output
    return path.read_text()


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/test (it installs bind9-utils, knot)")
    return found


def check_zone(path: Path, apex: str) -> None:
    """named-checkzone and kzonecheck both accept the file."""
    for cmd in (
        [tool("named-checkzone"), "-q", apex, str(path)],
        [tool("kzonecheck"), "-o", apex, str(path)],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{cmd[0]}: {done.stdout}{done.stderr}"


def small_store(tmp_path: Path) -> Path:
    path = tmp_path / "small.sqlite"
    writer = StoreWriter.create(path)
    try:
        load_demo(writer, GOLDEN / "small")
    finally:
        writer.close()
    return path


@pytest.mark.parametrize("zone", sorted(DEMO_APEXES))
def test_demo_export_passes_named_checkzone_and_kzonecheck(
    demo_store: Path, tmp_path: Path, zone: str
) -> None:
    path = tmp_path / f"{zone}.zone"
    text = export(demo_store, zone, path)
    assert f"\n$ORIGIN {DEMO_APEXES[zone]}\n" in text
    check_zone(path, DEMO_APEXES[zone])


def test_export_writes_numbers_as_served_and_ranges_as_backreference_wildcards(
    demo_store: Path, tmp_path: Path
) -> None:
    text = export(demo_store, "tier1", tmp_path / "tier1.zone")
    assert (
        '7.6.5.4.3.2.1.0.4 300 IN NAPTR 20 100 "u" "E2U+pstn:tel" '
        '"!^.*$!tel:+358401234567;npdi;rn=+35899907!" .' in text
    )  # ported to TY07: TY07's templates, expanded
    assert (
        '*.0.5 300 IN NAPTR 10 100 "u" "E2U+sip" '
        '"!^(.*)$!sip:\\\\1@ims.op05.example.fi;user=phone!" .' in text
    )  # TY05's range 35850: its template with a backreference
    assert "*.0.4.0.4 " in text  # an empty non-terminal above a ported number gets its own *


def test_export_import_export_is_byte_identical(writable_store: Path, tmp_path: Path) -> None:
    for zone in ("tier1", "tier1-referral", "test"):
        first = export(writable_store, zone, tmp_path / f"{zone}.1")
        result = zt(writable_store, "import", zone, str(tmp_path / f"{zone}.1"))
        assert result.exit_code == 0 and "nothing to change" in result.output, result.output
        assert export(writable_store, zone, tmp_path / f"{zone}.2") == first, zone
    assert set(store_serials(writable_store).values()) == {1}


def test_import_of_a_changed_number_changes_the_answer_of_a_running_server(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    running = server_factory(writable_store)
    path = tmp_path / "tier1.zone"
    text = export(writable_store, "tier1", path)
    old = "sip:+358401234567@ims.op07.example.fi;user=phone"
    assert text.count(old) == 1
    path.write_text(text.replace(old, "sip:+358401234567@desk.op07.example.fi"))
    planned = zt(writable_store, "import", "tier1", str(path), "--plan")
    assert planned.exit_code == 0 and "+ route +358401234567" in planned.output, planned.output
    assert "1 to add, 0 to modify, 0 to remove" in planned.output
    assert set(store_serials(writable_store).values()) == {1}  # a plan writes nothing
    result = zt(writable_store, "import", "tier1", str(path), "-m", "desk phone")
    assert result.exit_code == 0 and "applied at serial 2" in result.output, result.output
    deadline = time.monotonic() + 1.0
    while "desk.op07.example.fi" not in running.query(PORTED).answer[0].to_text():
        assert time.monotonic() < deadline, "the imported route was not served within 1 s"
        time.sleep(0.02)
    again = export(writable_store, "tier1", tmp_path / "again.zone")
    assert (
        again.replace(" 2 3600 600", " 1 3600 600").split("\n", 1)[1]
        == (path.read_text().split("\n", 1)[1])
    )  # the file now is the zone (but for its serial)


def test_a_changed_wildcard_becomes_the_holders_templates(
    writable_store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "tier1.zone"
    text = export(writable_store, "tier1", path)
    path.write_text(text.replace("ims.op05.example.fi;user=phone", "sip.op05.example.fi"))
    result = zt(writable_store, "import", "tier1", str(path))
    assert result.exit_code == 0, result.output
    assert "~ template TY05" in result.output and "0 to add, 1 to modify" in result.output
    assert '"!^.*$!sip:{e164}@sip.op05.example.fi!"' in result.output  # placeholders again
    assert '"!^.*$!tel:{e164};npdi;rn={rn}!"' in result.output
    assert export(writable_store, "tier1", tmp_path / "after.zone").count("sip.op05.") > 10


def test_a_number_no_range_holds_refuses_the_whole_file(
    writable_store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.zone"
    text = export(writable_store, "tier1", path)
    changed = text.replace("ims.op07.example.fi;user=phone", "elsewhere.example.fi")
    path.write_text(
        changed + '0.0.0.0.0.0.0.2 300 IN NAPTR 10 100 "u" "E2U+sip" "!^.*$!sip:x@example.fi!" .\n'
    )
    result = zt(writable_store, "import", "tier1", str(path))
    assert result.exit_code == 1
    assert (
        "error: bad.zone: 0.0.0.0.0.0.0.2.8.5.3.e164.arpa.: no range holds +35820000000 and it "
        "is not ported: nobody serves it" in result.output.replace(str(tmp_path) + "/", "")
    )
    assert "nothing written: import refused (1 reason(s))" in result.output
    assert set(store_serials(writable_store).values()) == {1}


def test_a_file_of_another_zone_is_refused(demo_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "tier1.zone"
    export(demo_store, "tier1", path)
    result = zt(demo_store, "import", "test", str(path), "--plan")
    assert result.exit_code == 1 and "$ORIGIN must be 8.5.3.e164enum.test." in result.output


@pytest.mark.parametrize(
    ("apex", "zone"),
    [("8.5.3.e164.arpa.", "tier1"), ("8.5.3.ie164.arpa.", "referral"),
     ("8.5.3.e164.op02.example.", "op02")],
)  # fmt: skip
def test_small_export_matches_its_golden_file(tmp_path: Path, apex: str, zone: str) -> None:
    store = small_store(tmp_path)
    path = tmp_path / f"{zone}.zone"
    result = CliRunner().invoke(zonetools, ["--store", str(store), "export", zone, "-o", str(path)])
    assert result.exit_code == 0, result.output
    golden = GOLDEN / f"small-{zone}.zone"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(path.read_text())
    assert path.read_text() == golden.read_text()
    check_zone(path, apex)
    if zone == "tier1":  # the template that uses {e164} with a pattern of its own
        assert "warning: TY01's template !^\\+358(.*)$!h323:0\\1@" in result.output


def test_backreference_forms_round_trip() -> None:
    fields = {"{sip_domain}": "ims.op01.example.fi", "{rn}": "+35899901"}
    for template, wildcard in [
        ("!^.*$!sip:{e164}@{sip_domain}!", "!^(.*)$!sip:\\1@ims.op01.example.fi!"),
        ("!^.*$!sip:{digits}@x.example!", "!^\\+(.*)$!sip:\\1@x.example!"),
        ("!^.*$!tel:{e164};d={digits};rn={rn}!", "!^(\\+(.*))$!tel:\\1;d=\\2;rn=+35899901!"),
        ("!^.*$!sip:desk@x.example!", "!^.*$!sip:desk@x.example!"),
    ]:
        expanded = template.replace("{e164}", "+" + MARK).replace("{digits}", MARK)
        for key, value in fields.items():
            expanded = expanded.replace(key, value)
        assert to_backrefs(expanded) == wildcard
        assert from_backrefs(wildcard, fields) == template
    assert to_backrefs("!^\\+358(.*)$!sip:+" + MARK + "!") is None


def test_commands_have_help_with_an_example() -> None:
    for command in ("export", "import"):
        result = CliRunner().invoke(zonetools, [command, "--help"])
        assert result.exit_code == 0 and "Example: zonetools " in result.output, command


def publishing_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "publishing.md").read_text()
    block = text.split("## Zone files", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("zonetools ")]


def test_zone_file_commands_of_the_docs_run(
    writable_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    commands = publishing_commands()
    assert [args[1] for args in commands] == ["export", "import", "import"]
    for args in commands:
        result = CliRunner().invoke(zonetools, ["--store", str(writable_store), *args[1:]])
        assert result.exit_code == 0, f"{' '.join(args)}\n{result.output}"


def _knotd(zone_file: Path, apex: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    run = tmp_path / "knot"
    run.mkdir()
    (run / "knot.conf").write_text(
        f"server:\n  listen: 127.0.0.1@{port}\n  rundir: {run}\n"
        f"database:\n  storage: {run}\n"
        f"zone:\n  - domain: {apex}\n    file: {zone_file}\n    journal-content: none\n"
    )
    process = subprocess.Popen(
        [tool("knotd"), "-c", str(run / "knot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, port


def _uris(server: str, port: int, digits: str) -> tuple[int, list[tuple[int, int, str, str]]]:
    """Rcode and the URIs a client makes of the NAPTR answer (regexp applied to +digits)."""
    name = ".".join(reversed(digits[3:])) + ".8.5.3.e164.arpa."
    query = dns.message.make_query(name, "NAPTR")
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server, port=port, timeout=2)
    out = []
    for rrset in response.answer:
        for rdata in rrset:
            regexp = rdata.regexp.decode()
            pattern, subst, _ = regexp[1:].split(regexp[0])
            uri = re.sub(pattern, re.sub(r"\\(\d)", r"\\g<\1>", subst), "+" + digits)
            out.append((rdata.order, rdata.preference, rdata.service.decode(), uri))
    return response.rcode(), sorted(out)


def test_knot_serving_the_export_answers_every_range_number_like_us(
    server: RunningServer, demo_store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "tier1.zone"
    export(demo_store, "tier1", path)
    knot, port = _knotd(path, "8.5.3.e164.arpa.", tmp_path)
    try:
        catalog = Catalog(demo_store)
        ported, ranges = catalog.ported(limit=120), catalog.ranges()
        catalog.close()
        rng = random.Random(5)
        numbers = {str(row["number"]) for row in ported}
        numbers |= {n[:-2] + f"{rng.randrange(100):02d}" for n in list(numbers)}
        for found in ranges:
            for size in (found["min_digits"], found["max_digits"]):
                tail = size - len(found["prefix"])
                numbers.add(
                    found["prefix"] + "".join(rng.choice("0123456789") for _ in range(tail))
                )
        deadline = time.monotonic() + 10
        while True:
            try:
                _uris("127.0.0.1", port, "358501234567")
                break
            except dns.exception.Timeout:
                assert time.monotonic() < deadline and knot.poll() is None, "knotd did not start"
        for digits in sorted(numbers):
            ours = _uris(server.host, server.port, digits)
            assert ours[0] == dns.rcode.NOERROR and ours[1], digits
            assert _uris("127.0.0.1", port, digits) == ours, digits
    finally:
        knot.terminate()
        knot.wait(timeout=10)
