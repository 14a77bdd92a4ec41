"""Immutable values shared by the store, resolution and publishing. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["tier1", "tier2"]
Style = Literal["referral", "naptr"]


@dataclass(frozen=True, slots=True)
class Zone:
    """A served zone: its apex, role, answer style and SOA values."""

    name: str
    apex: str
    role: Role
    style: Style
    environment: str
    operator: str | None
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    soa_ttl: int
    ns: tuple[str, ...]
    ns_ttl: int
    # Leading digits every number under this apex has (its digit labels); computed once, as
    # resolution reads it on every cache miss.
    lead_digits: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = [label for label in self.apex.lower().rstrip(".").split(".") if label]
        digits = "".join(lb for lb in reversed(labels) if len(lb) == 1 and lb.isdigit())
        object.__setattr__(self, "lead_digits", digits)

    @property
    def negative_ttl(self) -> int:
        """TTL of the SOA in negative answers (RFC 2308: min of SOA TTL and SOA MINIMUM)."""
        return min(self.soa_ttl, self.minimum)


@dataclass(frozen=True, slots=True)
class Operator:
    """A telecom operator (TY) or a service operator (PO) working under a host TY."""

    ty: str
    name: str
    kind: Literal["TY", "PO"]
    host_ty: str | None
    routing_number: str | None
    sip_domain: str | None


@dataclass(frozen=True, slots=True)
class NumberRange:
    """A block of numbers: digit prefix, holder, allowed total digit counts of its numbers."""

    prefix: str
    holder: str
    min_digits: int
    max_digits: int


@dataclass(frozen=True, slots=True)
class Tier2Server:
    """One of an operator's Tier2 name servers with its glue addresses."""

    ty: str
    host: str
    ipv4: str | None
    ipv6: str | None
    ttl: int


@dataclass(frozen=True, slots=True)
class Route:
    """A NAPTR record for one number, or a template (number None) covering an operator's numbers.

    Templates may use ``{e164}`` (+digits), ``{digits}``, ``{rn}`` and ``{sip_domain}`` in
    the regexp and replacement.
    """

    ty: str
    number: str | None
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int
