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


def form_swarm(pair: dict[str, Any]) -> tuple[Any, Any]:
    """Makes a `--swarm-pair` one cluster as its operator would (on the nodes' own engines):
    a manager and a worker; their engines' clients."""
    import docker

    a, b = pair["servers"]
    manager = docker.DockerClient(base_url=f"unix://{a['docker_sock']}")
    worker = docker.DockerClient(base_url=f"unix://{b['docker_sock']}")
    manager.swarm.init(advertise_addr=a["address"], listen_addr=f"{a['address']}:2377")
    worker.swarm.join(remote_addrs=[f"{a['address']}:2377"], advertise_addr=b["address"],
                      listen_addr=f"{b['address']}:2377",
                      join_token=manager.swarm.attrs["JoinTokens"]["Worker"])
    return manager, worker


def overlay_traffic(host: str, port: int = 8080, most: int = 2000) -> list[str]:
    """A client's command (for a container of a `lbtest/*` image on a swarm's overlay network):
    a request to `host` every 50 ms, at most `most`, a line each: `req N: <status line>
    <body's last line>`; a failed one has nothing after the colon."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    return ["sh", "-c", f"i=0; while [ $i -lt {most} ]; do i=$((i+1)); echo \"req $i: $("
            f"{request} | nc -w 2 {host} {port} | sed -n '1p;$p' | tr '\\r\\n' '  ')\"; "
            "sleep 0.05; done"]


def failed_requests(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("req ") and " 200 " not in line]
