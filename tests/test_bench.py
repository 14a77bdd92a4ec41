"""bench/run --smoke runs end to end, so the benchmark cannot rot (figures: docs/benchmarks.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_compares_with_powerdns(tmp_path: Path) -> None:
    for tool in ("dnsperf", "pdns_server", "taskset"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: run scripts/test, it installs dnsperf and pdns-server")
    report = tmp_path / "smoke.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--smoke", "--output", str(report)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    assert "| operator-enum | random |" in text and "| PowerDNS | random |" in text
    assert "ratio" in text
