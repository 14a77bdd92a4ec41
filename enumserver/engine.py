"""The query engine: bytes in, bytes out, for any transport. Caches, triage, reload by serial.

Fast path: the whole query after its ID is looked up in a response cache (bytes -> bytes);
a hit costs one dict lookup and one concatenation. Miss path: parse, then the encoded-sections
cache keyed by the lowercased question, then pure resolution. Both caches are dropped the
moment the store's zone serials change.

Answers that depend on the clock (scheduled numbers: ``Answer.expires``) or whose queries are
counted (``Answer.counted``) never enter the response cache; in the sections cache an entry
with an expiry is dropped once it is reached, and counted answers are tallied on every query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from enumserver.cache import Cache
from enumserver.metrics import NO_ZONE, Counters
from enumserver.resolve import NOERROR, SERVFAIL, Plain, View, plan, zones_by_apex
from enumserver.store import Snapshot, StoreError, StoreReader
from enumserver.store.stats import QueryTally
from enumserver.wire import (
    FORMERR,
    MIN_UDP,
    NOTIMP,
    Body,
    Query,
    encode_body,
    encode_response,
    error_response,
    naptr_template,
    parse_query,
    udp_limit,
)

log = logging.getLogger("enumserver")

IN = 1
SOA = 6
AXFR, IXFR = 252, 251
SPECIAL_QTYPES = (AXFR, IXFR)
FORMERR_QTYPES = frozenset({41, 249, 250})  # OPT, TKEY, TSIG are never questions
REFUSED = 5
TCP_LIMIT = 65535

Peer = tuple[str, int]
# A handler for what is not a plain query (UPDATE, NOTIFY, AXFR, IXFR, TSIG-signed messages):
# (message, parsed header and question, client address, over TCP) -> reply(s) or None (silence).
# Over TCP a reply may also be an iterator of messages (a transfer), sent as it is produced.
Reply = bytes | list[bytes] | Iterator[bytes] | None
Handler = Callable[[bytes, Query, Peer | None, bool], Reply]
SPECIAL_OPCODES = {4: "notify", 5: "update"}

Entry = tuple[bytes, list[int]]  # response after its ID, the [IPv4, IPv6] tally it counts in
# Encoded sections, zone, kind, expiry (epoch; None: until the serial changes), counted number
Sections = tuple[Body, str, str, float | None, tuple[str, str] | None]
FAKE_TIME = "ENUMSERVER_FAKE_TIME"


def first_message(reply: Reply) -> bytes | None:
    """The one message a datagram (or a signed re-answer) carries: several are for TCP only."""
    if reply is None or isinstance(reply, bytes):
        return reply
    if isinstance(reply, list):
        return reply[0] if reply else None
    with contextlib.closing(reply):  # type: ignore[type-var]  # (a generator: ends its reads)
        return next(reply, None)


def clock_from_env(warn: bool = True) -> Callable[[], float]:
    """time.time, or for tests only a fixed clock: $ENUMSERVER_FAKE_TIME (ISO 8601 or epoch)."""
    text = os.environ.get(FAKE_TIME)
    if not text:
        return time.time
    try:
        fixed = float(text)
    except ValueError:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"{FAKE_TIME}={text!r} needs a time zone (Z or +hh:mm)") from None
        fixed = moment.timestamp()
    if warn:
        log.warning("%s set: the clock is fixed at %s (for tests only)", FAKE_TIME, text)
    return lambda: fixed


class Engine:
    """Answers DNS messages from a store; one per worker process, single-threaded."""

    def __init__(
        self,
        store: str | Path,
        zones: Sequence[str] = (),
        max_payload: int = 1232,
        cache_size: int = 100_000,
        counters: Counters | None = None,
    ) -> None:
        self.reader = StoreReader(store)  # for handlers: every read sees the latest commit
        # Resolution reads through its own connection, held at one commit between refreshes:
        # a miss never mixes a newer ported entry with older templates, nor answers from a
        # newer state than the cached answers it is served alongside.
        self.lookups = StoreReader(self.reader.path)
        self.lookups.map_memory()  # 1-3 us less per miss on 10M numbers
        self.lookups.pin()
        self.zone_names = tuple(zones)
        self.max_payload = max_payload
        self.counters = counters if counters is not None else Counters()
        # FIFO caches in shards (enumserver/cache.py): whole responses by the message after
        # its ID, per transport, and encoded sections by the lowercased question.
        self.udp_cache: Cache[Entry] = Cache(cache_size)
        self.tcp_cache: Cache[Entry] = Cache(cache_size)
        self.bodies: Cache[Sections] = Cache(cache_size)
        # (zone, serving TY, number length) -> a templated NAPTR answer section split at the
        # digits (wire.naptr_template); per snapshot, like the caches. templating=False
        # encodes every answer from its records (the tests compare both).
        self.templates: dict[tuple[str, str, int], tuple[bytes, ...]] = {}
        self.templating = True
        self.clock = clock_from_env()
        self.tally = QueryTally()
        self.serials: dict[str, int] = {}
        self.apexes: dict[str, str] = {}
        self.handlers: dict[str, Handler] = {}
        self.view = self._view(self.lookups.snapshot())
        self.reader.changed()

    def _view(self, snapshot: Snapshot) -> View:
        names = self.zone_names or tuple(sorted(snapshot.zones))
        missing = [name for name in names if name not in snapshot.zones]
        if missing:
            raise StoreError(f"zone(s) {', '.join(missing)} not in store {self.reader.path}")
        try:
            index = zones_by_apex([snapshot.zones[name] for name in names])
        except ValueError as exc:
            raise StoreError(f"{exc}; choose the zones to serve with --zone") from exc
        self.serials = {name: snapshot.zones[name].serial for name in names}
        self.apexes = {name: snapshot.zones[name].apex for name in names}
        return View(index, snapshot, self.lookups)

    def refresh(self) -> bool:
        """Move resolution to the latest commit of any writer process (``reload_interval``);
        True when the served serials changed (the caches are then dropped)."""
        if not self.lookups.pin():
            return False
        snapshot = self.lookups.snapshot()
        names = self.zone_names or tuple(sorted(snapshot.zones))
        serials = {name: snapshot.zones[name].serial for name in names if name in snapshot.zones}
        if serials == self.serials:
            return False
        self.view = self._view(snapshot)
        self.clear_caches()
        self.counters.store_reloads += 1
        log.info("serving new data: serials %s", self.serials)
        return True

    def clear_caches(self) -> None:
        self.udp_cache.clear()
        self.tcp_cache.clear()
        self.bodies.clear()
        self.templates.clear()

    @property
    def cache_size(self) -> int:
        return self.bodies.size

    @cache_size.setter
    def cache_size(self, size: int) -> None:
        """A new size empties the caches (SIGHUP with another ``cache_size``)."""
        if size != self.bodies.size:
            for cache in (self.udp_cache, self.tcp_cache, self.bodies):
                cache.resize(size)

    @property
    def zones(self) -> list[str]:
        """Apexes served, for logs and metrics."""
        return [zone.apex for zone in self.view.zones.values()]

    def cache_entries(self) -> dict[str, int]:
        """Entries per cache (the enum_cache_entries gauge)."""
        return {
            "response_udp": len(self.udp_cache),
            "response_tcp": len(self.tcp_cache),
            "sections": len(self.bodies),
        }

    def zone_serials(self) -> dict[str, int]:
        """Serial per served apex (the enum_zone_serial gauge)."""
        return {self.apexes[name]: serial for name, serial in self.serials.items()}

    def register(self, kind: str, handler: Handler) -> None:
        """Take over 'update', 'notify', 'axfr', 'ixfr' or 'signed' (TSIG) messages."""
        self.handlers[kind] = handler

    def handle(
        self, data: bytes, tcp: bool = False, v6: bool = False, peer: Peer | None = None
    ) -> Reply:
        """The response to one DNS message, or None to stay silent.

        Fast path: one dict lookup, one list increment (the metrics tally), one concatenation.
        Only a registered handler (transfers over TCP) answers with several messages.
        """
        cache = self.tcp_cache if tcp else self.udp_cache
        key = data[2:]
        entry = cache.shards[hash(key) & cache.mask].get(key)  # Cache.get, inlined
        if entry is not None:
            entry[1][v6] += 1
            return data[:2] + entry[0]
        return self._miss(data, tcp, v6, peer)

    def _special(self, query: Query) -> str | None:
        """Which handler a message needs, if it is not a plain query."""
        if query.opcode:
            return SPECIAL_OPCODES.get(query.opcode, "notimp")
        if query.signed:
            return "signed"
        if query.qtype == AXFR:
            return "axfr"
        if query.qtype == IXFR:
            return "ixfr"
        return None

    def _miss(self, data: bytes, tcp: bool, v6: bool, peer: Peer | None = None) -> Reply:
        counters = self.counters
        counters.misses[tcp] += 1
        query = parse_query(data)
        if query is None:
            counters.silent[tcp] += 1
            return None
        if query.error:
            counters.tally(NO_ZONE, tcp, query.qtype, query.error, "error")[v6] += 1
            return error_response(query, query.error, self.max_payload)
        special = None
        if query.opcode or query.signed or query.qtype in SPECIAL_QTYPES:
            special = self._special(query)
        if special is not None:
            handler = self.handlers.get(special)
            if handler is not None:
                try:
                    return handler(data, query, peer, tcp)
                except Exception:
                    log.exception("failed to handle a %s message", special)
                    return error_response(query, SERVFAIL, self.max_payload)
            if special == "update" and query.qtype != SOA:
                return error_response(query, FORMERR, self.max_payload)  # zone must be SOA
            if special in ("notimp", "notify", "update"):
                counters.tally(NO_ZONE, tcp, query.qtype, NOTIMP, "error")[v6] += 1
                return error_response(query, NOTIMP, self.max_payload)
        try:
            found = self._body(query, tcp)
        except Exception:  # a broken record must not take the server down
            log.exception("failed to answer %s type %d", ".".join(query.labels), query.qtype)
            counters.tally(NO_ZONE, tcp, query.qtype, SERVFAIL, "error")[v6] += 1
            return error_response(query, SERVFAIL, self.max_payload)
        if isinstance(found, int):
            kind = "refused" if found == REFUSED else "error"
            counters.tally(NO_ZONE, tcp, query.qtype, found, kind)[v6] += 1
            return error_response(query, found, self.max_payload)
        body, zone, kind, expires, counted = found
        if tcp:
            limit = TCP_LIMIT
        elif query.edns:
            limit = udp_limit(query, self.max_payload)
        else:
            limit = MIN_UDP
        response = encode_response(query, body, limit, self.max_payload)
        tally = counters.tally(zone, tcp, query.qtype, body.rcode, kind)
        tally[v6] += 1
        if counted is not None:  # never in the response cache: every query is counted here
            self.tally.add(self.clock(), counted[0], counted[1], peer[0] if peer else None)
            return response
        if expires is not None:
            return response
        (self.tcp_cache if tcp else self.udp_cache).put(data[2:], (response[2:], tally))
        return response

    def _body(self, query: Query, tcp: bool) -> Sections | int:
        """Encoded sections, zone and kind for the question, or an rcode we answer instead."""
        if query.qclass != IN:
            return REFUSED
        qtype = query.qtype
        if qtype in FORMERR_QTYPES:
            return FORMERR
        if qtype in (AXFR, IXFR):
            return REFUSED if tcp or qtype == IXFR else NOTIMP
        key = query.key
        bodies = self.bodies
        found = bodies.shards[hash(key) & bodies.mask].get(key)  # Cache.get, inlined
        if found is not None:
            if found[3] is None or self.clock() < found[3]:
                self.counters.section_hits += 1
                return found
            self.bodies.pop(key)  # a scheduled answer whose TTLs would pass the next switch
        self.counters.section_misses += 1
        planned = plan(query.labels, qtype, self.view, self.clock())
        if isinstance(planned, Plain):  # the usual ported or range number
            zone = self.apexes.get(planned.zone.name, NO_ZONE)
            found = (self._templated(planned, query.labels), zone, "answer", None, None)
        else:
            answer = planned
            zone = self.apexes.get(answer.zone, NO_ZONE) if answer.zone else NO_ZONE
            body = encode_body(answer, query.labels)
            kind = answer.kind._value_  # (Enum.value is a Python-level property)
            found = (body, zone, kind, answer.expires, answer.counted)
        self.bodies.put(key, found)
        return found

    def _templated(self, plain: Plain, labels: Sequence[str]) -> Body:
        """A Plain answer's sections: its operator's template with the digits filled in."""
        if not self.templating:
            return encode_body(plain.render(), labels)
        key = (plain.zone.name, plain.holder, len(plain.digits))
        parts = self.templates.get(key)
        if parts is None:
            parts = naptr_template(plain.render, len(plain.digits), plain.insertions())
            if len(self.templates) >= 10_000:
                self.templates.clear()
            self.templates[key] = parts
        if not parts:
            return encode_body(plain.render(), labels)
        answer = plain.digits.encode().join(parts)
        return Body(True, NOERROR, (len(plain.routes), 0, 0), answer, b"", b"")
