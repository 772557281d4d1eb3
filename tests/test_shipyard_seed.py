"""Seed 002 (`../shared/seeds/002_*.txt`, Shipyard's deployments API) against the face: every
endpoint it lists is served, and every path, field name and status value it names is used by
the face's tests (tests/test_shipyard_face.py and tests/engine/test_shipyard.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Match

from launchbay.http.compat import shipyard

HERE = Path(__file__).resolve().parent
SEED = HERE.parents[1] / "shared" / "seeds" / "002_13daeaae815d3551.txt"
TESTS = (HERE / "test_shipyard_face.py", HERE / "engine" / "test_shipyard.py")
TYPES = {"string", "boolean", "integer", "object", "array"}


def seed() -> tuple[list[tuple[str, str]], set[str], list[str]]:
    """(endpoints, field names, status values) the seed names."""
    text = SEED.read_text()
    endpoints = re.findall(r"^(GET|POST|PUT|DELETE) (/api/\S+)$", text, re.M)
    lines = [line.strip() for line in text.splitlines()]
    fields = {line for line, kind in zip(lines, lines[1:], strict=False)
              if kind in TYPES and re.fullmatch(r"[a-z][A-Za-z_]*", line)}
    # The examples' fields (not the variables they set, which are the user's).
    fields |= set(re.findall(r'^\s+"([a-z][A-Za-z_]*)":', text, re.M))
    statuses = re.search(r"Deployment status: (.+)", text).group(1).split(", ")  # type: ignore[union-attr]
    return endpoints, fields, statuses


@pytest.fixture(scope="module")
def named() -> tuple[list[tuple[str, str]], set[str], list[str]]:
    if not SEED.exists():
        pytest.fail(f"{SEED} is missing: the shared folder sits beside the checkout")
    return seed()


def test_the_seed_is_read_whole(named):
    endpoints, fields, statuses = named
    assert len(endpoints) == 15
    assert statuses == ["Pending", "Provisioning", "Ready", "Error", "Deleting"]
    assert {"deployment_name", "configData", "cpuUsage", "canDelete", "revisions",
            "strategy", "error", "host"} <= fields


def test_every_endpoint_of_the_seed_is_served(named):
    face = shipyard.create(None)  # type: ignore[arg-type]  (routes only: nothing is called)
    for method, path in named[0]:
        concrete = re.sub(r"\{[^}]+\}", "abc123xyz7", path.split("?")[0])
        scope = {"type": "http", "method": method, "path": concrete}
        matches = [route for route in face.routes
                   if route.matches(scope)[0] == Match.FULL]  # type: ignore[attr-defined]
        assert matches, (method, path)


def test_every_path_field_and_status_is_used_by_a_test(named):
    endpoints, fields, statuses = named
    used = "\n".join(path.read_text() for path in TESTS)
    for _, path in endpoints:
        tail = path.split("?")[0].removeprefix("/api/deployments").replace("{name}", "")
        assert tail.strip("/") in used, path
    for name in fields | set(statuses):
        assert f'"{name}"' in used or f"'{name}'" in used, name
