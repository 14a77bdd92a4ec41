"""Handlers for messages that are not plain queries, installed on every engine.

The engine answers plain queries itself; UPDATE, NOTIFY, AXFR/IXFR and TSIG-signed messages go
to handlers registered with ``Engine.register(kind, handler)``. Each feature registers its
handler in :func:`install`, so the listeners (server.py) never change when a feature lands.
"""

from __future__ import annotations

from enumserver import notify
from enumserver.config import Config
from enumserver.engine import Engine
from enumserver.update import UpdateHandler
from enumserver.xfr import Transfers


def install(engine: Engine, config: Config) -> None:
    """Register the handlers of every feature on a new engine (start-up and reload)."""
    UpdateHandler(engine, config.store).install()  # DNS UPDATE and TSIG-signed queries
    transfers = Transfers(engine, config)  # after UPDATE: signed transfers come to us from there
    transfers.install()  # AXFR, IXFR, and queries signed with a [[key]]
    notify.install(engine, config.transfer, transfers, config.reload_interval)
