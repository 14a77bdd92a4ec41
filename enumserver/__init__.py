"""operator-enum: authoritative Operator-ENUM DNS server on a SQLite store."""

__version__ = "0.1.0"
