"""``workers = N``: N server processes on the same addresses, one event loop and one core each.

Every worker binds the listen addresses with SO_REUSEPORT and has its own engine, caches and store
connections; it picks up a published change on its own every ``reload_interval``, so all
workers answer a change within that interval, and none serves a cached answer of a serial it
has replaced. Worker ``i`` serves metrics on the metrics port + ``i``.

The kernel spreads TCP connections over the workers by address hash, and UDP datagrams one by
one at random (a classic BPF program on the UDP group, ``spread_datagrams``): by hash, all the
queries of a SIP proxy that resolves through one socket would go to one worker and leave the
others idle. A question needs no state of an earlier one, so any worker may answer it.

The supervisor (the process started) binds nothing and holds no store connection: it forks the
workers, tells systemd READY once every worker serves, forwards SIGHUP, SIGTERM and SIGINT,
starts a worker again when one dies, and exits when all have stopped (1 if one failed at
start-up).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from types import FrameType

from enumserver.config import Config, parse_address

log = logging.getLogger("enumserver")

Serve = Callable[[Config, Callable[[], Config] | None, Callable[[], None]], None]
RESTART_DELAY = 1.0  # seconds before a worker that died is started again

SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)  # Linux 4.5
_LD_RANDOM = (0x20, 0, 0, 0xFFFFF000 + 56)  # BPF_LD|BPF_W|BPF_ABS, SKF_AD_OFF + SKF_AD_RANDOM
_MOD_K = 0x94  # BPF_ALU|BPF_MOD|BPF_K
_RET_A = (0x16, 0, 0, 0)  # BPF_RET|BPF_A


def spread_datagrams(sock: socket.socket, workers: int) -> bool:
    """Have the kernel give each datagram to a random socket of ``sock``'s SO_REUSEPORT group
    (one per worker) rather than one chosen by the source address hash. The program returns
    ``random % workers``; while a worker is being restarted and the group is smaller, an index
    past its end makes the kernel fall back to the hash. False where the kernel refuses it
    (then the hash it is: still correct, less even).
    """
    program = b"".join(
        struct.pack("HBBI", *op) for op in (_LD_RANDOM, (_MOD_K, 0, 0, workers), _RET_A)
    )
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        log.warning("UDP queries spread over the workers by address hash (%s)", exc)
        return False
    return True


def worker_config(config: Config, index: int) -> Config:
    """A worker's configuration: its own metrics port (the configured one + index); only the
    first worker sends NOTIFY (every worker sees each new serial: one NOTIFY is enough)."""
    if not index:
        return config
    host, port = parse_address(config.metrics.listen, "metrics.listen")
    listen = f"[{host}]:{port + index}" if ":" in host else f"{host}:{port + index}"
    zones = tuple(replace(zone, notify=()) for zone in config.transfer.zones)
    return replace(
        config,
        metrics=replace(config.metrics, listen=listen),
        transfer=replace(config.transfer, zones=zones),
    )


class Supervisor:
    """Forks and watches the workers; see the module docstring."""

    def __init__(self, config: Config, loader: Callable[[], Config] | None, serve: Serve) -> None:
        self.config = config
        self.loader = loader
        self.serve = serve
        self.children: dict[int, int] = {}  # pid -> worker index
        self.ready_read, self.ready_write = os.pipe()
        self.stopping = False
        self.failed = False
        self.ready: set[int] = set()  # indexes of the workers that served at least once
        self.announced = False  # every worker served: READY told

    def _worker(self, index: int) -> None:
        """In the forked child: serve until stopped, then leave without running parent code."""
        status = 1
        try:
            os.close(self.ready_read)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            os.environ.pop("NOTIFY_SOCKET", None)  # the supervisor speaks to systemd
            loader = self.loader

            def reload() -> Config:
                assert loader is not None
                return worker_config(loader(), index)

            def ready() -> None:
                os.write(self.ready_write, bytes((index,)))

            self.serve(worker_config(self.config, index), reload if loader else None, ready)
            status = 0
        except Exception as exc:  # the message reaches the log; the supervisor reports the exit
            log.error("worker %d: %s", index, exc)
        finally:
            os._exit(status)

    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            self._worker(index)
        self.children[pid] = index

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            signum = signal.SIGTERM
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def run(self, notify: Callable[[str], None]) -> int:
        """Start the workers and watch them until all have stopped; the exit status."""
        count = self.config.workers
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        for index in range(count):
            self.spawn(index)
        while self.children:
            readable, _, _ = select.select([self.ready_read], [], [], 0.2)
            if readable:  # a worker serves (again)
                self.ready.update(os.read(self.ready_read, 256))
                if len(self.ready) == count and not self.announced and not self.failed:
                    self.announced = True
                    log.info("%d workers serving", count)
                    notify(f"READY=1\nSTATUS=serving with {count} workers")
            self._reap()
        notify("STOPPING=1")
        return 1 if self.failed else 0

    def _reap(self) -> None:
        """Collect exited workers; start one again unless stopping or failing at start-up."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index = self.children.pop(pid, None)
            if index is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if not self.announced and index not in self.ready:
                log.error("worker %d failed at start-up (exit %d): stopping", index, code)
                self.failed = True
                self._signal(signal.SIGTERM, None)
                continue
            log.error("worker %d exited (%d): starting it again", index, code)
            time.sleep(RESTART_DELAY)
            if not self.stopping:
                self.spawn(index)


class WorkerError(Exception):
    """A worker could not start (its own error was logged by the worker)."""
