"""Server configuration: a TOML file (stdlib tomllib) and flags -> one frozen, validated Config.

Tables: ``[server]`` (the fields of Config), ``[metrics]``, ``[log]`` and ``[rrl]`` (the nested
dataclasses). Unknown tables and keys and values of the wrong type are errors naming the key.
"""

from __future__ import annotations

import ipaddress
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus endpoint (also /health and /ready)."""

    enabled: bool = False
    listen: str = "127.0.0.1:9153"


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: format and target of log lines, and the sampled query log."""

    format: str = "text"
    target: str = "stderr"
    timestamps: bool = False
    query_sample: int = 0
    query_queue: int = 10_000


@dataclass(frozen=True)
class RrlConfig:
    """``[rrl]``: response rate limiting per client prefix on UDP (token bucket, slip)."""

    enabled: bool = False
    rate: float = 200.0
    burst: int = 400
    slip: int = 2
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[str, ...] = ()
    table_size: int = 100_000


@dataclass(frozen=True)
class StatsConfig:
    """``[stats]``: query counts of service and scheduled numbers (docs/service-numbers.md)."""

    enabled: bool = True
    path: str = ""  # default: <store>.stats.sqlite
    flush_interval: float = 5.0
    retention_days: int = 90


@dataclass(frozen=True)
class KeyConfig:
    """``[[transfer.keys]]``: a TSIG key (RFC 8945) by name: ``secret`` (base64), or ``file``
    as tsig-keygen or ``zonetools licence issue`` write it (read when the file is loaded)."""

    id: str
    algorithm: str = "hmac-sha256"
    secret: str = ""


@dataclass(frozen=True)
class RemoteConfig:
    """``[[transfer.remotes]]``: a secondary: where NOTIFY goes, and the key that signs it."""

    id: str
    address: tuple[str, ...] = ()
    key: str = ""


@dataclass(frozen=True)
class AclConfig:
    """``[[transfer.acls]]``: who may transfer a zone or send it NOTIFY (Knot's acl): the peer
    must be in ``address`` (when set) and sign with one of ``key`` (when set; else sign with
    none), or with a live licence key whose TY may read the zone (``licence``)."""

    id: str
    address: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    licence: bool = False
    action: tuple[str, ...] = ("transfer",)
    deny: bool = False


@dataclass(frozen=True)
class ZoneTransferConfig:
    """``[[transfer.zones]]``: the ACL rules (in order, first match decides) and NOTIFY targets of a
    store zone by name; ``name = "*"`` for every zone without an entry of its own."""

    name: str
    acl: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferConfig:
    """``[transfer]``: zone transfers (AXFR, IXFR from the journal) and NOTIFY to secondaries,
    with lists of ``keys``, ``remotes``, ``acls`` and ``zones`` tables (docs/scaling.md)."""

    ixfr_max_depth: int = 1000
    ixfr_max_changes: int = 100_000
    notify_timeout: float = 2.0
    notify_retries: int = 5
    keys: tuple[KeyConfig, ...] = ()
    remotes: tuple[RemoteConfig, ...] = ()
    acls: tuple[AclConfig, ...] = ()
    zones: tuple[ZoneTransferConfig, ...] = ()

    def zone(self, name: str) -> ZoneTransferConfig | None:
        """The entry of a zone, else the ``*`` entry, else None (no transfers, no NOTIFY)."""
        found = {zone.name: zone for zone in self.zones}
        return found.get(name) or found.get("*")


@dataclass(frozen=True)
class Config:
    """Everything `enumserver serve` needs. Keys of the [server] table have these names."""

    store: str = "enum.sqlite"
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    zones: tuple[str, ...] = ()
    edns_max_payload: int = 1232
    cache_size: int = 100_000  # ~1.1 KB a question in both caches: ~110 MB when full
    tcp_idle_timeout: float = 10.0
    tcp_max_duration: float = 120.0
    tcp_max_clients: int = 250
    tcp_max_clients_per_ip: int = 25
    tcp_max_queries: int = 0
    tcp_backlog: int = 128
    send_buffer_limit: int = 1_048_576
    udp_receive_buffer: int = 4_194_304
    reload_interval: float = 0.25
    shutdown_timeout: float = 5.0
    workers: int = 1  # processes on the same addresses (SO_REUSEPORT); read at start only
    log_level: str = "info"
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    rrl: RrlConfig = field(default_factory=RrlConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def with_overrides(self, **values: Any) -> Config:
        """A copy with the given (non-None) values replaced, validated again."""
        changed = {key: value for key, value in values.items() if value not in (None, ())}
        return validate(replace(self, **changed), "flags")


SECTIONS: dict[str, type] = {
    "metrics": MetricsConfig,
    "log": LogConfig,
    "rrl": RrlConfig,
    "stats": StatsConfig,
}


def parse_address(text: str, key: str = "listen") -> tuple[str, int]:
    """'127.0.0.1:5353' or '[::1]:5353' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key} address {text!r} must be HOST:PORT, e.g. 127.0.0.1:5353")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"{key} address {text!r}: {host!r} is not an IP address") from exc
    return host, int(port)


def _check(ok: bool, source: str, key: str, need: str) -> None:
    if not ok:
        raise ConfigError(f"{source}: {key} must be {need}")


def validate(config: Config, source: str) -> Config:
    """Check every value; raise ConfigError naming source and key."""
    try:
        for address in config.listen:
            parse_address(address, "server.listen")
        parse_address(config.metrics.listen, "metrics.listen")
        for network in config.rrl.exempt:
            ipaddress.ip_network(network, strict=False)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    _check(512 <= config.edns_max_payload <= 65535, source, "server.edns_max_payload", "512..65535")
    for key in ("cache_size", "tcp_max_clients", "tcp_backlog", "send_buffer_limit"):
        _check(getattr(config, key) >= 1, source, f"server.{key}", "positive")
    _check(1 <= config.workers <= 256, source, "server.workers", "1..256")
    need = "0 (the kernel's default) or more"
    _check(config.udp_receive_buffer >= 0, source, "server.udp_receive_buffer", need)
    for key in ("tcp_max_clients_per_ip", "tcp_max_queries"):
        _check(getattr(config, key) >= 0, source, f"server.{key}", "0 (no limit) or more")
    for key in ("tcp_idle_timeout", "tcp_max_duration", "reload_interval", "shutdown_timeout"):
        _check(getattr(config, key) > 0, source, f"server.{key}", "positive (seconds)")
    levels = ("debug", "info", "warning", "error")
    _check(config.log_level in levels, source, "server.log_level", "debug, info, warning or error")
    log = config.log
    _check(log.format in ("text", "logfmt", "json"), source, "log.format", "text, logfmt or json")
    _check(log.target in ("stderr", "stdout"), source, "log.target", "stderr or stdout")
    _check(log.query_sample >= 0, source, "log.query_sample", "0 (off) or more")
    _check(log.query_queue >= 1, source, "log.query_queue", "positive")
    rrl = config.rrl
    _check(rrl.rate > 0, source, "rrl.rate", "positive (responses per second)")
    _check(rrl.burst >= 1, source, "rrl.burst", "positive")
    _check(rrl.slip >= 0, source, "rrl.slip", "0 (drop all) or more")
    _check(8 <= rrl.ipv4_prefix <= 32, source, "rrl.ipv4_prefix", "8..32")
    _check(16 <= rrl.ipv6_prefix <= 128, source, "rrl.ipv6_prefix", "16..128")
    _check(rrl.table_size >= 1, source, "rrl.table_size", "positive")
    stats = config.stats
    _check(stats.flush_interval > 0, source, "stats.flush_interval", "positive (seconds)")
    _check(stats.retention_days >= 1, source, "stats.retention_days", "1 (day) or more")
    return config


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _value(hint: Any, value: Any, where: str) -> Any:
    """The TOML value converted to the field's type, or ConfigError naming the key."""
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(
            f"{where} must be {_TYPE_NAMES.get(hint, hint)}, not {type(value).__name__}"
        )
    return value


def _table(cls: type, table: Any, name: str, path: Path) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from one TOML table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if not is_dataclass(hints[f.name])}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key {name}.{key}")
        values[key] = _value(hints[key], value, f"{path}: {name}.{key}")
    return values


def load(path: str | Path | None) -> Config:
    """Read a TOML file; unknown tables, keys and wrong types are errors naming the key."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - {"server", *SECTIONS, *KNOT_TABLES}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    values = _table(Config, data.get("server", {}), "server", path)
    for name, cls in SECTIONS.items():
        if name == "transfer":  # lists of tables: transfer_config below
            values[name] = transfer_config(_knot_tables(data), path)
            continue
        values[name] = cls(**_table(cls, data.get(name, {}), name, path))
    if "store" in values and not Path(values["store"]).is_absolute():
        values["store"] = str(path.parent / values["store"])
    if values["stats"].path and not Path(values["stats"].path).is_absolute():
        values["stats"] = replace(values["stats"], path=str(path.parent / values["stats"].path))
    return validate(Config(**values), str(path))


def changes(old: Config, new: Config) -> list[str]:
    """Dotted keys whose value differs between two configurations (for reload logs)."""
    found = []
    for item in fields(Config):
        before, after = getattr(old, item.name), getattr(new, item.name)
        if is_dataclass(before):
            found += [
                f"{item.name}.{sub.name}"
                for sub in fields(before)
                if getattr(before, sub.name) != getattr(after, sub.name)
            ]
        elif before != after:
            found.append(f"server.{item.name}")
    return found


# -- [transfer] with [[transfer.keys]], [[transfer.remotes]], [[transfer.acls]], [[transfer.zones]]
SECTIONS["transfer"] = TransferConfig
ACTIONS = ("transfer", "notify")
LISTS = {"remotes": ("address",), "acls": ("address", "key", "action"), "zones": ("acl", "notify")}
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def _remote_address(text: str, where: str) -> str:
    """'192.0.2.1', '192.0.2.1:53', '[2001:db8::1]:53' or '2001:db8::1' -> HOST:PORT."""
    try:
        ipaddress.ip_address(text)
        return f"[{text}]:53" if ":" in text else f"{text}:53"
    except ValueError:
        parse_address(text, where)
        return text


def _key(table: dict[str, Any], where: str, path: Path) -> KeyConfig:
    import base64

    import dns.tsigkeyring

    table = dict(table)
    if "file" in table:
        file = Path(str(table.pop("file")))
        file = file if file.is_absolute() else path.parent / file
        try:
            ((name, key),) = dns.tsigkeyring.from_file(file).items()
        except Exception as exc:
            raise ConfigError(f"{path}: {where}.file {file}: not a TSIG key file ({exc})") from exc
        table.setdefault("id", name.to_text(omit_final_dot=True))
        table.setdefault("algorithm", key.algorithm.to_text(omit_final_dot=True))
        table.setdefault("secret", base64.b64encode(key.secret).decode())
    key = KeyConfig(**_table(KeyConfig, table, where, path))
    _check(key.algorithm.lower() in ALGORITHMS, str(path), f"{where}.algorithm", "one of "
           + ", ".join(ALGORITHMS))  # fmt: skip
    try:
        ok = bool(base64.b64decode(key.secret, validate=True))
    except ValueError:
        ok = False
    _check(ok, str(path), f"{where}.secret", "a base64 TSIG secret (or give file = ...)")
    return key


KNOT_TABLES = {"key": "keys", "remote": "remotes", "acl": "acls", "zone": "zones"}


def _knot_tables(data: dict[str, Any]) -> Any:
    """[transfer] with Knot's top-level [[key]], [[remote]], [[acl]], [[zone]] tables added
    (the same as [[transfer.keys]], ...)."""
    transfer = data.get("transfer", {})
    if not isinstance(transfer, dict) or not set(KNOT_TABLES) & set(data):
        return transfer
    merged = dict(transfer)
    for name, plural in KNOT_TABLES.items():
        if name in data:
            tables = data[name] if isinstance(data[name], list) else [data[name]]
            merged[plural] = [*merged.get(plural, []), *tables]
    return merged


def transfer_config(data: Any, path: Path) -> TransferConfig:
    """The ``[transfer]`` table and its lists of tables, every reference checked."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [transfer] must be a table")
    kinds: dict[str, type] = {
        "keys": KeyConfig, "remotes": RemoteConfig, "acls": AclConfig, "zones": ZoneTransferConfig
    }  # fmt: skip
    found: dict[str, list[Any]] = {name: [] for name in kinds}
    for name, cls in kinds.items():
        tables = data.get(name, [])
        if not isinstance(tables, list):
            raise ConfigError(f"{path}: transfer.{name} must be a list of tables")
        for index, table in enumerate(tables):
            where, need = f"transfer.{name}[{index}]", "name" if name == "zones" else "id"
            if not isinstance(table, dict) or need not in table:
                raise ConfigError(f"{path}: {where} must be a table with {need} = ...")
            lists = LISTS.get(name, ())  # a single string stands for a list of one
            table = {k: [v] if k in lists and isinstance(v, str) else v for k, v in table.items()}
            if name == "keys":
                found[name].append(_key(table, where, path))
            else:
                found[name].append(cls(**_table(cls, table, where, path)))
    ids: dict[str, set[str]] = {}
    for name, items in found.items():
        seen = [getattr(item, "name" if name == "zones" else "id") for item in items]
        twice = sorted({x for x in seen if seen.count(x) > 1})
        _check(not twice, str(path), f"transfer.{name} {', '.join(twice)}", "defined once")
        ids[name] = set(seen)

    def refs(values: tuple[str, ...], kind: str, where: str) -> None:
        missing = [v for v in values if v not in ids[kind]]
        _check(not missing, str(path), where, f"ids of transfer.{kind}; unknown: {missing}")

    remotes = []
    for index, remote in enumerate(found["remotes"]):
        where = f"transfer.remotes[{index}]"
        _check(bool(remote.address), str(path), f"{where}.address", "a list of HOST:PORT")
        refs((remote.key,) if remote.key else (), "keys", f"{where}.key")
        address = tuple(_remote_address(a, f"{path}: {where}.address") for a in remote.address)
        remotes.append(replace(remote, address=address))
    for index, acl in enumerate(found["acls"]):
        where = f"transfer.acls[{index}]"
        refs(acl.key, "keys", f"{where}.key")
        bad = [a for a in acl.action if a not in ACTIONS]
        _check(not bad and bool(acl.action), str(path), f"{where}.action", "transfer and/or notify")
        for network in acl.address:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(f"{path}: {where}.address: {exc}") from exc
    for index, zone in enumerate(found["zones"]):
        refs(zone.acl, "acls", f"transfer.zones[{index}].acl")
        refs(zone.notify, "remotes", f"transfer.zones[{index}].notify")
    settings = _table(TransferConfig, {k: v for k, v in data.items() if k not in kinds},
                      "transfer", path)  # fmt: skip
    config = TransferConfig(**settings, keys=tuple(found["keys"]), remotes=tuple(remotes),
                            acls=tuple(found["acls"]), zones=tuple(found["zones"]))  # fmt: skip
    for key in ("ixfr_max_depth", "ixfr_max_changes"):
        _check(getattr(config, key) >= 0, str(path), f"transfer.{key}", "0 (AXFR only) or more")
    _check(config.notify_timeout > 0, str(path), "transfer.notify_timeout", "positive (seconds)")
    _check(config.notify_retries >= 0, str(path), "transfer.notify_retries", "0 or more")
    return config
