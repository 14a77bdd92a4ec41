"""The configuration file: every key documented and in the example; errors name the key."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from enumserver import config as configuration
from enumserver.cli import main as enumserver
from enumserver.config import SECTIONS, Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]


def all_keys() -> list[str]:
    keys = [f"server.{f.name}" for f in fields(Config) if f.name not in SECTIONS]
    for name, cls in SECTIONS.items():
        keys += [f"{name}.{f.name}" for f in fields(cls)]
    return keys


def test_every_key_is_documented_in_its_table() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for key in all_keys():
        section, name = key.split(".")
        table = text.split(f"## `[{section}]`", 1)[1].split("\n## ", 1)[0]
        assert re.search(rf"^\| `{name}` \|", table, re.M), f"{key} not in docs/configuration.md"


def test_the_example_sets_every_key_and_loads(tmp_path: Path) -> None:
    example = ROOT / "examples" / "enumserver.toml"
    loaded = configuration.load(example)
    assert loaded.store == str(example.parent / "enum.sqlite")
    text = example.read_text()
    for key in all_keys():
        section, name = key.split(".")
        table = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        assert re.search(rf"^{name} = ", table, re.M), f"{key} not in examples/enumserver.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rrl]\nwindow = 15\n", "unknown key rrl.window"),
        ("[dnstap]\nenabled = true\n", "unknown section(s) dnstap"),
        ('[rrl]\nrate = "fast"\n', "rrl.rate must be a number, not str"),
        ("[rrl]\nenabled = 1\n", "rrl.enabled must be true or false, not int"),
        ("[rrl]\nexempt = [10]\n", "rrl.exempt must be a list of strings"),
        ('[rrl]\nexempt = ["10.0.0.0/33"]\n', "10.0.0.0/33"),
        ("[rrl]\nipv4_prefix = 40\n", "rrl.ipv4_prefix must be 8..32"),
        ("[server]\ntcp_max_clients = 0\n", "server.tcp_max_clients must be positive"),
        ("[server]\ntcp_max_duration = true\n", "server.tcp_max_duration must be a number"),
        ('[metrics]\nlisten = "localhost:9153"\n', "metrics.listen address 'localhost:9153'"),
        ('[log]\nformat = "xml"\n', "log.format must be text, logfmt or json"),
        ("[log]\nquery_sample = -1\n", "log.query_sample must be 0 (off) or more"),
        ("metrics = 1\n", "[metrics] must be a table"),
    ],
)
def test_check_names_the_key_at_fault(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = CliRunner().invoke(enumserver, ["check", "--config", str(path)])
    assert result.exit_code == 1 and message in result.output, result.output


def test_integers_are_accepted_for_seconds_and_rates(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("[server]\ntcp_idle_timeout = 3\n[rrl]\nrate = 50\n")
    loaded = configuration.load(path)
    assert loaded.tcp_idle_timeout == 3.0 and loaded.rrl.rate == 50.0


def test_changes_lists_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    path.write_text('[server]\ncache_size = 10\n[log]\nformat = "json"\n')
    assert configuration.changes(Config(), configuration.load(path)) == [
        "server.cache_size",
        "log.format",
    ]
    with pytest.raises(ConfigError):
        Config().with_overrides(listen=("nowhere",))
