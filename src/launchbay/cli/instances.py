"""`launchbay envs templates|run|instances|extend|delete`: ephemeral environments made from
templates (what the Dploy face serves), as the signed-in user."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from launchbay.cli.apps import Json
from launchbay.cli.client import Client, err
from launchbay.cli.output import emit, out

COLUMNS = [("TEMPLATE", "name"), ("UUID", "uuid"), ("STATUS", "status"), ("URL", "url"),
           ("EXPIRES", "expiresAt"), ("OWNER", "owner"), ("EXTENDED", "extendCount")]


def templates(as_json: Json = False) -> None:
    """The templates you may run."""
    emit(Client().get("/instance-templates")["items"], as_json,
         [("NAME", "name"), ("DESCRIPTION", "description"), ("TTL", "ttl"),
          ("EXTENDS", "maxExtends")])


def run(
    template: str,
    parameter: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", metavar="NAME=VALUE", help="A template parameter (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is healthy.")] = True,
    as_json: Json = False,
) -> None:
    """Your environment of TEMPLATE: the one you have, or a new one."""
    given = dict(p.partition("=")[::2] for p in parameter or [])
    client = Client()
    shown = client.post("/instances", {"template": template, "parameters": given})
    while wait and shown["status"] in ("pending", "Progressing"):
        time.sleep(1)
        shown = client.get(f"/instances/{template}")
    emit(shown, as_json)
    if shown["status"] == "Degraded":
        err.print("[red]error:[/] it did not start: see `launchbay logs` of its resource")
        raise typer.Exit(1)


def instances(as_json: Json = False) -> None:
    """Your ephemeral environments and your team's."""
    listed = Client().get("/instances")
    if as_json:
        emit(listed, True)
        return
    emit(listed["environments"], False, COLUMNS)
    out.print(f"{listed['count']} of {listed['limit']} allowed")


def extend(template: str) -> None:
    """Push your environment's expiry back by the template's extension."""
    expires = Client().post(f"/instances/{template}/extend")["expiresAt"]
    out.print(f"{template} now expires at {expires}")


def delete(template: str, yes: Annotated[bool, typer.Option("--yes")] = False) -> None:
    """Delete your environment of TEMPLATE (its URL at once, then its containers)."""
    if not yes:
        typer.confirm(f"Delete your {template} environment?", abort=True)
    Client().delete(f"/instances/{template}")
    out.print(f"deleted your {template} environment")
