"""Prometheus metrics: plain-integer counters bumped on the hot path, exposed at scrape time.

A labelled ``Counter.labels(...).inc()`` costs more than a whole cached answer, so the engine
and the listeners increment ints and lists in :class:`Counters`; :class:`Collector` turns them
into metric families only when Prometheus scrapes. Names follow CoreDNS's with our namespace.
Counters fed by later work (UPDATE, transfers, NOTIFY, in-process publishes) are defined here in
:data:`ACTIVITY` with one function each to bump them.
"""

from __future__ import annotations

import bisect
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from socketserver import TCPServer, ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

PROTOS = ("udp", "tcp")
FAMILIES = ("1", "2")  # CoreDNS's family label: 1 = IPv4, 2 = IPv6
TYPE_NAMES = {
    1: "A",
    2: "NS",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    43: "DS",
    48: "DNSKEY",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
}
RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    16: "BADVERS",
}
# Latency buckets in seconds (CoreDNS uses 0.00025 .. 8.192; a cached answer here takes ~10 µs).
BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0)
NO_ZONE = "none"

Tally = tuple[str, bool, str, int, str]  # zone, over TCP, type label, rcode, kind


def type_label(qtype: int) -> str:
    """A bounded label for a query type: its mnemonic for the usual ones, else 'other'."""
    return TYPE_NAMES.get(qtype, "other")


def rcode_label(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, str(rcode))


class Histogram:
    """Latency histogram in nanoseconds: one bisect and one list increment per observation."""

    __slots__ = ("bounds", "counts", "total_ns")

    def __init__(self) -> None:
        self.bounds = [int(b * 1e9) for b in BUCKETS]
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total_ns = 0

    def observe(self, ns: int) -> None:
        self.counts[bisect.bisect_left(self.bounds, ns)] += 1
        self.total_ns += ns


class Counters:
    """Every hot-path counter of one server process (single-threaded writers, GIL readers)."""

    def __init__(self) -> None:
        # (zone, proto, type, rcode, kind) -> [IPv4 count, IPv6 count]; shared by cache entries
        self.tallies: dict[Tally, list[int]] = {}
        self.misses = [0, 0]  # response-cache misses by proto index (udp 0, tcp 1)
        self.silent = [0, 0]  # messages dropped without an answer (unreadable, or a response)
        self.section_hits = 0
        self.section_misses = 0
        self.store_reloads = 0
        self.store_errors = 0
        self.rrl_slipped = 0
        self.rrl_dropped = 0
        self.send_overload = 0
        self.tcp_accepted = 0
        self.tcp_refused = dict.fromkeys(("max_clients", "max_clients_per_ip", "stopping"), 0)
        self.tcp_closed = dict.fromkeys(("idle", "duration", "queries"), 0)
        self.querylog_written = 0
        self.querylog_dropped = 0
        self.config_reloads = dict.fromkeys(("ok", "error"), 0)
        self.latency = {proto: Histogram() for proto in PROTOS}

    def tally(self, zone: str, tcp: bool, qtype: int, rcode: int, kind: str) -> list[int]:
        """The [IPv4, IPv6] counter pair for these labels, created on first use. The key holds
        the bounded type label and the plain transport and rcode (labels at scrape time)."""
        key = (zone, tcp, TYPE_NAMES.get(qtype, "other"), rcode, kind)
        pair = self.tallies.get(key)
        if pair is None:
            pair = self.tallies[key] = [0, 0]
        return pair

    def bump(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class Activity:
    """Counters of events outside the query path, fed by publishing, UPDATE and transfer code."""

    def __init__(self) -> None:
        self.publishes: dict[tuple[str, str], int] = {}  # (source, result)
        self.updates: dict[tuple[str, str], int] = {}  # (operator TY, result)
        self.transfers: dict[tuple[str, str, str], int] = {}  # (zone, type, result)
        self.notifies: dict[tuple[str, str], int] = {}  # (zone, result)


ACTIVITY = Activity()


def count_publish(source: str, result: str = "ok") -> None:
    """A change set applied in this process (source: cli, import, update)."""
    ACTIVITY.publishes[(source, result)] = ACTIVITY.publishes.get((source, result), 0) + 1


def count_update(operator: str, result: str) -> None:
    """A DNS UPDATE from a TY: result 'accepted' or 'refused'."""
    ACTIVITY.updates[(operator, result)] = ACTIVITY.updates.get((operator, result), 0) + 1


def count_transfer(zone: str, kind: str, result: str) -> None:
    """An AXFR/IXFR served (kind 'axfr' or 'ixfr'; result 'ok', 'refused' or 'failed')."""
    key = (zone, kind, result)
    ACTIVITY.transfers[key] = ACTIVITY.transfers.get(key, 0) + 1


def count_notify(zone: str, result: str) -> None:
    """A NOTIFY sent for a zone (result 'ok', 'timeout', 'refused')."""
    ACTIVITY.notifies[(zone, result)] = ACTIVITY.notifies.get((zone, result), 0) + 1


class Source(Protocol):
    """What the collector reads from a running server."""

    counters: Counters

    def serials(self) -> dict[str, int]: ...
    def cache_entries(self) -> dict[str, int]: ...
    def tcp_connections(self) -> int: ...
    def udp_drops(self) -> int: ...


def kernel_udp_drops(inodes: set[int]) -> int:
    """Datagrams the kernel dropped on our UDP sockets (receive buffer full), from /proc."""
    total = 0
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if int(fields[9]) in inodes:
                        total += int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total


def _counter(name: str, doc: str, labels: Iterable[str], rows: Iterable[Any]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for *values, count in rows:
        family.add_metric([str(v) for v in values], count)
    return family


def _gauge(name: str, doc: str, labels: Iterable[str], rows: Iterable[Any]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for *values, count in rows:
        family.add_metric([str(v) for v in values], count)
    return family


class Collector:
    """Turns the plain counters into Prometheus metric families at scrape time."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        src = self.source
        c = src.counters
        tallies = list(c.tallies.items())  # one C-level copy: the loop thread may add keys
        requests: dict[tuple[str, str, str, str], int] = {}
        responses: dict[tuple[str, str, str, str], int] = {}
        answered = [0, 0]
        for (zone, tcp, qtype, code, kind), pair in tallies:
            proto, rcode = PROTOS[tcp], rcode_label(code)
            for family, count in zip(FAMILIES, pair, strict=True):
                if not count:
                    continue
                key = (zone, proto, family, qtype)
                requests[key] = requests.get(key, 0) + count
                rkey = (zone, proto, rcode, kind)
                responses[rkey] = responses.get(rkey, 0) + count
                answered[tcp] += count
        yield _gauge("enum_build_info", "Version of the server.", ["version"], [(_version(), 1)])
        yield _counter(
            "enum_dns_requests_total",
            "Queries answered, by zone, transport, address family and query type.",
            ["zone", "proto", "family", "type"],
            ((*k, v) for k, v in sorted(requests.items())),
        )
        yield _counter(
            "enum_dns_responses_total",
            "Responses sent, by zone, transport, rcode and kind of answer.",
            ["zone", "proto", "rcode", "kind"],
            ((*k, v) for k, v in sorted(responses.items())),
        )
        hist = HistogramMetricFamily(
            "enum_dns_request_duration_seconds",
            "Time from a query's arrival to its answer being handed to the socket.",
            labels=["proto"],
        )
        for proto, h in c.latency.items():
            counts, running, buckets = list(h.counts), 0, []
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += count
                buckets.append((_le(bound), running))
            hist.add_metric([proto], buckets, h.total_ns / 1e9)
        yield hist
        hits = [answered[i] - (c.misses[i] - c.silent[i]) for i in (0, 1)]
        yield _counter(
            "enum_cache_hits_total",
            "Answers taken from a cache.",
            ["cache", "proto"],
            [("response", p, hits[i]) for i, p in enumerate(PROTOS)]
            + [("sections", "any", c.section_hits)],
        )
        yield _counter(
            "enum_cache_misses_total",
            "Lookups a cache could not answer.",
            ["cache", "proto"],
            [("response", p, c.misses[i]) for i, p in enumerate(PROTOS)]
            + [("sections", "any", c.section_misses)],
        )
        yield _gauge(
            "enum_cache_entries", "Entries in each cache.", ["cache"],
            sorted(src.cache_entries().items()),
        )  # fmt: skip
        yield _gauge(
            "enum_zone_serial", "SOA serial served per zone.", ["zone"],
            sorted(src.serials().items()),
        )  # fmt: skip
        yield from self._limits(src, c)
        yield from self._activity()

    def _limits(self, src: Source, c: Counters) -> Iterator[Metric]:
        yield _counter(
            "enum_dns_dropped_total",
            "Messages not answered, by reason.",
            ["reason"],
            [
                ("unreadable_udp", c.silent[0]),
                ("unreadable_tcp", c.silent[1]),
                ("rrl", c.rrl_dropped),
                ("send_buffer_full", c.send_overload),
                ("receive_buffer_full", src.udp_drops()),
            ],
        )
        yield _counter(
            "enum_rrl_slipped_total", "Rate-limited answers sent as empty TC=1.", [],
            [(c.rrl_slipped,)],
        )  # fmt: skip
        yield _counter(
            "enum_rrl_dropped_total", "Rate-limited answers dropped.", [], [(c.rrl_dropped,)]
        )
        yield _gauge(
            "enum_tcp_connections", "Open TCP connections.", [], [(src.tcp_connections(),)]
        )
        yield _counter(
            "enum_tcp_connections_total", "TCP connections accepted.", [], [(c.tcp_accepted,)]
        )
        yield _counter(
            "enum_tcp_refused_total", "TCP connections refused, by limit.", ["reason"],
            sorted(c.tcp_refused.items()),
        )  # fmt: skip
        yield _counter(
            "enum_tcp_closed_total", "TCP connections closed by the server, by reason.",
            ["reason"], sorted(c.tcp_closed.items()),
        )  # fmt: skip
        yield _counter(
            "enum_querylog_lines_total", "Query log lines written.", [], [(c.querylog_written,)]
        )
        yield _counter(
            "enum_querylog_dropped_total", "Query log lines dropped (queue full).", [],
            [(c.querylog_dropped,)],
        )  # fmt: skip
        yield _counter(
            "enum_store_reloads_total", "New store serials picked up.", [], [(c.store_reloads,)]
        )
        yield _counter(
            "enum_store_errors_total", "Failed store reads (previous data kept).", [],
            [(c.store_errors,)],
        )  # fmt: skip
        yield _counter(
            "enum_config_reloads_total", "Configuration reloads (SIGHUP), by result.",
            ["result"], sorted(c.config_reloads.items()),
        )  # fmt: skip

    def _activity(self) -> Iterator[Metric]:
        a = ACTIVITY
        yield _counter(
            "enum_publish_total", "Change sets applied in this process.", ["source", "result"],
            ((*k, v) for k, v in sorted(dict(a.publishes).items())),
        )  # fmt: skip
        yield _counter(
            "enum_update_total", "DNS UPDATE messages, by operator (TY) and result.",
            ["operator", "result"], ((*k, v) for k, v in sorted(dict(a.updates).items())),
        )  # fmt: skip
        yield _counter(
            "enum_transfers_total", "Zone transfers served.", ["zone", "type", "result"],
            ((*k, v) for k, v in sorted(dict(a.transfers).items())),
        )  # fmt: skip
        yield _counter(
            "enum_notify_total", "NOTIFY messages sent.", ["zone", "result"],
            ((*k, v) for k, v in sorted(dict(a.notifies).items())),
        )  # fmt: skip


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _version() -> str:
    try:
        return metadata.version("operator-enum")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of our own address (seconds offline)."""
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes every few seconds would drown the server's own lines."""


Ready = Callable[[], str | None]  # None when ready, else what is missing


class MetricsServer:
    """HTTP in a thread: /metrics (Prometheus text), /health (alive), /ready (serving data)."""

    def __init__(self, host: str, port: int, source: Source, ready: Ready) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(source))
        ProcessCollector(registry=self.registry)
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return metrics_app(environ, start)  # type: ignore[no-any-return]
            if path in ("/health", "/ready"):
                missing = ready() if path == "/ready" else None
                status = "200 OK" if missing is None else "503 Service Unavailable"
                start(status, [("Content-Type", "text/plain")])
                return [b"ok\n" if missing is None else missing.encode() + b"\n"]
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"see /metrics, /health, /ready\n"]

        server_class = _Server6 if ":" in host else _Server
        self.httpd: WSGIServer = make_server(host, port, app, server_class, _Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
