"""`launchbay db` against the real engine: create, bind, rotate, back up, restore, delete."""

from __future__ import annotations

from typing import Any

import pytest
from database_support import rows, until

from launchbay.settings import Settings

import images
from docker_support import body, deployed
from support import Api, make_app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rotations moved on every second (a rotation waits for the periodic job)."""
    return settings.model_copy(update={"backup_schedule_seconds": 1.0})


def test_the_db_commands(api: Api, cli: Any) -> None:
    """`launchbay db create|list|bind|rotate|backup|backups|restore|delete` on the real engine."""
    ids = make_app(api, images.ensure_app("postgres"), name="shop")
    project = api.get(f"/projects/{ids['project']}")["slug"]
    created = cli("db", "create", "orders", "--env", f"{project}/production")
    assert created.startswith("ready db_") and ":****@" in created
    assert "orders" in cli("db", "list")
    cli("db", "bind", "orders", "shop")
    url = f"http://127.0.0.1:{deployed(api, ids)['hostPort']}"
    assert body(f"{url}/cgi-bin/write?7").strip() == "ok"
    backup = cli("db", "backup", "orders").split()[1].rstrip(":")
    assert backup.startswith("dbk_") and backup in cli("db", "backups", "orders")
    assert body(f"{url}/cgi-bin/write?8").strip() == "ok"
    cli("db", "restore", backup, "--confirm", "wrong", ok=False)
    assert rows(url) == "7,8"
    assert "restored orders" in cli("db", "restore", backup, "--confirm", "orders")
    assert rows(url) == "7"
    assert "the old password is revoked" in cli("db", "rotate", "orders", "shop")
    latest = api.get("/deployments", params={"resourceId": ids["resource"]})["items"][0]
    url = f"http://127.0.0.1:{latest['hostPort']}"  # the redeploy, with the new password
    assert latest["triggerKind"] == "redeploy" and rows(url) == "7"
    assert "in use" in cli("db", "delete", "orders", "--confirm", "orders", ok=False)
    bindings = f"/resources/{ids['resource']}/dependency-bindings"
    api.ok("DELETE", f"{bindings}/{api.get(bindings)['items'][0]['id']}")
    cli("db", "delete", "orders", "--confirm", "orders", "--release-backups")
    until(api, "/dependency-resources", lambda s: s["items"] == [], timeout=60)
