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
    """One block of the national numbering plan: national prefix (without 0) and NSN lengths.

    ``group`` names a price or service group inside the kind (e.g. the payment-services blocks
    0606, 0707 and 0708 of the premium-rate numbers), empty when the block has none.
    """

    prefix: str
    kind: str
    min_nsn: int
    max_nsn: int
    group: str = ""


# What each kind is: whether it is a service number (its owner routes and counts its calls,
# see docs/service-numbers.md) and a one-line description. The keys are every value kind_of()
# returns, so a metrics label built from a kind has a bounded set of values.
KINDS: dict[str, tuple[bool, str]] = {
    "geographic": (False, "geographic subscriber number (area code)"),
    "mobile": (False, "mobile subscriber number"),
    "business": (True, "national business number: one number for the whole company"),
    "free": (True, "free service number: the callee pays"),
    "premium-errands": (True, "premium-rate service number for errands and information"),
    "premium-entertainment": (True, "premium-rate service number for entertainment only"),
    "non-profit": (True, "cheap public-interest service number (service group I)"),
    "directory": (True, "directory enquiry service number"),
    "errands": (True, "service number for consulting and ordering at the normal price"),
    "unknown": (False, "not in the Finnish numbering plan"),
}
SERVICE_KINDS = frozenset(kind for kind, (service, _) in KINDS.items() if service)


def _blocks(kind: str, low: int, high: int, *prefixes: str, group: str = "") -> list[PlanEntry]:
    return [PlanEntry(prefix, kind, low, high, group) for prefix in prefixes]


# Finnish numbering plan (Traficom regulation 32; barring groups of regulation 35), national
# significant numbers (no leading 0). The longest matching prefix wins. Blocks longer than
# three digits keep the lengths of their three-digit parent, so the length check can look at
# the first three digits only (zonetools.rules.nsn_lengths).
PLAN: tuple[PlanEntry, ...] = (
    *_blocks("geographic", 6, 10, "2", "3", "5", "6", "8", "9"),
    *_blocks("geographic", 6, 10, *(f"1{d}" for d in "3456789")),
    *_blocks("mobile", 7, 10, *(f"4{d}" for d in "0123456"), "457", "50"),
    *_blocks("free", 6, 10, "800"),
    *_blocks("premium-errands", 6, 10, "600"),
    *_blocks("premium-errands", 6, 10, "606", group="payment services (0606)"),
    *_blocks("premium-entertainment", 6, 10, "700"),
    *_blocks("premium-entertainment", 6, 10, "707", group="payment services (0707)"),
    *_blocks("premium-entertainment", 6, 10, "708", group="payment services (0708)"),
    # 010x, 020x, 029, 030x, 071, 073: national business numbers, with service blocks inside
    *_blocks("business", 5, 10, *(f"10{d}" for d in "123456789"), "29", "71", "73"),
    *_blocks("business", 5, 10, *(f"20{d}" for d in "123456789")),
    *_blocks("business", 5, 10, *(f"30{d}" for d in "123456789")),
    *_blocks("non-profit", 6, 10, "100", "200", "300"),
    *_blocks("directory", 6, 10, "100100"),
    *_blocks("directory", 5, 10, "2020"),  # 02020x, 020208 (international switching)
    *_blocks("non-profit", 5, 10, "2022", "2023"),
    *_blocks("errands", 5, 10, "2098", "2099", group="service group II"),
    # 075: service numbers; blocks 0750-0759 in five series (075 00x, 075 30x, 075 32x,
    # 075 75x, 075 98x): x=0 directory, x=1 non-profit, x=2 errands, x=3-9 business numbers
    *_blocks("non-profit", 6, 10, "75"),
    *_blocks("directory", 6, 10, "751", "752"),
    *(
        entry
        for series in ("7500", "7530", "7532", "7575", "7598")
        for entry in (
            PlanEntry(f"{series}0", "directory", 6, 10),
            PlanEntry(f"{series}1", "non-profit", 6, 10),
            PlanEntry(f"{series}2", "errands", 6, 10, "service group II"),
            *_blocks("business", 6, 10, *(f"{series}{d}" for d in "3456789")),
        )
    ),
)
_PLAN_BY_PREFIX = {entry.prefix: entry for entry in PLAN}
_LONGEST_PREFIX = max(len(entry.prefix) for entry in PLAN)
# Proper prefixes of the plan's prefixes: past the first digits that are not one of these, no
# longer block can match, so the longest match is found in a few steps (every cache miss asks).
_PLAN_ANCESTORS = frozenset(e.prefix[:size] for e in PLAN for size in range(1, len(e.prefix)))


@dataclass(frozen=True, slots=True)
class NumberClass:
    """How the numbering plan classifies a number: kind, block, group, service or not."""

    kind: str
    block: str  # national form of the plan block, e.g. '0800'
    group: str
    service: bool
    description: str


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
    """The numbering-plan block of a Finnish number (or prefix) in E.164 digits, or None."""
    if not digits.startswith(COUNTRY_CODE):
        return None
    nsn = digits[len(COUNTRY_CODE) :]
    found = None
    for size in range(1, min(len(nsn), _LONGEST_PREFIX) + 1):
        head = nsn[:size]
        found = _PLAN_BY_PREFIX.get(head, found)
        if head not in _PLAN_ANCESTORS:
            break
    return found


def kind_of(digits: str) -> str:
    """Kind of a Finnish number ('mobile', 'geographic', 'free', ...; a key of KINDS).

    Bounded values, so usable as a metrics label; 'unknown' outside the plan.
    """
    entry = plan_entry(digits)
    return entry.kind if entry else "unknown"


_SERVICE_HEADS: dict[str, bool | None] = {}  # country code + two digits -> decided, or None


def is_service(digits: str) -> bool:
    """Whether a number is a service number (free, premium, cheap, directory, business...).

    On the miss path of every answer: most blocks are decided by the first two national
    digits (no longer block starts with them), remembered per such head: one dict lookup.
    """
    if len(digits) < 5:
        return kind_of(digits) in SERVICE_KINDS
    head = digits[:5]
    try:
        found = _SERVICE_HEADS[head]
    except KeyError:
        found = _SERVICE_HEADS[head] = _decided(head)
    return kind_of(digits) in SERVICE_KINDS if found is None else found


def _decided(head: str) -> bool | None:
    """is_service of every number starting with these 5 digits, or None when it varies."""
    nsn = head[len(COUNTRY_CODE) :]
    if not head.startswith(COUNTRY_CODE):
        return False
    if nsn[:1] in _PLAN_ANCESTORS and nsn[:2] in _PLAN_ANCESTORS:
        return None  # a longer block starts with these digits: walk the plan
    return kind_of(head) in SERVICE_KINDS


def classify(digits: str) -> NumberClass:
    """The full classification of a number: kind, plan block, price group, description."""
    entry = plan_entry(digits)
    kind = entry.kind if entry else "unknown"
    service, description = KINDS[kind]
    block = "0" + entry.prefix if entry else ""
    return NumberClass(kind, block, entry.group if entry else "", service, description)


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
