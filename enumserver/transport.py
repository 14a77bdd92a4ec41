"""The UDP and TCP protocols of the listeners: one datagram in, one out; RFC 7766 framing.

Both hand messages to the server's Engine. Over TCP an answer of several messages (a zone
transfer) is an iterator that is sent a slice at a time (see ``TcpProtocol.pump``): the event
loop answers other clients between slices, and a client that stops reading stops the
transfer being built (flow control), so a transfer of any size never holds up the queries.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from enumserver.engine import first_message
from enumserver.rrl import SLIP
from enumserver.wire import truncated_response

if TYPE_CHECKING:
    from enumserver.server import DnsServer

log = logging.getLogger("enumserver")
STREAM_SLICE = 0.001  # seconds of a transfer sent before the event loop answers others
_U16 = struct.Struct("!H")


class UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one out; nothing raises out of datagram_received."""

    def __init__(self, server: DnsServer, v6: bool) -> None:
        self.server = server
        self.v6 = v6
        self.transport: asyncio.DatagramTransport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.server.config.send_buffer_limit)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.paused = True  # the send buffer is full: answers are dropped (and counted)

    def resume_writing(self) -> None:
        self.paused = False

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        server = self.server
        if server.plain:  # no rate limiting, latency histogram or query log: the short path
            try:
                response = server.engine.handle(data, False, self.v6, addr)  # type: ignore[arg-type]
            except Exception:
                log.exception("unexpected error on a UDP query")
                return
            if response.__class__ is bytes and not self.paused:
                self.transport.sendto(response, addr)  # type: ignore[union-attr]
            else:  # silence, a full send buffer, or several messages (for TCP only)
                self._send(first_message(response), addr)
            return
        latency = server.latency
        started = time.perf_counter_ns() if latency is not None else 0
        rrl = server.rrl
        if rrl is not None:
            verdict = rrl.check(addr[0])  # type: ignore[arg-type]
            if verdict:
                if verdict == SLIP:
                    self._send(truncated_response(data, server.engine.max_payload), addr)
                return
        try:
            response = server.engine.handle(data, False, self.v6, addr)  # type: ignore[arg-type]
        except Exception:
            log.exception("unexpected error on a UDP query")
            return
        response = first_message(response)  # several messages are for TCP only (transfers)
        self._send(response, addr)
        if latency is not None:
            latency[0].observe(time.perf_counter_ns() - started)
        if server.querylog is not None:
            server.querylog.offer(str(addr[0]), "udp", data, response)

    def _send(self, response: bytes | None, addr: tuple[str | int, ...]) -> None:
        if response is None or self.transport is None:
            return
        if self.paused:
            self.server.counters.send_overload += 1
            return
        self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class TcpProtocol(asyncio.Protocol):
    """RFC 7766: length framing, pipelining; idle and total timeouts; flow control; drain."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.client = ""
        self.peer: tuple[str, int] | None = None
        self.v6 = False
        self.queries = 0
        self.writing_paused = False
        self.draining = False
        self.stream: Iterator[bytes] | None = None  # a transfer being sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""
        self.peer = (self.client, int(peer[1])) if peer else None
        self.v6 = ":" in self.client
        cfg = self.server.config
        reason = "stopping" if self.server.stopping.is_set() else None
        reason = reason or self.server.tcp.admit(
            self, self.client, cfg.tcp_max_clients, cfg.tcp_max_clients_per_ip
        )
        if reason is not None:
            self.server.counters.bump(self.server.counters.tcp_refused, reason)
            transport.close()
            return
        loop = asyncio.get_running_loop()
        limit = self.server.config.tcp_max_duration
        self.timers = [loop.call_later(limit, self._expire, "duration"), self.timers_idle()]

    def timers_idle(self) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(self.server.config.tcp_idle_timeout, self._expire, "idle")

    def _expire(self, reason: str) -> None:
        self.server.counters.bump(self.server.counters.tcp_closed, reason)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def drain(self) -> None:
        """Shutdown: close now when idle, else once the query being received is answered."""
        self.draining = True
        if not self.buffer:
            self.close()

    def pause_writing(self) -> None:
        self.writing_paused = True  # the client does not read: stop reading its queries
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if self.stream is not None:
                self.pump()
            else:
                self._process()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.timers) == 2:
            self.timers[1].cancel()
            self.timers[1] = self.timers_idle()
        self._process()

    def _process(self) -> None:
        server = self.server
        while len(self.buffer) >= 2 and not self.writing_paused:
            (size,) = struct.unpack_from("!H", self.buffer)
            if len(self.buffer) < 2 + size:
                return
            started = time.perf_counter_ns()
            message = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            try:
                response = server.engine.handle(message, True, self.v6, self.peer)
            except Exception:
                log.exception("unexpected error on a TCP query")
                response = None
            if not response or self.transport is None:
                self.close()  # nothing sensible to say: hang up, as for a response packet
                return
            if isinstance(response, bytes):
                self.transport.write(_U16.pack(len(response)) + response)
            elif isinstance(response, list):
                self.transport.write(b"".join(_U16.pack(len(m)) + m for m in response))
                response = response[-1]
            else:  # an iterator: sent by pump, slice by slice; the next query waits for it
                self.stream = response
                response = b""
            if server.latency is not None:
                server.latency[1].observe(time.perf_counter_ns() - started)
            if server.querylog is not None:
                server.querylog.offer(self.client, "tcp", message, response)
            self.queries += 1
            if self.queries == server.config.tcp_max_queries and self.stream is None:
                self._expire("queries")
                return
            if self.stream is not None:
                self._duration_aside()
                self.pump()
                return
        if self.draining and not self.buffer:
            self.close()

    def _duration_aside(self) -> None:
        """A transfer may take longer than ``tcp_max_duration``: while it is sent only the
        idle timeout applies, re-armed at every slice (a client that stops reading for that
        long is dropped)."""
        if len(self.timers) == 2:
            self.timers[0].cancel()

    def pump(self) -> None:
        """Send messages of the current stream for up to STREAM_SLICE seconds, then let the
        event loop answer others and come back; stop while the client is not reading
        (resume_writing calls back). At the end, go on with the queries that wait."""
        stream, transport = self.stream, self.transport
        if stream is None or transport is None or transport.is_closing():
            return
        deadline = time.perf_counter() + STREAM_SLICE
        try:
            while not self.writing_paused:
                message = next(stream, None)
                if message is None:
                    self.stream = None
                    break
                if message:
                    transport.write(_U16.pack(len(message)) + message)
                if time.perf_counter() > deadline:
                    asyncio.get_running_loop().call_soon(self.pump)
                    break
        except Exception:
            log.exception("failed while sending a transfer; closing the connection")
            self.close()
            return
        if len(self.timers) == 2:
            self.timers[1].cancel()
            self.timers[1] = self.timers_idle()
        if self.stream is None:
            if self.queries == self.server.config.tcp_max_queries:
                self._expire("queries")  # (the transfer was the last query allowed)
            else:
                self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self.timers:
            timer.cancel()
        if self.stream is not None:
            close = getattr(self.stream, "close", None)
            self.stream = None
            if close is not None:
                close()  # a transfer's generator ends its read transaction
        self.server.tcp.release(self, self.client)
