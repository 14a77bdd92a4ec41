"""Shared fixtures: a store built from examples/demo, a real server on a free port, clients."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from enumserver.demo import load_demo
from enumserver.store import StoreWriter

ROOT = Path(__file__).resolve().parents[1]
APEX = "8.5.3.e164.arpa."


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def build_demo_store(path: Path) -> Path:
    writer = StoreWriter.create(path)
    try:
        load_demo(writer)
    finally:
        writer.close()
    return path


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data set of examples/demo in a store (shared; tests must not write to it)."""
    return build_demo_store(tmp_path_factory.mktemp("demo") / "demo.sqlite")


@pytest.fixture
def writable_store(tmp_path: Path) -> Path:
    """A private copy of the demo store that a test may change."""
    return build_demo_store(tmp_path / "store.sqlite")


@dataclass
class RunningServer:
    """A server subprocess and the address it answers on."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    def query(
        self, name: str, rdtype: str = "NAPTR", tcp: bool = False, **kwargs: object
    ) -> dns.message.Message:
        """Ask with dnspython (UDP by default); returns the parsed response."""
        message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
        message.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(message, self.host, port=self.port, timeout=3)
        return dns.query.udp(message, self.host, port=self.port, timeout=3)

    def send_udp(self, payload: bytes, timeout: float = 1.0) -> bytes | None:
        """Send raw bytes over UDP; the reply bytes, or None when the server stays silent."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(payload, (self.host, self.port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    def alive(self) -> bool:
        """The server still answers a plain SOA query (used after malformed input)."""
        response = self.query(APEX, "SOA")
        return response.rcode() == dns.rcode.NOERROR and len(response.answer) == 1


def start_server(
    store: Path,
    tmp_path: Path,
    *extra: str,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    port: int | None = None,
    listen_flag: bool = True,
) -> RunningServer:
    """Start `enumserver serve` on a free port and wait until it answers.

    With ``listen_flag=False`` no --listen is passed: the configuration file must listen on
    host:port (so that SIGHUP can change the listeners).
    """
    port = port or free_port()
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log = tmp_path / f"server-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "enumserver",
        "serve",
        "--store",
        str(store),
        *(["--listen", listen] if listen_flag else []),
        *extra,
    ]
    process = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    server = RunningServer(process, host, port, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            probe = dns.message.make_query(APEX, "SOA")
            if dns.query.udp(probe, host, port=port, timeout=0.3).rcode() == dns.rcode.NOERROR:
                return server  # (a short timeout: a probe sent before the bind gets no reply)
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not answer: {log.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server on the demo store for the read-only tests."""
    running = start_server(demo_store, tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running)


ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start extra servers (own store, flags, address); all stopped after the test."""
    started: list[RunningServer] = []

    def factory(
        store: Path,
        *extra: str,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        port: int | None = None,
        listen_flag: bool = True,
    ) -> RunningServer:
        running = start_server(
            store, tmp_path, *extra, host=host, env=env, port=port, listen_flag=listen_flag
        )
        started.append(running)
        return running

    yield factory
    for running in started:
        stop_server(running)


@dataclass
class Dig:
    """What dig printed, split into the parts tests assert on."""

    status: str
    flags: set[str]
    answer: list[str]
    authority: list[str]
    additional: list[str]
    text: str


def dig(server: RunningServer, *args: str) -> Dig:
    """Run the real dig (bind9-dnsutils) against the server; records in presentation form."""
    if shutil.which("dig") is None:
        pytest.fail(
            "dig is not installed: run the README test command (it installs bind9-dnsutils)"
        )
    cmd = ["dig", f"@{server.host}", "-p", str(server.port), "+norec", "+time=2", "+tries=1", *args]
    text = subprocess.run(
        cmd, capture_output=True, text=True, timeout=20, env={**os.environ, "LC_ALL": "C"}
    ).stdout
    status, flags = "", set()
    sections: dict[str, list[str]] = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
    current = None
    for line in text.splitlines():
        if "status:" in line:
            status = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; flags:"):
            flags = set(line.split(";")[2].split(":")[1].split())
        elif line.startswith(";; ") and line.endswith(" SECTION:"):
            current = line[3:].split()[0]
        elif not line.strip():
            current = None
        elif current in sections and not line.startswith(";"):
            sections[current].append(" ".join(line.split()))
    return Dig(
        status, flags, sections["ANSWER"], sections["AUTHORITY"], sections["ADDITIONAL"], text
    )


def write_config(tmp_path: Path, text: str, name: str = "enumserver.toml") -> Path:
    """A TOML configuration file for a test server."""
    path = tmp_path / name
    path.write_text(text)
    return path


@dataclass
class Scrape:
    """One real HTTP scrape of a /metrics endpoint, parsed by prometheus_client."""

    samples: list[tuple[str, dict[str, str], float]]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )


def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    """GET http://host:port/metrics and parse the exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    return Scrape(samples, text)


@dataclass
class Licensed:
    """A writable demo store whose TYs got licences, and the directory of their key files."""

    store: Path
    keys: Path

    def key(self, licence_id: str, generation: int = 1) -> Path:
        """The key file of a licence (as `zonetools licence issue` names it)."""
        return self.keys / f"{licence_id.lower()}-k{generation}.key"


@pytest.fixture
def licensed_store(writable_store: Path, tmp_path: Path) -> Licensed:
    """The demo store with the joining licences (2 production + 1 test) of TY03, TY05, TY07."""
    from click.testing import CliRunner

    from zonetools.cli import main as zonetools

    keys = tmp_path / "keys"
    keys.mkdir()
    for ty in ("TY03", "TY05", "TY07"):
        args = ["--store", str(writable_store), "--who", "registry", "licence", "issue", ty]
        result = CliRunner().invoke(zonetools, [*args, "--joining", "--out", str(keys)])
        assert result.exit_code == 0, result.output
    return Licensed(writable_store, keys)


# -- zone transfers and NOTIFY (tests/test_xfr*.py, tests/test_notify.py) -------------------
XFR_KEY = "xfr-test"
XFR_SECRET = "b3BlcmF0b3ItZW51bSB0cmFuc2ZlciB0ZXN0cyBrZXk="  # base64 of a test-only secret


def zonetools_run(store: Path, *args: str) -> str:
    """Run a zonetools command on a store (as a publisher would); its output."""
    from click.testing import CliRunner

    from zonetools.cli import main as zonetools

    result = CliRunner().invoke(zonetools, ["--store", str(store), "--who", "tester", *args])
    assert result.exit_code == 0, result.output
    return result.output


def wait_for_serial(host: str, port: int, apex: str, serial: int, timeout: float = 10.0) -> None:
    """Wait until a server answers the apex SOA with this serial."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            query = dns.message.make_query(apex, "SOA")
            answer = dns.query.udp(query, host, port=port, timeout=0.5).answer
            if answer and answer[0][0].serial == serial:
                return
        except (dns.exception.Timeout, OSError):
            pass
        assert time.monotonic() < deadline, f"{host}:{port} did not serve serial {serial}"
        time.sleep(0.05)
