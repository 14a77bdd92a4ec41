"""Licences of publishing systems: issue, revoke, rotate; TSIG key files for nsupdate and BIND.

A licence belongs to one TY (a PO publishes with its host TY's licences), is ``production`` or
``test``, and is one HMAC-SHA256 TSIG key made from 32 bytes of :mod:`secrets`. Joining gives a
TY two production licences and one test licence (``issue --joining``); more production licences
are additional publishing systems (billed), and a TY has at most one live test licence.

Every licence change is an operation of a change set (zonetools.changes.execute): validated,
applied in one transaction, audited and journaled like any other change, the journal never
holding a secret. The secret leaves the store exactly once, in the key file ``issue`` and
``rotate`` write (``tsig-keygen`` format, mode 0600). Servers read the licence on every signed
message, so a revocation, an expiry or a rotation refuses the old key at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enumserver.auth import ALGORITHM, licence_status, now_text
from enumserver.store import Catalog, Change, StoreWriter
from zonetools import rules
from zonetools.changes import ChangeSet, Op, Plan, execute
from zonetools.ops import OpError, Recorder, operation

KINDS = ("production", "test")
JOINING = ("production", "production", "test")
PUBLIC = ("id", "ty", "kind", "issued", "expires", "revoked", "generation", "key_name")


class LicenceError(ValueError):
    """A licence command that cannot run (the message says why)."""


@dataclass(frozen=True)
class KeyFile:
    """A key file written for a licence: which licence, which key, where."""

    licence: str
    ty: str
    kind: str
    key_name: str
    path: Path


def new_secret() -> str:
    """A fresh HMAC-SHA256 secret: 32 random bytes, base64 (what tsig-keygen makes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def key_name(licence_id: str, generation: int) -> str:
    """The TSIG key name of a licence's key: ``ty07-p1-k1`` (the generation counts rotations)."""
    return f"{licence_id.lower()}-k{generation}"


def key_file_text(name: str, secret: str, algorithm: str = ALGORITHM) -> str:
    """A key in the format tsig-keygen writes: nsupdate -k, named.conf include, dnspython."""
    return f'key "{name}" {{\n\talgorithm {algorithm};\n\tsecret "{secret}";\n}};\n'


def expiry(value: Any) -> str | None:
    """An expiry (YYYY-MM-DD: that day's start, or an ISO 8601 time) as a UTC store time."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            moment = dt.datetime.fromisoformat(text + "T00:00:00+00:00")
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise OpError(f"expiry {text!r} is not YYYY-MM-DD or ISO 8601") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    stamp = moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if stamp <= now_text():
        raise OpError(f"expiry {text} is not in the future")
    return stamp


def public(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A licence row without its secret, with its status."""
    if row is None:
        return None
    return {**{k: row.get(k) for k in PUBLIC}, "status": licence_status(row)}


def _licence(change: Change, licence_id: str) -> dict[str, Any]:
    row = change.get("licences", id=licence_id)
    if row is None:
        raise OpError(f"no licence {licence_id} (see 'zonetools licence list')")
    return row


@operation("issue", "licence")
def issue_licence(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    """A new licence with the id, kind and secret the fields give."""
    ty, licence_id, kind = rules.ty_id(fields["ty"]), str(fields["id"]), fields["kind"]
    operator = change.get("operators", ty=ty)
    if operator is None:
        raise OpError(f"unknown operator {ty} (add it with 'zonetools operator add')")
    if operator["kind"] != "TY":
        raise OpError(f"{ty} is a PO: it publishes with its host {operator['host_ty']}'s licences")
    if kind not in KINDS:
        raise OpError(f"kind {kind!r} must be production or test")
    if change.get("licences", id=licence_id) is not None:
        raise OpError(f"licence {licence_id} exists already")
    live = [row for row in change.licences_of(ty) if licence_status(row) == "active"]
    if kind == "test" and any(row["kind"] == "test" for row in live):
        raise OpError(f"{ty} has a live test licence; rotate its key instead")
    record = {
        "id": licence_id,
        "ty": ty,
        "kind": kind,
        "issued": now_text(),
        "expires": expiry(fields.get("expires")),
        "revoked": None,
        "generation": 1,
        "key_name": key_name(licence_id, 1),
        "algorithm": ALGORITHM,
        "secret": fields["secret"],
    }
    change.put_licence(record)
    rec.record("licence", licence_id, None, public(record))


@operation("revoke", "licence")
def revoke_licence(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    """Revoke a licence: its key is refused from the commit on."""
    old = _licence(change, str(fields["id"]))
    if old["revoked"]:
        raise OpError(f"licence {old['id']} was revoked at {old['revoked']}")
    new = {**old, "revoked": now_text()}
    change.put_licence(new)
    rec.record("licence", old["id"], public(old), public(new))


@operation("rotate", "licence")
def rotate_licence(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    """A new key (name and secret) for a live licence; the old key is refused from the commit on."""
    old = _licence(change, str(fields["id"]))
    status = licence_status(old)
    if status != "active":
        raise OpError(f"licence {old['id']} is {status}: issue a new licence instead")
    generation = int(old["generation"]) + 1
    new = {
        **old,
        "generation": generation,
        "key_name": key_name(old["id"], generation),
        "secret": fields["secret"],
    }
    change.put_licence(new)
    rec.record("licence", old["id"], public(old), public(new))


def next_ids(catalog: Catalog, ty: str, kinds: tuple[str, ...]) -> list[str]:
    """Ids for new licences of a TY: ``TY07-P3``, ``TY07-T1`` (numbers never reused)."""
    taken = {row["id"] for row in catalog.licences(ty)}
    out: list[str] = []
    for kind in kinds:
        number = 1
        while f"{ty}-{kind[0].upper()}{number}" in taken | set(out):
            number += 1
        out.append(f"{ty}-{kind[0].upper()}{number}")
    return out


def _write_key(path: Path, name: str, secret: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key_file_text(name, secret))


def _free_paths(out_dir: Path, names: list[str]) -> list[Path]:
    if not out_dir.is_dir():
        raise LicenceError(f"{out_dir} is not a directory")
    paths = [out_dir / f"{name}.key" for name in names]
    taken = [str(path) for path in paths if path.exists()]
    if taken:
        raise LicenceError(f"key file(s) exist already: {', '.join(taken)}")
    return paths


def issue(
    writer: StoreWriter,
    ty: str,
    kinds: tuple[str, ...],
    out_dir: Path,
    *,
    who: str,
    expires: str | None = None,
    message: str | None = None,
    joining: bool = False,
) -> tuple[Plan, list[KeyFile]]:
    """Issue licences of a TY in one change set and write one key file each.

    :raises LicenceError: a key file is in the way, or the TY has licences and ``joining``.
    :raises ChangeError: the change set was refused (nothing written, no key file).
    """
    catalog = Catalog(writer.path)
    try:
        if joining and catalog.licences(ty):
            raise LicenceError(f"{ty} has licences already: issue one at a time")
        ids = next_ids(catalog, ty, kinds)
    finally:
        catalog.close()
    paths = _free_paths(out_dir, [key_name(licence_id, 1) for licence_id in ids])
    keys = [new_secret() for _ in ids]
    ops = [
        Op("issue", "licence", {"ty": ty, "id": i, "kind": k, "expires": expires, "secret": s})
        for i, k, s in zip(ids, kinds, keys, strict=True)
    ]
    command = "licence issue --joining" if joining else "licence issue"
    plan = execute(writer, ChangeSet(ops, message=message), who=who, command=command, apply=True)
    files = []
    for licence_id, kind, secret, path in zip(ids, kinds, keys, paths, strict=True):
        _write_key(path, key_name(licence_id, 1), secret)
        files.append(KeyFile(licence_id, ty, kind, key_name(licence_id, 1), path))
    return plan, files


def revoke(writer: StoreWriter, licence_id: str, *, who: str, message: str | None = None) -> Plan:
    """Revoke a licence in a change set of its own."""
    changes = ChangeSet([Op("revoke", "licence", {"id": licence_id})], message=message)
    return execute(writer, changes, who=who, command="licence revoke", apply=True)


def rotate(
    writer: StoreWriter, licence_id: str, out_dir: Path, *, who: str, message: str | None = None
) -> tuple[Plan, KeyFile]:
    """Give a live licence a new key and write its key file."""
    catalog = Catalog(writer.path)
    try:
        row = catalog.licence(licence_id)
    finally:
        catalog.close()
    if row is None:
        raise LicenceError(f"no licence {licence_id} (see 'zonetools licence list')")
    name = key_name(licence_id, int(row["generation"]) + 1)
    (path,) = _free_paths(out_dir, [name])
    secret = new_secret()
    op = Op("rotate", "licence", {"id": licence_id, "secret": secret})
    changes = ChangeSet([op], message=message)
    plan = execute(writer, changes, who=who, command="licence rotate", apply=True)
    _write_key(path, name, secret)
    return plan, KeyFile(licence_id, row["ty"], row["kind"], name, path)


def listing(catalog: Catalog, ty: str | None = None) -> list[dict[str, Any]]:
    """Licences with their status, never a secret."""
    return [row for row in (public(r) for r in catalog.licences(ty)) if row is not None]
