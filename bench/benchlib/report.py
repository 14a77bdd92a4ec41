"""docs/benchmarks.md: machine, data sets, every run, the ratios against the targets of issue 6."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.data import HOT_NUMBERS, MIX, NAPTR_TTL, OPERATORS, PREFIXES, TEMPLATES, DataSet
from benchlib.perf import Result

KEEP_MARK = "<!-- sections below are written by other bench scripts and kept by bench/run -->"
OURS = "operator-enum"


@dataclass
class SizeRun:
    """Everything measured on one data set."""

    data: DataSet
    results: list[Result] = field(default_factory=list)
    latency: list[Result] = field(default_factory=list)
    startups: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    control: dict[str, float] | None = None  # the control's sizing (benchlib.control)


def _version(argv: list[str], pattern: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1).strip() if match else "unknown"


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    dpkg = ["dpkg-query", "-W", "-f=${Version}", "dnsperf"]
    try:
        from importlib.metadata import version

        loop = f"uvloop {version('uvloop')}"
    except ImportError:
        loop = "asyncio"
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "Python": f"{platform.python_version()}, {loop}",
        "SQLite": sqlite3.sqlite_version,
        "PowerDNS": _version(["pdns_server", "--version"], r"(PowerDNS Authoritative Server \S+)"),
        "Knot DNS": _version(["knotd", "-V"], r"version (\S+)"),
        "dnsperf": _version(dpkg, r"(.+)"),
        "load average at the end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def median(results: list[Result], server: str, workload: str) -> dict[str, Any] | None:
    runs = [r for r in results if r.server == server and r.workload == workload]
    if not runs:
        return None
    return {
        "qps": statistics.median(r.qps for r in runs),
        "runs": [r.qps for r in runs],
        "sent": sum(r.sent for r in runs),
        "lost": sum(r.lost for r in runs),
        "latency": statistics.median(r.avg_latency_ms for r in runs),
        "rcodes": "; ".join(sorted({re.sub(r" \d+ \(", " (", r.rcodes) for r in runs})),
    }


def _ratio(run: SizeRun, workload: str, ours: str, other: str) -> float | None:
    a, b = median(run.results, ours, workload), median(run.results, other, workload)
    return a["qps"] / b["qps"] if a and b and b["qps"] else None


TARGETS = {
    ("random", "PowerDNS"): 3.0,
    ("mixed", "PowerDNS"): 3.0,
    ("hot", "PowerDNS"): 1.0,
    ("hot", "Knot"): 0.8,
}  # issue 6, one CPU each


def ratio_rows(run: SizeRun, workloads: list[str]) -> list[str]:
    """Ratios of queries/s, with the issue's targets where it sets one."""
    rows = []
    pairs = [
        (OURS, "PowerDNS"),
        (OURS, "Knot"),
        (f"{OURS} x2", "PowerDNS x2"),
        (f"{OURS} x2", "Knot x2"),
        (f"{OURS} x2", "PowerDNS"),
        (f"{OURS} x2", OURS),
    ]
    others = sorted({r.server for r in run.results if r.server.startswith(f"{OURS} (")})
    pairs += [(label, other) for label in others for other in ("PowerDNS", "Knot")]
    for workload in workloads:
        for ours, other in pairs:
            value = _ratio(run, workload, ours, other)
            if value is None:
                continue
            one_cpu = ours == OURS or ours in others
            target = TARGETS.get((workload, other)) if one_cpu else None
            goal = f">= {target:g}" if target else ""
            met = ("yes" if value >= target else "**no**") if target else ""
            label = f"{ours} / {other}" + (" (scaling)" if other == OURS else "")
            rows.append(f"| {workload} | {label} | **{value:.2f}** | {goal} | {met} |")
    return rows


def workload_of(run: SizeRun) -> str:
    """The workload the control was sized on (the first one it ran)."""
    return next((r.workload for r in run.results if r.server.startswith("control")), "?")


def size_section(run: SizeRun, workloads: list[str], args: Any) -> list[str]:
    data, m = run.data, run.data.meta
    lines = [
        f"## {data.numbers:,} ported numbers",
        "",
        f"Our store {m['store']['store_mb']} MB (built in {m['store']['store_s']} s)"
        + (
            f"; PowerDNS gsqlite3 {m['pdns']['pdns_mb']} MB, {m['pdns']['naptrs']:,} NAPTR records"
            if "pdns" in m
            else ""
        )
        + (f"; Knot zone file {m['zone']['zone_mb']} MB" if "zone" in m else "")
        + ". Query files: "
        + ", ".join(f"{w} {n:,} names" for w, n in m["queries"].items())
        + ".",
        "",
        "| server | workload | queries/s | each run (q/s) | lost / sent | avg latency (ms) "
        f"| p99 (ms) at {args.load:.0%} of peak | response codes |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    servers = list(dict.fromkeys(r.server for r in run.results))
    for workload in workloads:
        for server in servers:
            a = median(run.results, server, workload)
            if a is None:
                continue
            each = ", ".join(f"{q:,.0f}" for q in a["runs"])
            paced = [r for r in run.latency if r.server == server and r.workload == workload]
            p99 = (
                f"{paced[0].p99_ms:.2f} ({paced[0].max_qps:,} q/s, lost {paced[0].lost})"
                if paced and paced[0].p99_ms is not None
                else ""
            )
            lines.append(
                f"| {server} | {workload} | {a['qps']:,.0f} | {each} | "
                f"{a['lost']:,} / {a['sent']:,} | {a['latency']:.3f} | {p99} | "
                f"{a['rcodes']} |"
            )
    if run.control:
        c = run.control
        lines += [
            "",
            f"The control (`bench/benchlib/control_server.py`) does {c['work_us']:.1f} µs of "
            "fixed pure-Python work a query on top of its bare loop "
            f"({c['overhead_us']:.1f} µs a query closed-loop), sized so that its peak is our "
            f"median peak on {workload_of(run)} ({1e6 / c['target_us']:,.0f} q/s), and is "
            "paced the same way, at the same fraction of its own peak. Its p99 is what any "
            "single-process server with that CPU-bound peak gets on this machine: the part of "
            "our p99 that the machine makes.",
        ]
    lines += ["", "| workload | ratio of queries/s | value | target | met |"]
    lines += ["|---|---|---:|---|---|"]
    lines += ratio_rows(run, workloads)
    lines += [
        "",
        "| server | start-up to first answer (s) | resident memory after the runs: "
        "total / private (MB) |",
        "|---|---:|---:|",
    ]
    for label, times in run.startups.items():
        mem = run.memory.get(label)
        shown = f"{mem['VmRSS']:.0f} / {mem['RssAnon']:.0f}" if mem else "n/a"
        lines.append(f"| {label} | {statistics.median(times):.2f} | {shown} |")
    sent = {w: n for w, n in m["queries"].items()}
    wrapped = sorted(
        {
            f"{r.server} ({r.workload})"
            for r in run.results
            if r.workload != "hot" and r.sent > sent.get(r.workload, 0)
        }
    )
    if wrapped:
        lines += [
            "",
            "Note: the query file was shorter than the queries sent to "
            + ", ".join(wrapped)
            + ": part of those runs repeated names (cache hits).",
        ]
    if run.notes:
        lines += ["", "Differences outside the NAPTR answers (not fatal):", ""]
        lines += [f"- {note}" for note in run.notes]
    return [*lines, ""]


def steadiness_row(found: dict[str, float] | None) -> list[str]:
    if not found:
        return []
    return [
        f"| CPU 0 steadiness | one fixed chunk of Python work, timed {found['chunks']:,} times "
        f"with nothing else running: p50 {found['p50']:.0f} µs, p90 {found['p90']:.0f}, "
        f"p99 {found['p99']:.0f}, max {found['max']:.0f} (a steady CPU: all alike) |"
    ]


def write_report(path: Path, args: Any, runs: list[SizeRun], command: str, wall_s: float) -> None:
    workloads = args.workloads
    reps = f"median of {args.repeat} runs" if args.repeat > 1 else "one run"
    lines = [
        "# Benchmarks: operator-enum against PowerDNS Authoritative and Knot DNS",
        "",
        "Reproduce with `bench/run` (rewrites this file: 1,000,000 and 10,000,000 ported "
        "numbers, 3 repetitions of 10 s runs; data sets are built once and cached in "
        "`bench/work/`, the 10,000,000 set takes about 15 minutes) or `bench/run --smoke` "
        "(2,000 numbers, 1 s runs, writes `bench/work/smoke.md`; tests/test_bench.py runs it). "
        "`bench/run --help` lists the knobs.",
        "",
        "How it measures: every server serves the same records (ours: ported numbers and "
        "per-operator templates in SQLite; PowerDNS gsqlite3: the expanded NAPTR records in "
        "SQLite; Knot: the same records from a zone file). One-CPU runs pin each server to "
        "CPU 0 (`taskset -c 0`: ours with one worker, PowerDNS with one receiver and one "
        "distributor thread, Knot with one UDP worker) and dnsperf to CPU 1. Two-CPU runs "
        "(`x2`: `--workers 2`, PowerDNS with 2+2 threads, Knot with 2 UDP workers) let the "
        "server and dnsperf share CPUs 0 and 1, the only two this machine has, so they show "
        "how far a second core carries, not a clean 2-core figure. Our server and PowerDNS "
        "start afresh for every workload (cold caches; the OS page cache is warmed), Knot "
        "once per repetition; before measuring, every server's NAPTR answers (rcode, AA, "
        "owner, TTL, rdata) are checked to be the same for ported, range-only and "
        "nonexistent numbers, and the script fails if they differ. The order of the "
        "servers alternates between repetitions. The p99 latency comes from a separate "
        f"paced run (`dnsperf -Q` at {args.load:.0%} of the median peak, fresh servers) from "
        "dnsperf's per-query latencies. This is a shared 2-CPU VM on which other jobs run: "
        'single runs spread widely (see "each run"), so compare the medians and ratios.',
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine().items()),
        *steadiness_row(getattr(args, "steadiness", None)),
        "",
        "## Data and workloads",
        "",
        "- one Tier1 zone `8.5.3.e164.arpa.`, style `naptr` (NAPTR answered directly);",
        f"- {len(OPERATORS)} operators, each with a routing number, a SIP domain and two "
        f'template routes: order 10 `"u" "E2U+sip" "{TEMPLATES[0][4]}"` and order 20 '
        f'`"u" "E2U+pstn:tel" "{TEMPLATES[1][4]}"`, TTL {NAPTR_TTL};',
        f"- {len(PREFIXES)} mobile ranges {PREFIXES[0]}..{PREFIXES[-1]} (12-digit numbers), "
        "random distinct ported numbers (seed 358), each to an operator other than the "
        "range holder;",
        "- **random**: distinct ported numbers in random order, read from the start in each "
        "run: nearly every query misses every cache;",
        f"- **hot**: {HOT_NUMBERS:,} ported numbers repeated: after the first pass every "
        "query hits the caches;",
        f"- **mixed**: {MIX[0]:.0%} ported numbers, {MIX[1]:.0%} numbers of a range that are "
        f"not ported (we answer the holder's templates; PowerDNS and Knot hold those numbers' "
        f"records explicitly), {MIX[2]:.0%} numbers in no range (NXDOMAIN), shuffled, each "
        "name once.",
        "",
        "Command: `" + command + "`; dnsperf per run: "
        f"`dnsperf -s 127.0.0.1 -p PORT -d FILE -l {args.seconds:g} -c {args.clients} "
        f"-q {args.outstanding} -t 2`, {reps} per server and workload.",
        "",
    ]
    for run in runs:
        lines += size_section(run, workloads, args)
    took = f"{wall_s / 60:.0f} min" if wall_s >= 120 else f"{wall_s:.0f} s"
    lines += [f"The whole run took {took}.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = path.read_text().partition(KEEP_MARK) if path.exists() else ("", "", "")
    if kept[1]:  # sections written by other scripts (bench/import) survive a rerun
        lines += [KEEP_MARK + kept[2].rstrip("\n"), ""]
    else:
        lines += [KEEP_MARK, ""]
    path.write_text("\n".join(lines))


def write_section(path: Path, name: str, lines: list[str]) -> None:
    """Write (or replace) the section of another bench script (``name``: e.g. "bench/steps")
    below bench/run's KEEP_MARK, between its own begin/end markers."""
    begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
    section = "\n".join([begin, *lines, end])
    text = path.read_text() if path.exists() else ""
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    elif KEEP_MARK in text:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + KEEP_MARK + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
