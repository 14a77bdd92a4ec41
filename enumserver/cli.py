"""`enumserver serve|check`: configuration in, server up. Nothing else lives here."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import click

from enumserver import config as configuration
from enumserver import logs, server
from enumserver.engine import Engine
from enumserver.store import StoreError, StoreWriter
from enumserver.workers import WorkerError


def _demo_store() -> str:
    """Build the demo store from examples/demo in a fresh temporary directory."""
    from enumserver.demo import load_demo

    path = Path(tempfile.mkdtemp(prefix="enumserver-demo-")) / "demo.sqlite"
    writer = StoreWriter.create(path)
    try:
        load_demo(writer)
    finally:
        writer.close()
    return str(path)


def _config(config_file: str | None, **overrides: object) -> configuration.Config:
    try:
        return configuration.load(config_file).with_overrides(**overrides)
    except configuration.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(package_name="operator-enum")
def main() -> None:
    """Operator-ENUM authoritative DNS server (RFC 6116 NAPTR from a SQLite store)."""


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML configuration file (re-read on SIGHUP).",
)
@click.option("--store", help="Store file (SQLite), made with 'zonetools init'.")
@click.option("--listen", multiple=True, help="HOST:PORT for UDP and TCP; repeat for more.")
@click.option("--zone", "zones", multiple=True, help="Zone name to serve (default: all).")
@click.option("--demo", is_flag=True, help="Serve the embedded demo data set.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Processes on the same addresses (SO_REUSEPORT), one per core (default: 1).",
)
def serve(
    config_file: str | None,
    store: str | None,
    listen: tuple[str, ...],
    zones: tuple[str, ...],
    demo: bool,
    log_level: str | None,
    workers: int | None,
) -> None:
    """Serve NAPTR, SOA and NS answers over UDP and TCP.

    Example: enumserver serve --demo   (then: dig @127.0.0.1 -p 5353
    7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa NAPTR)
    """
    if demo:
        store = _demo_store()
    overrides = {
        "store": store,
        "listen": listen,
        "zones": zones,
        "log_level": log_level,
        "workers": workers,
    }
    cfg = _config(config_file, **overrides)
    logs.setup(cfg.log_level, cfg.log)
    if demo:
        logging.getLogger("enumserver").info("demo store built at %s", cfg.store)

    def reload() -> configuration.Config:
        """SIGHUP: the file again, with the same command-line overrides."""
        return configuration.load(config_file).with_overrides(**overrides)

    try:
        server.run(cfg, reload)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {', '.join(cfg.listen)}: {exc}") from exc


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="TOML configuration file to check.",
)
def check(config_file: str) -> None:
    """Validate a configuration file and the store it names, without serving.

    Example: enumserver check --config examples/enumserver.toml
    """
    cfg = _config(config_file)
    try:
        engine = Engine(cfg.store, cfg.zones, cfg.edns_max_payload, cfg.cache_size)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{config_file}: ok; zones {', '.join(engine.zones)}; listen {', '.join(cfg.listen)}"
    )
