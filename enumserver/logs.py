"""Structured logs: one event per line as text, logfmt or JSON on stderr or stdout (journald adds
timestamps, so ours are optional). Helpers write the one line per publish, UPDATE, transfer and
NOTIFY (and count it in the metrics); :class:`QueryLog` is the sampled query log that never
blocks the hot path.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from typing import Any

from enumserver import metrics
from enumserver.config import LogConfig
from enumserver.wire import parse_query

log = logging.getLogger("enumserver")


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\t'):
        return text
    return json.dumps(text)


class _Structured(logging.Formatter):
    """Base of the formatters: the record as an ordered dict of fields."""

    def __init__(self, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.timestamps:
            out["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
                f".{int(record.msecs):03d}Z"
            )
        out["level"] = record.levelname.lower()
        out["logger"] = record.name
        out["msg"] = record.getMessage()
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return out


class LogfmtFormatter(_Structured):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in self.fields(record).items())


class JsonFormatter(_Structured):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str)


class TextFormatter(_Structured):
    """``LEVEL logger: message key=value ...``, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        data = self.fields(record)
        head = f"{data.pop('level').upper()} {data.pop('logger')}: {data.pop('msg')}"
        if "ts" in data:
            head = f"{data.pop('ts')} {head}"
        exc = data.pop("exc", None)
        tail = "".join(f" {k}={_logfmt_value(v)}" for k, v in data.items())
        return head + tail + (f"\n{exc}" if exc else "")


FORMATTERS: dict[str, type[_Structured]] = {
    "text": TextFormatter,
    "logfmt": LogfmtFormatter,
    "json": JsonFormatter,
}


def setup(level: str, config: LogConfig) -> None:
    """(Re)configure the ``enumserver`` logger; called at start and on every SIGHUP."""
    handler = logging.StreamHandler(sys.stdout if config.target == "stdout" else sys.stderr)
    handler.setFormatter(FORMATTERS[config.format](config.timestamps))
    for old in list(log.handlers):
        log.removeHandler(old)
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


def event(msg: str, level: int = logging.INFO, logger: str = "enumserver", **fields: Any) -> None:
    """Log one event with key/value fields (rendered by the configured format)."""
    logging.getLogger(logger).log(level, msg, extra={"fields": fields})


def log_publish(
    who: str, command: str, serial: int, changes: int, source: str = "cli", **fields: Any
) -> None:
    """One line per change set applied in this process, and the enum_publish_total count."""
    metrics.count_publish(source)
    event(
        "publish", who=who, command=command, serial=serial, changes=changes, source=source,
        **fields,
    )  # fmt: skip


def log_update(operator: str, zone: str, accepted: bool, reason: str = "", **fields: Any) -> None:
    """One line per DNS UPDATE (who and what; the refused rule), and enum_update_total."""
    result = "accepted" if accepted else "refused"
    metrics.count_update(operator, result)
    level = logging.INFO if accepted else logging.WARNING
    event("update", level, operator=operator, zone=zone, result=result, reason=reason, **fields)


def log_transfer(peer: str, zone: str, kind: str, serial: int, result: str, **fields: Any) -> None:
    """One line per AXFR/IXFR served, and enum_transfers_total."""
    metrics.count_transfer(zone, kind, result)
    event("transfer", peer=peer, zone=zone, type=kind, serial=serial, result=result, **fields)


def log_notify(peer: str, zone: str, serial: int, result: str, **fields: Any) -> None:
    """One line per NOTIFY sent, and enum_notify_total."""
    metrics.count_notify(zone, result)
    event("notify", peer=peer, zone=zone, serial=serial, result=result, **fields)


Sample = tuple[float, str, str, bytes, bytes | None]  # time, client, proto, query, response


class QueryLog:
    """Logs one query in ``every``: the hot path appends to a bounded deque (drops when full,
    counted); a daemon thread formats and writes the lines.
    """

    def __init__(self, every: int, queue_size: int, counters: metrics.Counters) -> None:
        self.every = every
        self.countdown = every
        self.queue_size = queue_size
        self.counters = counters
        self.queue: deque[Sample] = deque()
        self.stopping = threading.Event()
        self.logger = logging.getLogger("enumserver.query")
        self.logger.setLevel(logging.INFO)  # sampled queries are logged whatever log_level says
        self.thread = threading.Thread(target=self._write, name="querylog", daemon=True)
        self.thread.start()

    def offer(self, client: str, proto: str, query: bytes, response: bytes | None) -> None:
        """Called for every query; keeps one in ``every``. Never blocks."""
        self.countdown -= 1
        if self.countdown > 0:
            return
        self.countdown = self.every
        if len(self.queue) >= self.queue_size:
            self.counters.querylog_dropped += 1
            return
        self.queue.append((time.time(), client, proto, query, response))

    def _write(self) -> None:
        while not self.stopping.is_set() or self.queue:
            try:
                sample = self.queue.popleft()
            except IndexError:
                self.stopping.wait(0.05)
                continue
            self.logger.info("query", extra={"fields": describe(sample)})
            self.counters.querylog_written += 1

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.stopping.set()
        self.thread.join(timeout=2)


def describe(sample: Sample) -> dict[str, Any]:
    """The fields of a query log line."""
    _, client, proto, data, response = sample
    query = parse_query(data)
    fields: dict[str, Any] = {"client": client, "proto": proto}
    if query is not None and query.labels:
        fields["qname"] = ".".join(query.labels) + "."
        fields["qtype"] = metrics.type_label(query.qtype)
    if response is None:
        fields["rcode"] = "-"
    else:
        rcode = response[3] & 0xF if len(response) > 3 else 0
        fields["rcode"] = metrics.rcode_label(rcode)
        fields["size"] = len(response)
        fields["tc"] = int(bool(len(response) > 2 and response[2] & 0x02))
    return fields
