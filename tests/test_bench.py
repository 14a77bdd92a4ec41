"""bench/run --smoke runs end to end, so the benchmark cannot rot (figures: docs/benchmarks.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_compares_with_powerdns_and_knot(tmp_path: Path) -> None:
    for tool in ("dnsperf", "pdns_server", "knotd", "taskset"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            pytest.fail(f"{tool} missing: run scripts/test, it installs dnsperf, PowerDNS, Knot")
    report = tmp_path / "smoke.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--smoke", "--output", str(report)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    for server in ("operator-enum", "PowerDNS", "Knot"):
        for workload in ("random", "hot", "mixed"):
            assert f"| {server} | {workload} |" in text
    assert "| random | operator-enum / PowerDNS |" in text
    assert "| hot | operator-enum / Knot |" in text
    assert "p99 (ms) at 80% of peak" in text
    control = next(line for line in text.splitlines() if line.startswith("| control (fixed "))
    assert "q/s, lost 0)" in control  # its peak, and its p99 at 80% of that peak
    assert "| CPU 0 steadiness | " in text
    assert "<!-- sections below are written by other bench scripts" in text  # bench/import's


def test_bench_latency_puts_our_server_beside_the_control(tmp_path: Path) -> None:
    report = tmp_path / "latency.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "latency"), "--numbers", "2000", "--loads", "0.5",
         "--rounds", "1", "--seconds", "1", "--output", str(report)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    assert text.count("<!-- bench/latency begin -->") == 1
    rows = [line for line in text.splitlines() if line.startswith("| 50% |")]
    assert [row.split(" | ")[1] for row in rows[:2]] == ["operator-enum", "control (fixed work)"]
    for row in rows[:2]:  # peak, paced rate, p50, p90, p99, max: all measured, nothing lost
        cells = row.strip("|").split(" | ")
        assert float(cells[2].replace(",", "")) > 0 and float(cells[6]) > 0
        assert cells[-1].strip() == "0"
