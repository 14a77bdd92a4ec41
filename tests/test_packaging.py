"""The systemd unit and the Dockerfile: checked statically (no systemd or Docker daemon here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from enumserver import config as configuration

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "examples" / "systemd" / "enumserver.service"
TICKER = ROOT / "examples" / "systemd" / "enumserver-ticker.service"


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_is_notify_with_reload_and_least_privilege() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"]
    assert any("kill -HUP $MAINPID" in value for value in unit["ExecReload"])
    assert "check --config" in unit["ExecStartPre"][0]
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["User"] == ["enumserver"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictNamespaces"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]


def test_ticker_unit_runs_the_watching_ticker_without_network() -> None:
    unit = unit_settings(TICKER)
    assert unit["ExecStart"] == ["/opt/enumserver/bin/zonetools schedule tick --watch"]
    assert "ENUM_STORE=/var/lib/enumserver/enum.sqlite" in unit["Environment"]
    assert unit["Restart"] == ["always"] and unit["PrivateNetwork"] == ["yes"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["NoNewPrivileges"] == ["yes"]


@pytest.mark.parametrize("path", [UNIT, TICKER], ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / path.name
    text = path.read_text()
    for tool in ("enumserver", "zonetools"):
        found = shutil.which(tool) or str(ROOT / ".venv" / "bin" / tool)
        text = text.replace(f"/opt/enumserver/bin/{tool}", found)
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and path.name not in done.stderr, done.stderr


def test_dockerfile_runs_unprivileged_with_a_valid_configuration(tmp_path: Path) -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert "EXPOSE 53/udp 53/tcp 9153/tcp" in text and "HEALTHCHECK" in text
    for source in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    printed = text.split("printf '%s\\n'", 1)[1].split("> /etc/enumserver/enumserver.toml")[0]
    lines = re.findall(r"'(.*)' \\", printed)
    config = tmp_path / "enumserver.toml"
    config.write_text("\n".join(lines) + "\n")
    loaded = configuration.load(config)
    assert loaded.listen == ("0.0.0.0:53",) and loaded.metrics.enabled
    assert "9153" in loaded.metrics.listen and "/ready" in text
