"""`launchbay`: serve the control plane, migrate its store, and drive it over its API."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperOption

from launchbay.cli import apps, domains, instances, projects, system
from launchbay.cli.client import Client, err, save_credentials
from launchbay.cli.databases import db_app
from launchbay.cli.jobs import jobs_app
from launchbay.cli.output import emit, out
from launchbay.cli.servers import servers_app

app = typer.Typer(help="launchbay: a self-hosted deployment platform.", no_args_is_help=True)
instances_app = typer.Typer(help="Ephemeral environments from templates (yours and your "
                             "team's).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(servers_app, name="servers")
app.add_typer(jobs_app, name="jobs")
app.add_typer(apps.apps_app, name="apps")
app.add_typer(domains.domains_app, name="domains")
app.add_typer(domains.certs_app, name="certs")
app.add_typer(system.system_app, name="system")
app.add_typer(system.proxy_app, name="proxy")
top: tuple[Callable[..., None], ...] = (apps.deploy, apps.logs, apps.rollback, apps.ps)
for command in top:
    app.command()(command)
app.add_typer(projects.projects_app, name="projects")
app.add_typer(projects.envs_app, name="envs")
app.add_typer(instances_app, name="instances")
on_demand: tuple[Callable[..., None], ...] = (
    instances.templates, instances.run, instances.extend, instances.delete)
for command in on_demand:
    instances_app.command()(command)
instances_app.command("list")(instances.instances)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def main() -> None:
    """The `launchbay` command, with tidier help than Typer's (see `_tidy_help`)."""
    command = typer.main.get_command(app)
    _tidy_help(command)
    command(prog_name="launchbay")


def _tidy_help(command: Any) -> None:
    """Docstrings' line breaks are not the help's (Typer keeps them, mid-sentence); a value is
    labelled by what it is (IMAGE, PROJECT), not by its Python type (`<str>`, `<bool>`), and
    flags and arguments by nothing more than their names."""
    if command.help:
        command.help = re.sub(r"(?<!\n)\n(?!\n)", " ", command.help)
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        label = None
        if isinstance(param, TyperOption) and not param.is_flag:
            label = param.metavar or (param.name or "").upper()
        # What Typer's help calls for the type column (an unknown attribute is just ignored).
        param.display_type_rich = lambda ctx, label=label: label
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


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

    from launchbay import heap
    from launchbay.http.app import create_app
    from launchbay.http.browsers import SecurityHeaders
    from launchbay.settings import Settings

    heap.limit_arenas()
    settings = Settings(listen=listen) if listen else Settings()
    _migrate(settings)
    application = create_app(settings)
    # No `Server` banner: the version of what answers is nobody else's business.
    listening = functools.partial(uvicorn.Config, host=settings.host, log_level="info",
                                  server_header=False, proxy_headers=True,
                                  forwarded_allow_ips=settings.trusted_proxies)
    class Server(uvicorn.Server):
        async def main_loop(self) -> None:
            """uvicorn's housekeeping (the Date header, noticing a stop) once a second, not
            ten times: an idle control plane should cost next to nothing."""
            ticks = 0
            while not await self.on_tick(ticks):
                await asyncio.sleep(1)
                ticks = (ticks + 10) % 864000

    servers = [Server(listening(application, port=settings.port))]
    for spec in face or []:
        name, _, port = spec.partition("=")
        if name not in application.state.faces or not port.isdigit():
            raise typer.BadParameter(f"{spec}: expected NAME=PORT with NAME one of "
                                     + ", ".join(application.state.faces))
        servers.append(Server(listening(
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
    """Apply the migrations of the control plane's own store."""
    from launchbay.settings import Settings
    from launchbay.store.db import make_engine
    from launchbay.store.migrate import upgrade

    settings = Settings()
    upgrade(make_engine(settings.resolved_database_url))
    out.print("database is at the newest migration")


@app.command()
def login(
    url: Annotated[str, typer.Option(envvar="LAUNCHBAY_URL",
                                     help="The control plane's URL.")] = "http://127.0.0.1:8420",
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
