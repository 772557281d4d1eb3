"""`launchbay apps`, `deploy`, `logs`, `rollback`, `ps`: applications and their releases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.client import Client, environment_id, err, project_id
from launchbay.cli.output import confirm_typed, emit, out

apps_app = typer.Typer(help="Applications (resources).", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Server = Annotated[Optional[str], typer.Option(
    help="The server it runs on (name or id; default: the control plane's own).")]
Confirm = Annotated[Optional[str], typer.Option(
    metavar="NAME", help="Confirm without being asked (scripts): the name being deleted.")]
AppRef = Annotated[str, typer.Argument(metavar="APP", help="Name, PROJECT/ENVIRONMENT/APP or id.")]
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
    errors: list[str] = []  # said once: the final event does not repeat them
    with out.status(f"deployment {deployment_id}: waiting for the engine") as status:
        for message in client.stream(f"/deployments/{deployment_id}/events/stream"):
            if message.get("event") == "done":
                break
            data = message["data"]
            event = data["event"]
            summary = event["summary"]
            if data["kind"] == "event":
                status.update(f"deployment {deployment_id}: {summary}")
                for said in errors:
                    if summary.endswith(": " + said):
                        summary = summary.removesuffix(": " + said) + " (see above)"
                if not quiet:
                    out.print(f"[bold]{event['phase']:>8}[/]  {summary}", markup=True,
                              highlight=False)
            elif not quiet:
                if event["level"] == "error":
                    errors.append(summary)
                style = "red" if event["level"] == "error" else "dim"
                out.print(f"[{style}]{event['phase']:>8}  {summary}[/]",
                          highlight=False, markup=True)
    return client.get(f"/deployments/{deployment_id}")["deployment"]


def finish(deployment: dict[str, Any], followed: bool) -> None:
    """The outcome, last: the URL, or why it failed (unless the followed log just said it)."""
    if deployment["status"] == "succeeded":
        out.print(f"[green]deployed[/] {deployment['id']}: {deployment.get('url') or 'running'}")
        return
    why = "" if followed else \
        f": {deployment.get('errorMessage') or deployment.get('errorCode') or ''}"
    err.print(f"[red]deployment {deployment['status']}[/] ({deployment['id']}){why}")
    raise typer.Exit(1)


@apps_app.command("create")
def apps_create(
    name: str,
    project: Annotated[str, typer.Option(help="Project (id, slug or name).")],
    env: Annotated[str, typer.Option("--env", help="Environment name in the project.")],
    image: Annotated[Optional[str], typer.Option(help="Image to run, e.g. nginx:1.27.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port the app listens on.")] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Create an app in a project's environment."""

    client = Client()
    pid = project_id(client, project)
    body: dict[str, Any] = {"projectId": pid, "environmentId": environment_id(
        client, f"{pid}/{env}"), "name": name}
    if server:
        body["serverId"] = resolve_server(client, server)["id"]
    if image:
        body["source"] = split_image(image)
    if port:
        body["networkProfile"] = {"internalPort": port}
    emit(client.post("/resources", body), as_json)


def status(r: dict[str, Any]) -> str:
    """What an app is doing: the release serving it, and the last deploy when that one did not
    take over (it failed, or it is still under way)."""
    current, last = r.get("currentDeploymentId"), r.get("lastDeploymentId")
    if not current:
        return r.get("lastDeploymentStatus") or "not deployed"
    now = "stopped" if r.get("runtimeState") == "stopped" else "serving"
    if last and last != current:
        return f"{now}; last deploy {r['lastDeploymentStatus']}"
    return now


def _names(client: Client) -> tuple[dict[str, str], dict[str, str]]:
    """{project id: name} and {environment id: name}, for lists that name where apps are."""
    projects = {p["id"]: p["name"] for p in client.get("/projects", limit=500)["items"]}
    envs = {e["id"]: e["name"] for e in client.get("/environments", limit=500)["items"]}
    return projects, envs


@apps_app.command("list")
def apps_list(as_json: Json = False) -> None:
    """List apps with their project, environment and status."""
    client = Client()
    items = client.get("/resources", limit=500)["items"]
    if as_json:
        emit(items, True)
        return
    projects, envs = _names(client)
    emit([{"name": r["name"], "project": projects.get(r["projectId"], r["projectId"]),
           "env": envs.get(r["environmentId"], r["environmentId"]), "status": status(r),
           "deployments": r["deploymentCount"], "id": r["id"]} for r in items], False,
         [("APP", "name"), ("PROJECT", "project"), ("ENVIRONMENT", "env"), ("STATUS", "status"),
          ("DEPLOYMENTS", "deployments"), ("ID", "id")])


@apps_app.command("show")
def apps_show(app_ref: AppRef, as_json: Json = False) -> None:
    """Show an app: its image, the release serving it, the last deploy and where it answers."""
    client = Client()
    resource = resolve_app(client, app_ref)
    shown = client.get(f"/resources/{resource['id']}", includeLatestDeployment="true",
                       includeAccessSummary="true")
    if as_json:
        emit(shown, True)
        return
    route = (shown.get("accessSummary") or {}).get("latestGeneratedAccessRoute") or {}
    r = shown["resource"]
    rows = {"id": r["id"], "name": r["name"], "image": _source_text(shown.get("source")),
            "port": shown["networkProfile"].get("internalPort"), "url": route.get("url"),
            "status": status(r), "serving": r.get("currentDeploymentId")}
    if r.get("lastDeploymentId") != r.get("currentDeploymentId"):
        last = client.get(f"/deployments/{r['lastDeploymentId']}")["deployment"]
        rows["lastDeployment"] = f"{last['id']} {last['status']}" + (
            f": {last['errorMessage']}" if last.get("errorMessage") else "")
    emit(rows, False)


def _source_text(source: dict[str, Any] | None) -> str | None:
    if not source:
        return None
    if source.get("imageName"):
        return f"{source['imageName']}:{source.get('imageTag') or 'latest'}"
    return source.get("displayName") or source.get("locator")


def _control(app_ref: str, action: str, done: str) -> None:
    """Asks the engine to stop, start or restart the app's current release and waits until
    it has (or has failed to)."""
    client = Client()
    resource = resolve_app(client, app_ref)
    _wait_for(client, client.post(f"/resources/{resource['id']}/runtime/{action}")[
        "runtimeControlAttemptId"], action)
    out.print(f"{done} {resource['name']}")


def _wait_for(client: Client, work_id: str, action: str) -> None:
    """Waits for a runtime control's work item; exits 1 if it did not succeed."""
    deadline = time.monotonic() + 120
    with out.status(action):
        while (work := client.get(f"/operator-work/{work_id}")["item"])["status"] in (
                "pending", "running", "retry-scheduled") and time.monotonic() < deadline:
            time.sleep(0.3)
    if work["status"] != "succeeded":
        err.print(f"[red]error:[/] {action} {work['status']}: "
                  f"{work.get('errorMessage') or 'still waiting for the engine'}")
        raise typer.Exit(1)


@apps_app.command("stop")
def apps_stop(app_ref: AppRef) -> None:
    """Stop an app's running release (its URL answers 503 until it starts again)."""
    _control(app_ref, "stop", "stopped")


@apps_app.command("start")
def apps_start(app_ref: AppRef) -> None:
    """Start an app's stopped release again."""
    _control(app_ref, "start", "started")


@apps_app.command("restart")
def apps_restart(app_ref: AppRef) -> None:
    """Restart an app's running release (same image, same configuration)."""
    _control(app_ref, "restart", "restarted")


@apps_app.command("scale")
def apps_scale(app_ref: AppRef,
               replicas: Annotated[int, typer.Argument(min=1, max=100)]) -> None:
    """Set how many replicas of an app run (on a Docker Swarm server; a server runs one)."""
    client = Client()
    resource = resolve_app(client, app_ref)
    scaled = client.post(f"/resources/{resource['id']}/scale", {"replicas": replicas})
    if scaled["runtimeControl"]:
        _wait_for(client, scaled["runtimeControl"]["runtimeControlAttemptId"], "scale")
    out.print(f"{resource['name']} runs {replicas} replica{'s' if replicas > 1 else ''}"
              + ("" if scaled["runtimeControl"] else " from its first deploy"))


@apps_app.command("delete")
def apps_delete(app_ref: AppRef, confirm: Confirm = None) -> None:
    """Delete an app with its containers, deployments, domains and routes (volumes are
    kept): asks for the app's name first."""
    client = Client()
    resource = resolve_app(client, app_ref)
    out.print(f"App {resource['name']} has {resource['deploymentCount']} deployment(s); "
              "they are deleted with its containers, domains and routes.")
    confirm_typed("the app's name", resource["name"], confirm)
    client.delete(f"/resources/{resource['id']}",
                  {"confirmation": {"resourceSlug": resource["slug"]}})
    out.print(f"deleted app {resource['name']}")


def resolve_server(client: Client, ref: str) -> dict[str, Any]:
    """The server `ref` names (its name or id)."""
    found = [s for s in client.get("/servers", limit=500)["items"] if ref in (s["id"], s["name"])]
    if len(found) == 1:
        return found[0]
    err.print(f"[red]error:[/] {'no server' if not found else 'more than one server'} {ref!r}"
              f"{'' if not found else '; use its id'}")
    raise typer.Exit(1)


def app_for_folder(client: Client, folder: Path, name: str | None, project: str | None,
                   env: str, server: str | None = None) -> dict[str, Any]:
    """The app a folder deploys to: in the project named after the folder (or `project`) and
    `env`, the app `name`, else the environment's only app, else a new app named after the
    folder (with the project and environment if they are new), listening on the port
    detection suggests."""
    from launchbay.engine.build.runtime_detection import detect
    from launchbay.slugs import slugify

    made: list[str] = []
    project_slug = slugify(project or folder.resolve().name)
    pid = next((p["id"] for p in client.get("/projects", limit=500)["items"]
                if project_slug in (p["slug"], p["name"]) or p["id"] == project), None)
    if pid is None:
        pid = client.post("/projects", {"name": project_slug})["id"]
        made.append(f"project {project_slug}")
    eid = next((e["id"] for e in client.get("/environments", projectId=pid, limit=500)["items"]
                if e["name"] == env), None)
    if eid is None:
        eid = client.post("/environments", {"projectId": pid, "name": env,
                                            "kind": "production" if env == "production"
                                            else "custom"})["id"]
        made.append(f"environment {env}")
    apps = client.get("/resources", environmentId=eid, limit=500)["items"]
    if name:
        apps = [r for r in apps if slugify(name) in (r["slug"], r["name"])]
    if len(apps) == 1:
        if server and apps[0].get("destinationId") != server:
            err.print(f"[red]error:[/] {apps[0]['name']} runs on another server: an app "
                      "stays on the server it was created on")
            raise typer.Exit(1)
        return apps[0]
    if apps:
        err.print(f"[red]error:[/] {project_slug}/{env} has {len(apps)} apps: choose one "
                  "with --app NAME")
        raise typer.Exit(1)
    slug = slugify(name or folder.resolve().name)
    port = detect(folder).port or 8080
    created = client.post("/resources", {"projectId": pid, "environmentId": eid, "name": slug,
                                         "networkProfile": {"internalPort": port},
                                         **({"serverId": server} if server else {})})
    out.print(f"created {', '.join([*made, f'app {slug}'])} (port {port})")
    return client.get(f"/resources/{created['id']}")["resource"]


def deploy(
    app_ref: Annotated[str, typer.Argument(metavar="APP|FOLDER")],
    image: Annotated[Optional[str], typer.Option(
        help="Deploy this image; the app keeps it once the release serves.")] = None,
    app_name: Annotated[Optional[str], typer.Option(
        "--app", help="With a folder: the app to deploy it to (default: the environment's "
                      "only app, or a new one named after the folder).")] = None,
    project: Annotated[Optional[str], typer.Option(
        help="With a folder: its project (default: named after the folder).")] = None,
    env: Annotated[str, typer.Option(help="With a folder: its environment.")] = "production",
    server: Server = None,
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

        resource = app_for_folder(client, folder, app_name, project, env,
                                  resolve_server(client, server)["id"] if server else None)
        archive = pack(folder)
        client.upload(f"/resources/{resource['id']}/source/archive", archive, "application/gzip")
        out.print(f"uploaded {len(archive) // 1024 + 1} KB of source")
    else:
        resource = resolve_app(client, app_ref)
    deployment = client.post("/deployments", {
        "projectId": resource["projectId"], "environmentId": resource["environmentId"],
        "resourceId": resource["id"], "source": split_image(image) if image else None})["id"]
    if detach:
        out.print(deployment)
        return
    finish(follow(client, deployment, quiet), followed=not quiet)


def logs(
    app_ref: AppRef,
    follow_: Annotated[bool, typer.Option("--follow", "-f",
                                          help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option(help="Lines from the end to start with.")] = 100,
    timestamps: Annotated[bool, typer.Option(
        help="Start each line with when it was written (UTC).")] = True,
    probes: Annotated[bool, typer.Option(
        "--probes", help="Also the lines about launchbay's health checks.")] = False,
) -> None:
    """Print an app's runtime logs (standard output and standard error, as written)."""
    client = Client()
    resource = resolve_app(client, app_ref)

    def show(line: dict[str, Any]) -> None:
        when = f"{line['timestamp'][:19].replace('T', ' ')} " if timestamps else ""
        print(f"{when}{line['message']}", flush=True)

    if not follow_:
        for line in client.get(f"/resources/{resource['id']}/runtime-logs", tailLines=tail,
                               includeProbes=str(probes).lower())["logs"]:
            show(line)
        return
    for message in client.stream(f"/resources/{resource['id']}/runtime-logs/stream",
                                 tailLines=tail, includeProbes=str(probes).lower()):
        if message.get("event") == "done":
            break
        show(message["data"])


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
    finish(follow(client, new), followed=True)


def ps(as_json: Json = False) -> None:
    """What runs: every app with its status, its project and environment, and its URLs."""
    client = Client()
    items = client.get("/resources", limit=500)["items"]
    projects, envs = _names(client)
    urls: dict[str, list[str]] = {}
    for project in {r["projectId"] for r in items}:
        urls.update(client.get(f"/projects/{project}/resource-urls")["items"])
    rows = [{"app": r["slug"], "id": r["id"], "project": projects.get(r["projectId"]),
             "env": envs.get(r["environmentId"]), "release": r.get("currentDeploymentId"),
             "status": status(r), "lastDeployment": r.get("lastDeploymentStatus"),
             "url": next(iter(urls.get(r["id"], [])), None), "urls": urls.get(r["id"], [])}
            for r in items]
    emit(rows, as_json, [("APP", "app"), ("PROJECT", "project"), ("ENVIRONMENT", "env"),
                         ("STATUS", "status"), ("URL", "url")])
