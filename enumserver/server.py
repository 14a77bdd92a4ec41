"""asyncio UDP and TCP listeners around an Engine: limits, rate limiting, metrics, life cycle.

SIGTERM/SIGINT: stop accepting, let TCP connections finish the query they are sending (up to
``shutdown_timeout``), exit 0. SIGHUP: read the configuration again and apply it in place
(log, limits, RRL, caches, metrics endpoint, listeners added or removed; a new Engine when the
store or zones change) without dropping a query. systemd is told READY/RELOADING/STOPPING.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from enumserver import config as configuration
from enumserver import extensions, logs
from enumserver.config import Config, parse_address
from enumserver.engine import Engine
from enumserver.metrics import Counters, Histogram, MetricsServer, kernel_udp_drops
from enumserver.rrl import ConnectionLimits, RateLimiter
from enumserver.store import StoreReader, stats
from enumserver.transport import TcpProtocol, UdpProtocol
from enumserver.workers import Supervisor, WorkerError, spread_datagrams

log = logging.getLogger("enumserver")
FULL_GC_INTERVAL = 600.0  # seconds between full collections when no publish dropped the caches


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) our state through $NOTIFY_SOCKET; nothing without it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", path, exc)


Listener = tuple[asyncio.BaseTransport, asyncio.Server]  # UDP endpoint, TCP server


class DnsServer:
    """The listeners of one process, the store reload task, signals and the metrics endpoint."""

    def __init__(self, config: Config, loader: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.loader = loader
        self.counters = Counters()
        self.engine = self._engine(config)
        self.engine_source = (config.store, config.zones)
        self.rrl: RateLimiter | None = None
        self.querylog: logs.QueryLog | None = None
        self.latency: tuple[Histogram, Histogram] | None = None
        self.plain = False  # UDP takes the short path (see _apply_limits)
        self.metrics: MetricsServer | None = None
        self.listeners: dict[str, Listener] = {}
        self.udp_inodes: set[int] = set()
        self.tcp: ConnectionLimits[TcpProtocol] = ConnectionLimits(self.counters)
        self.stopping = asyncio.Event()
        self.reloading = asyncio.Lock()
        self._apply_limits(None, config)

    def _engine(self, config: Config) -> Engine:
        engine = Engine(
            config.store, config.zones, config.edns_max_payload, config.cache_size, self.counters
        )
        extensions.install(engine, config)
        return engine

    def _apply_limits(self, old: Config | None, config: Config) -> None:
        """RRL, query log and latency timing from the configuration (start and reload)."""
        if old is None or old.rrl != config.rrl:
            self.rrl = RateLimiter(config.rrl, self.counters) if config.rrl.enabled else None
        if old is None or old.log != config.log:
            if self.querylog is not None:
                self.querylog.stop()
            every, size = config.log.query_sample, config.log.query_queue
            self.querylog = logs.QueryLog(every, size, self.counters) if every else None
        latency = self.counters.latency
        self.latency = (latency["udp"], latency["tcp"]) if config.metrics.enabled else None
        self.plain = self.rrl is None and self.latency is None and self.querylog is None

    # -- what the metrics collector reads ------------------------------------------------
    def serials(self) -> dict[str, int]:
        return self.engine.zone_serials()

    def cache_entries(self) -> dict[str, int]:
        return self.engine.cache_entries()

    def tcp_connections(self) -> int:
        return len(self.tcp.open)

    def udp_drops(self) -> int:
        return kernel_udp_drops(self.udp_inodes)

    def ready(self) -> str | None:
        """None when serving, else what is missing (the /ready endpoint)."""
        if self.stopping.is_set():
            return "stopping"
        if not self.listeners:
            return "no listener bound"
        return None if self.engine.serials else "no zone served"

    # -- life cycle ----------------------------------------------------------------------
    async def bind(self, text: str) -> Listener:
        loop = asyncio.get_running_loop()
        host, port = parse_address(text)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        v6 = family == socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if v6:  # like TCP: [::] and 0.0.0.0 may both be listed
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.config.udp_receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.udp_receive_buffer)
            if self.config.workers > 1:  # every worker binds the address (workers.py)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            if self.config.workers > 1:
                spread_datagrams(sock, self.config.workers)
        except OSError:
            sock.close()
            raise
        self.udp_inodes.add(os.fstat(sock.fileno()).st_ino)
        udp, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(self, v6), sock=sock)
        try:
            tcp = await loop.create_server(
                lambda: TcpProtocol(self),
                host=host,
                port=port,
                family=family,
                reuse_address=True,
                reuse_port=self.config.workers > 1,
                backlog=self.config.tcp_backlog,
            )
        except OSError:
            udp.close()
            raise
        log.info("listening on %s (udp, tcp)", text)
        return udp, tcp

    async def start(self) -> None:
        for text in self.config.listen:
            self.listeners[text] = await self.bind(text)
        self._start_metrics(self.config)
        log.info("serving zones %s", ", ".join(self.engine.zones))
        sd_notify("READY=1\nSTATUS=serving " + " ".join(self.engine.zones))

    def _start_metrics(self, config: Config) -> None:
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if not config.metrics.enabled:
            return
        host, port = parse_address(config.metrics.listen, "metrics.listen")
        try:
            self.metrics = MetricsServer(host, port, self, self.ready)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", config.metrics.listen, exc)
            return
        self.metrics.start()
        log.info("metrics on http://%s/metrics", config.metrics.listen)

    async def reload_loop(self) -> None:
        collected = time.monotonic()
        while not self.stopping.is_set():
            try:
                dropped = self.engine.refresh()
            except Exception:
                dropped = False
                self.counters.store_errors += 1
                log.exception("could not read the store; still serving the previous data")
            if dropped or time.monotonic() - collected > FULL_GC_INTERVAL:
                gc.collect()  # the caches were just dropped: the heap is at its smallest
                collected = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.config.reload_interval)

    async def reload(self) -> bool:
        """SIGHUP: read the configuration again and apply what changed; False on error."""
        if self.loader is None:
            return False
        async with self.reloading:
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                ok = await self._reload(self.loader())
            except configuration.ConfigError as exc:
                log.error("configuration not reloaded, still serving the previous one: %s", exc)
                ok = False
            self.counters.bump(self.counters.config_reloads, "ok" if ok else "error")
            sd_notify("READY=1")
            return ok

    async def _reload(self, new: Config) -> bool:
        old, ok = self.config, True
        changed = configuration.changes(old, new)
        if (new.store, new.zones) != self.engine_source:
            try:
                self.engine = self._engine(new)
                self.engine_source = (new.store, new.zones)
            except Exception as exc:
                log.error(
                    "store %s not reloaded, still serving the previous one: %s", new.store, exc
                )
                ok = False
        else:
            if new.edns_max_payload != old.edns_max_payload:
                self.engine.max_payload = new.edns_max_payload
                self.engine.clear_caches()
            if new.transfer != old.transfer:  # ACLs, keys, remotes: the handlers anew
                extensions.install(self.engine, new)
        self.engine.cache_size = new.cache_size
        self.config = new
        logs.setup(new.log_level, new.log)
        self._apply_limits(old, new)
        if new.metrics != old.metrics:
            self._start_metrics(new)
        for text in [t for t in self.listeners if t not in new.listen]:
            for closing in self.listeners.pop(text):
                closing.close()
            log.info("stopped listening on %s", text)
        for text in [t for t in new.listen if t not in self.listeners]:
            try:
                self.listeners[text] = await self.bind(text)
            except OSError as exc:
                log.error("cannot listen on %s: %s (retried on the next reload)", text, exc)
                ok = False
        logs.event("configuration reloaded", changed=",".join(changed) or "nothing", ok=ok)
        return ok

    async def stop(self) -> None:
        """Stop accepting, finish in-flight TCP queries (up to shutdown_timeout), close."""
        self.stopping.set()
        sd_notify("STOPPING=1")
        for udp, tcp in self.listeners.values():
            udp.close()
            tcp.close()
        for connection in list(self.tcp.open):
            connection.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while self.tcp.open and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.tcp.open):
            if connection.transport is not None:
                connection.transport.abort()
        if self.metrics is not None:
            self.metrics.stop()
        if self.querylog is not None:
            self.querylog.stop()


async def _main(
    config: Config, loader: Callable[[], Config] | None, ready: Callable[[], None] | None = None
) -> None:
    server = DnsServer(config, loader)
    await server.start()
    # The caches keep ~100,000 answers alive: a full collection walking them paused the loop
    # for ~100 ms every ~25,000 misses (the p99 of a loaded server). Everything allocated so far
    # stays out of collections; full ones run only from reload_loop.
    gc.freeze()
    gc.set_threshold(gc.get_threshold()[0], 10, 1_000_000_000)
    if ready is not None:
        ready()  # a worker tells the supervisor it serves
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)
    tasks: set[asyncio.Task[bool]] = set()

    flusher = stats.Flusher(server)  # query counts -> the stats file

    def hangup() -> None:
        task = loop.create_task(flusher.flushed(server.reload()))  # the counts so far first
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    counting = loop.create_task(flusher.run())
    await server.reload_loop()
    log.info("stopping: draining %d TCP connection(s)", len(server.tcp.open))
    await server.stop()
    await counting
    await flusher.close()  # the last counts, drained TCP connections included
    log.info("stopped")


def run(
    config: Config, loader: Callable[[], Config] | None = None, use_uvloop: bool = True
) -> None:
    """Serve until SIGTERM or SIGINT; ``loader`` re-reads the configuration on SIGHUP.

    With ``workers`` > 1, supervise that many worker processes (workers.py).
    """
    if config.workers > 1:
        StoreReader(config.store).close()  # a missing or foreign store: one clear error, now

        def serve(
            cfg: Config, reload: Callable[[], Config] | None, ready: Callable[[], None]
        ) -> None:
            _serve(cfg, reload, ready, use_uvloop)

        if Supervisor(config, loader, serve).run(sd_notify):
            raise WorkerError("a worker failed at start-up (its error is in the log above)")
        return
    _serve(config, loader, None, use_uvloop)


def _serve(
    config: Config,
    loader: Callable[[], Config] | None,
    ready: Callable[[], None] | None,
    use_uvloop: bool,
) -> None:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            uvloop = None  # type: ignore[assignment]
        if uvloop is not None:
            uvloop.run(_main(config, loader, ready))
            return
    asyncio.run(_main(config, loader, ready))
