"""NOTIFY (RFC 1996): tell a zone's secondaries about a new serial; answer NOTIFY sent to us.

The server notices a new serial when its engine reloads the store (within ``reload_interval``
of a publish by any process). The :class:`Notifier` then sends every remote of the zone's
``[[zone]] notify`` list a NOTIFY with the new SOA (signed with the remote's key, if any), and
sends it again after ``notify_timeout``, doubling, up to ``notify_retries`` times, until the
secondary answers. A newer serial replaces a NOTIFY still being retried. It also notifies
every zone once at start, so a secondary learns of changes made while the server was down.

A NOTIFY sent to us is acknowledged (NOERROR) when the zone's ``notify`` ACL allows the sender,
else REFUSED; we are the primary, so there is nothing to fetch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
import weakref
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from enumserver import logs
from enumserver.config import RemoteConfig, TransferConfig, parse_address
from enumserver.engine import Engine, Peer
from enumserver.model import Zone
from enumserver.wire import Query
from enumserver.xfr import Transfers, refusal

log = logging.getLogger("enumserver")


def notify_message(zone: Zone, key: Any = None) -> dns.message.Message:
    """A NOTIFY for a zone with its SOA in the answer section (RFC 1996 3.7)."""
    message = dns.message.make_query(zone.apex, dns.rdatatype.SOA)
    message.flags = dns.flags.AA  # (the flags word holds the opcode: set it after)
    message.set_opcode(dns.opcode.NOTIFY)
    soa = (
        f"{zone.mname} {zone.rname} {zone.serial} {zone.refresh} {zone.retry} {zone.expire} "
        f"{zone.minimum}"
    )
    message.answer.append(dns.rrset.from_text(zone.apex, zone.soa_ttl, "IN", "SOA", soa))
    if key is not None:
        message.use_tsig(key)
    return message


class Notifier:
    """Sends NOTIFY for the zones an engine serves whenever their serial changes."""

    def __init__(self, engine: Engine, config: TransferConfig, keys: dict[dns.name.Name, Any]):
        self.engine = weakref.ref(engine)
        self.config = config
        self.keys = {name.to_text(omit_final_dot=True): key for name, key in keys.items()}
        self.remotes = {remote.id: remote for remote in config.remotes}
        self.sent: dict[str, int] = {}
        self.pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self, interval: float) -> None:
        """Watch the engine from the running event loop (nothing without one)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.task = loop.create_task(self.watch(interval))

    def stop(self) -> None:
        for task in [self.task, *self.pending.values()]:
            if task is not None:
                task.cancel()

    async def watch(self, interval: float) -> None:
        while True:
            engine = self.engine()
            if engine is None:
                return  # the engine was replaced (store or zones reloaded)
            zones = {zone.name: zone for zone in engine.view.zones.values()}
            del engine
            for name, zone in zones.items():
                if self.sent.get(name) != zone.serial:
                    self.sent[name] = zone.serial
                    self.notify(zone)
            await asyncio.sleep(interval)

    def notify(self, zone: Zone) -> None:
        """NOTIFY every remote of the zone (replacing retries of an older serial)."""
        entry = self.config.zone(zone.name)
        for remote_id in entry.notify if entry is not None else ():
            remote = self.remotes[remote_id]
            for address in remote.address:
                key = (zone.name, address)
                if key in self.pending:
                    self.pending[key].cancel()
                task = asyncio.get_running_loop().create_task(self.send(zone, remote, address))
                self.pending[key] = task
                task.add_done_callback(functools.partial(self._done, key))

    def _done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self.pending.get(key) is task:
            del self.pending[key]

    async def send(self, zone: Zone, remote: RemoteConfig, address: str) -> None:
        """Send one NOTIFY until answered: the same message from the same socket each time,
        so that a late answer to an earlier try still counts (RFC 1996 3.6)."""
        host, port = parse_address(address)
        message = notify_message(zone, self.keys.get(remote.key) if remote.key else None)
        wire = message.to_wire()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        backend = dns.asyncbackend.get_backend("asyncio")
        timeout = self.config.notify_timeout
        async with await backend.make_socket(family, socket.SOCK_DGRAM) as sock:  # type: ignore[no-untyped-call]
            for attempt in range(1, self.config.notify_retries + 2):
                try:
                    await dns.asyncquery.send_udp(sock, wire, (host, port))
                    answer = await dns.asyncquery.receive_udp(
                        sock, (host, port), time.time() + timeout, ignore_unexpected=True,
                        keyring=message.keyring, request_mac=message.mac, query=message,
                    )  # fmt: skip
                except (dns.exception.Timeout, OSError) as exc:
                    log.debug("NOTIFY %s to %s, try %d: %s", zone.apex, address, attempt, exc)
                    timeout *= 2
                    continue
                except dns.exception.DNSException as exc:  # a bad TSIG, a broken answer
                    logs.log_notify(address, zone.apex, zone.serial, "failed", error=str(exc))
                    return
                rcode = answer[0].rcode()
                if rcode == dns.rcode.SERVFAIL:  # not ready (a secondary still loading)
                    await asyncio.sleep(timeout)
                    timeout *= 2
                    continue
                logs.log_notify(
                    address, zone.apex, zone.serial, "ok" if rcode == dns.rcode.NOERROR else
                    "refused", remote=remote.id, rcode=dns.rcode.to_text(rcode), attempts=attempt,
                )  # fmt: skip
                return
        logs.log_notify(address, zone.apex, zone.serial, "timeout", remote=remote.id)


class NotifyHandler:
    """The engine's ``notify`` handler: acknowledge per the ``notify`` ACL, else refuse."""

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.engine = transfers.engine

    def __call__(self, data: bytes, query: Query, peer: Peer | None, tcp: bool) -> Any:
        verified = self.transfers.verify(data, query)
        if isinstance(verified, bytes):
            return verified
        request, signer = verified
        zone = self.engine.view.zones.get(tuple(query.labels))
        client = peer[0] if peer else "-"
        if zone is None or query.qclass != dns.rdataclass.IN:
            log.info("NOTIFY from %s for %s: not a zone served here", client, query.labels)
            return refusal(request, dns.rcode.NOTAUTH, self.engine.max_payload)
        if not self.transfers.access.allows("notify", zone, peer, signer):
            log.info("NOTIFY from %s for %s refused by the ACL", client, zone.apex)
            return refusal(request, dns.rcode.REFUSED, self.engine.max_payload)
        log.info("NOTIFY from %s for %s: we are its primary, nothing to fetch", client, zone.apex)
        response = dns.message.make_response(request, our_payload=self.engine.max_payload)
        response.flags |= dns.flags.AA
        return response.to_wire()


_notifier: Notifier | None = None


def install(engine: Engine, config: TransferConfig, transfers: Transfers, interval: float) -> None:
    """Answer NOTIFY on the engine and send NOTIFY for its zones (one notifier per process)."""
    global _notifier
    engine.register("notify", NotifyHandler(transfers))
    if _notifier is not None:
        _notifier.stop()
    _notifier = Notifier(engine, config, transfers.access.keys)
    _notifier.start(interval)
