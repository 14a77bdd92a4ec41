"""dnsperf runs (throughput, and latency percentiles from its per-query output) and the check
that every server gives the same answers before it is measured."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype

from benchlib import BenchError, log
from benchlib.data import APEX, DataSet, enum_name, expected_naptrs, naptr_text
from benchlib.servers import Server


@dataclass
class Result:
    server: str
    workload: str
    qps: float
    sent: int
    completed: int
    lost: int
    avg_latency_ms: float
    rcodes: str
    p99_ms: float | None = None
    max_qps: int | None = None  # the -Q rate of a latency run
    percentiles_ms: dict[str, float] | None = None  # p50, p90, p99, max of a latency run


def _field(pattern: str, text: str, cast: Any = float, default: Any = None) -> Any:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        if default is not None:
            return default
        raise BenchError(f"cannot parse dnsperf output ({pattern!r}):\n{text[-3000:]}")
    return cast(match.group(1))


def dnsperf(
    server: Server,
    workload: str,
    queries: Path,
    seconds: float,
    clients: int,
    outstanding: int,
    cpus: str,
    max_qps: int | None = None,
) -> Result:
    """One dnsperf run; with ``max_qps`` a paced run whose per-query latencies give the p99."""
    argv = [
        "taskset",
        "-c",
        cpus,
        "dnsperf",
        "-s",
        "127.0.0.1",
        "-p",
        str(server.port),
        "-d",
        str(queries),
        "-l",
        f"{seconds:g}",
        "-c",
        str(clients),
        "-q",
        str(outstanding),
        "-t",
        "2",
    ]
    if max_qps:
        argv += ["-Q", str(max_qps), "-v"]
    log(f"{server.label} / {workload}: {' '.join(argv[3:])}")
    latencies: list[float] = []
    # dnsperf's output (with -v a line per query) goes to a file, read once dnsperf is done:
    # read while it runs, this unpinned process would take CPU from the server under test.
    with tempfile.TemporaryFile("w+") as out:
        status = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
        out.seek(0)
        other = []
        for line in out:
            if line.startswith("> "):
                latencies.append(float(line.rsplit(" ", 1)[1]))
            else:
                other.append(line)
    text = "".join(other)
    if status != 0:
        raise BenchError(f"dnsperf failed with status {status}:\n{text[-3000:]}")
    if server.proc.poll() is not None:
        raise BenchError(
            f"{server.label} died during the run (status {server.proc.returncode}); "
            f"log {server.logfile}"
        )
    result = Result(
        server=server.label,
        workload=workload,
        qps=_field(r"Queries per second:\s+([\d.]+)", text),
        sent=_field(r"Queries sent:\s+(\d+)", text, int),
        completed=_field(r"Queries completed:\s+(\d+)", text, int),
        lost=_field(r"Queries lost:\s+(\d+)", text, int),
        avg_latency_ms=_field(r"Average Latency \(s\):\s+([\d.]+)", text) * 1000,
        rcodes=_field(r"Response codes:\s+(.*)$", text, str, ""),
        max_qps=max_qps,
    )
    if latencies:
        latencies.sort()
        last = len(latencies) - 1
        result.percentiles_ms = {
            name: latencies[min(last, int(len(latencies) * q))] * 1000
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        }
        result.p99_ms = result.percentiles_ms["p99"]
    log(
        f"  {result.qps:,.0f} q/s, lost {result.lost}, avg {result.avg_latency_ms:.3f} ms"
        + (f", p99 {result.p99_ms:.3f} ms" if result.p99_ms is not None else "")
        + f", {result.rcodes}"
    )
    return result


def ask(port: int, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    for attempt in range(3):
        try:
            return dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def summary(response: dns.message.Message) -> dict[str, Any]:
    """What must match: rcode, AA, and the answer RRsets (name, type, TTL, rdata set)."""
    answer = sorted(
        (
            rrset.name.to_text().lower(),
            dns.rdatatype.to_text(rrset.rdtype),
            rrset.ttl,
            tuple(sorted(rd.to_text() for rd in rrset)),
        )
        for rrset in response.answer
    )
    return {
        "rcode": dns.rcode.to_text(response.rcode()),
        "aa": bool(response.flags & dns.flags.AA),
        "answer": answer,
    }


def sections(response: dns.message.Message) -> dict[str, list[str]]:
    return {
        "authority": sorted(r.to_text().lower() for r in response.authority),
        "additional": sorted(
            r.to_text().lower() for r in response.additional if r.rdtype != dns.rdatatype.OPT
        ),
    }


def compare(data: DataSet, ours: Server, others: list[Server]) -> list[str]:
    """Fail on a differing NAPTR answer; return notes on lesser differences."""
    notes: list[str] = []
    failures: list[str] = []
    for number, ty in data.meta["checks"]:
        assert number is not None
        name = enum_name(number) + "."
        mine = ask(ours.port, name, "NAPTR")
        expected = summary(mine)
        if ty is not None:
            want = sorted(
                dns.rdata.from_text("IN", "NAPTR", naptr_text(rd)).to_text()
                for rd in expected_naptrs(number, ty)
            )
            if not expected["answer"] or list(expected["answer"][0][3]) != want:
                failures.append(f"{name} NAPTR: {ours.label} answers {expected}, expected {want}")
        elif expected["rcode"] != "NXDOMAIN":
            failures.append(f"{name} NAPTR: {ours.label} answers {expected}, expected NXDOMAIN")
        for other in others:
            theirs = ask(other.port, name, "NAPTR")
            if summary(theirs) != expected:
                failures.append(
                    f"{name} NAPTR:\n  {ours.label} {expected}\n  {other.label} {summary(theirs)}"
                )
            elif sections(theirs) != sections(mine):
                notes.append(
                    f"{name} NAPTR: other sections differ: {ours.label} "
                    f"{sections(mine)}, {other.label} {sections(theirs)}"
                )
    if failures:
        raise BenchError("the servers answer differently:\n" + "\n".join(failures))
    for rdtype in ("SOA", "NS"):
        mine_apex = summary(ask(ours.port, APEX, rdtype))
        for other in others:
            theirs_apex = summary(ask(other.port, APEX, rdtype))
            if theirs_apex != mine_apex:
                notes.append(
                    f"{APEX} {rdtype}: {ours.label} {mine_apex}, {other.label} {theirs_apex}"
                )
    log(
        f"answers agree on {len(data.meta['checks'])} numbers"
        + (f" ({len(notes)} notes)" if notes else "")
    )
    return notes
