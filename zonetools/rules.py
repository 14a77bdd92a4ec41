"""Validation rules for published data; each function returns every reason a value is refused.

Numbers (E.164, Finnish numbering plan), NAPTR records (RFC 3403 / RFC 6116: flags, service,
regexp delimiters and backreferences, replacement), host names and glue addresses, TY ids.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

import dns.exception
import dns.name

from enumserver.numbers import (
    COUNTRY_CODE,
    MAX_NSN_DIGITS,
    MIN_NSN_DIGITS,
    NumberError,
    normalise,
    plan_entry,
)

TY_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,15}$")
SERVICE = re.compile(r"^E2U(\+[A-Za-z0-9-]{1,32}(:[A-Za-z0-9-]{1,32})*)+$", re.IGNORECASE)
HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PLACEHOLDERS = {
    "{e164}": "+358401234567",
    "{digits}": "358401234567",
    "{rn}": "+35899901",
    "{sip_domain}": "ims.example.fi",
}
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")  # ERE quantifiers like {3} are digits
MAX_TTL = 2**31 - 1


class RuleError(ValueError):
    """A value refused for one or more reasons (all of them, joined)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


CANONICAL_NUMBER = re.compile(r"\+(358\d{5,12})")


@functools.lru_cache(maxsize=4096)
def nsn_lengths(head: str) -> tuple[int, int, str]:
    """(min, max, kind) of national significant numbers starting with ``head`` (3 digits)."""
    entry = plan_entry(COUNTRY_CODE + head)
    if entry is None:
        return MIN_NSN_DIGITS, MAX_NSN_DIGITS, "national"
    return entry.min_nsn, entry.max_nsn, entry.kind


def number(text: str) -> str:
    """Digits of a Finnish number in E.164 form, or RuleError with the reasons."""
    canonical = CANONICAL_NUMBER.fullmatch(text) if isinstance(text, str) else None
    if canonical is not None:
        digits = canonical.group(1)
    else:
        try:
            digits = normalise(str(text))
        except NumberError as exc:
            raise RuleError([str(exc)]) from exc
        if not digits.startswith(COUNTRY_CODE):
            raise RuleError([f"+{digits} is not a Finnish number (+358...)"])
    nsn = len(digits) - len(COUNTRY_CODE)
    low, high, kind = nsn_lengths(digits[3:6])
    if not low <= nsn <= high:
        raise RuleError(
            [f"+{digits} has {nsn} digits after +358; {kind} numbers have {low}-{high}"]
        )
    return digits


def prefix(text: str) -> str:
    """Digits of a number-range prefix (+358... or national 0... or bare digits)."""
    try:
        digits = normalise(str(text))
    except NumberError as exc:
        raise RuleError([str(exc)]) from exc
    if not digits.startswith(COUNTRY_CODE) or len(digits) <= len(COUNTRY_CODE):
        raise RuleError([f"range prefix {text!r} must be +358 followed by at least one digit"])
    return digits


def ty_id(value: Any) -> str:
    """A TY id: capital letters, digits and '-', 2..16 characters."""
    text = str(value)
    if not TY_ID.match(text):
        raise RuleError([f"TY id {text!r} must be 2-16 capital letters, digits or '-'"])
    return text


def host_name(value: Any) -> str:
    """An absolute host name (LDH labels), with the trailing dot added."""
    text = str(value).strip()
    reasons = []
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise RuleError([f"host name {text!r}: {exc}"]) from exc
    labels = [label.decode("ascii", "replace") for label in name.labels if label]
    if len(labels) < 2:
        reasons.append(f"host name {text!r} needs at least two labels")
    bad = [label for label in labels if not HOST_LABEL.match(label)]
    if bad:
        reasons.append(f"host name {text!r} has invalid labels {bad} (letters, digits, '-')")
    if reasons:
        raise RuleError(reasons)
    return name.to_text()


def address(value: Any, version: int) -> str:
    """An IPv4 or IPv6 address in canonical text form."""
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise RuleError([f"{value!r} is not an IPv{version} address"]) from exc
    if parsed.version != version:
        raise RuleError([f"{value!r} is not an IPv{version} address"])
    return str(parsed)


def ttl(value: Any, what: str = "ttl") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        raise RuleError([f"{what} {value!r} must be an integer 0..{MAX_TTL}"])
    return value


def _split_regexp(regexp: str) -> tuple[str, str, str] | str:
    """(pattern, replacement, flags) of a DDDS regexp, or the reason it is malformed."""
    delim = regexp[0]
    if delim.isdigit() or delim in "\\i":
        return f"regexp delimiter {delim!r} may not be a digit, 'i' or a backslash"
    parts, current, escaped = [], "", False
    for char in regexp[1:]:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == delim:
            parts.append(current)
            current = ""
        else:
            current += char
    if escaped or len(parts) != 2 or current not in ("", "i"):
        return f"regexp {regexp!r} must be {delim}pattern{delim}replacement{delim} (flag i only)"
    return parts[0], parts[1], current


def naptr(record: dict[str, Any]) -> dict[str, Any]:
    """A NAPTR route checked field by field (RFC 3403, RFC 6116); all reasons at once."""
    reasons: list[str] = []
    out = dict(record)
    for field in ("order", "preference"):
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            reasons.append(f"{field} {value!r} must be an integer 0..65535")
    flags = str(record.get("flags", ""))
    if not re.fullmatch(r"[A-Za-z0-9]*", flags) or len(set(flags.lower())) != len(flags):
        reasons.append(f"flags {flags!r} must be distinct letters or digits (usually 'u')")
    service = str(record.get("service", ""))
    if not SERVICE.match(service):
        reasons.append(f"service {service!r} must be E2U+type[:subtype] (RFC 6116), e.g. E2U+sip")
    regexp = str(record.get("regexp", ""))
    replacement = str(record.get("replacement", ".")) or "."
    concrete = regexp
    for key, sample in PLACEHOLDERS.items():
        concrete = concrete.replace(key, sample)
    unknown = PLACEHOLDER.findall(concrete)
    if unknown:
        reasons.append(f"unknown placeholder(s) {unknown}; use {sorted(PLACEHOLDERS)}")
    if regexp:
        if replacement != ".":
            reasons.append("replacement must be '.' when a regexp is given (RFC 3403)")
        split = _split_regexp(concrete)
        if isinstance(split, str):
            reasons.append(split)
        else:
            pattern, substitution, _ = split
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                reasons.append(f"regexp pattern {pattern!r} is not a valid ERE: {exc}")
                groups = 9
            refs = [int(ref) for ref in re.findall(r"\\(\d)", substitution)]
            if refs and max(refs) > groups:
                reasons.append(f"regexp uses \\{max(refs)} but the pattern has {groups} group(s)")
        if len(concrete.encode()) > 255:
            reasons.append("regexp is longer than 255 bytes")
    elif replacement == ".":
        reasons.append("a NAPTR needs a regexp or a replacement name")
    else:
        try:
            out["replacement"] = dns.name.from_text(replacement).to_text()
        except dns.exception.DNSException as exc:
            reasons.append(f"replacement {replacement!r}: {exc}")
    try:
        out["ttl"] = ttl(record.get("ttl", 300))
    except RuleError as exc:
        reasons.extend(exc.reasons)
    if reasons:
        raise RuleError(reasons)
    out.setdefault("flags", flags)
    out["replacement"] = out.get("replacement") or "."
    return out
