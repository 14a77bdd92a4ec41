"""Start and stop the servers under test: ours, PowerDNS (gsqlite3) and Knot (zone file).

Every process is started pinned with taskset, remembered, and stopped by its PID on exit.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import BenchError, log
from benchlib.data import APEX, DataSet

PROCESSES: list[subprocess.Popen[bytes]] = []


def stop_all() -> None:
    """Stop every process this script started, by PID: TERM, then KILL after 10 s."""
    while PROCESSES:
        proc = PROCESSES.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def free_port() -> int:
    """A high port free for both UDP and TCP on 127.0.0.1."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 60000)
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t,
            ):
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise BenchError("no free port found on 127.0.0.1")


def _tree(pid: int) -> list[int]:
    """The process and its descendants (workers), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


@dataclass
class Server:
    label: str  # e.g. "operator-enum", "operator-enum x2", "PowerDNS", "Knot"
    kind: str  # ours, pdns, knot
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path
    cpus: str
    startup_s: float = 0.0

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of the process tree: total, anonymous (private) and file-backed."""
        totals = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
        for pid in _tree(self.proc.pid):
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                key = line.split(":", 1)[0]
                if key in totals:
                    totals[key] += int(line.split()[1]) / 1024
        return totals


def start(
    label: str,
    kind: str,
    argv: list[str],
    port: int,
    logfile: Path,
    timeout: float,
    cpus: str,
    cwd: Path,
) -> Server:
    log(f"starting {label} on 127.0.0.1:{port} (CPUs {cpus}): {' '.join(argv)}")
    out = logfile.open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["taskset", "-c", cpus, *argv],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    PROCESSES.append(proc)
    server = Server(label, kind, port, proc, logfile, cpus)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise BenchError(
                f"{label} exited with status {proc.returncode} at start-up; log {logfile}:\n{tail}"
            )
        dig = subprocess.run(
            ["dig", "+time=1", "+tries=1", "+short", "-p", str(port), "@127.0.0.1", APEX, "SOA"],
            capture_output=True,
            text=True,
        )
        if dig.returncode == 0 and dig.stdout.strip():
            server.startup_s = time.monotonic() - started
            log(f"{label} answers after {server.startup_s:.2f} s")
            return server
        time.sleep(0.05)
    tail = logfile.read_text(errors="replace")[-2000:]
    raise BenchError(
        f"{label} did not answer a SOA query within {timeout:.0f} s; log {logfile}:\n{tail}"
    )


def python_venv(python: str, root: Path, work: Path) -> tuple[Path, str]:
    """A virtualenv of another interpreter with the project installed (editable), made once
    by the project venv's pip; (its python, a label such as 'python3.11.2')."""
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    venv = work / f"venv-{Path(python).name}-{version}"
    exe = venv / "bin" / "python"
    if not (venv / "installed").exists():
        log(f"making {venv} with {python} ({version})")
        subprocess.run([python, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
        pip = [str(root / ".venv" / "bin" / "pip"), "--python", str(exe), "install", "-q"]
        subprocess.run([*pip, "-e", str(root)], check=True)
        (venv / "installed").touch()
    return exe, f"python {version}"


def start_ours(data: DataSet, tmp: Path, timeout: float, workers: int, cpus: str, root: Path,
               python: tuple[Path, str] | None = None) -> Server:  # fmt: skip
    """Our server from the project venv, or under another interpreter (``python_venv``)."""
    exe = root / ".venv" / "bin" / "enumserver"
    if not exe.exists():
        raise BenchError(f"{exe} not found (pip install -e . in the venv)")
    port = free_port()
    command = [str(exe)] if python is None else [str(python[0]), "-m", "enumserver"]
    argv = [*command, "serve", "--store", str(data.store), "--listen", f"127.0.0.1:{port}"]
    label = "operator-enum" if python is None else f"operator-enum ({python[1]})"
    if workers > 1:
        argv += ["--workers", str(workers)]
        label += f" x{workers}"
    log_name = f"ours-{workers}{'-py' if python else ''}.log"
    return start(label, "ours", argv, port, tmp / log_name, timeout, cpus, root)


def start_pdns(data: DataSet, tmp: Path, timeout: float, threads: int, cpus: str) -> Server:
    if not shutil.which("pdns_server"):
        raise BenchError("pdns_server not found (apt-get install pdns-server pdns-backend-sqlite3)")
    port = free_port()
    confdir = tmp / f"pdns-{threads}"
    sockets = tmp / f"pdns-run-{threads}"
    confdir.mkdir()
    sockets.mkdir()
    (confdir / "pdns.conf").write_text(
        "\n".join(
            [
                "launch=gsqlite3",
                f"gsqlite3-database={data.pdns_db}",
                "local-address=127.0.0.1",
                f"local-port={port}",
                f"receiver-threads={threads}",
                f"distributor-threads={threads}",
                "daemon=no",
                "guardian=no",
                "disable-syslog=yes",
                f"socket-dir={sockets}",
                "write-pid=no",
                "webserver=no",
                "api=no",
                "loglevel=4",
                "",
            ]
        )
    )
    label = "PowerDNS" if threads == 1 else f"PowerDNS x{threads}"
    argv = ["pdns_server", f"--config-dir={confdir}"]
    return start(label, "pdns", argv, port, tmp / f"pdns-{threads}.log", timeout, cpus, tmp)


def start_knot(data: DataSet, tmp: Path, timeout: float, workers: int, cpus: str) -> Server:
    knotd = shutil.which("knotd") or "/usr/sbin/knotd"
    if not Path(knotd).exists():
        raise BenchError("knotd not found (apt-get install knot)")
    port = free_port()
    rundir, storage = tmp / f"knot-run-{workers}", tmp / f"knot-db-{workers}"
    rundir.mkdir()
    storage.mkdir()
    conf = tmp / f"knot-{workers}.conf"
    conf.write_text(f"""server:
    rundir: "{rundir}"
    listen: 127.0.0.1@{port}
    udp-workers: {workers}
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{storage}"
template:
  - id: default
    storage: "{data.directory}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: {APEX}
    file: "{data.zone_file.name}"
""")
    label = "Knot" if workers == 1 else f"Knot x{workers}"
    argv = [knotd, "-c", str(conf)]
    return start(label, "knot", argv, port, tmp / f"knot-{workers}.log", timeout, cpus, tmp)
