"""The control of the latency runs (control_server.py) and the steadiness of the CPU.

A p99 at 80% of the peak measures the server and the machine together. The control tells them
apart: a server whose every query costs the same fixed pure-Python work, sized so that its
closed-loop peak is our server's, measured the same way (peak, then paced at the same
fraction of its own peak). Where the control's p99 is as high as ours, the tail is the
machine's (its CPU slows down under other tenants, and any server run at 80% of a CPU-bound
peak then falls behind), not our code's.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import log
from benchlib.data import DataSet
from benchlib.perf import Result, dnsperf
from benchlib.servers import Server, free_port, start

CONTROL = "control (fixed work)"
SCRIPT = Path(__file__).with_name("control_server.py")

_STEADINESS = """
import sys, time
def work(n):
    t = 0
    for i in range(n):
        t += i
    return t
rounds, seconds = 3000, float(sys.argv[1])
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    started = time.perf_counter_ns()
    work(rounds)
    times.append(time.perf_counter_ns() - started)
times.sort()
pick = lambda q: times[min(len(times) - 1, int(len(times) * q))] / 1000
print(len(times), pick(0.5), pick(0.9), pick(0.99), times[-1] / 1000)
"""


def steadiness(cpus: str, seconds: float = 3.0) -> dict[str, float]:
    """Time the same chunk of work over and over on the servers' CPU, nothing else running:
    on a steady CPU every chunk takes the same time; p90/p99 above p50 is speed lost to others.
    """
    out = subprocess.run(
        ["taskset", "-c", cpus, sys.executable, "-c", _STEADINESS, str(seconds)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    chunks, p50, p90, p99, worst = int(out[0]), *map(float, out[1:])
    result = {"chunks": chunks, "p50": p50, "p90": p90, "p99": p99, "max": worst}
    log(
        f"CPU {cpus} steadiness: a fixed chunk of work takes p50 {p50:.0f} µs, "
        f"p90 {p90:.0f}, p99 {p99:.0f}, max {worst:.0f} ({chunks:,} chunks)"
    )
    return result


def start_control(micros: float, tmp: Path, timeout: float, cpus: str) -> Server:
    port = free_port()
    argv = [sys.executable, str(SCRIPT), str(port), f"{micros:.2f}"]
    return start(CONTROL, "control", argv, port, tmp / "control.log", timeout, cpus, tmp)


def fresh_run(
    start: Callable[[Path], Server], data: DataSet, workload: str, seconds: float,
    clients: int, outstanding: int, dnsperf_cpus: str, rate: int | None = None,
) -> Result:  # fmt: skip
    """One dnsperf run on a server started for it (cold caches), stopped after: closed-loop,
    or paced at ``rate``."""
    with tempfile.TemporaryDirectory(prefix="fresh-", dir=data.store.parent) as tmp:
        server = start(Path(tmp))
        try:
            return dnsperf(server, workload, data.queries(workload), seconds, clients,
                           outstanding, dnsperf_cpus, rate)  # fmt: skip
        finally:
            server.proc.terminate()
            server.proc.wait(timeout=30)


def measure_control(
    args: Any, data: DataSet, results: list[Result], latency: list[Result],
    server_cpus: str, dnsperf_cpus: str,
) -> dict[str, float] | None:  # fmt: skip
    """Size the control to our median peak on the first workload, measure its peak (appended
    to ``results``) and, with ``args.load``, its p99 at that fraction of its own peak."""
    workload = args.workloads[0]
    ours = [r.qps for r in results if r.server == "operator-enum" and r.workload == workload]
    if not ours:
        return None
    target_us = 1e6 / statistics.median(ours)

    def run(micros: float, seconds: float, rate: int | None = None) -> Result:
        def start(tmp: Path) -> Server:
            return start_control(micros, tmp, args.start_timeout, server_cpus)

        return fresh_run(start, data, workload, seconds, args.clients, args.outstanding,
                         dnsperf_cpus, rate)  # fmt: skip

    overhead_us = 1e6 / run(0, args.seconds).qps  # the loop, the sockets: no work
    micros = max(0.0, target_us - overhead_us)
    log(f"control: our peak {1e6 / target_us:,.0f} q/s = {target_us:.1f} µs a query, "
        f"{overhead_us:.1f} µs of which the bare loop costs: {micros:.1f} µs of work")  # fmt: skip
    peaks = [run(micros, args.seconds) for _ in range(args.repeat)]
    results += peaks
    if args.load > 0:
        rate = int(statistics.median(r.qps for r in peaks) * args.load)
        latency.append(run(micros, args.latency_seconds, rate))
    return {"target_us": target_us, "overhead_us": overhead_us, "work_us": micros}
