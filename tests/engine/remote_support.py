"""A server reached over SSH for the tests: `../shared/fixtures/remote_server.py` makes one on
this machine (a network namespace with its own sshd and Docker engine)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "remote_server.py"


def fixture(*args: str) -> dict[str, Any]:
    """Runs the fixture's command; `up` answers the server's facts."""
    done = subprocess.run([sys.executable, str(FIXTURE), *args], check=True,
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1]) if args[0] == "up" else {}


def server_of_its_own() -> Iterator[dict[str, Any]]:
    """A server for one test (the `remote` fixture), removed afterwards."""
    name = f"lb{uuid.uuid4().hex[:6]}"
    try:
        yield fixture("up", name)
    finally:
        subprocess.run([sys.executable, str(FIXTURE), "down", name], capture_output=True,
                       timeout=120)
