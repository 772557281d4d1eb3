"""`launchbay projects` and `launchbay envs`: projects, their environments and variables."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from launchbay.cli.apps import Confirm, Json
from launchbay.cli.client import Client, environment_id, err, project_id
from launchbay.cli.output import confirm_typed, emit, out

projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
envs_app = typer.Typer(help="Environments and their variables.", no_args_is_help=True)


PROJECT_COLUMNS = [("ID", "id"), ("NAME", "name"), ("SLUG", "slug"),
                   ("STATUS", "lifecycleStatus"), ("CREATED", "createdAt")]


@projects_app.command("list")
def projects_list(as_json: Json = False) -> None:
    """List projects."""
    emit(Client().get("/projects", limit=500)["items"], as_json, PROJECT_COLUMNS)


@projects_app.command("create")
def projects_create(
    name: str,
    description: Annotated[Optional[str], typer.Option(help="What the project is.")] = None,
    as_json: Json = False,
) -> None:
    """Create a project."""
    emit(Client().post("/projects", {"name": name, "description": description}), as_json)


@projects_app.command("show")
def projects_show(project: str, as_json: Json = False) -> None:
    """Show a project (id, slug or name)."""
    client = Client()
    emit(client.get(f"/projects/{project_id(client, project)}"), as_json)


@projects_app.command("rename")
def projects_rename(project: str, name: str) -> None:
    """Rename a project."""
    client = Client()
    emit(client.post(f"/projects/{project_id(client, project)}/rename", {"name": name}), False)


@projects_app.command("archive")
def projects_archive(project: str,
                     reason: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Archive a project (read-only until restored)."""
    client = Client()
    emit(client.post(f"/projects/{project_id(client, project)}/archive", {"reason": reason}),
         False)


@projects_app.command("restore")
def projects_restore(project: str) -> None:
    """Restore an archived project."""
    client = Client()
    emit(client.post(f"/projects/{project_id(client, project)}/restore"), False)


@projects_app.command("delete")
def projects_delete(project: str, confirm: Confirm = None) -> None:
    """Delete a project with its environments and apps (their containers, deployments and
    routes; volumes are kept): asks for the project's name first."""
    client = Client()
    shown = client.get(f"/projects/{project_id(client, project)}")
    resources = client.get("/resources", projectId=shown["id"], limit=500)["items"]
    envs = client.get("/environments", projectId=shown["id"], limit=500)["items"]
    out.print(f"Project {shown['name']} has {len(envs)} environment(s) and "
              f"{len(resources)} app(s){_listed(resources)}; all are deleted.")
    confirm_typed("the project's name", shown["name"], confirm)
    if shown["lifecycleStatus"] != "archived":
        client.post(f"/projects/{shown['id']}/archive", {"reason": "deleted"})
    client.delete(f"/projects/{shown['id']}", {"confirmation": {"projectId": shown["id"]},
                                               "withResources": True})
    out.print(f"deleted project {shown['name']}")


def _listed(resources: list[dict]) -> str:
    return f" ({', '.join(r['name'] for r in resources)})" if resources else ""


ENV_COLUMNS = [("ID", "id"), ("NAME", "name"), ("KIND", "kind"), ("STATUS", "lifecycleStatus"),
               ("PROJECT", "projectId")]


@envs_app.command("list")
def envs_list(
    project: Annotated[Optional[str], typer.Option(help="Only this project's.")] = None,
    as_json: Json = False,
) -> None:
    """List environments."""
    client = Client()
    pid = project_id(client, project) if project else None
    emit(client.get("/environments", projectId=pid, limit=500)["items"], as_json, ENV_COLUMNS)


@envs_app.command("create")
def envs_create(
    project: str,
    name: str,
    kind: Annotated[str, typer.Option(
        help="production, staging, development, preview...")] = "custom",
    as_json: Json = False,
) -> None:
    """Create an environment in a project."""
    client = Client()
    emit(client.post("/environments", {"projectId": project_id(client, project), "name": name,
                                       "kind": kind}), as_json)


@envs_app.command("show")
def envs_show(environment: str, as_json: Json = False) -> None:
    """Show an environment with its (masked) variables."""
    client = Client()
    env = client.get(f"/environments/{environment_id(client, environment)}")
    if as_json:
        emit(env, True)
        return
    variables = env.pop("maskedVariables")
    emit(env, False)
    emit(variables, False, [("KEY", "key"), ("VALUE", "value"), ("KIND", "kind"),
                            ("EXPOSURE", "exposure")], title="variables")


def _env_action(environment: str, action: str, body: dict | None = None) -> None:
    client = Client()
    emit(client.post(f"/environments/{environment_id(client, environment)}/{action}", body),
         False)


@envs_app.command("delete")
def envs_delete(
    environment: Annotated[str, typer.Argument(metavar="PROJECT/ENVIRONMENT")],
    confirm: Confirm = None,
) -> None:
    """Delete an environment with its variables and apps (their containers, deployments and
    routes; volumes are kept): asks for the environment's name first."""
    client = Client()
    env = client.get(f"/environments/{environment_id(client, environment)}")
    resources = client.get("/resources", environmentId=env["id"], limit=500)["items"]
    out.print(f"Environment {env['name']} has {len(env['maskedVariables'])} variable(s) and "
              f"{len(resources)} app(s){_listed(resources)}; all are deleted.")
    confirm_typed("the environment's name", env["name"], confirm)
    client.delete(f"/environments/{env['id']}", {
        "confirmation": {"environmentName": env["name"]}, "withResources": True})
    out.print(f"deleted environment {env['name']}")


@envs_app.command("clone")
def envs_clone(environment: str, target_name: str) -> None:
    """Clone an environment and its variables."""
    _env_action(environment, "clone", {"targetName": target_name})


@envs_app.command("promote")
def envs_promote(environment: str, target_name: str) -> None:
    """Copy an environment's variables into another (created if missing)."""
    _env_action(environment, "promote", {"targetName": target_name})


@envs_app.command("rename")
def envs_rename(environment: str, name: str) -> None:
    """Rename an environment."""
    _env_action(environment, "rename", {"name": name})


@envs_app.command("lock")
def envs_lock(environment: str, reason: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Lock an environment against changes."""
    _env_action(environment, "lock", {"reason": reason})


@envs_app.command("unlock")
def envs_unlock(environment: str) -> None:
    """Unlock an environment."""
    _env_action(environment, "unlock")


@envs_app.command("archive")
def envs_archive(environment: str,
                 reason: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Archive an environment."""
    _env_action(environment, "archive", {"reason": reason})


Exposure = Annotated[bool, typer.Option("--build-time", help="Build-time instead of runtime.")]


@envs_app.command("set")
def envs_set(
    environment: str,
    assignment: Annotated[str, typer.Argument(metavar="KEY=VALUE")],
    secret: Annotated[bool, typer.Option("--secret", help="Encrypt and mask it.")] = False,
    build_time: Exposure = False,
) -> None:
    """Set a variable."""
    key, sep, value = assignment.partition("=")
    if not sep:
        err.print("[red]error:[/] expected KEY=VALUE")
        raise typer.Exit(2)
    client = Client()
    client.post(f"/environments/{environment_id(client, environment)}/variables", {
        "key": key, "value": value, "kind": "secret" if secret else "plain-config",
        "exposure": "build-time" if build_time else "runtime"})
    out.print(f"set {key}")


@envs_app.command("unset")
def envs_unset(environment: str, key: str, build_time: Exposure = False) -> None:
    """Remove a variable."""
    client = Client()
    client.delete(f"/environments/{environment_id(client, environment)}/variables/{key}",
                  {"exposure": "build-time" if build_time else "runtime"})
    out.print(f"removed {key}")


@envs_app.command("diff")
def envs_diff(environment: str, other: str, as_json: Json = False) -> None:
    """Compare two environments' variables."""
    client = Client()
    rows = client.get(f"/environments/{environment_id(client, environment)}/diff/"
                      f"{environment_id(client, other)}")
    emit(rows, as_json, [("KEY", "key"), ("EXPOSURE", "exposure"), ("CHANGE", "change")])
