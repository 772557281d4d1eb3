"""The templates launchbay ships, run end to end: `webterm` (a shell in the browser) and
`static-site` (a page of one's own), built from their files on the configured base images,
served by Caddy at the instance's URL."""

from __future__ import annotations

import re

import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import edge_settings, eventually, via_url
from support import free_port

EDGE_HTTP = free_port()


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    return edge_settings(tmp_path, database_url, mock_dns, EDGE_HTTP, base_domain="env.test",
                         shipped_templates=True, build_base_images={
                             "python": images.ensure_python_base(),
                             "static": images.ensure("lbtest/busybox:v1")})


def ready(api, template: str) -> dict:
    shown = eventually(lambda: (s := api.get(f"/instances/{template}"))["status"]
                       in ("Healthy", "Degraded") and s, within=240)
    assert shown["status"] == "Healthy", shown
    return shown


def test_webterm_gives_a_shell_in_the_browser(api):
    offered = {t["name"]: t for t in api.get("/instance-templates")["items"]}
    assert offered["webterm"] | {"description": "Browser-based shell", "icon": "terminal",
                                 "ttl": 86400, "maxExtends": 5} == offered["webterm"]
    started = api.post("/instances", {"template": "webterm"})
    url = ready(api, "webterm")["url"]
    page = eventually(lambda: (r := via_url(url, EDGE_HTTP)).status_code == 200 and r)
    assert 'aria-label="Terminal' in page.text

    terminal = httpx.URL(url)
    edge = httpx.Client(base_url=f"http://127.0.0.1:{EDGE_HTTP}",
                        headers={"Host": terminal.host}, timeout=30)
    assert edge.post("/input", content=b"echo $((6*7)) from $(whoami)\r").status_code == 204
    seen, since = "", 0
    for _ in range(20):  # long polls: each answers as soon as the shell wrote something
        answer = edge.get("/output", params={"since": since}).json()
        seen, since = seen + answer["data"], answer["next"]
        if re.search(r"^42 from root\r?$", seen, re.M):
            break
    assert re.search(r"^42 from root\r?$", seen, re.M), seen
    assert api.get("/instances")["environments"][0]["uuid"] == started["uuid"]


def test_static_site_serves_a_page_made_from_its_parameters(api):
    r = api.request("POST", "/instances", {"template": "static-site",
                                           "parameters": {"title": "<script>"}})
    assert r.status_code == 400 and r.json()["error"] == "invalid value for parameter title"
    api.post("/instances", {"template": "static-site", "parameters": {"title": "Launch day"}})
    url = ready(api, "static-site")["url"]
    page = eventually(lambda: (r := via_url(url, EDGE_HTTP)).status_code == 200 and r)
    assert "<h1>Launch day</h1>" in page.text and "Hello from launchbay" in page.text
