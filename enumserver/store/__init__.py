"""The SQLite store: the one schema and every SQL statement of the project.

``schema`` holds the tables; ``read`` the server's read API (a snapshot of small tables plus
indexed per-number lookups, so start-up does not grow with the number of ported numbers);
``write`` the publishing API (one transaction per change set, serial, journal, audit).
"""

from enumserver.store.read import Catalog, Snapshot, StoreError, StoreReader, connect, store_serials
from enumserver.store.schema import SCHEMA, SCHEMA_VERSION
from enumserver.store.write import Change, StoreWriter

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Catalog",
    "Change",
    "Snapshot",
    "StoreError",
    "StoreReader",
    "StoreWriter",
    "connect",
    "store_serials",
]
