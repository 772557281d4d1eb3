"""Custom domains and TLS through a real Caddy: serving, redirects, path prefixes, DNS
verification (against a mock DNS server on loopback), imported certificates, Caddy's internal
CA, and ACME certificates from a local Pebble."""

from __future__ import annotations

import json
import os
import ssl
import time

import httpx
import pytest

from launchbay.drivers import tls_certificates
from launchbay.settings import Settings

import certs
from docker_support import deployed, eventually
from support import add_member, free_port, make_app, spawn

EDGE_HTTP, EDGE_HTTPS = free_port(), free_port()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory, mock_dns):
    """A local ACME server whose validations reach our Caddy's ports on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("pebble")
    ca = certs.make(["launchbay test CA"], is_ca=True, days=3)
    leaf, key = certs.make(["127.0.0.1", "localhost"], ca=ca)
    (folder / "ca.pem").write_text(certs.pem(ca[0]))
    (folder / "cert.pem").write_text(certs.pem(leaf))
    (folder / "key.pem").write_text(certs.key_pem(key))
    port = free_port()
    (folder / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}",
        "managementListenAddress": f"127.0.0.1:{free_port()}",
        "certificate": str(folder / "cert.pem"), "privateKey": str(folder / "key.pem"),
        "httpPort": EDGE_HTTP, "tlsPort": EDGE_HTTPS, "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    proc = spawn(["pebble", "-config", str(folder / "config.json"), "-dnsserver", mock_dns],
                  {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"https://127.0.0.1:{port}/dir",
                      verify=ssl.create_default_context(cafile=str(folder / "ca.pem")))
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "pebble did not start"
            time.sleep(0.1)
    yield {"directory": f"https://127.0.0.1:{port}/dir", "roots": str(folder / "ca.pem")}
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def settings(tmp_path, database_url, mock_dns, pebble) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    worker_poll_seconds=0.1, work_lease_seconds=10, reconcile_seconds=2,
                    edge_enabled=True, edge_bind="127.0.0.1", edge_http_port=EDGE_HTTP,
                    edge_https_port=EDGE_HTTPS, edge_admin=f"127.0.0.1:{free_port()}",
                    edge_drain_seconds=0.5, dns_resolver=mock_dns,
                    edge_public_addresses=["127.0.0.1"], acme_directory=pebble["directory"],
                    acme_trusted_roots=pebble["roots"], acme_email="ops@example.com")


def via_edge(host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{EDGE_HTTP}{path}", headers={"Host": host}, timeout=5)


def bind(api, ids, domain: str, **extra) -> str:
    return api.post("/domain-bindings", {"projectId": ids["project"], "environmentId": ids["env"],
                                         "resourceId": ids["resource"], "domainName": domain,
                                         **extra})["id"]


def active(api, binding: str, within: float = 20) -> dict:
    deadline = time.monotonic() + within
    while True:
        shown = api.get(f"/domain-bindings/{binding}")
        if shown["binding"]["status"] == "active":
            return shown
        assert time.monotonic() < deadline, shown["binding"]
        time.sleep(0.1)


def issued(api, binding: str, within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while True:
        items = api.get("/certificates", params={"domainBindingId": binding})["items"]
        live = [c for c in items if c["status"] == "issued"]
        if live:
            return live[0]
        assert time.monotonic() < deadline, items
        time.sleep(0.25)


def test_custom_domain_redirect_path_prefix_and_dns(api):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    www = bind(api, ids, "WWW.Example.com", tlsMode="disabled")
    shown = active(api, www)
    assert shown["binding"]["domainName"] == "www.example.com"
    assert via_edge("www.example.com").text == "hello v1\n"
    dns = shown["binding"]["dnsObservation"]
    assert dns["status"] == "matched" and dns["observedTargets"] == ["127.0.0.1"]
    assert shown["routeReadiness"]["status"] == "ready"

    apex = bind(api, ids, "example.com", tlsMode="disabled", redirectTo=www, redirectStatus=301)
    active(api, apex)
    moved = via_edge("example.com", "/some/page?x=1")
    assert moved.status_code == 301
    assert moved.headers["location"] == f"http://www.example.com:{EDGE_HTTP}/some/page?x=1"
    api.post(f"/domain-bindings/{apex}/route", {"routeBehavior": "redirect", "redirectTo": www,
                                                "redirectStatus": 308})
    eventually(lambda: via_edge("example.com").status_code == 308, within=10)

    api_binding = bind(api, ids, "api.example.com", tlsMode="disabled", pathPrefix="/v1/")
    active(api, api_binding)
    inside = via_edge("api.example.com", "/v1/index.html")
    assert inside.status_code == 404 and "no app" not in inside.text  # the app's own 404
    assert "no app" in via_edge("api.example.com", "/other").text
    config = api.get(f"/resources/{ids['resource']}/proxy-configuration")["routes"]
    assert {"host": ["api.example.com"], "path": ["/v1", "/v1/*"]} in \
        [r["match"][0] for r in config]

    taken = api.request("POST", "/domain-bindings", {
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "domainName": "www.example.com", "tlsMode": "disabled"})
    assert taken.status_code == 409 and taken.json()["code"] == "domain_taken"
    bad = api.request("POST", "/domain-bindings", {
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "domainName": "not a domain"})
    assert bad.status_code == 400
    blocked = api.request("DELETE", f"/domain-bindings/{www}",
                          {"confirmation": {"domainBindingId": www}})
    assert blocked.status_code == 409  # example.com still redirects here

    beta = api.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(api, beta, "bob@example.com", "admin")
    assert bob.request("GET", f"/domain-bindings/{www}").status_code == 404
    assert bob.get("/domain-bindings")["items"] == []

    api.ok("DELETE", f"/domain-bindings/{apex}", {"confirmation": {"domainBindingId": apex}})
    eventually(lambda: via_edge("example.com").status_code == 404, within=10)


def test_internal_tls_is_served_from_caddys_local_ca(api):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    binding = bind(api, ids, "secure.example.com", tlsMode="internal")
    cert = issued(api, binding)
    assert "Caddy Local Authority" in cert["issuer"] and cert["providerKey"] == "caddy-internal"
    served = tls_certificates.served("127.0.0.1", EDGE_HTTPS, "secure.example.com")
    assert served.fingerprint == cert["fingerprint"]
    assert "secure.example.com" in cert["subjectAlternativeNames"]
    upgrade = via_edge("secure.example.com", "/x")
    assert upgrade.status_code == 308
    assert upgrade.headers["location"] == f"https://secure.example.com:{EDGE_HTTPS}/x"
    trust = "/usr/local/share/ca-certificates"  # the host's trust store is left alone
    assert not [f for f in (os.listdir(trust) if os.path.isdir(trust) else []) if "Caddy" in f]


def test_imported_certificate_is_validated_and_served(api):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    binding = bind(api, ids, "manual.example.com", tlsMode="manual")
    cert, key = certs.make(["manual.example.com"])
    other_cert, other_key = certs.make(["other.example.com"])
    expired_cert, expired_key = certs.make(["manual.example.com"], start=-10, days=5)
    for chain, private, why in [(certs.pem(cert), certs.key_pem(other_key), "does not belong"),
                                (certs.pem(other_cert), certs.key_pem(other_key), "does not cover"),
                                (certs.pem(expired_cert), certs.key_pem(expired_key), "expired"),
                                ("garbage", certs.key_pem(key), "PEM")]:
        refused = api.request("POST", "/certificates/import", {
            "domainBindingId": binding, "certificateChain": chain, "privateKey": private})
        assert refused.status_code == 400 and why in refused.json()["error"], refused.text
    imported = api.post("/certificates/import", {
        "domainBindingId": binding, "certificateChain": certs.pem(cert),
        "privateKey": certs.key_pem(key)})
    shown = api.get(f"/certificates/{imported['certificateId']}")
    assert shown["status"] == "issued" and shown["source"] == "imported"
    assert shown["fingerprint"] == tls_certificates.facts(cert).fingerprint
    assert "privateKey" not in shown and "BEGIN" not in json.dumps(shown)
    deadline = time.monotonic() + 15
    while True:
        served = tls_certificates.served("127.0.0.1", EDGE_HTTPS, "manual.example.com")
        if served and served.fingerprint == shown["fingerprint"]:
            break
        assert time.monotonic() < deadline, served
        time.sleep(0.2)
    assert api.request("DELETE", f"/certificates/{shown['id']}").status_code == 409
    api.post(f"/certificates/{shown['id']}/revoke")
    assert api.ok("DELETE", f"/certificates/{shown['id']}")["id"] == shown["id"]


def test_auto_tls_obtains_a_certificate_from_pebble(api):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    binding = bind(api, ids, "auto.example.com", tlsMode="auto")
    cert = issued(api, binding, within=90)
    assert "Pebble" in cert["issuer"] and cert["providerKey"] == "acme"
    served = tls_certificates.served("127.0.0.1", EDGE_HTTPS, "auto.example.com")
    assert served.fingerprint == cert["fingerprint"] and "Pebble" in served.issuer


def test_cli_domains_and_certs(api, server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from launchbay.cli.main import app

    monkeypatch.setenv("LAUNCHBAY_URL", server)
    monkeypatch.setenv("LAUNCHBAY_TOKEN", api.token)
    monkeypatch.setenv("LAUNCHBAY_CLI_CONFIG", str(tmp_path / "cli"))
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        assert (result.exit_code == 0) == ok, (args, result.output)
        return result.output

    ids = make_app(api, "lbtest/hello:v1", name="shop")
    deployed(api, ids)
    assert "bound cli.example.com" in cli("domains", "add", "shop", "cli.example.com",
                                          "--tls", "disabled")
    cli("domains", "add", "shop", "old.example.com", "--tls", "disabled", "--redirect-to",
        "cli.example.com", "--status", "302")
    listed = json.loads(cli("domains", "list", "shop", "--json"))
    assert {b["domainName"] for b in listed} == {"cli.example.com", "old.example.com"}
    deadline = time.monotonic() + 15
    while via_edge("old.example.com").status_code != 302:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cli("domains", "add", "shop", "tls.example.com", "--tls", "manual")
    cert, key = certs.make(["tls.example.com"])
    (tmp_path / "c.pem").write_text(certs.pem(cert))
    (tmp_path / "k.pem").write_text(certs.key_pem(key))
    assert "imported" in cli("certs", "import", "tls.example.com", "--cert",
                             str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"))
    listed_certs = json.loads(cli("certs", "list", "--json"))
    assert [(c["domainName"], c["source"]) for c in listed_certs] == [
        ("tls.example.com", "imported")]
    assert "DOMAIN" in cli("certs", "list")
    cli("domains", "rm", "old.example.com", "--yes")
    assert "no binding for nope.example.com" in cli("domains", "rm", "nope.example.com",
                                                    "--yes", ok=False)


def test_a_renewed_certificate_shows_as_a_renewal(api, cp):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    binding = bind(api, ids, "renew.example.com", tlsMode="internal")
    first = issued(api, binding)
    other, _ = certs.make(["renew.example.com"], days=60)  # as if Caddy had renewed it
    from launchbay.engine.routing import note_certificate

    with cp.sessions() as db:
        note_certificate(db, binding, tls_certificates.facts(other))
        db.commit()
    cp.edge.refresh_certificates()  # and the real served certificate is noticed again
    renewed = api.get(f"/certificates/{first['id']}")
    assert [a["reason"] for a in renewed["attempts"] if a["status"] == "issued"][-2:] == \
        ["renew", "renew"]
    assert renewed["fingerprint"] == first["fingerprint"]
