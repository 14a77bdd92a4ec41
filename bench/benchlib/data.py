"""Benchmark data sets: our store, the same records for PowerDNS (gsqlite3) and Knot (zone file),
and the dnsperf query files. Each artifact is built once and cached in bench/work/ with a marker.

Our store holds the ported numbers and per-operator templates; the other servers get the
expanded NAPTR records of every ported number plus those of the range-only numbers the mixed
workload asks for (we answer those from the range holder's templates).
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BenchError, log
from enumserver.model import Route
from enumserver.store import StoreWriter

DATA_VERSION = 3  # bump when the generated data changes, to invalidate caches
APEX = "8.5.3.e164.arpa."
LEAD = "358"  # digits of the apex labels
ZONE: dict[str, Any] = {
    "name": "fi",
    "apex": APEX,
    "role": "tier1",
    "style": "naptr",
    "environment": "production",
    "operator": None,
    "mname": "ns1.enum.example.fi.",
    "rname": "hostmaster.enum.example.fi.",
    "serial": 1,
    "refresh": 3600,
    "retry": 600,
    "expire": 1209600,
    "minimum": 60,
    "soa_ttl": 300,
    "ns": "ns1.enum.example.fi. ns2.enum.example.fi.",
    "ns_ttl": 3600,
}
NAPTR_TTL = 300
TEMPLATES = (  # order, preference, flags, service, regexp, replacement
    (10, 10, "u", "E2U+sip", "!^.*$!sip:{e164}@{sip_domain};user=phone!", "."),
    (20, 10, "u", "E2U+pstn:tel", "!^.*$!tel:{e164};npdi;rn={rn}!", "."),
)
OPERATORS: tuple[dict[str, Any], ...] = tuple(
    {
        "ty": f"OP{i:02d}",
        "name": f"Operator {i:02d} Oy",
        "kind": "TY",
        "host_ty": None,
        "routing_number": f"1{i:03d}",
        "sip_domain": f"ims.op{i:02d}.example.fi",
        "joined": "2024-01-01",
        "openstack": 0,
    }
    for i in range(1, 13)
)
BY_TY: dict[str, dict[str, Any]] = {op["ty"]: op for op in OPERATORS}
# Mobile blocks 358 40..49 and 358 50: 12-digit numbers, prefix (5 digits) + 7 free digits.
PREFIXES = (*(f"3584{d}" for d in range(10)), "35850")
HOLDERS: dict[str, str] = {
    prefix: OPERATORS[i % len(OPERATORS)]["ty"] for i, prefix in enumerate(PREFIXES)
}
BLOCK = 10**7
NOWHERE = ("3582", "3583", "3589")  # no range below these: NXDOMAIN everywhere
HOT_NUMBERS = 10_000  # the hot workload cycles over this many numbers (cache hits)
MIX = (0.80, 0.15, 0.05)  # mixed workload: ported, range-only, nonexistent
PDNS_SCHEMA_CANDIDATES = (
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
)
Naptr = tuple[int, int, str, str, str, str]


def enum_name(number: str) -> str:
    """'358401234567' -> '7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa' (no trailing dot)."""
    return ".".join(reversed(number)) + ".e164.arpa"


def expected_naptrs(number: str, ty: str) -> list[Naptr]:
    """The NAPTR rdata our server gives for a number served by ``ty``: its templates expanded."""
    operator = BY_TY[ty]
    fields = {
        "{e164}": "+" + number,
        "{digits}": number,
        "{rn}": operator["routing_number"],
        "{sip_domain}": operator["sip_domain"],
    }
    out = []
    for order, pref, flags, service, regexp, replacement in TEMPLATES:
        for key, value in fields.items():
            regexp = regexp.replace(key, value)
        out.append((order, pref, flags, service, regexp, replacement))
    return out


def naptr_text(rdata: Naptr) -> str:
    order, pref, flags, service, regexp, replacement = rdata
    return f'{order} {pref} "{flags}" "{service}" "{regexp}" {replacement}'


@dataclass
class DataSet:
    """One data set directory: the store, the other servers' data and the query files."""

    directory: Path
    numbers: int
    seed: int
    query_limit: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.directory / "store.sqlite"

    @property
    def pdns_db(self) -> Path:
        return self.directory / "pdns.sqlite"

    @property
    def zone_file(self) -> Path:
        return self.directory / "zone.txt"

    @property
    def samples(self) -> Path:
        return self.directory / f"samples-q{self.query_limit}.json"

    def queries(self, workload: str) -> Path:
        return self.directory / f"queries-q{self.query_limit}-{workload}.txt"

    def marker(self, part: str) -> Path:
        return self.directory / f"{part}.json"

    def done(self, part: str) -> dict[str, Any] | None:
        path = self.marker(part)
        return json.loads(path.read_text()) if path.exists() else None

    def finish(self, part: str, meta: dict[str, Any]) -> None:
        self.marker(part).write_text(json.dumps(meta, indent=1))
        self.meta[part] = meta

    @property
    def mixed_lines(self) -> int:
        return min(self.query_limit, self.numbers)


def generate_ported(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(number, recipient, donor) for ``count`` distinct random numbers, sorted by number."""
    rng = random.Random(seed)
    space = len(PREFIXES) * BLOCK
    if count > space:
        raise BenchError(f"--numbers {count} exceeds the {space} numbers of the ranges")
    picks = sorted(rng.sample(range(space), count))
    tys = [op["ty"] for op in OPERATORS]
    out = []
    for index in picks:
        prefix = PREFIXES[index // BLOCK]
        number = f"{prefix}{index % BLOCK:07d}"
        donor = HOLDERS[prefix]
        recipient = rng.choice(tys)
        while recipient == donor:
            recipient = rng.choice(tys)
        out.append((number, recipient, donor))
    return out


def build_store(path: Path, ported: list[tuple[str, str, str]]) -> int:
    """Our store through StoreWriter; returns the zone serial after the change."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    writer = StoreWriter.create(path)
    try:
        with writer.change("bench", "bench/run", "benchmark data set") as ch:
            for operator in OPERATORS:
                ch.put("operators", dict(operator))
            ch.put("zones", dict(ZONE))
            for prefix in PREFIXES:
                ch.put(
                    "ranges",
                    {
                        "prefix": prefix,
                        "holder": HOLDERS[prefix],
                        "min_digits": 12,
                        "max_digits": 12,
                    },
                )
            for operator in OPERATORS:
                for order, pref, flags, service, regexp, replacement in TEMPLATES:
                    ch.add_route(
                        Route(
                            operator["ty"],
                            None,
                            order,
                            pref,
                            flags,
                            service,
                            regexp,
                            replacement,
                            NAPTR_TTL,
                        )
                    )
            ch.put_ported_many(((n, r, d, "2025-01-01") for n, r, d in ported), old={})
        serial = writer.conn.execute("SELECT serial FROM zones WHERE name=?", (ZONE["name"],))
        value = int(serial.fetchone()[0])
        writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        writer.close()
    return value


def ensure_store(data: DataSet, rebuild: bool) -> None:
    meta = None if rebuild else data.done("store")
    if meta is not None:
        data.meta["store"] = meta
        return
    started = time.monotonic()
    ported = generate_ported(data.numbers, data.seed)
    generate_s = round(time.monotonic() - started, 1)
    log(f"generated {data.numbers:,} ported numbers in {generate_s} s")
    started = time.monotonic()
    serial = build_store(data.store, ported)
    store_s = round(time.monotonic() - started, 1)
    size = round(data.store.stat().st_size / 1e6, 1)
    log(f"our store: {store_s} s, {size} MB")
    data.finish(
        "store",
        {
            "numbers": data.numbers,
            "seed": data.seed,
            "serial": serial,
            "generate_s": generate_s,
            "store_s": store_s,
            "store_mb": size,
        },
    )


def ported_rows(data: DataSet) -> Iterator[tuple[str, str]]:
    """(number, recipient) of every ported number in the store, in number order."""
    conn = sqlite3.connect(f"file:{data.store}?mode=ro", uri=True)
    try:
        yield from conn.execute("SELECT number, recipient FROM ported ORDER BY number")
    finally:
        conn.close()


def ensure_samples(data: DataSet) -> dict[str, Any]:
    """The numbers the query files ask for: ported (random order), hot, range-only, nowhere."""
    if data.samples.exists():
        samples: dict[str, Any] = json.loads(data.samples.read_text())
        return samples
    started = time.monotonic()
    rng = random.Random(data.seed + 1)
    numbers = [number for number, _ in ported_rows(data)]
    picked = rng.sample(numbers, min(data.query_limit, len(numbers)))
    hot = rng.sample(numbers, min(HOT_NUMBERS, len(numbers)))
    del numbers
    wanted = round(data.mixed_lines * MIX[1])
    conn = sqlite3.connect(f"file:{data.store}?mode=ro", uri=True)
    range_only: dict[str, str] = {}
    space = len(PREFIXES) * BLOCK
    while len(range_only) < wanted:
        index = rng.randrange(space)
        prefix = PREFIXES[index // BLOCK]
        number = f"{prefix}{index % BLOCK:07d}"
        sql = "SELECT 1 FROM ported WHERE number=?"
        if number not in range_only and conn.execute(sql, (number,)).fetchone() is None:
            range_only[number] = HOLDERS[prefix]
    conn.close()
    nowhere = sorted(
        {
            f"{rng.choice(NOWHERE)}{rng.randrange(10**8):08d}"
            for _ in range(round(data.mixed_lines * MIX[2]))
        }
    )
    samples = {"ported": picked, "hot": hot, "range_only": range_only, "nowhere": nowhere}
    data.samples.write_text(json.dumps(samples))
    log(f"query samples chosen in {time.monotonic() - started:.1f} s")
    return samples


def ensure_queries(data: DataSet, samples: dict[str, Any]) -> dict[str, int]:
    """random: distinct ported numbers in random order (misses); hot: HOT_NUMBERS numbers
    repeated; mixed: ported, range-only and nonexistent numbers shuffled (MIX)."""
    counts = {}
    rng = random.Random(data.seed + 4)
    ported = samples["ported"]
    mixed = (
        ported[: round(data.mixed_lines * MIX[0])]
        + list(samples["range_only"])
        + samples["nowhere"]
    )
    rng.shuffle(mixed)
    for workload, numbers in (("random", ported), ("hot", samples["hot"]), ("mixed", mixed)):
        path = data.queries(workload)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            with tmp.open("w") as out:
                out.writelines(f"{enum_name(n)} NAPTR\n" for n in numbers)
            tmp.rename(path)
        counts[workload] = len(numbers)
    return counts


def answered_numbers(data: DataSet, samples: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(number, serving TY) of every number that has NAPTR records on the other servers."""
    yield from ported_rows(data)
    yield from sorted(samples["range_only"].items())


def pdns_schema() -> str:
    for candidate in PDNS_SCHEMA_CANDIDATES:
        if candidate.exists():
            return candidate.read_text()
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "pdns-backend-sqlite3"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchError(
            f"cannot find the gsqlite3 schema (is pdns-backend-sqlite3 installed?): {exc}"
        ) from exc
    for line in listing:
        if line.endswith("/schema.sqlite3.sql"):
            return Path(line).read_text()
    raise BenchError("cannot find schema.sqlite3.sql of pdns-backend-sqlite3")


def ensure_pdns(data: DataSet, samples: dict[str, Any]) -> None:
    """The same records for PowerDNS: domain, SOA, NS and the NAPTRs of every answered number."""
    key = f"pdns-q{data.query_limit}"
    meta = data.done(key)
    if meta is not None and data.pdns_db.exists():
        data.meta["pdns"] = meta
        return
    started = time.monotonic()
    path = data.pdns_db
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    domain = APEX.rstrip(".")
    serial = data.meta["store"]["serial"]
    conn = sqlite3.connect(path, isolation_level=None)
    count = 0
    try:
        conn.executescript(pdns_schema())
        # Indexes are rebuilt after the bulk insert (much faster than maintaining them).
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='records'"
            " AND sql IS NOT NULL"
        ).fetchall()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("INSERT INTO domains (id, name, type) VALUES (1, ?, 'NATIVE')", (domain,))
        soa = (
            f"{ZONE['mname']} {ZONE['rname']} {serial} {ZONE['refresh']} {ZONE['retry']} "
            f"{ZONE['expire']} {ZONE['minimum']}"
        )
        rows: list[tuple[str, str, str, int]] = [(domain, "SOA", soa, ZONE["soa_ttl"])]
        rows += [(domain, "NS", ns, ZONE["ns_ttl"]) for ns in ZONE["ns"].split()]

        def naptrs() -> Iterator[tuple[str, str, str, int]]:
            nonlocal count
            for number, ty in answered_numbers(data, samples):
                name = enum_name(number)
                count += 1
                for rdata in expected_naptrs(number, ty):
                    yield (name, "NAPTR", naptr_text(rdata), NAPTR_TTL)

        sql = (
            "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
            " VALUES (1, ?, ?, ?, ?, 0, 0, 1)"
        )
        conn.executemany(sql, rows)
        conn.executemany(sql, naptrs())
        for _, create in indexes:
            conn.execute(create)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    seconds = round(time.monotonic() - started, 1)
    size = round(path.stat().st_size / 1e6, 1)
    log(f"PowerDNS gsqlite3 database: {seconds} s, {size} MB, {2 * count:,} NAPTR records")
    data.finish(key, {"pdns_s": seconds, "pdns_mb": size, "naptrs": 2 * count})
    data.meta["pdns"] = data.meta.pop(key)


def ensure_zone_file(data: DataSet, samples: dict[str, Any]) -> None:
    """The same records for Knot as an RFC 1035 zone file."""
    key = f"zone-q{data.query_limit}"
    meta = data.done(key)
    if meta is not None and data.zone_file.exists():
        data.meta["zone"] = meta
        return
    started = time.monotonic()
    serial = data.meta["store"]["serial"]
    tmp = data.zone_file.with_suffix(".tmp")
    count = 0
    with tmp.open("w") as out:
        out.write(f"$ORIGIN {APEX}\n")
        out.write(
            f"@ {ZONE['soa_ttl']} IN SOA {ZONE['mname']} {ZONE['rname']} {serial} "
            f"{ZONE['refresh']} {ZONE['retry']} {ZONE['expire']} {ZONE['minimum']}\n"
        )
        for ns in ZONE["ns"].split():
            out.write(f"@ {ZONE['ns_ttl']} IN NS {ns}\n")
        for number, ty in answered_numbers(data, samples):
            owner = ".".join(reversed(number[len(LEAD) :]))
            count += 1
            for rdata in expected_naptrs(number, ty):
                out.write(f"{owner} {NAPTR_TTL} IN NAPTR {naptr_text(rdata)}\n")
    tmp.rename(data.zone_file)
    seconds = round(time.monotonic() - started, 1)
    size = round(data.zone_file.stat().st_size / 1e6, 1)
    log(f"Knot zone file: {seconds} s, {size} MB, {2 * count:,} NAPTR records")
    data.finish(key, {"zone_s": seconds, "zone_mb": size, "naptrs": 2 * count})
    data.meta["zone"] = data.meta.pop(key)


def prepare(
    numbers: int, seed: int, query_limit: int, rebuild: bool, knot: bool, pdns: bool, work: Path
) -> DataSet:
    """Build (or reuse) everything a run needs."""
    directory = work / f"data-n{numbers}-s{seed}-v{DATA_VERSION}"
    directory.mkdir(parents=True, exist_ok=True)
    data = DataSet(directory, numbers, seed, query_limit)
    if rebuild:
        for path in directory.iterdir():
            path.unlink()
    ensure_store(data, rebuild)
    samples = ensure_samples(data)
    data.meta["queries"] = ensure_queries(data, samples)
    data.meta["checks"] = check_numbers(data, samples)
    if pdns:
        ensure_pdns(data, samples)
    if knot:
        ensure_zone_file(data, samples)
    return data


def check_numbers(data: DataSet, samples: dict[str, Any]) -> list[list[str | None]]:
    """Names to compare the servers' answers on: ported, range-only and nonexistent numbers."""
    rng = random.Random(data.seed + 2)
    conn = sqlite3.connect(f"file:{data.store}?mode=ro", uri=True)
    try:
        ported = rng.sample(samples["ported"], min(14, len(samples["ported"])))
        sql = "SELECT recipient FROM ported WHERE number=?"
        checks: list[list[str | None]] = [
            [n, conn.execute(sql, (n,)).fetchone()[0]] for n in ported
        ]
    finally:
        conn.close()
    range_only = sorted(samples["range_only"].items())
    checks += [[n, ty] for n, ty in rng.sample(range_only, min(4, len(range_only)))]
    checks += [[n, None] for n in samples["nowhere"][:2]]
    return checks
