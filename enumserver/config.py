"""Server configuration: a TOML file (stdlib tomllib) and flags -> one frozen, validated Config."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Config:
    """Everything `enumserver serve` needs. Keys of the [server] table have these names."""

    store: str = "enum.sqlite"
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    zones: tuple[str, ...] = ()
    edns_max_payload: int = 1232
    cache_size: int = 200_000
    tcp_idle_timeout: float = 10.0
    tcp_backlog: int = 128
    reload_interval: float = 0.25
    log_level: str = "info"

    def with_overrides(self, **values: Any) -> Config:
        """A copy with the given (non-None) values replaced, validated again."""
        changed = {key: value for key, value in values.items() if value not in (None, ())}
        return validate(replace(self, **changed), "flags")


_TYPES: dict[str, type | tuple[type, ...]] = {
    "store": str,
    "listen": list,
    "zones": list,
    "edns_max_payload": int,
    "cache_size": int,
    "tcp_idle_timeout": (int, float),
    "tcp_backlog": int,
    "reload_interval": (int, float),
    "log_level": str,
}


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:5353' or '[::1]:5353' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {text!r} must be HOST:PORT, e.g. 127.0.0.1:5353")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"listen address {text!r}: {host!r} is not an IP address") from exc
    return host, int(port)


def validate(config: Config, source: str) -> Config:
    """Check every value; raise ConfigError naming source and key."""
    for address in config.listen:
        parse_address(address)
    if not 512 <= config.edns_max_payload <= 65535:
        raise ConfigError(f"{source}: server.edns_max_payload must be 512..65535")
    if config.cache_size < 1:
        raise ConfigError(f"{source}: server.cache_size must be positive")
    if config.tcp_idle_timeout <= 0 or config.reload_interval <= 0:
        raise ConfigError(f"{source}: timeouts and intervals must be positive")
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: server.log_level must be debug, info, warning or error")
    return config


def load(path: str | Path | None) -> Config:
    """Read a TOML file ([server] table); unknown keys and wrong types are errors."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - {"server"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    section = data.get("server", {})
    known = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key server.{key}")
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            raise ConfigError(f"{path}: server.{key} has the wrong type ({type(value).__name__})")
        values[key] = tuple(value) if isinstance(value, list) else value
    if "store" in values and not Path(values["store"]).is_absolute():
        values["store"] = str(path.parent / values["store"])
    return validate(Config(**values), str(path))
