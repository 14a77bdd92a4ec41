"""asyncio UDP and TCP listeners around an Engine; reload on serial change; clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct

from enumserver.config import Config, parse_address
from enumserver.engine import Engine

log = logging.getLogger("enumserver")


class UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one out; nothing raises out of datagram_received."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            response = self.engine.handle(data)
        except Exception:
            log.exception("unexpected error on a UDP query")
            return
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class TcpProtocol(asyncio.Protocol):
    """RFC 7766: two-byte length framing, several queries per connection, idle timeout."""

    def __init__(self, engine: Engine, idle_timeout: float, server: DnsServer) -> None:
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.idle_timeout, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm()
        while len(self.buffer) >= 2:
            (size,) = struct.unpack_from("!H", self.buffer)
            if len(self.buffer) < 2 + size:
                return
            message = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            try:
                response = self.engine.handle(message, tcp=True)
            except Exception:
                log.exception("unexpected error on a TCP query")
                response = None
            if response is None:
                self.close()  # nothing sensible to say: hang up, as for a response packet
                return
            if self.transport is not None:
                self.transport.write(struct.pack("!H", len(response)) + response)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server.connections.discard(self)


class DnsServer:
    """The listeners of one process and the task that reloads the store on a new serial."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = Engine(config.store, config.zones, config.edns_max_payload, config.cache_size)
        self.connections: set[TcpProtocol] = set()
        self.transports: list[asyncio.BaseTransport] = []
        self.servers: list[asyncio.Server] = []
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for text in self.config.listen:
            host, port = parse_address(text)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpProtocol(self.engine), local_addr=(host, port), family=family
            )
            self.transports.append(transport)
            server = await loop.create_server(
                lambda: TcpProtocol(self.engine, self.config.tcp_idle_timeout, self),
                host=host,
                port=port,
                family=family,
                reuse_address=True,
                backlog=self.config.tcp_backlog,
            )
            self.servers.append(server)
            log.info("listening on %s (udp, tcp)", text)
        log.info("serving zones %s", ", ".join(self.engine.zones))

    async def reload_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.engine.refresh()
            except Exception:
                log.exception("could not read the store; still serving the previous data")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.config.reload_interval)

    async def stop(self) -> None:
        self.stopping.set()
        for server in self.servers:
            server.close()
        for transport in self.transports:
            transport.close()
        for connection in list(self.connections):
            connection.close()
        for server in self.servers:
            await server.wait_closed()


async def _main(config: Config) -> None:
    server = DnsServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)
    await server.reload_loop()
    await server.stop()
    log.info("stopped")


def run(config: Config, use_uvloop: bool = True) -> None:
    """Serve until SIGTERM or SIGINT."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            uvloop = None  # type: ignore[assignment]
        if uvloop is not None:
            uvloop.run(_main(config))
            return
    asyncio.run(_main(config))
