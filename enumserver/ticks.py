"""Schedule ticks: a new serial, so a NOTIFY, when a schedule switches (docs/service-numbers.md).

A standard secondary has no clock: it holds what a transfer gave it. So transfers evaluate
scheduled numbers at one recorded moment of the store, the *schedule moment*, never at the
moment they are made: every serial has one content, and IXFR can give the difference between
two serials. :func:`tick` moves that moment to now, under a new serial, when the set in force
of some schedule differs between the two moments; its journal rows (``tick``: old and new
moment, ``switch``: a schedule's old and new set) are what ``enumserver.ixfr`` reads.

The check and the write are one ``BEGIN IMMEDIATE`` transaction of the store's writer, so two
tickers racing record a switch once. :func:`watch` ticks, then sleeps until the next switch of
any schedule, waking early when a publish changed the store (a new schedule may switch sooner).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from enumserver.schedule import Schedule, changed_between, first_switch
from enumserver.store import StoreReader, StoreWriter
from enumserver.store.read import Snapshot

log = logging.getLogger("enumserver")

Key = tuple[str, str]  # (scope 'number' | 'range', target digits)


@dataclass(frozen=True)
class Tick:
    """What a tick recorded: the new serial (None: nothing), the schedule moment after it,
    the schedules that switched (key -> (old set, new set)) and whether it was the first."""

    serial: int | None
    moment: float | None
    switched: dict[Key, tuple[str, str]] = field(default_factory=dict)
    first: bool = False


def keyed(snapshot: Snapshot) -> dict[Key, Schedule]:
    """Every schedule of a snapshot by (scope, target)."""
    found: dict[Key, Schedule] = {("number", d): s for d, s in snapshot.schedules.items()}
    found.update({("range", p): s for p, s in snapshot.range_schedules.items()})
    return found


def tick(writer: StoreWriter, now: float, who: str = "schedule-ticker") -> Tick:
    """Record the switches due since the schedule moment, as one change set; idempotent.

    The first tick of a store only fixes the moment (a new serial: transfers made before it
    evaluated schedules at their own moment). Nothing is written when no set differs, when
    ``now`` is not after the recorded moment, or when the store has no schedules yet.
    """
    with writer.change(who, "schedule tick") as change:
        reader = change.reader()
        last = reader.schedule_moment()
        schedules = keyed(reader.snapshot())
        if (last is not None and now <= last) or (last is None and not schedules):
            return Tick(None, last)
        switched = {} if last is None else changed_between(schedules, last, now)
        if last is not None and not switched:
            return Tick(None, last)
        change.record_switches(now, switched)
        serial = change.serial
    return Tick(serial, now, switched, last is None)


def next_wake(store: Path, now: float) -> float | None:
    """The next switch of any schedule of the store after now, or None."""
    reader = StoreReader(store)
    try:
        return first_switch(keyed(reader.snapshot()).values(), now)
    finally:
        reader.close()


def watch(
    store: Path,
    clock: Callable[[], float],
    report: Callable[[Tick, float | None], None],
    poll: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    who: str = "schedule-ticker",
) -> None:
    """Tick, sleep until the next switch (or a publish), tick again; until ``stop()``.

    ``report`` gets each tick and the next switch it will wake for. A publish is noticed by
    the store's change counter within ``poll`` seconds.
    """
    writer = StoreWriter(store)
    watcher = StoreReader(store)
    try:
        while not stop():
            try:
                done = tick(writer, clock(), who)
            except sqlite3.Error as exc:  # locked for longer than busy_timeout: try again
                log.warning("schedule tick failed, retried in %s s: %s", poll, exc)
                time.sleep(poll)
                continue
            watcher.changed()  # the state now; a publish from here on wakes us
            wake = next_wake(store, clock())
            report(done, wake)
            while not stop() and (wake is None or clock() < wake):
                left = poll if wake is None else min(poll, max(0.0, wake - clock()))
                time.sleep(left)
                if watcher.changed():
                    break
    finally:
        watcher.close()
        writer.close()
