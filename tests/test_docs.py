"""The README's commands, run as written (against a test port instead of 5353)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.conftest import RunningServer, dig

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
