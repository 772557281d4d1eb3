"""`launchbay db`: databases of an environment, their bindings to apps, backups and restores
(and `db upgrade`, the control plane's own store)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.apps import Confirm, Json, resolve_app
from launchbay.cli.client import Client, environment_id, err
from launchbay.cli.output import confirm_typed, emit, out

db_app = typer.Typer(help="Databases (PostgreSQL, MySQL/MariaDB, Redis): create, bind to an "
                     "app, rotate its password, back up, restore; and `upgrade`, the control "
                     "plane's own store.",
                     no_args_is_help=True)
DbRef = Annotated[str, typer.Argument(metavar="DATABASE", help="Name or id.")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is done.")]


def resolve_db(client: Client, ref: str) -> dict[str, Any]:
    if ref.startswith("db_"):
        return client.get(f"/dependency-resources/{ref}")["dependencyResource"]
    found = [d for d in client.get("/dependency-resources", limit=500)["items"]
             if ref in (d["slug"], d["name"])]
    if len(found) == 1:
        return found[0]
    err.print(f"[red]error:[/] {'no database' if not found else 'more than one database'} "
              f"{ref!r}{'' if not found else '; use its id'}")
    raise typer.Exit(1)


def _until(client: Client, path: str, done: Any, what: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    with out.status(what):
        while True:
            shown = client.get(path)
            if done(shown) or time.monotonic() > deadline:
                return shown
            time.sleep(1)


@db_app.command("create")
def db_create(
    name: Annotated[str, typer.Argument(help="Its name in the environment.")],
    kind: Annotated[str, typer.Option(help="postgres, mysql or redis.")] = "postgres",
    env: Annotated[str, typer.Option(help="PROJECT/ENVIRONMENT or an environment id.")] = "",
    wait: Wait = True, as_json: Json = False,
) -> None:
    """Create a database in an environment (its password is generated and never shown)."""
    client = Client()
    env_id = environment_id(client, env)
    project = client.get(f"/environments/{env_id}")["projectId"]
    db_id = client.post("/dependency-resources/provision", {
        "kind": kind, "projectId": project, "environmentId": env_id, "name": name})["id"]
    shown = client.get(f"/dependency-resources/{db_id}")["dependencyResource"]
    if wait:
        shown = _until(client, f"/dependency-resources/{db_id}", lambda s: s[
            "dependencyResource"]["lifecycleStatus"] in ("ready", "failed"),
            f"starting {kind} {name}")["dependencyResource"]
    if as_json:
        emit(shown, True)
        return
    if shown["lifecycleStatus"] == "failed":
        err.print(f"[red]failed[/]: {shown['providerRealization']['failureMessage']}")
        raise typer.Exit(1)
    out.print(f"{shown['lifecycleStatus']} {db_id}: {shown['connection']['maskedConnection']}")


@db_app.command("list")
def db_list(as_json: Json = False) -> None:
    """List databases with their kind, status and masked URL."""
    items = Client().get("/dependency-resources", limit=500)["items"]
    emit(items if as_json else [{
        "name": d["name"], "kind": d["kind"], "status": d["lifecycleStatus"],
        "url": d["connection"]["maskedConnection"], "id": d["id"]} for d in items], as_json,
        [("DATABASE", "name"), ("KIND", "kind"), ("STATUS", "status"), ("URL", "url"),
         ("ID", "id")])


@db_app.command("bind")
def db_bind(
    database: DbRef,
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    as_name: Annotated[str, typer.Option("--as", help="The URL's variable.")] = "DATABASE_URL",
    discrete: Annotated[bool, typer.Option(help="Also PGHOST, MYSQL_HOST... variables.")] = True,
) -> None:
    """Bind a database to an app: its next deploy gets the URL (and the usual variables)."""
    client = Client()
    resource = resolve_app(client, app_ref)
    client.post(f"/resources/{resource['id']}/dependency-bindings", {
        "dependencyResourceId": resolve_db(client, database)["id"], "targetName": as_name,
        "discreteVariables": discrete})
    out.print(f"bound: {resource['name']} gets {as_name} at its next deploy")


@db_app.command("rotate")
def db_rotate(database: DbRef, app_ref: Annotated[str, typer.Argument(metavar="APP")],
              wait: Wait = True) -> None:
    """Change a database's password: the apps bound to it are redeployed with the new one,
    then the old one is revoked (deployments made before keep what they were given)."""
    client = Client()
    resource, db = resolve_app(client, app_ref), resolve_db(client, database)
    bindings = f"/resources/{resource['id']}/dependency-bindings"
    found = [b for b in client.get(bindings)["items"] if b["dependencyResourceId"] == db["id"]]
    if not found:
        err.print(f"[red]error:[/] {db['name']} is not bound to {resource['name']}")
        raise typer.Exit(1)
    binding = f"{bindings}/{found[0]['id']}"
    rotated = client.post(f"{binding}/secret-rotations",
                          {"confirmHistoricalSnapshotsRemainUnchanged": True})
    if not wait:
        out.print(f"rotation {rotated['id']} requested ({rotated['secretVersion']})")
        return
    shown = _until(client, binding, lambda s: s["binding"]["secretRotation"]["status"] in (
        "completed", "failed"), f"rotating the password of {db['name']}")["binding"][
        "secretRotation"]
    if shown["status"] != "completed":
        err.print(f"[red]rotation {shown['status']}[/]: {shown['reason'] or 'still waiting'}")
        raise typer.Exit(1)
    out.print(f"rotated {db['name']}: {shown['secretVersion']}, the old password is revoked")


@db_app.command("backup")
def db_backup(database: DbRef, wait: Wait = True, as_json: Json = False) -> None:
    """Back up a database now (ready once verified)."""
    client = Client()
    backup_id = client.post(f"/dependency-resources/{resolve_db(client, database)['id']}/"
                            "backups", {})["id"]
    shown = client.get(f"/dependency-resources/backups/{backup_id}")["backup"]
    if wait:
        shown = _until(client, f"/dependency-resources/backups/{backup_id}",
                       lambda s: s["backup"]["status"] != "pending", "backing up")["backup"]
    if as_json:
        emit(shown, True)
        return
    if shown["status"] == "failed":
        err.print(f"[red]backup failed[/] ({shown['phase']}): {shown['failureMessage']}")
        raise typer.Exit(1)
    out.print(f"{shown['status']} {backup_id}: {shown['sizeBytes'] or 0} bytes, "
              f"sha256 {shown['sha256'] or '-'}")


@db_app.command("backups")
def db_backups(database: DbRef, as_json: Json = False) -> None:
    """List a database's backups, newest first."""
    client = Client()
    items = client.get(f"/dependency-resources/{resolve_db(client, database)['id']}/"
                       "backups")["items"]
    emit(items if as_json else [{
        "id": b["id"], "status": b["status"], "reason": b["reason"],
        "size": b["sizeBytes"] or "", "created": b["createdAt"],
        "restored": (b["latestRestoreAttempt"] or {}).get("status", "")} for b in items],
        as_json, [("BACKUP", "id"), ("STATUS", "status"), ("REASON", "reason"),
                  ("BYTES", "size"), ("CREATED", "created"), ("RESTORE", "restored")])


@db_app.command("restore")
def db_restore(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP")],
    confirm: Confirm = None, wait: Wait = True,
) -> None:
    """Restore a backup into its database (after a safety backup of what is there now)."""
    client = Client()
    backup = client.get(f"/dependency-resources/backups/{backup_id}")["backup"]
    db = client.get(f"/dependency-resources/{backup['dependencyResourceId']}")[
        "dependencyResource"]
    confirm_typed("the database's name, whose data will be replaced", db["name"], confirm)
    client.post(f"/dependency-resources/backups/{backup_id}/restore",
                {"acknowledgeDataOverwrite": True, "acknowledgeRuntimeNotRestarted": True})
    if not wait:
        out.print("restore requested")
        return
    shown = _until(client, f"/dependency-resources/backups/{backup_id}", lambda s: (
        s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"),
        f"restoring {db['name']}")["backup"]["latestRestoreAttempt"]
    if shown["status"] != "succeeded":
        err.print(f"[red]restore failed[/]: {shown['failureMessage']}")
        raise typer.Exit(1)
    out.print(f"restored {db['name']} from {backup_id}")


@db_app.command("delete")
def db_delete(database: DbRef, confirm: Confirm = None,
              release_backups: Annotated[Optional[bool], typer.Option(
                  "--release-backups", help="Delete it even though backups are kept (the "
                  "backup files stay).")] = False) -> None:
    """Delete a database with its volume and data (refused while an app is bound to it)."""
    client = Client()
    db = resolve_db(client, database)
    confirm_typed("the database's name", db["name"], confirm)
    client.call("DELETE", f"/dependency-resources/{db['id']}",
                params={"releaseBackups": "true" if release_backups else "false"})
    out.print(f"deleting {db['name']}")
