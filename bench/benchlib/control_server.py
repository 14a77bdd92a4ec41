"""The control of the latency runs: a uvloop UDP server that does a fixed amount of pure-Python
work per query (the same loop, the same instructions, every time) and answers with a canned
SOA record. Sized to our server's peak, it shows what p99 any CPU-bound single-process server
with that peak gets on this machine, whatever its code: the part of the tail that comes from
the machine (a CPU whose speed varies under other tenants), not from ours.

Arguments: port, microseconds of work per query (calibrated here, at start-up, on this CPU).
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time

import uvloop

# name pointer to the question, SOA IN, TTL 60, rdata: "control. hostmaster.control. 1 ..."
_MNAME = b"\x07control\x00"
_RNAME = b"\x0ahostmaster\x07control\x00"
_RDATA = _MNAME + _RNAME + struct.pack("!IIIII", 1, 3600, 600, 86400, 60)
ANSWER = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, len(_RDATA)) + _RDATA


def work(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        total += i
    return total


def calibrate(micros: float) -> int:
    """Loop rounds that take ``micros`` µs here (the fastest of repeated timings)."""
    if micros <= 0:
        return 0
    rounds = 1000
    best = min(_timed(rounds) for _ in range(200))
    return max(1, round(rounds * micros / (best * 1e6)))


def _timed(rounds: int) -> float:
    started = time.perf_counter()
    work(rounds)
    return time.perf_counter() - started


class Control(asyncio.DatagramProtocol):
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        work(self.rounds)
        try:
            end = data.index(0, 12) + 5  # the question: digit labels hold no zero byte
        except ValueError:
            return
        reply = data[:2] + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00" + data[12:end] + ANSWER
        self.transport.sendto(reply, addr)  # type: ignore[union-attr]


async def serve(port: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Control(rounds), local_addr=("127.0.0.1", port))
    print(f"control on 127.0.0.1:{port}, {rounds} rounds of work a query", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), calibrate(float(sys.argv[2]))))
