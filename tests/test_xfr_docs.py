"""The [transfer] configuration, its access rules, licence keys, and the scaling documentation.

Rules are evaluated as Knot evaluates its acl list: in order, the first rule whose action,
address and key match decides; a rule without keys allows only unsigned messages.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.tsigkeyring
import pytest
from click.testing import CliRunner

from enumserver import config as configuration
from enumserver.cli import main as enumserver
from enumserver.config import ConfigError
from enumserver.model import Zone
from enumserver.xfr import Access, Signer, may_read
from tests.conftest import (
    ROOT,
    XFR_SECRET,
    Licensed,
    ServerFactory,
    write_config,
    zonetools_run,
)
from tests.test_xfr import APEX, TEST_APEX, ask_tcp, records

DOCS = ROOT / "docs"


def zone(name: str = "tier1", role: str = "tier1", environment: str = "production",
         operator: str | None = None) -> Zone:  # fmt: skip
    return Zone(name, APEX, role, "naptr", environment, operator, "ns1.example.", "h.example.",  # type: ignore[arg-type]
                1, 3600, 600, 1209600, 60, 300, ("ns1.example.",), 3600)  # fmt: skip


def access(tmp_path: Path, text: str) -> Access:
    return Access(configuration.load(write_config(tmp_path, text)).transfer)


KEYS = (
    f'keys = [{{ id = "k1", secret = "{XFR_SECRET}" }}, {{ id = "k2", secret = "{XFR_SECRET}" }}]\n'
)


def test_the_first_matching_rule_decides_and_no_rule_refuses(tmp_path: Path) -> None:
    rules = access(tmp_path, "[transfer]\n" + KEYS + """
acls = [
    { id = "no-lab", address = ["192.0.2.128/25"], deny = true },
    { id = "lab", address = ["192.0.2.0/24"] },
    { id = "k1", key = ["k1"] },
    { id = "notify", address = ["198.51.100.1"], action = ["notify"] },
]
zones = [{ name = "*", acl = ["no-lab", "lab", "k1", "notify"] }, { name = "closed" }]
""")  # fmt: skip
    key = Signer(dns.tsigkeyring.from_text({"k1": XFR_SECRET})[dns.name.from_text("k1")], "k1")
    other = Signer(key.key, "k2")
    assert rules.allows("transfer", zone(), ("192.0.2.7", 5300), None)
    assert not rules.allows("transfer", zone(), ("192.0.2.200", 5300), None)  # denied first
    assert not rules.allows("transfer", zone(), ("192.0.2.200", 5300), key)  # deny: any key
    assert not rules.allows("transfer", zone(), ("192.0.2.7", 5300), other)  # keyless: unsigned
    assert rules.allows("transfer", zone(), ("203.0.113.9", 5300), key)  # the key, anywhere
    assert not rules.allows("transfer", zone(), ("203.0.113.9", 5300), other)
    assert not rules.allows("transfer", zone(), ("198.51.100.1", 5300), None)  # notify only
    assert rules.allows("notify", zone(), ("198.51.100.1", 5300), None)
    assert not rules.allows("transfer", zone("closed"), ("192.0.2.7", 5300), None)
    assert not rules.allows("transfer", zone(), None, None)  # (no address: no address rule)


def test_a_licence_reads_its_environments_tier1_and_its_own_tier2() -> None:
    key = Signer(dns.tsigkeyring.from_text({"k": XFR_SECRET})[dns.name.from_text("k")])
    production = Signer(key.key, ty="TY05", kind="production")
    assert may_read(production, zone())
    assert not may_read(production, zone(environment="test"))
    assert may_read(production, zone(role="tier2", operator="TY05"))
    assert not may_read(production, zone(role="tier2", operator="TY07"))
    assert not may_read(Signer(key.key, ty="TY05", kind="test"), zone())
    assert not may_read(key, zone())  # a configured key is no licence


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acls = [{ id = 'a', key = ['nokey'] }]", "acls[0].key must be ids of transfer.keys"),
        ("zones = [{ name = 'tier1', acl = ['x'] }]", "zones[0].acl must be ids of transfer.acls"),
        ("keys = [{ id = 'k', secret = 'no base64!' }]", "keys[0].secret must be a base64 TSIG"),
        ("keys = [{ id = 'k', algorithm = 'md5', secret = 'AAAA' }]", "algorithm must be one of"),
        ("remotes = [{ id = 'r', address = 'ns.example:53' }]", "address 'ns.example:53'"),
        ("acls = [{ id = 'a', action = ['update'] }]", "acls[0].action must be transfer and/or"),
        ("acls = [{ id = 'a', address = ['192.0.2.0/33'] }]", "192.0.2.0/33"),
        ("acls = [{ id = 'a' }, { id = 'a' }]", "transfer.acls a must be defined once"),
        ("acls = [{ address = ['192.0.2.1'] }]", "transfer.acls[0] must be a table with id"),
        ("notify_retries = -1", "transfer.notify_retries must be 0 or more"),
        ("keys = [{ id = 'k', file = 'missing.key' }]", "transfer.keys[0].file"),
        ("acls = 'all'", "transfer.acls must be a list of tables"),
    ],
)
def test_check_names_the_transfer_key_at_fault(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[transfer]\n" + text + "\n")
    result = CliRunner().invoke(enumserver, ["check", "--config", str(path)])
    assert result.exit_code == 1 and message in result.output, result.output
    with pytest.raises(ConfigError):
        configuration.load(path)


def test_a_key_file_from_tsig_keygen_or_a_licence_is_read(tmp_path: Path) -> None:
    (tmp_path / "k.key").write_text(
        f'key "xfr-knot2" {{\n\talgorithm hmac-sha512;\n\tsecret "{XFR_SECRET}";\n}};\n'
    )
    loaded = configuration.load(
        write_config(tmp_path, "[transfer]\nkeys = [{ file = 'k.key', id = 'xfr-knot2' }]\n")
    )
    (key,) = loaded.transfer.keys
    assert (key.id, key.algorithm, key.secret) == ("xfr-knot2", "hmac-sha512", XFR_SECRET)


def test_knots_top_level_tables_are_the_transfer_lists(tmp_path: Path) -> None:
    text = f"""
[transfer]
acls = [{{ id = "a", address = ["192.0.2.0/24"] }}]

[[key]]
id = "k"
secret = "{XFR_SECRET}"

[[acl]]
id = "b"
key = "k"

[[zone]]
name = "tier1"
acl = ["a", "b"]
"""
    loaded = configuration.load(write_config(tmp_path, text)).transfer
    assert [acl.id for acl in loaded.acls] == ["a", "b"] and loaded.keys[0].id == "k"
    assert loaded.zone("tier1") == loaded.zones[0] and loaded.zone("test") is None


def toml_blocks(path: Path) -> list[str]:
    text = path.read_text()
    return [block.split("```", 1)[0] for block in text.split("```toml\n")[1:]]


@pytest.mark.parametrize("doc", ["scaling.md", "configuration.md"])
def test_the_documented_configuration_loads(tmp_path: Path, doc: str) -> None:
    (block,) = [b for b in toml_blocks(DOCS / doc) if "[transfer]" in b]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "xfr-knot2.key").write_text(
        f'key "xfr-knot2" {{ algorithm hmac-sha256; secret "{XFR_SECRET}"; }};\n'
    )
    loaded = configuration.load(write_config(tmp_path, block))
    assert loaded.transfer.zone("tier1") is not None and loaded.transfer.remotes


def test_the_bind_example_passes_named_checkconf(tmp_path: Path) -> None:
    checker = shutil.which("named-checkconf") or shutil.which("named-checkconf", path="/usr/sbin")
    assert checker, "named-checkconf is not installed: run scripts/test (bind9-utils)"
    text = (ROOT / "examples" / "secondaries" / "named.conf").read_text()
    path = tmp_path / "named.conf"
    path.write_text(text.replace("/var/cache/bind", str(tmp_path)))
    done = subprocess.run([checker, str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scaling_doc_names_every_example_and_the_readme_links_it() -> None:
    text = (DOCS / "scaling.md").read_text()
    for example in sorted((ROOT / "examples" / "secondaries").iterdir()):
        assert f"examples/secondaries/{example.name}" in text, example.name
    assert "(docs/scaling.md)" in (ROOT / "README.md").read_text()


def test_a_licence_pulls_the_zones_it_may_read(
    server_factory: ServerFactory, licensed_store: Licensed, tmp_path: Path
) -> None:
    text = """
[transfer]
acls = [{ id = "licences", licence = true }]
zones = [{ name = "*", acl = ["licences"] }]
"""
    running = server_factory(licensed_store.store, "--config", str(write_config(tmp_path, text)))
    production = dns.tsigkeyring.from_file(licensed_store.key("TY05-P1"))
    test = dns.tsigkeyring.from_file(licensed_store.key("TY05-T1"))

    def transfer(apex: str, keyring: dict[dns.name.Name, object]) -> int:
        query = dns.message.make_query(apex, "AXFR")
        query.use_tsig(keyring)
        return dns.message.from_wire(ask_tcp(running, query.to_wire()), keyring=False).rcode()

    assert transfer(APEX, production) == dns.rcode.NOERROR
    assert transfer(TEST_APEX, production) == dns.rcode.REFUSED  # another environment
    assert transfer(TEST_APEX, test) == dns.rcode.NOERROR
    assert transfer(APEX, test) == dns.rcode.REFUSED
    cmd = [
        "dig",
        f"@{running.host}",
        "-p",
        str(running.port),
        "-k",
        str(licensed_store.key("TY05-P1")),
        APEX,
        "AXFR",
    ]
    assert (
        len(records(subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout)) > 5000
    )
    zonetools_run(licensed_store.store, "licence", "revoke", "TY05-P1", "-m", "contract ended")
    query = dns.message.make_query(APEX, "AXFR")
    query.use_tsig(production)
    response = dns.message.from_wire(ask_tcp(running, query.to_wire()), keyring=False)
    assert response.rcode() == dns.rcode.NOTAUTH and response.tsig[0].error == dns.rcode.BADKEY
