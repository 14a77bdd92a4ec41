"""RFC 1035 master files of a zone as it answers: ``zonetools export``.

The zone image itself (what a standard server needs to answer like operator-enum, and what it
cannot say) is built by ``enumserver.zoneimage``, shared with AXFR/IXFR: see its docstring.
Here it is written as text, sorted by ``dns.zone``, so that export -> import -> export is
byte-identical. ``zonetools.zoneimport`` reads such a file back into routes and templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from enumserver.zoneimage import (
    MARK,
    ImageError,
    ZoneState,
    build,
    rdata_key,
    to_backrefs,
    wildcard_name,
    zone_state,
)

ZoneFileError = ImageError  # an export or import refused: every reason, each naming its owner

__all__ = [
    "MARK",
    "Export",
    "ZoneFileError",
    "ZoneState",
    "build",
    "export_zone",
    "rdata_key",
    "render",
    "to_backrefs",
    "wildcard_name",
    "zone_state",
]


@dataclass
class Export:
    """A zone file's text, what it could not express, and its size."""

    text: str
    warnings: list[str]
    serial: int
    names: int
    rrsets: int


def export_zone(store: Path, zone_name: str) -> Export:
    """The zone as it answers, as RFC 1035 master file text (sorted, deterministic)."""
    with zone_state(store, zone_name) as state:
        return render(state)


def render(state: ZoneState) -> Export:
    zone = build(state)
    info = state.zone
    header = [f"; zone {info.name} ({info.role}, {info.style}) at serial {info.serial}"]
    if state.referral:
        header.append(
            "; numbers served by their range holder are not delegated here: ask the server"
        )
    header += [f"; left out: {warning}" for warning in state.warnings]
    text = "\n".join(header) + "\n" + zone.to_text(sorted=True, relativize=True, want_origin=True)
    rrsets = sum(len(node.rdatasets) for node in zone.nodes.values())
    return Export(text, state.warnings, info.serial, len(zone.nodes), rrsets)
