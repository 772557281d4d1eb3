"""`launchbay`: serve the control plane, migrate its store, and drive it over its API."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from launchbay.cli import apps, domains, instances, system
from launchbay.cli.client import Client, environment_id, err, project_id, save_credentials
from launchbay.cli.output import emit, out

app = typer.Typer(help="launchbay: a self-hosted deployment platform.", no_args_is_help=True)
db_app = typer.Typer(help="The control plane's store.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
envs_app = typer.Typer(help="Environments and their variables; ephemeral environments from "
                        "templates.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apps.apps_app, name="apps")
app.add_typer(domains.domains_app, name="domains")
app.add_typer(domains.certs_app, name="certs")
app.add_typer(system.system_app, name="system")
app.add_typer(system.proxy_app, name="proxy")
top: tuple[Callable[..., None], ...] = (apps.deploy, apps.logs, apps.rollback, apps.ps)
for command in top:
    app.command()(command)
app.add_typer(projects_app, name="projects")
app.add_typer(envs_app, name="envs")
on_demand: tuple[Callable[..., None], ...] = (
    instances.templates, instances.run, instances.instances, instances.extend, instances.delete)
for command in on_demand:
    envs_app.command()(command)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _migrate(settings: Any) -> None:
    """Applies pending migrations in a child process, so that the long-running server never
    loads Alembic (it stays about 10 MB smaller)."""
    import subprocess
    import sys

    from launchbay.store.db import make_engine
    from launchbay.store.migrate import is_current

    engine = make_engine(settings.resolved_database_url)
    try:
        if not is_current(engine):
            subprocess.run([sys.executable, "-m", "launchbay", "db", "upgrade"], check=True)
    finally:
        engine.dispose()


@app.command()
def serve(
    listen: Annotated[Optional[str], typer.Option(help="HOST:PORT (LAUNCHBAY_LISTEN).")] = None,
    face: Annotated[Optional[list[str]], typer.Option(
        help="NAME=PORT: also serve a compatible API (dployr, shipyard) at the root of its "
             "own port, on the same host.")] = None,
) -> None:
    """Run the control plane (API and workers) in the foreground."""
    import asyncio
    import functools

    import uvicorn

    from launchbay.http.app import create_app
    from launchbay.http.browsers import SecurityHeaders
    from launchbay.settings import Settings

    settings = Settings(listen=listen) if listen else Settings()
    _migrate(settings)
    application = create_app(settings)
    # No `Server` banner: the version of what answers is nobody else's business.
    listening = functools.partial(uvicorn.Config, host=settings.host, log_level="info",
                                  server_header=False, proxy_headers=True,
                                  forwarded_allow_ips=settings.trusted_proxies)
    servers = [uvicorn.Server(listening(application, port=settings.port))]
    for spec in face or []:
        name, _, port = spec.partition("=")
        if name not in application.state.faces or not port.isdigit():
            raise typer.BadParameter(f"{spec}: expected NAME=PORT with NAME one of "
                                     + ", ".join(application.state.faces))
        servers.append(uvicorn.Server(listening(
            SecurityHeaders(application.state.faces[name]), port=int(port), lifespan="off")))
        out.print(f"the {name} API listens on http://{settings.host}:{port}")
    out.print(f"launchbay listening on http://{settings.listen} (data in {settings.data_dir})")

    async def main() -> None:  # one signal stops every listener
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)

    asyncio.run(main())


@app.command()
def worker() -> None:
    """Run engine workers without the API (beside `serve`, or on another machine sharing the
    database), until interrupted."""
    import signal
    import threading

    from launchbay.control_plane import ControlPlane
    from launchbay.settings import Settings

    settings = Settings()
    _migrate(settings)
    cp = ControlPlane(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cp.start_workers()
    out.print(f"launchbay worker: {cp.settings.workers} workers on {cp.workers.id}")
    stop.wait()
    cp.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations."""
    from launchbay.settings import Settings
    from launchbay.store.db import make_engine
    from launchbay.store.migrate import upgrade

    settings = Settings()
    upgrade(make_engine(settings.resolved_database_url))
    out.print("database is at the newest migration")


@app.command()
def login(
    url: Annotated[str, typer.Option(help="The control plane's URL.")] = "http://127.0.0.1:8420",
    email: Annotated[Optional[str], typer.Option(help="Account e-mail address.")] = None,
    password: Annotated[Optional[str], typer.Option(
        envvar="LAUNCHBAY_PASSWORD", help="Password (asked for when not given).")] = None,
    token: Annotated[Optional[str], typer.Option(help="Store this API token instead.")] = None,
) -> None:
    """Log in and keep the token in the user's config dir (mode 0600)."""
    if token is None:
        email = email or typer.prompt("E-mail")
        password = password or _ask_password()
        result = Client(url, token="").post(
            "/auth/login", {"email": email, "password": password, "clientKind": "cli"})
        token = result["token"]
    me = Client(url, token=token).get("/organizations/current-context")
    path = save_credentials(url, token)
    org = (me.get("currentOrganization") or {}).get("name", "-")
    out.print(f"logged in as {me['user']['email']} (organization {org}); token saved to {path}")


def _ask_password() -> str:
    """From the terminal, unechoed; without one, the first line of standard input (as in
    `echo "$PASSWORD" | launchbay login`)."""
    import sys

    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        err.print("[red]error:[/] no terminal to ask for the password: pass --password, set "
                  "LAUNCHBAY_PASSWORD, or pipe it on standard input")
        raise typer.Exit(2)
    return line


@app.command()
def logout() -> None:
    """End the session and forget the stored token."""
    from launchbay.cli.client import credentials_path

    path = credentials_path()
    if path.exists():
        Client().call("POST", "/auth/logout", {})
        path.unlink()
    out.print("logged out")


@app.command()
def whoami(as_json: Json = False) -> None:
    """Show the logged-in user and current organization."""
    ctx = Client().get("/organizations/current-context")
    org = ctx.get("currentOrganization") or {}
    emit({"email": ctx["user"]["email"], "organization": org.get("name"),
          "role": org.get("role")} if not as_json else ctx, as_json)


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
def projects_delete(project: str, yes: Annotated[bool, typer.Option("--yes")] = False) -> None:
    """Delete an archived project."""
    client = Client()
    pid = project_id(client, project)
    if not yes:
        typer.confirm(f"Delete project {pid} for good?", abort=True)
    emit(client.delete(f"/projects/{pid}", {"confirmation": {"projectId": pid}}), False)


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
