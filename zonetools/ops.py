"""The operations a change set is made of: each validates its fields against the store as it
stands inside the change, writes through the store's write API and records its diff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from enumserver.numbers import default_lengths
from enumserver.store import Change
from zonetools import rules


class OpError(ValueError):
    """An operation refused (the message says why)."""


class Recorder(Protocol):
    def record(self, entity: str, key: str, old: Any, new: Any) -> None: ...
    def touch(self, digits: str) -> None: ...


Handler = Callable[[Change, dict[str, Any], Recorder], None]
OPERATIONS: dict[tuple[str, str], Handler] = {}


def operation(action: str, entity: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[(action, entity)] = handler
        return handler

    return register


def _required(fields: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if fields.get(name) in (None, "")]
    if missing:
        raise OpError(f"missing field(s): {', '.join(missing)}")


def _operator(change: Change, ty: str, kind: str | None = None) -> dict[str, Any]:
    found = change.get("operators", ty=ty)
    if found is None:
        raise OpError(f"unknown operator {ty} (add it with 'zonetools operator add')")
    if kind is not None and found["kind"] != kind:
        raise OpError(f"{ty} is a {found['kind']}, not a {kind}")
    return found


def _routing_number(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if not (text.startswith("+") and text[1:].isdigit() and 2 <= len(text) <= 16):
        raise OpError(f"routing number {text!r} must be + and up to 15 digits, e.g. +35899907")
    return text


def _sip_domain(value: Any) -> str | None:
    return None if value in (None, "") else rules.host_name(value).rstrip(".")


def _public(row: dict[str, Any] | None, *drop: str) -> dict[str, Any] | None:
    return None if row is None else {k: v for k, v in row.items() if k not in drop}


def _set_operator(change: Change, fields: dict[str, Any], rec: Recorder, kind: str) -> None:
    """Add or change a TY or a PO; fields not given keep their value."""
    _required(fields, "ty", *(("host_ty",) if kind == "PO" else ()))
    ty = rules.ty_id(fields["ty"])
    host = rules.ty_id(fields["host_ty"]) if kind == "PO" else None
    if host is not None:
        _operator(change, host, "TY")
    old = change.get("operators", ty=ty)
    if old is not None and old["kind"] != kind:
        hint = "zonetools po add" if old["kind"] == "PO" else "zonetools operator add"
        raise OpError(f"{ty} is a {old['kind']}, not a {kind}: change it with '{hint}'")
    if old is None:
        _required(fields, "name")

    def value(key: str) -> Any:
        return fields[key] if fields.get(key) is not None else (old or {}).get(key)

    record = {
        "ty": ty,
        "kind": kind,
        "host_ty": host,
        "name": str(value("name")),
        "routing_number": _routing_number(value("routing_number")),
        "sip_domain": _sip_domain(value("sip_domain")),
        "joined": str(value("joined") or dt.date.today()),
        "openstack": int(bool(value("openstack"))) if kind == "TY" else 0,
    }
    if change.put("operators", record):
        rec.record(
            kind.lower() if kind == "PO" else "operator",
            ty,
            _public(old),
            _public(change.get("operators", ty=ty)),
        )


@operation("set", "operator")
def set_operator(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _set_operator(change, fields, rec, "TY")


@operation("set", "po")
def set_po(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _set_operator(change, fields, rec, "PO")


def _remove_operator(change: Change, fields: dict[str, Any], rec: Recorder, kind: str) -> None:
    _required(fields, "ty")
    ty = str(fields["ty"])
    old = _operator(change, ty, kind)
    held = change.references_to(ty)
    held.pop("routes", None)
    if held:
        what = ", ".join(f"{n} {table}" for table, n in held.items())
        raise OpError(f"{ty} still has {what}; move or remove them first")
    change.replace_routes(ty, None, [])
    change.replace_tier2(ty, [])
    change.remove_schedules_of(ty)
    change.delete("operators", ty=ty)
    rec.record(kind.lower() if kind == "PO" else "operator", ty, _public(old), None)


@operation("remove", "operator")
def remove_operator(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _remove_operator(change, fields, rec, "TY")


@operation("remove", "po")
def remove_po(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _remove_operator(change, fields, rec, "PO")


@operation("set", "range")
def set_range(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "prefix", "holder")
    prefix = rules.prefix(fields["prefix"])
    holder = str(fields["holder"])
    _operator(change, holder)
    low, high = default_lengths(prefix)
    low, high = int(fields.get("min_digits") or low), int(fields.get("max_digits") or high)
    if not len(prefix) < low <= high <= 15:
        raise OpError(f"digit counts {low}..{high} must be above the prefix length and at most 15")
    clash = [r for r in change.ranges_touching(prefix) if r["holder"] != holder]
    if clash:
        taken = ", ".join(f"+{r['prefix']} ({r['holder']})" for r in clash)
        raise OpError(f"+{prefix} overlaps another holder's range: {taken}")
    old = change.get("ranges", prefix=prefix)
    record = {"prefix": prefix, "holder": holder, "min_digits": low, "max_digits": high}
    if change.put("ranges", record):
        rec.record("range", f"+{prefix}", _public(old, "prefix"), _public(record, "prefix"))


@operation("remove", "range")
def remove_range(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "prefix")
    prefix = rules.prefix(fields["prefix"])
    old = change.get("ranges", prefix=prefix)
    if old is None:
        raise OpError(f"no range +{prefix}")
    change.delete("ranges", prefix=prefix)
    rec.record("range", f"+{prefix}", _public(old, "prefix"), None)


def _range_of(change: Change, digits: str) -> dict[str, Any] | None:
    inside = [r for r in change.ranges_touching(digits) if digits.startswith(r["prefix"])]
    return max(inside, key=lambda r: len(r["prefix"])) if inside else None


def _holder(change: Change, digits: str) -> str | None:
    ported = change.get("ported", number=digits)
    if ported is not None:
        return str(ported["recipient"])
    found = _range_of(change, digits)
    if found and found["min_digits"] <= len(digits) <= found["max_digits"]:
        return str(found["holder"])
    return None


def ported_at(value: Any) -> str | None:
    """An ISO 8601 time of porting, normalised to UTC 'YYYY-MM-DDTHH:MM:SSZ'."""
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise OpError(f"porting time {value!r} is not ISO 8601 (2025-06-02T09:30:00Z)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@operation("set", "port")
def set_port(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "number", "recipient")
    digits = rules.number(fields["number"])
    recipient = str(fields["recipient"])
    _operator(change, recipient)
    found = _range_of(change, digits)
    if found is None:
        raise OpError(f"+{digits} is in no number range")
    if not found["min_digits"] <= len(digits) <= found["max_digits"]:
        raise OpError(f"+{digits} has a length range +{found['prefix']} does not allow")
    donor = fields.get("donor") or _holder(change, digits)
    if donor is not None:
        _operator(change, str(donor))
    old = change.get("ported", number=digits)
    record = {
        "number": digits,
        "recipient": recipient,
        "donor": donor,
        "ported_at": ported_at(fields.get("ported_at")),
    }
    if change.put("ported", record):
        rec.record("port", f"+{digits}", _public(old, "number"), _public(record, "number"))
        rec.touch(digits)


@operation("remove", "port")
def remove_port(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "number")
    digits = rules.number(fields["number"])
    old = change.get("ported", number=digits)
    if old is None:
        raise OpError(f"+{digits} is not ported")
    change.delete("ported", number=digits)
    rec.record("port", f"+{digits}", _public(old, "number"), None)
    rec.touch(digits)


def _records(fields: dict[str, Any]) -> list[dict[str, Any]]:
    records = fields.get("records")
    if not isinstance(records, list) or not records:
        raise OpError("records: give at least one NAPTR record")
    out, reasons = [], []
    for index, record in enumerate(records, 1):
        if not isinstance(record, dict):
            reasons.append(f"record {index} is not a mapping")
            continue
        try:
            checked = rules.naptr({"replacement": ".", "ttl": 300, "flags": "u", **record})
        except rules.RuleError as exc:
            reasons.append(f"record {index}: {exc}")
            continue
        out.append(
            {
                k: checked[k]
                for k in ("order", "preference", "flags", "service", "regexp", "replacement", "ttl")
            }
        )
    if reasons:
        raise OpError("; ".join(reasons))
    return sorted(out, key=lambda r: (r["order"], r["preference"]))


@operation("set", "route")
def set_route(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "number")
    digits = rules.number(fields["number"])
    holder = _holder(change, digits)
    ty = str(fields.get("ty") or holder)
    if holder is None:
        raise OpError(f"+{digits} is served by no operator (no range, not ported)")
    if ty != holder:
        raise OpError(f"+{digits} is served by {holder}, not {ty}")
    records = _records(fields)
    old = change.routes_of(ty, digits)
    if change.replace_routes(ty, digits, records):
        rec.record("route", f"+{digits}", old or None, records)
        rec.touch(digits)


@operation("remove", "route")
def remove_route(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "number")
    digits = rules.number(fields["number"])
    ty = str(fields.get("ty") or _holder(change, digits))
    old = change.routes_of(ty, digits)
    if not old:
        raise OpError(f"+{digits} has no routes of its own for {ty}")
    change.replace_routes(ty, digits, [])
    rec.record("route", f"+{digits}", old, None)
    rec.touch(digits)


@operation("set", "template")
def set_template(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "ty")
    ty = str(fields["ty"])
    _operator(change, ty)
    records = _records(fields)
    old = change.routes_of(ty, None)
    if change.replace_routes(ty, None, records):
        rec.record("template", ty, old or None, records)


@operation("remove", "template")
def remove_template(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "ty")
    ty = str(fields["ty"])
    old = change.routes_of(ty, None)
    if not old:
        raise OpError(f"{ty} has no templates")
    change.replace_routes(ty, None, [])
    rec.record("template", ty, old, None)


@operation("set", "tier2")
def set_tier2(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "ty")
    ty = str(fields["ty"])
    _operator(change, ty, "TY")
    servers = fields.get("servers")
    if not isinstance(servers, list) or not servers:
        raise OpError("servers: give at least one Tier2 name server")
    out, reasons = [], []
    for server in servers:
        if not isinstance(server, dict):
            reasons.append(f"server {server!r} is not a mapping (host, ipv4, ipv6, ttl)")
            continue
        entry: dict[str, Any] = {"host": None, "ipv4": None, "ipv6": None, "ttl": 3600}
        for key, check in (
            ("host", rules.host_name),
            ("ipv4", lambda v: rules.address(v, 4)),
            ("ipv6", lambda v: rules.address(v, 6)),
            ("ttl", rules.ttl),
        ):
            if server.get(key) not in (None, ""):
                try:
                    entry[key] = check(server[key])
                except rules.RuleError as exc:
                    reasons.extend(exc.reasons)
        if not entry["ipv4"] and not entry["ipv6"]:
            reasons.append(f"{server.get('host')} needs an IPv4 or IPv6 glue address")
        elif not server.get("host"):
            reasons.append("a Tier2 server needs a host name")
        out.append(entry)
    if reasons:
        raise OpError("; ".join(reasons))
    old = change.tier2_of(ty)
    if change.replace_tier2(ty, out):
        rec.record("tier2", ty, old or None, change.tier2_of(ty))


ZONE_DEFAULTS = {
    "role": "tier1",
    "style": "naptr",
    "environment": "production",
    "refresh": 3600,
    "retry": 600,
    "expire": 1209600,
    "minimum": 60,
    "soa_ttl": 300,
    "ns_ttl": 3600,
}


@operation("set", "zone")
def set_zone(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "name")
    name = str(fields["name"])
    old = change.get("zones", name=name)
    merged = {**ZONE_DEFAULTS, **(old or {}), **{k: v for k, v in fields.items() if v is not None}}
    _required(merged, "apex", "mname", "rname", "ns")
    reasons = []
    if merged["role"] not in ("tier1", "tier2"):
        reasons.append("role must be tier1 or tier2")
    if merged["style"] not in ("naptr", "referral"):
        reasons.append("style must be naptr or referral")
    if merged["environment"] not in ("production", "test"):
        reasons.append("environment must be production or test")
    ns = merged["ns"].split() if isinstance(merged["ns"], str) else list(merged["ns"])
    try:
        apex = rules.host_name(merged["apex"]) if "." in str(merged["apex"]).strip(".") else None
        if apex is None:
            raise rules.RuleError([f"apex {merged['apex']!r} must have at least two labels"])
        names = [rules.host_name(merged["mname"]), rules.host_name(merged["rname"])]
        hosts = [rules.host_name(host) for host in ns]
        for key in ("refresh", "retry", "expire", "minimum", "soa_ttl", "ns_ttl"):
            rules.ttl(merged[key], key)
    except rules.RuleError as exc:
        raise OpError("; ".join([*reasons, *exc.reasons])) from exc
    if merged.get("operator"):
        _operator(change, str(merged["operator"]), "TY")
    if reasons:
        raise OpError("; ".join(reasons))
    record = {k: merged.get(k) for k in (*ZONE_DEFAULTS, "operator")} | {
        "name": name,
        "apex": apex,
        "mname": names[0],
        "rname": names[1],
        "ns": " ".join(hosts),
        "serial": old["serial"] if old else change.serial,
    }
    if change.put("zones", record):
        rec.record("zone", name, _public(old, "serial"), _public(record, "serial"))


@operation("remove", "zone")
def remove_zone(change: Change, fields: dict[str, Any], rec: Recorder) -> None:
    _required(fields, "name")
    old = change.get("zones", name=str(fields["name"]))
    if old is None:
        raise OpError(f"no zone {fields['name']}")
    change.delete("zones", name=old["name"])
    rec.record("zone", old["name"], _public(old, "serial"), None)


# The schedule entity (set/remove) lives in its own module; importing it registers it.
from zonetools import schedules  # noqa: E402, F401
