"""`launchbay apps`, `deploy`, `logs`, `rollback`, `ps`: applications and their releases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.client import Client, environment_id, err, project_id
from launchbay.cli.output import emit, out

apps_app = typer.Typer(help="Applications (resources).", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TERMINAL = {"succeeded", "failed", "canceled", "rolled-back"}


def split_image(ref: str) -> dict[str, str]:
    """`name[:tag][@digest]` into the source profile's fields (a registry port is not a tag)."""
    name, _, digest = ref.partition("@")
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = name, "latest"
    fields = {"kind": "docker-image", "imageName": repo, "imageTag": tag}
    if digest:
        fields["imageDigest"] = digest
    return fields


def resolve_app(client: Client, ref: str) -> dict[str, Any]:
    """A resource by id, slug or name, or as PROJECT/ENVIRONMENT/APP when names repeat."""
    if ref.startswith("res_"):
        return client.get(f"/resources/{ref}")["resource"]
    parts = ref.split("/")
    candidates = [r for r in client.get("/resources", limit=500)["items"]
                  if parts[-1] in (r["slug"], r["name"])]
    if len(parts) == 3:
        projects = {p["id"]: p for p in client.get("/projects", limit=500)["items"]}
        envs = {e["id"]: e for e in client.get("/environments", limit=500)["items"]}
        candidates = [r for r in candidates
                      if parts[0] in (projects[r["projectId"]]["slug"],
                                      projects[r["projectId"]]["name"])
                      and parts[1] == envs[r["environmentId"]]["name"]]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        err.print(f"[red]error:[/] no app {ref!r}")
    else:
        err.print(f"[red]error:[/] {ref!r} is ambiguous; use PROJECT/ENVIRONMENT/APP or an id")
    raise typer.Exit(1)


def follow(client: Client, deployment_id: str, quiet: bool = False) -> dict[str, Any]:
    """Prints a deployment's progress live until it ends; returns the final deployment."""
    with out.status(f"deployment {deployment_id}: waiting for the engine") as status:
        for message in client.stream(f"/deployments/{deployment_id}/events/stream"):
            if message.get("event") == "done":
                break
            data = message["data"]
            event = data["event"]
            if data["kind"] == "event":
                status.update(f"deployment {deployment_id}: {event['summary']}")
                if not quiet:
                    out.print(f"[bold]{event['phase']:>8}[/]  {event['summary']}")
            elif not quiet:
                style = "red" if event["level"] == "error" else "dim"
                out.print(f"[{style}]{event['phase']:>8}  {event['summary']}[/]",
                          highlight=False, markup=True)
    return client.get(f"/deployments/{deployment_id}")["deployment"]


def finish(deployment: dict[str, Any]) -> None:
    if deployment["status"] == "succeeded":
        out.print(f"[green]deployed[/] {deployment['id']}: {deployment.get('url') or 'running'}")
        return
    err.print(f"[red]deployment {deployment['status']}[/]: "
              f"{deployment.get('errorMessage') or deployment.get('errorCode') or ''}")
    raise typer.Exit(1)


@apps_app.command("create")
def apps_create(
    name: str,
    project: Annotated[str, typer.Option(help="Project (id, slug or name).")],
    env: Annotated[str, typer.Option("--env", help="Environment name in the project.")],
    image: Annotated[Optional[str], typer.Option(help="Image to run, e.g. nginx:1.27.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port the app listens on.")] = None,
    as_json: Json = False,
) -> None:
    """Create an app in a project's environment."""

    client = Client()
    pid = project_id(client, project)
    body: dict[str, Any] = {"projectId": pid, "environmentId": environment_id(
        client, f"{pid}/{env}"), "name": name}
    if image:
        body["source"] = split_image(image)
    if port:
        body["networkProfile"] = {"internalPort": port}
    emit(client.post("/resources", body), as_json)


APP_COLUMNS = [("ID", "id"), ("NAME", "name"), ("ENVIRONMENT", "environmentId"),
               ("LAST DEPLOYMENT", "lastDeploymentStatus"), ("DEPLOYMENTS", "deploymentCount")]


@apps_app.command("list")
def apps_list(as_json: Json = False) -> None:
    """List apps."""
    emit(Client().get("/resources", limit=500)["items"], as_json, APP_COLUMNS)


@apps_app.command("show")
def apps_show(app_ref: Annotated[str, typer.Argument(metavar="APP")],
              as_json: Json = False) -> None:
    """Show an app, its profiles and where it answers."""
    client = Client()
    resource = resolve_app(client, app_ref)
    shown = client.get(f"/resources/{resource['id']}", includeLatestDeployment="true",
                       includeAccessSummary="true")
    if as_json:
        emit(shown, True)
        return
    route = (shown.get("accessSummary") or {}).get("latestGeneratedAccessRoute") or {}
    latest = shown.get("latestDeployment") or {}
    emit({"id": resource["id"], "name": resource["name"], "image": (shown.get("source") or {})
          .get("imageName"), "port": shown["networkProfile"].get("internalPort"),
          "url": route.get("url"), "latestDeployment": latest.get("id"),
          "status": latest.get("status")}, False)


def app_for_folder(client: Client, folder: Path, name: str | None, project: str | None,
                   env: str) -> dict[str, Any]:
    """The app a folder deploys to: found by name, or created (with its project and
    environment) the first time, listening on the port detection suggests."""
    from launchbay.engine.build.runtime_detection import detect
    from launchbay.slugs import slugify

    slug = slugify(name or folder.resolve().name)
    found = [r for r in client.get("/resources", limit=500)["items"] if r["slug"] == slug]
    if len(found) == 1:
        return found[0]
    projects = {p["slug"]: p["id"] for p in client.get("/projects", limit=500)["items"]}
    pid = project_id(client, project) if project else projects.get(slug) or client.post(
        "/projects", {"name": slug})["id"]
    envs = {e["name"]: e["id"] for e in client.get("/environments", projectId=pid,
                                                   limit=500)["items"]}
    eid = envs.get(env) or client.post("/environments", {"projectId": pid, "name": env,
                                                         "kind": "production"})["id"]
    port = detect(folder).port or 8080
    created = client.post("/resources", {"projectId": pid, "environmentId": eid, "name": slug,
                                         "networkProfile": {"internalPort": port}})
    out.print(f"created app {slug} (port {port})")
    return client.get(f"/resources/{created['id']}")["resource"]


def deploy(
    app_ref: Annotated[str, typer.Argument(metavar="APP|FOLDER")],
    image: Annotated[Optional[str], typer.Option(help="Deploy this image (and keep it).")] = None,
    app_name: Annotated[Optional[str], typer.Option(
        "--app", help="With a folder: the app to deploy it to (default: the folder's name).")
    ] = None,
    project: Annotated[Optional[str], typer.Option(help="With a folder: its project.")] = None,
    env: Annotated[str, typer.Option(help="With a folder: its environment.")] = "production",
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Do not follow.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the outcome.")] = False,
) -> None:
    """Deploy an app (or a folder of source, built on the server) and follow it live; exits
    non-zero if the deployment fails."""
    client = Client()
    folder = Path(app_ref)
    if not folder.is_dir() and app_ref.startswith((".", "/", "~")):  # a path, not an app
        err.print(f"[red]error:[/] no folder {app_ref!r} (to deploy an app, name it: "
                  "APP or PROJECT/ENVIRONMENT/APP)")
        raise typer.Exit(1)
    if folder.is_dir():
        from launchbay.cli.packing import pack

        resource = app_for_folder(client, folder, app_name, project, env)
        archive = pack(folder)
        client.upload(f"/resources/{resource['id']}/source/archive", archive, "application/gzip")
        out.print(f"uploaded {len(archive) // 1024 + 1} KB of source")
    else:
        resource = resolve_app(client, app_ref)
    if image:
        client.post(f"/resources/{resource['id']}/source", {"source": split_image(image)})
    deployment = client.post("/deployments", {
        "projectId": resource["projectId"], "environmentId": resource["environmentId"],
        "resourceId": resource["id"]})["id"]
    if detach:
        out.print(deployment)
        return
    finish(follow(client, deployment, quiet))


def logs(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    follow_: Annotated[bool, typer.Option("--follow", "-f",
                                          help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option(help="Lines from the end to start with.")] = 100,
) -> None:
    """Print an app's runtime logs."""
    client = Client()
    resource = resolve_app(client, app_ref)
    if not follow_:
        for line in client.get(f"/resources/{resource['id']}/runtime-logs", tailLines=tail)["logs"]:
            print(line["message"])
        return
    for message in client.stream(f"/resources/{resource['id']}/runtime-logs/stream",
                                 tailLines=tail):
        if message.get("event") == "done":
            break
        print(message["data"]["message"], flush=True)


def rollback(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    deployment: Annotated[Optional[str], typer.Argument(
        help="The release to serve again (default: the one before the current).")] = None,
) -> None:
    """Serve an earlier release of an app again."""
    client = Client()
    resource = resolve_app(client, app_ref)
    current = resource.get("currentDeploymentId") or resource.get("lastDeploymentId")
    if not current:
        err.print("[red]error:[/] the app has never been deployed")
        raise typer.Exit(1)
    new = client.post(f"/deployments/{current}/rollback",
                      {"rollbackCandidateDeploymentId": deployment} if deployment else {})["id"]
    finish(follow(client, new))


def ps(as_json: Json = False) -> None:
    """What runs: every app with its current release and URL."""
    client = Client()
    rows = []
    for r in client.get("/resources", limit=500)["items"]:
        shown = client.get(f"/resources/{r['id']}", includeAccessSummary="true")
        route = (shown.get("accessSummary") or {}).get("latestGeneratedAccessRoute") or {}
        rows.append({"app": r["slug"], "id": r["id"], "release": r.get("currentDeploymentId"),
                     "lastDeployment": r.get("lastDeploymentStatus"), "url": route.get("url")})
    emit(rows, as_json, [("APP", "app"), ("RELEASE", "release"),
                         ("LAST DEPLOYMENT", "lastDeployment"), ("URL", "url")])
