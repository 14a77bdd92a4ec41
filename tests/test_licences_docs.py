"""docs/licences.md's workflow, run as written: real zonetools, nsupdate, dig and kdig."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerFactory, dig

ROOT = Path(__file__).resolve().parents[1]


def workflow() -> str:
    """The shell block of docs/licences.md's workflow section."""
    text = (ROOT / "docs" / "licences.md").read_text()
    return text.split("## The workflow", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


def test_licence_workflow_runs_as_documented(
    server_factory: ServerFactory, writable_store: Path, tmp_path: Path
) -> None:
    for tool in ("nsupdate", "dig", "kdig"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/test")
    server = server_factory(writable_store)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    script = workflow().replace("5353", str(server.port))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "ENUM_STORE": str(writable_store), "ENUM_WHO": "registry",
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "LC_ALL": "C"}  # fmt: skip
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "issued TY13-T1 (TY13, test): key ty13-t1-k1" in out
    assert 'NAPTR\t10 100 "u" "E2U+sip" "!^.*$!sip:desk@pbx.op13.example.fi!" .' in out
    assert out.count("refused, as expected") == 3
    assert out.count("update failed: REFUSED") == 2 and "NOTAUTH(BADKEY)" in out
    assert "2 accepted, 0 refused" in out and "ns3.tier2.op13.example.fi." in out
    assert "ty13-p2-k1.         \t0\tANY\tTSIG\thmac-sha256." in out  # kdig: a signed answer
    assert "WARNING" not in out  # (kdig warns when a TSIG does not verify)
    assert re.search(r"TY13 +dns update +TY13-P1", out)  # the audit trail names the licence
    assert "status: revoked" in out and "key ty13-p2-k2" in out
    assert "joining fee" in out and "Tier2 server change" in out
    sales = dig(server, "0.0.2.0.0.0.9.7.4.8.5.3.e164.arpa.", "NAPTR").answer
    assert sales and "sales@pbx.op13.example.fi" in sales[0]
