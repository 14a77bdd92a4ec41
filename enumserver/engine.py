"""The query engine: bytes in, bytes out, for any transport. Caches, triage, reload by serial.

Fast path: the whole query after its ID is looked up in a response cache (bytes -> bytes);
a hit costs one dict lookup and one concatenation. Miss path: parse, then the encoded-sections
cache keyed by the lowercased question, then pure resolution. Both caches are dropped the
moment the store's zone serials change.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from enumserver.resolve import SERVFAIL, View, resolve, zones_by_apex
from enumserver.store import Snapshot, StoreError, StoreReader
from enumserver.wire import (
    FORMERR,
    NOTIMP,
    Body,
    Query,
    encode_body,
    encode_response,
    error_response,
    parse_query,
    udp_limit,
)

log = logging.getLogger("enumserver")

IN = 1
AXFR, IXFR = 252, 251
FORMERR_QTYPES = frozenset({41, 249, 250})  # OPT, TKEY, TSIG are never questions
REFUSED = 5
TCP_LIMIT = 65535


class Engine:
    """Answers DNS messages from a store; one per worker process, single-threaded."""

    def __init__(
        self,
        store: str | Path,
        zones: Sequence[str] = (),
        max_payload: int = 1232,
        cache_size: int = 200_000,
    ) -> None:
        self.reader = StoreReader(store)
        self.zone_names = tuple(zones)
        self.max_payload = max_payload
        self.cache_size = cache_size
        self.udp_cache: dict[bytes, bytes] = {}
        self.tcp_cache: dict[bytes, bytes] = {}
        self.bodies: dict[bytes, Body] = {}
        self.stats: Counter[str] = Counter()
        self.serials: dict[str, int] = {}
        self.view = self._view(self.reader.snapshot())
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
        return View(index, snapshot, self.reader)

    def refresh(self) -> bool:
        """Pick up a new store serial (any writer process); True when the served data changed."""
        if not self.reader.changed():
            return False
        snapshot = self.reader.snapshot()
        names = self.zone_names or tuple(sorted(snapshot.zones))
        serials = {name: snapshot.zones[name].serial for name in names if name in snapshot.zones}
        if serials == self.serials:
            return False
        self.view = self._view(snapshot)
        self.udp_cache.clear()
        self.tcp_cache.clear()
        self.bodies.clear()
        log.info("serving new data: serials %s", self.serials)
        return True

    @property
    def zones(self) -> list[str]:
        """Apexes served, for logs and metrics."""
        return [zone.apex for zone in self.view.zones.values()]

    def handle(self, data: bytes, tcp: bool = False) -> bytes | None:
        """The response to one DNS message, or None to stay silent."""
        cache = self.tcp_cache if tcp else self.udp_cache
        cached = cache.get(data[2:])
        if cached is not None:
            self.stats["cache_hits"] += 1
            return data[:2] + cached
        query = parse_query(data)
        if query is None:
            self.stats["dropped"] += 1
            return None
        if query.error:
            self.stats["malformed" if query.error == FORMERR else "errors"] += 1
            return error_response(query, query.error, self.max_payload)
        try:
            body = self._body(query, tcp)
        except Exception:  # a broken record must not take the server down
            log.exception("failed to answer %s type %d", ".".join(query.labels), query.qtype)
            self.stats["servfail"] += 1
            return error_response(query, SERVFAIL, self.max_payload)
        if isinstance(body, int):
            return error_response(query, body, self.max_payload)
        limit = TCP_LIMIT if tcp else udp_limit(query, self.max_payload)
        response = encode_response(query, body, limit, self.max_payload)
        if len(cache) >= self.cache_size:
            del cache[next(iter(cache))]
        cache[data[2:]] = response[2:]
        return response

    def _body(self, query: Query, tcp: bool) -> Body | int:
        """Encoded sections for the question, or an rcode for questions we do not answer."""
        if query.qclass != IN:
            return REFUSED
        qtype = query.qtype
        if qtype in FORMERR_QTYPES:
            return FORMERR
        if qtype in (AXFR, IXFR):
            return REFUSED if tcp or qtype == IXFR else NOTIMP
        key = query.key
        body = self.bodies.get(key)
        if body is None:
            self.stats["cache_misses"] += 1
            body = encode_body(resolve(query.labels, qtype, self.view), query.offsets)
            if len(self.bodies) >= self.cache_size:
                del self.bodies[next(iter(self.bodies))]
            self.bodies[key] = body
        return body
