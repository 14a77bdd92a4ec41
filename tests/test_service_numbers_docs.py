"""docs/service-numbers.md, run as written: the walkthrough's zonetools and dig commands against a
server whose clock stands at Friday 27 March 2026 15:59:30 EET, and the outputs it shows."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from enumserver.store import store_serials
from enumserver.store.stats import StatsReader, stats_path
from tests.conftest import APEX, ROOT, RunningServer, ServerFactory, dig, write_config
from zonetools.cli import main as zonetools

DOC = ROOT / "docs" / "service-numbers.md"
FAKE_TIME = "2026-03-27T13:59:30Z"


def walkthrough() -> tuple[list[list[str]], list[str]]:
    """The commands of the walkthrough block, and the text blocks shown after it."""
    text = DOC.read_text().split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    block = text.split("```sh", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines() if line[:1].isalpha()]
    shown = [part.split("```", 1)[0] for part in text.split("```text\n")[1:]]
    return commands, shown


def lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def settle(server: RunningServer, store: Path, within: float = 2.0) -> None:
    """Wait until the server serves the store's newest serial."""
    deadline = time.monotonic() + within
    serial = max(store_serials(store).values())
    while server.query(APEX, "SOA").answer[0][0].serial != serial:
        assert time.monotonic() < deadline, "the server did not pick up the change"
        time.sleep(0.05)


def counted(store: Path, total: int, within: float = 3.0) -> None:
    """Wait until the server has flushed ``total`` counted queries to the stats file."""
    deadline = time.monotonic() + within
    while True:
        if stats_path(store).exists():
            reader = StatsReader(stats_path(store))
            found = sum(n for _, n in reader.totals("number", None, "TY07", 0, 2e9))
            reader.close()
            if found >= total:
                return
        assert time.monotonic() < deadline, "query counts not flushed"
        time.sleep(0.1)


def test_walkthrough_runs_as_documented(
    server_factory: ServerFactory,
    writable_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # the example file is named relative to the repository
    config = write_config(tmp_path, "[stats]\nflush_interval = 0.2\n")
    running = server_factory(
        writable_store, "--config", str(config), env={"ENUMSERVER_FAKE_TIME": FAKE_TIME}
    )
    commands, shown = walkthrough()
    assert len(commands) >= 10 and len(shown) == 3
    outputs: list[str] = []
    digs = 0
    for args in commands:
        if args[0] == "dig":
            assert args[1:4] == ["@127.0.0.1", "-p", "5353"], args
            outputs.append(dig(running, *args[4:]).text)
            digs += 1
            continue
        assert args[0] == "zonetools", args
        if args[1] == "stats":
            counted(writable_store, digs)
        result = CliRunner().invoke(zonetools, ["--store", str(writable_store), *args[1:]])
        assert result.exit_code == 0, f"{' '.join(args)}\n{result.output}"
        outputs.append(result.output)
        settle(running, writable_store)
    first_dig = next(out for args, out in zip(commands, outputs, strict=True) if args[0] == "dig")
    show = outputs[[args[1:3] for args in commands].index(["schedule", "show"])]
    operator = outputs[[args[1:3] for args in commands].index(["stats", "--operator"])]
    for text, output in zip(shown, (first_dig, show, operator), strict=True):
        expected, got = lines(text), lines(output)
        assert all(line in got for line in expected), (expected, output)
