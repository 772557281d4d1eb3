"""`launchbay domains` and `launchbay certs`: custom domains of apps and their certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.apps import Json, resolve_app
from launchbay.cli.client import Client, err
from launchbay.cli.output import emit, out

domains_app = typer.Typer(help="Custom domains of apps.", no_args_is_help=True)
certs_app = typer.Typer(help="TLS certificates of custom domains.", no_args_is_help=True)


def find_binding(client: Client, domain: str, path: str = "/") -> dict[str, Any]:
    for b in client.get("/domain-bindings", limit=500)["items"]:
        if b["domainName"] == domain.lower().rstrip(".") and b["pathPrefix"] == path:
            return b
    err.print(f"[red]error:[/] no binding for {domain}{'' if path == '/' else path}")
    raise typer.Exit(1)


@domains_app.command("add")
def domains_add(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    domain: str,
    tls: Annotated[str, typer.Option(help="auto (ACME), internal, manual or disabled.")] = "auto",
    path: Annotated[str, typer.Option(help="Only this path prefix.")] = "/",
    redirect_to: Annotated[Optional[str], typer.Option(
        help="Redirect to this (already bound) domain instead of serving.")] = None,
    status: Annotated[int, typer.Option(help="Redirect status: 301, 302, 307 or 308.")] = 301,
    as_json: Json = False,
) -> None:
    """Serve an app at a domain (or redirect the domain to another of its domains)."""
    client = Client()
    resource = resolve_app(client, app_ref)
    body: dict[str, Any] = {"projectId": resource["projectId"],
                            "environmentId": resource["environmentId"],
                            "resourceId": resource["id"], "domainName": domain,
                            "pathPrefix": path, "tlsMode": tls}
    if redirect_to:
        body.update(redirectTo=find_binding(client, redirect_to)["id"], redirectStatus=status)
    created = client.post("/domain-bindings", body)
    if as_json:
        emit(created, True)
        return
    out.print(f"bound {domain} ({created['id']}); point its DNS at this server")


DOMAIN_COLUMNS = [("DOMAIN", "domainName"), ("PATH", "pathPrefix"), ("TLS", "tlsMode"),
                  ("STATUS", "status"), ("DNS", "dns"), ("REDIRECT", "redirectTo")]


@domains_app.command("list")
def domains_list(
    app_ref: Annotated[Optional[str], typer.Argument(metavar="[APP]")] = None,
    as_json: Json = False,
) -> None:
    """List custom domains (of one app)."""
    client = Client()
    resource_id = resolve_app(client, app_ref)["id"] if app_ref else None
    items = client.get("/domain-bindings", resourceId=resource_id, limit=500)["items"]
    for b in items:
        b["dns"] = b["dnsObservation"]["status"]
    emit(items, as_json, DOMAIN_COLUMNS)


@domains_app.command("rm")
def domains_rm(
    domain: str,
    path: Annotated[str, typer.Option(help="The binding's path prefix.")] = "/",
    yes: Annotated[bool, typer.Option("--yes")] = False,
) -> None:
    """Stop serving a domain (the app's generated URL stays)."""
    client = Client()
    binding = find_binding(client, domain, path)
    if not yes:
        typer.confirm(f"Stop serving {domain}?", abort=True)
    client.delete(f"/domain-bindings/{binding['id']}",
                  {"confirmation": {"domainBindingId": binding["id"]}})
    out.print(f"removed {domain}")


CERT_COLUMNS = [("DOMAIN", "domainName"), ("STATUS", "status"), ("SOURCE", "source"),
                ("ISSUER", "issuer"), ("EXPIRES", "expiresAt"), ("FINGERPRINT", "fingerprint")]


@certs_app.command("list")
def certs_list(as_json: Json = False) -> None:
    """List certificates, soonest to expire first."""
    emit(Client().get("/certificates", limit=500)["items"], as_json, CERT_COLUMNS)


@certs_app.command("import")
def certs_import(
    domain: str,
    cert: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="PEM chain.")],
    key: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="PEM private key.")],
) -> None:
    """Use your own certificate for a domain (its TLS mode becomes `manual`)."""
    client = Client()
    binding = find_binding(client, domain)
    result = client.post("/certificates/import", {
        "domainBindingId": binding["id"], "certificateChain": cert.read_text(),
        "privateKey": key.read_text()})
    out.print(f"imported {result['certificateId']} for {domain}")
