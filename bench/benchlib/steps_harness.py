"""Run under callgrind by bench/steps: the miss path of Engine.handle, phase by phase.

``os.getppid()`` cuts the phases (callgrind --dump-before=os_getppid), so each dump holds the
instructions of one phase. Argument: the enumserver checkout to import, the data directory,
the number of calls per phase and ``whole`` (Engine.handle only: works on every commit) or
``steps`` (each step of the miss path: needs the current APIs). Prints the phase names.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Any

REPO, DATA, COUNT, MODE = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, REPO)

from enumserver.engine import Engine  # noqa: E402


def packet(name: str) -> bytes:
    out = struct.pack("!HHHHHH", 0x1234, 0, 1, 0, 0, 0)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00" + struct.pack("!HH", 35, 1)


WARM = 2000
with open(os.path.join(DATA, "queries-q1000000-random.txt")) as handle:
    names = [line.split()[0] for line, _ in zip(handle, range(WARM + 3 * COUNT), strict=False)]
packets = [packet(name) for name in names]
engine = Engine(os.path.join(DATA, "store.sqlite"))
for data in packets[:WARM]:  # the same warm-up in every run: imports, statement cache, pages
    engine.handle(data)
engine.clear_caches()


def whole() -> list[tuple[str, Any]]:
    todo = packets[WARM : WARM + COUNT]

    def run() -> None:
        for data in todo:
            engine.handle(data)

    return [("Engine.handle, cache miss", run)]


def steps() -> list[tuple[str, Any]]:
    from enumserver import resolve, wire
    from enumserver.numbers import is_service

    sel = range(WARM, WARM + COUNT)
    queries = [wire.parse_query(data) for data in packets]
    digits = ["358" + "".join(reversed(q.labels[:9])) for q in queries if q is not None]
    lookups = engine.lookups
    found = {d: lookups.recipient_of(d) for d in digits[WARM : WARM + COUNT]}

    class Stored:  # resolution's lookups answered from a dict: resolution without SQL
        def recipient_of(self, d: str) -> str | None:
            return found.get(d)

        def number_routes(self, d: str) -> list[Any]:
            return []

        def ported_below(self, prefix: str) -> bool:
            return False

    view = resolve.View(engine.view.zones, engine.view.snapshot, Stored())
    asked = [q for q in queries[WARM : WARM + COUNT] if q is not None]
    answers = [resolve.resolve(q.labels, 35, view, 1.7e9) for q in asked]
    pairs = list(zip(asked, answers, strict=True))
    bodies = [(q, wire.encode_body(a, q.labels)) for q, a in pairs]
    counters = engine.counters
    fresh = packets[WARM + COUNT : WARM + 2 * COUNT]
    more = digits[WARM + 2 * COUNT :]
    return [
        ("wire.parse_query", lambda: [wire.parse_query(packets[i]) for i in sel]),
        ("StoreReader.recipient_of (SQL)", lambda: [lookups.recipient_of(d) for d in more]),
        ("resolve.plan, without SQL (what a miss runs)", lambda: [
            resolve.plan(q.labels, 35, view, 1.7e9) for q in asked]),
        ("resolve.resolve, without SQL (plan, then records)", lambda: [
            resolve.resolve(q.labels, 35, view, 1.7e9) for q in asked]),
        ("of which numbers.is_service", lambda: [is_service(d) for d in more]),
        ("wire.encode_body (records; a miss fills a template instead)", lambda: [
            wire.encode_body(a, q.labels) for q, a in pairs]),
        ("wire.encode_response", lambda: [
            wire.encode_response(q, b, 512, 1232) for q, b in bodies]),
        ("Counters.tally", lambda: [counters.tally("fi", False, 35, 0, "answer") for _ in sel]),
        ("Engine.handle, cache miss (all of it)", lambda: [engine.handle(d) for d in fresh]),
        ("Engine.handle, cache hit", lambda: [
            engine.handle(fresh[i % 1000]) for i in range(COUNT)]),
    ]  # fmt: skip


phases = whole() if MODE == "whole" else steps()
print("PHASES", "|".join(name for name, _ in phases), flush=True)
for _, run in phases:
    os.getppid()
    run()
os.getppid()
