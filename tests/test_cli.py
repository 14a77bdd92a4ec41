"""The command lines as a user runs them: zonetools init/load-example, enumserver check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from enumserver.cli import main as enumserver
from enumserver.store import StoreReader, store_serials
from zonetools.cli import main as zonetools

ROOT = Path(__file__).resolve().parents[1]


def test_init_then_load_example_builds_a_servable_store(tmp_path: Path) -> None:
    store = tmp_path / "enum.sqlite"
    runner = CliRunner()
    result = runner.invoke(zonetools, ["--store", str(store), "init"])
    assert result.exit_code == 0 and f"store {store} ready" in result.output
    result = runner.invoke(zonetools, ["--store", str(store), "load-example", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["counts"]["ported"] == 320 and report["counts"]["operators"] == 14
    assert report["serials"] == {"tier1": 1, "tier1-referral": 1, "test": 1}
    reader = StoreReader(store)
    assert reader.recipient_of("358401234567") == "TY07"
    reader.close()


def test_store_env_variable_and_subprocess(tmp_path: Path) -> None:
    store = tmp_path / "env.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "zonetools", "init"],
        env={"ENUM_STORE": str(store), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ready" in done.stdout and store_serials(store) == {}


def test_check_accepts_the_example_config(tmp_path: Path, demo_store: Path) -> None:
    config = tmp_path / "enumserver.toml"
    text = (ROOT / "examples" / "enumserver.toml").read_text()
    config.write_text(text.replace('store = "enum.sqlite"', f'store = "{demo_store}"'))
    result = CliRunner().invoke(enumserver, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "8.5.3.e164.arpa." in result.output


def test_check_names_the_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisten = ["127.0.0.1:5353"]\nedns_size = 4096\n')
    result = CliRunner().invoke(enumserver, ["check", "--config", str(config)])
    assert result.exit_code == 1 and "unknown key server.edns_size" in result.output


def test_check_names_a_bad_listen_address(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisten = ["localhost:53"]\n')
    result = CliRunner().invoke(enumserver, ["check", "--config", str(config)])
    assert result.exit_code == 1 and "'localhost' is not an IP address" in result.output


def test_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(enumserver, ["serve", "--store", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    for group, commands in (
        (zonetools, ["init", "load-example"]),
        (enumserver, ["serve", "check"]),
    ):
        for command in commands:
            result = runner.invoke(group, [command, "--help"])
            assert result.exit_code == 0 and "Example:" in result.output, command
