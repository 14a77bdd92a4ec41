"""The parts of bench/run: data sets, servers, dnsperf runs and the report."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failure that ends the run with a clear message and exit status 1."""
