"""`launchbay servers`: servers reached over SSH that apps deploy to, besides the control
plane's own: add (with the host key shown to confirm), list, test, deactivate, rm, and
bootstrap their edge proxy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.apps import Confirm, Json, resolve_server
from launchbay.cli.client import Client, err
from launchbay.cli.output import confirm_typed, emit, out

servers_app = typer.Typer(help="Servers apps deploy to: the control plane's own, and those "
                          "reached over SSH.", no_args_is_help=True)
ServerRef = Annotated[str, typer.Argument(metavar="SERVER", help="Name or id.")]


def _checks(tested: dict[str, Any]) -> None:
    colour = {"healthy": "green", "degraded": "yellow"}.get(tested["status"], "red")
    out.print(f"[{colour}]{tested['status']}[/]")
    for c in tested["checks"]:
        failure = f" ({c['failure']})" if c.get("failure") else ""
        out.print(f"  {c['name']}: {c['status']}{failure}: {c['message']}")


@servers_app.command("add")
def servers_add(
    name: Annotated[str, typer.Argument(help="Its name.")],
    host: Annotated[str, typer.Argument(help="Hostname or IP address.")],
    port: Annotated[int, typer.Option(help="SSH port.")] = 22,
    user: Annotated[str, typer.Option(help="SSH user (in the docker group, or root).")] = "root",
    key: Annotated[Optional[Path], typer.Option(
        help="Private key file to reach it with (default: launchbay makes one and shows its "
             "public key to install).")] = None,
    fingerprint: Annotated[Optional[str], typer.Option(
        help="The host key fingerprint you expect (SHA256:...); asked otherwise.")] = None,
    edge: Annotated[bool, typer.Option(help="Start its edge proxy (Caddy) too.")] = True,
    swarm: Annotated[bool, typer.Option(
        "--swarm", help="It is a manager of a Docker Swarm (the cluster is checked too).")] = False,
) -> None:
    """Register a server reached over SSH: its host key is shown to confirm, then pinned."""
    client = Client()
    body: dict[str, Any] = {"name": f"{name}-key", "username": user}
    if key is not None:
        body["privateKey"] = key.read_text()
    made = client.post("/credentials/ssh", body)
    if key is None:
        out.print("Add this public key to the server's ~/.ssh/authorized_keys (it is shown "
                  "only now):")
        out.print(made["publicKey"].strip())
        if sys.stdin.isatty():
            typer.confirm("Installed?", abort=True)
    draft = {"host": host, "port": port, "username": user, "credentialId": made["id"],
             "providerKey": "docker-swarm" if swarm else "generic-ssh"}
    tested = client.post("/servers/connectivity-tests", {"server": draft})
    _checks(tested)
    presented = tested.get("hostKeyFingerprint")
    if not presented:
        err.print("[red]error:[/] the server could not be reached; fix that and add it again")
        raise typer.Exit(1)
    if fingerprint is None:
        if not sys.stdin.isatty():
            err.print(f"[red]error:[/] pass --fingerprint {presented} once you checked it is "
                      "the server's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it)")
            raise typer.Exit(2)
        typer.confirm(f"The server's host key is {presented}. Is it the one you expect?",
                      abort=True)
        fingerprint = presented
    server = client.post("/servers", {**draft, "name": name,
                                      "hostKeyFingerprint": fingerprint})["id"]
    out.print(f"added {name} ({server}), host key {fingerprint} pinned")
    if edge:
        client.post(f"/servers/{server}/edge-proxy/bootstrap", {})
        out.print("starting its edge proxy (see `launchbay servers list`)")


@servers_app.command("list")
def servers_list(as_json: Json = False) -> None:
    """List servers with their state, last connectivity and edge proxy."""
    items = Client().get("/servers", limit=500)["items"]
    emit(items if as_json else [{
        "name": s["name"], "host": s["host"], "status": s["lifecycleStatus"],
        "reachable": s.get("connectivityStatus"), "edge": s["edgeProxy"]["status"],
        "id": s["id"]} for s in items], as_json,
        [("SERVER", "name"), ("HOST", "host"), ("STATUS", "status"),
         ("CONNECTIVITY", "reachable"), ("EDGE", "edge"), ("ID", "id")])


@servers_app.command("test")
def servers_test(server: ServerRef, as_json: Json = False) -> None:
    """Test SSH (against the pinned host key), Docker and the edge proxy of a server."""
    client = Client()
    tested = client.post(f"/servers/{resolve_server(client, server)['id']}/connectivity-tests")
    if as_json:
        emit(tested, True)
    else:
        _checks(tested)
    if tested["status"] == "unreachable":
        raise typer.Exit(1)


@servers_app.command("deactivate")
def servers_deactivate(server: ServerRef, reason: Annotated[Optional[str], typer.Option(
        help="Why (kept with it).")] = None) -> None:
    """Stop deploying to a server: what runs there keeps running."""
    client = Client()
    found = resolve_server(client, server)
    client.post(f"/servers/{found['id']}/deactivate", {"reason": reason} if reason else {})
    out.print(f"deactivated {found['name']}: it takes no new deployments")


@servers_app.command("rm")
def servers_rm(server: ServerRef, confirm: Confirm = None) -> None:
    """Delete a deactivated server nothing uses any more (its history stays readable)."""
    client = Client()
    found = resolve_server(client, server)
    check = client.get(f"/servers/{found['id']}/delete-check")
    if not check["eligible"]:
        err.print(f"[red]error:[/] {found['name']} cannot be deleted yet: " + ", ".join(
            f"{b['kind']} ({b['count']})" for b in check["blockers"]))
        raise typer.Exit(1)
    confirm_typed("the server's name", found["name"], confirm)
    client.delete(f"/servers/{found['id']}", {"confirmation": {"serverId": found["id"]}})
    out.print(f"deleted {found['name']}")
