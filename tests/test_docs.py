"""The README's commands, run as written (against a test port instead of 5353)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningServer, ServerFactory, dig

ROOT = Path(__file__).resolve().parents[1]


def readme_digs() -> list[tuple[str, list[str]]]:
    """(comment, dig arguments) for each dig in the README's 'Try it' block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Try it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    pairs, comment = [], ""
    for line in block.strip().splitlines():
        if line.startswith("#"):
            comment = line
        else:
            args = shlex.split(line)
            assert args[:4] == ["dig", "@127.0.0.1", "-p", "5353"], line
            pairs.append((comment, args[4:]))
    return pairs


def test_readme_first_lines_give_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    head = "\n".join(lines[:10])
    assert "enumserver serve --demo" in head and "scripts/test" in head


def test_readme_dig_examples_answer_as_described(server: RunningServer) -> None:
    pairs = readme_digs()
    assert len(pairs) >= 5
    for comment, args in pairs:
        result = dig(server, *[a for a in args if a != "+norec"])
        if "NXDOMAIN" in comment:
            assert result.status == "NXDOMAIN" and result.authority, comment
        elif "empty non-terminal" in comment:
            assert result.status == "NOERROR" and not result.answer and result.authority, comment
        elif "NS of" in comment:
            assert "aa" not in result.flags and result.authority and result.additional, comment
            ty = re.search(r"TY(\d\d)'s Tier2", comment)
            assert ty and f"op{ty.group(1)}.example.fi." in result.authority[0], comment
        else:
            assert result.status == "NOERROR" and result.answer and "aa" in result.flags, comment


def publishing_commands() -> list[list[str]]:
    """The zonetools commands of docs/publishing.md's workflow block, in order."""
    text = (ROOT / "docs" / "publishing.md").read_text()
    block = text.split("## The workflow", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("zonetools ")]


def test_publishing_workflow_commands_run_as_documented(
    server_factory: ServerFactory, writable_store: Path
) -> None:
    running = server_factory(writable_store)
    commands = publishing_commands()
    assert len(commands) >= 15
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "zonetools", "--store", str(writable_store), *args[1:]],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    # the change set and the NP master import are served: +358501234567 went to TY13, then
    # the NP master file moved +358501234568 to TY09
    answer = running.query("7.6.5.4.3.2.1.0.5.8.5.3.e164.arpa.")
    assert "ims.op13.example.fi" in answer.answer[0].to_text()
    reception = running.query("0.0.1.0.0.0.9.7.4.8.5.3.e164.arpa.")
    assert "reception@pbx.op13.example.fi" in reception.answer[0].to_text()
