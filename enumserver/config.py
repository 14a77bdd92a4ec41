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
class Config:
    """Everything `enumserver serve` needs. Keys of the [server] table have these names."""

    store: str = "enum.sqlite"
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    zones: tuple[str, ...] = ()
    edns_max_payload: int = 1232
    cache_size: int = 200_000
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
    unknown = set(data) - {"server", *SECTIONS}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    values = _table(Config, data.get("server", {}), "server", path)
    for name, cls in SECTIONS.items():
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
