"""E.164 numbers and ENUM names, and the Finnish national numbering plan.

Numbers are kept as digit strings in E.164 form without the plus ("358401234567"); the text
forms (+358..., national 0...) are converted at the edges. dnspython's ``dns.e164`` does the
text name conversion; the server's hot path works on lowercased wire labels instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.e164
import dns.name

COUNTRY_CODE = "358"
MAX_E164_DIGITS = 15
MIN_NSN_DIGITS = 5
MAX_NSN_DIGITS = 12


class NumberError(ValueError):
    """A number that is not a valid E.164 / Finnish number."""


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One block of the national numbering plan: national prefix (without 0) and NSN lengths."""

    prefix: str
    kind: str
    min_nsn: int
    max_nsn: int


# Finnish numbering plan (Traficom regulation 32), national significant numbers (no leading 0).
# Lengths are those the plan allows for the block; the longest matching prefix wins.
PLAN: tuple[PlanEntry, ...] = (
    PlanEntry("2", "geographic", 6, 10),
    PlanEntry("3", "geographic", 6, 10),
    PlanEntry("5", "geographic", 6, 10),
    PlanEntry("6", "geographic", 6, 10),
    PlanEntry("8", "geographic", 6, 10),
    PlanEntry("9", "geographic", 6, 10),
    *(PlanEntry(f"1{d}", "geographic", 6, 10) for d in "3456789"),
    *(PlanEntry(f"4{d}", "mobile", 7, 10) for d in "0123456"),
    PlanEntry("457", "mobile", 7, 10),
    PlanEntry("50", "mobile", 7, 10),
    PlanEntry("800", "free", 6, 10),
    PlanEntry("600", "premium-errands", 6, 10),
    PlanEntry("606", "premium-errands", 6, 10),
    PlanEntry("700", "premium-entertainment", 6, 10),
    PlanEntry("707", "premium-entertainment", 6, 10),
    PlanEntry("708", "premium-entertainment", 6, 10),
    PlanEntry("100", "non-profit", 6, 10),
    PlanEntry("200", "non-profit", 6, 10),
    PlanEntry("300", "non-profit", 6, 10),
    PlanEntry("75", "non-profit", 6, 10),
    *(PlanEntry(f"10{d}", "business", 5, 10) for d in "123456789"),
    *(PlanEntry(f"20{d}", "business", 5, 10) for d in "123456789"),
    PlanEntry("29", "business", 5, 10),
    *(PlanEntry(f"30{d}", "business", 5, 10) for d in "123456789"),
    PlanEntry("71", "business", 5, 10),
    PlanEntry("73", "business", 5, 10),
)
_PLAN_BY_PREFIX = {entry.prefix: entry for entry in PLAN}


def normalise(text: str) -> str:
    """Digits of a number in E.164 form without '+': '+358 40 123 4567' or '040 1234567'.

    :raises NumberError: when the text is not a number or too long for E.164.
    """
    cleaned = text.strip().replace(" ", "").replace("-", "")
    if cleaned.startswith("+"):
        digits = cleaned[1:]
    elif cleaned.startswith("00"):
        digits = cleaned[2:]
    elif cleaned.startswith("0"):
        digits = COUNTRY_CODE + cleaned[1:]
    else:
        digits = cleaned
    if not digits.isascii() or not digits.isdigit():
        raise NumberError(f"{text!r} is not a telephone number (digits, optional + or leading 0)")
    if len(digits) > MAX_E164_DIGITS:
        raise NumberError(f"{text!r} has {len(digits)} digits; E.164 allows at most 15")
    return digits


def plan_entry(digits: str) -> PlanEntry | None:
    """The numbering-plan block of a Finnish number in E.164 digits, or None."""
    if not digits.startswith(COUNTRY_CODE):
        return None
    nsn = digits[len(COUNTRY_CODE) :]
    for size in range(min(len(nsn), 3), 0, -1):
        entry = _PLAN_BY_PREFIX.get(nsn[:size])
        if entry is not None:
            return entry
    return None


def kind_of(digits: str) -> str:
    """Kind of a Finnish number ('mobile', 'geographic', 'free', ...) or 'unknown'."""
    entry = plan_entry(digits)
    return entry.kind if entry else "unknown"


def default_lengths(prefix: str) -> tuple[int, int]:
    """Allowed total E.164 digit counts (min, max) for numbers in a range with this prefix."""
    entry = plan_entry(prefix)
    cc = len(COUNTRY_CODE)
    if entry is None:
        return cc + MIN_NSN_DIGITS, cc + MAX_NSN_DIGITS
    return cc + entry.min_nsn, cc + entry.max_nsn


def to_name(digits: str, apex: str) -> str:
    """ENUM owner name of a number under an apex whose digit labels spell its leading digits.

    >>> to_name("358401234567", "8.5.3.e164.arpa.")
    '7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa.'
    """
    lead = apex_digits(apex)
    if not digits.startswith(lead):
        raise NumberError(f"+{digits} is not under {apex}")
    rest = digits[len(lead) :]
    origin = dns.name.from_text(apex)
    if not rest:
        return origin.to_text()
    return dns.e164.from_e164("+" + rest, origin=origin).to_text()


def apex_digits(apex: str) -> str:
    """Leading digits of numbers under an apex: its single-digit labels read right to left.

    '8.5.3.e164.arpa.' and 'i.8.5.3.e164.arpa.' both give '358'.
    """
    labels = [label for label in apex.lower().rstrip(".").split(".") if label]
    return "".join(label for label in reversed(labels) if len(label) == 1 and label.isdigit())


def from_name(name: str, apex: str) -> str:
    """Digits of the number an ENUM name under an apex stands for.

    :raises NumberError: when the name is not under the apex or has non-digit labels.
    """
    qname = dns.name.from_text(name)
    origin = dns.name.from_text(apex)
    if not qname.is_subdomain(origin):
        raise NumberError(f"{name} is not under {apex}")
    relative = qname.relativize(origin)
    labels = [label.decode() for label in relative.labels]
    if not all(len(label) == 1 and label.isdigit() for label in labels):
        raise NumberError(f"{name} has labels that are not single digits")
    return apex_digits(apex) + "".join(reversed(labels))
