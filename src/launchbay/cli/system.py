"""`launchbay system` and `launchbay proxy`: the machine and its edge proxy, for operators."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from launchbay.cli.apps import Json
from launchbay.cli.client import Client
from launchbay.cli.output import emit, out

system_app = typer.Typer(help="The machine launchbay runs on.", no_args_is_help=True)
proxy_app = typer.Typer(help="The edge proxy and routes added by hand.", no_args_is_help=True)


@system_app.command("status")
def system_status(as_json: Json = False) -> None:
    """Health, uptime, the edge proxy, and the organization's apps by runtime state."""
    client = Client()
    status = client.get("/system/status")  # its `services` are the Dployr API's
    apps: dict[str, int] = {"total": 0, "running": 0, "stopped": 0, "not-deployed": 0}
    for r in client.get("/resources", limit=500)["items"]:
        apps["total"] += 1
        apps[r["runtimeState"]] += 1
    if as_json:
        emit({**status, "apps": apps}, True)
        return
    emit({"status": status["status"], "uptime": status["uptime"],
          "proxy": status["proxy"]["status"],
          "apps": f"{apps['total']} ({apps['running']} running, {apps['stopped']} stopped, "
                  f"{apps['not-deployed']} not deployed)"}, False)


@system_app.command("info")
def system_info(as_json: Json = False) -> None:
    """The build, CPU, memory, filesystems and disks of this machine."""
    info = Client().get("/system/info")
    if as_json:
        emit(info, True)
        return
    emit({**info["build"], **info["hardware"]}, False)
    emit(info["storage"]["partitions"], False, [
        ("FILESYSTEM", "filesystem"), ("SIZE", "size"), ("USED", "used"),
        ("AVAILABLE", "available"), ("USE%", "use_percent"), ("MOUNTED ON", "mountpoint")])


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        emit(result, True)
    else:
        out.print(result["output"])
        out.print(f"[red]error:[/] {result['error']}" if result["status"] == "error"
                  else "[green]ok[/]")
    if result["status"] == "error":
        raise typer.Exit(1)


@system_app.command("doctor")
def system_doctor(as_json: Json = False) -> None:
    """Check the database, the Docker engine, the edge proxy and disk space; repair what can
    be repaired."""
    _report(Client().post("/system/doctor", {}), as_json)


@system_app.command("install")
def system_install(version: Annotated[Optional[str], typer.Argument()] = None,
                   as_json: Json = False) -> None:
    """Install and start what launchbay needs (and another version, from the upgrade
    source), then run the doctor."""
    _report(Client().post("/system/install", {"version": version} if version else {}), as_json)


@proxy_app.command("status")
def proxy_status(as_json: Json = False) -> None:
    """Whether the edge proxy runs, and how many routes it serves."""
    emit(Client().get("/proxy/status"), as_json)


@proxy_app.command("restart")
def proxy_restart() -> None:
    """Restart the edge proxy and load its routes again."""
    out.print(Client().post("/proxy/restart", {})["message"])


@proxy_app.command("routes")
def proxy_routes(as_json: Json = False) -> None:
    """Routes added by hand."""
    emit(Client().get("/proxy/routes")["items"], as_json,
         [("DOMAIN", "domain"), ("UPSTREAM", "upstream"), ("TLS", "tlsMode"),
          ("STATUS", "status")])


@proxy_app.command("add")
def proxy_add(domain: str, upstream: str) -> None:
    """Serve DOMAIN from UPSTREAM (an http:// or https:// URL) through the edge proxy."""
    Client().post("/proxy/routes", {"domain": domain, "upstream": upstream})
    out.print(f"routing {domain} to {upstream}")


@proxy_app.command("remove")
def proxy_remove(domain: str) -> None:
    """Stop serving a domain that was routed by hand."""
    Client().call("DELETE", f"/proxy/routes/{domain}", {})
    out.print(f"removed the route of {domain}")


@proxy_app.command("stop")
def proxy_stop() -> None:
    """Stop this machine's edge proxy. It outlives launchbay (apps stay online while launchbay
    restarts): stop launchbay first, or its watchdog starts the proxy again. Every app is then
    offline until launchbay runs again."""
    from launchbay.drivers.edge_proxy import Caddy
    from launchbay.settings import Settings

    admin = Settings().edge_admin
    caddy = Caddy(admin, manage=False)
    if not caddy.alive():
        out.print(f"no edge proxy answers at {admin}")
        return
    caddy.shutdown()
    caddy.release()
    out.print(f"stopped the edge proxy (admin {admin})")
