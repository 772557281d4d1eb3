"""Tenants sharing one Docker engine (issue #16), end to end: an organization cannot run or
build from another's images (built, or pulled with access the other lacks), build secrets
leave nothing in the image, runtime logs never show a secret, sources cannot reach the
server's own network, and a release whose image cannot be had fails once, saying why."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import body, deploy, deployed, set_image, wait
from support import Api, add_member, free_port, make_app
from test_builds import git_app, plan_of, repo

SECRET = "s3cr3t-build-v4lue"


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """The defaults of a real install, but for the tests' own images and repositories."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    worker_poll_seconds=0.1, work_lease_seconds=10, reconcile_seconds=2,
                    edge_enabled=False, shipped_templates=False, shared_images=["lbtest/*"],
                    git_local_folders=[str(tmp_path)], git_allowed_networks=[],
                    build_base_images={"static": images.ensure("lbtest/busybox:v1")})


def org_of(api: Api) -> str:
    return api.get("/organizations/current-context")["currentOrganization"]["organizationId"]


@pytest.fixture
def bob(api: Api) -> Api:
    """The admin of another organization, on the same server."""
    org_b = api.post("/organizations", {"name": "Beta"})["organizationId"]
    return add_member(api, org_b, "bob@example.com", "admin")


def failed(api: Api, ids: dict[str, str]) -> dict:
    d = wait(api, deploy(api, ids), timeout=120)
    assert d["status"] == "failed", d
    return d


def built_image(resource: str) -> docker.models.images.Image:
    (image,) = docker.from_env().images.list(filters={"label": f"launchbay.resource={resource}"})
    return image


def test_an_image_built_for_one_organization_is_refused_to_another(api, bob, tmp_path):
    repo(tmp_path / "a", {"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                          "site/index.html": "alpha's private files\n"})
    alpha = git_app(api, str(tmp_path / "a"), 8080)
    served = deployed(api, alpha, timeout=120)
    assert body(served["url"]) == "alpha's private files\n"
    image = built_image(alpha["resource"])
    assert image.labels["launchbay.organization"] == org_of(api)
    (tag,) = image.tags
    assert tag.startswith(f"lb/{org_of(api)}/{alpha['resource']}:")  # tagged with its owner

    # Bob names it as his image, in every spelling Docker would accept for it.
    for name in (tag, f"docker.io/{tag}"):
        beta = make_app(bob, name, name=f"b{len(name)}")
        d = failed(bob, beta)
        assert d["errorCode"] == "image-not-found", d
        assert "no such image was built for this organization" in d["errorMessage"]
    # ...the very answer a name nobody built gets: nothing tells that it exists.
    ghost = failed(bob, make_app(bob, "lb/org_00000000deadbeef/res_00000000deadbeef:1",
                                 name="ghost"))
    assert ghost["errorMessage"].replace("lb/org_00000000deadbeef/res_00000000deadbeef:1",
                                         "X") == \
        d["errorMessage"].replace(f"docker.io/{tag}", "X").replace(tag, "X")
    # Nor can his build read it.
    repo(tmp_path / "b", {"Dockerfile": f"FROM {tag}\n", "x": "x"})
    d = failed(bob, git_app(bob, str(tmp_path / "b"), 8080, name="from"))
    assert d["errorCode"] == "image-not-found", d
    repo(tmp_path / "c", {"Dockerfile": f"FROM lbtest/hello:v1\nCOPY --from={tag} /www /www\n",
                          "x": "x"})
    d = failed(bob, git_app(bob, str(tmp_path / "c"), 8080, name="copy"))
    assert d["errorCode"] == "image-not-found", d
    # Another resource of alpha's may run it.
    again = make_app(api, tag, name="reuse")
    assert body(deployed(api, again)["url"]) == "alpha's private files\n"


class Registry:
    """A Docker registry (Debian's docker-registry) on loopback."""

    def __init__(self, folder: Path):
        port = free_port()
        config = folder / "registry.yml"
        config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{folder / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
        self.address = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://{self.address}/v2/").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.proc.poll() is None, "no registry"
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def registry(tmp_path) -> Iterator[Registry]:
    running = Registry(tmp_path)
    yield running
    running.stop()


def test_an_image_pulled_for_one_organization_is_not_anothers(api, bob, registry):
    client = docker.from_env()
    private = f"{registry.address}/alpha/app:v1"
    client.images.get(images.ensure("lbtest/hello:v2")).tag(private)
    client.images.push(private)
    client.images.remove(private)  # alpha's deployment pulls it
    alpha = make_app(api, private)
    assert body(deployed(api, alpha)["url"]) == "hello v2\n"
    assert client.images.get(private)  # on the engine now

    # The registry stops answering (or would refuse bob): the copy on the engine is alpha's.
    registry.stop()
    d = failed(bob, make_app(bob, private))
    assert d["errorCode"] == "image-not-found" and "the pull failed" in d["errorMessage"], d
    # Alpha was granted that very image: its next release needs no registry.
    assert deployed(api, alpha)["status"] == "succeeded"


def test_build_secrets_are_read_by_the_build_and_left_in_no_layer(api, tmp_path):
    # What each build leaves of the secret: its digest (proof that it read it), never itself.
    repo(tmp_path / "own", {
        "Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n"
                      "RUN --mount=type=secret,id=BUILD_SECRET "
                      "sha256sum /run/secrets/BUILD_SECRET > /www/proof.html\n",
        "site/index.html": "own Dockerfile\n"})
    repo(tmp_path / "generated", {"page.txt": "generated\n"})
    cases = [git_app(api, str(tmp_path / "own"), 8080, name="own"),
             git_app(api, str(tmp_path / "generated"), 8080, name="generated",
                     strategy="workspace-commands", runtimeName="static",
                     installCommand='mkdir -p www && printf %s "$BUILD_SECRET" | sha256sum '
                                    '> www/proof.html',
                     buildCommand="cp page.txt www/index.html",
                     startCommand="exec httpd -f -p $PORT -h /app/www")]
    for ids in cases:
        resource = ids["resource"]
        api.post(f"/resources/{resource}/secrets", {"key": "BUILD_SECRET", "value": SECRET,
                                                     "exposure": "build-time"})
        api.post(f"/resources/{resource}/variables", {"key": "PLAIN_FLAG", "value": "on",
                                                       "exposure": "build-time"})
        d = deployed(api, ids, timeout=180)
        proof = body(d["url"] + "proof.html").split()[0]  # the build had the secret
        assert proof == hashlib.sha256(SECRET.encode()).hexdigest()
        tag = built_image(resource).tags[0]
        history = subprocess.run(["docker", "history", "--no-trunc", tag], check=True,
                                 capture_output=True, text=True).stdout
        saved = subprocess.run(["docker", "save", tag], check=True, capture_output=True).stdout
        assert SECRET not in history and SECRET.encode() not in saved
        assert SECRET.encode() not in _layers_unpacked(saved)
        assert SECRET not in str(api.get(f"/deployments/{d['id']}/logs"))


def _layers_unpacked(saved: bytes) -> bytes:
    """Every file of every layer of a `docker save` archive (layers are tars in the tar)."""
    found = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            content = outer.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(content)) as layer:
                    found += [layer.extractfile(e).read()  # type: ignore[union-attr]
                              for e in layer.getmembers() if e.isfile()]
            else:
                found.append(content)
    return b"".join(found)


def test_runtime_logs_never_show_a_secret(api, cp):
    ids = make_app(api, "lbtest/hello:v1")
    api.post(f"/resources/{ids['resource']}/runtime-profile", {"runtimeProfile": {
        "startCommand": "sh -c 'echo token=$APP_TOKEN db=$DB_PASSWORD; "
                        "exec httpd -f -p 8080 -h /www'"}})
    api.post(f"/resources/{ids['resource']}/secrets", {"key": "APP_TOKEN",
                                                        "value": "tok-live-123456"})
    api.post(f"/environments/{ids['env']}/variables", {"key": "DB_PASSWORD", "kind": "secret",
                                                        "value": "pw-live-654321"})
    deployed(api, ids)
    viewer = add_member(api, org_of(api), "viewer@example.com", "viewer")
    deadline = time.monotonic() + 10
    while not (lines := [line for line in viewer.get(
            f"/resources/{ids['resource']}/runtime-logs")["logs"]
            if "token=" in line["message"]]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert lines[0]["message"] == "token=**** db=****" and lines[0]["masked"] is True
    streamed = ""
    with viewer.client.stream("GET", f"/api/resources/{ids['resource']}/runtime-logs/stream",
                              params={"tailLines": 20}, timeout=10,
                              headers={"Authorization": f"Bearer {viewer.token}"}) as r:
        for chunk in r.iter_text():
            streamed += chunk
            if "token=" in streamed:
                break
    assert "token=**** db=****" in streamed
    assert "tok-live" not in streamed and "pw-live" not in streamed


def test_a_release_whose_image_cannot_be_had_fails_once_saying_why(api):
    for image in ("lbtest/hello:nosuchtag", "registry.invalid/team/app:v1"):
        ids = make_app(api, image, name=image.split("/")[-1].replace(":", "-"))
        d = failed(api, ids)
        assert d["errorCode"] == "image-not-found" and image in d["errorMessage"], d
        assert "LAUNCHBAY_SHARED_IMAGES" in d["errorMessage"]
        (work,) = api.get("/operator-work", params={"deploymentId": d["id"]})["items"]
        assert work["attempts"] == 1, work
        logs = [e["message"] for e in api.get(f"/deployments/{d['id']}/logs")["logs"]]
        assert not [m for m in logs if "resuming" in m], logs
        assert logs.count(f"pulling {image}") == 1, logs
        set_image(api, ids["resource"], "lbtest/hello:v1")  # what serves after the fix
        assert deployed(api, ids)["status"] == "succeeded"
    # A plan the engine refuses (more CPUs than the server has) is not tried again either.
    ids = make_app(api, "lbtest/hello:v1", name="greedy")
    api.post(f"/resources/{ids['resource']}/runtime-profile",
             {"runtimeProfile": {"cpuLimit": 200}})
    d = failed(api, ids)
    assert d["errorCode"] == "runtime-rejected" and "CPU" in d["errorMessage"], d
    (work,) = api.get("/operator-work", params={"deploymentId": d["id"]})["items"]
    assert work["attempts"] == 1, work


class Recorder(http.server.BaseHTTPRequestHandler):
    """A service of the server's own network: records every request it gets."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Recorder.seen.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_repository_on_the_servers_own_network_is_never_fetched(api):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for n, url in enumerate([f"http://127.0.0.1:{port}/internal.git",
                                 f"http://localhost:{port}/internal.git",
                                 f"https://[::ffff:127.0.0.1]:{port}/internal.git"]):
            ids = git_app(api, url, 8080, name=f"internal{n}")
            plan = plan_of(api, ids)
            assert any("not a public address" in p["message"]
                       for p in plan["unsupportedReasons"]), plan
            d = failed(api, ids)
            assert d["errorCode"] == "source-unavailable" and \
                "not a public address" in d["errorMessage"], d
    finally:
        server.shutdown()
    assert Recorder.seen == []


def test_an_archive_source_is_only_the_resources_own_upload(api, bob, tmp_path):
    def upload(who: Api, resource: str, files: dict[str, str]) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, text in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text.encode()))
        r = who.request("POST", f"/resources/{resource}/source/archive",
                        content=buf.getvalue(), headers={"Content-Type": "application/gzip"})
        assert r.status_code == 201, r.text
        return r.json()["archiveId"]

    alpha = make_app(api, "lbtest/hello:v1", name="alpha")
    secret_id = upload(api, alpha["resource"], {"Dockerfile": "FROM lbtest/hello:v1\n"
                                                "COPY index.html /www/\n",
                                                "index.html": "alpha only\n"})
    beta = make_app(bob, "lbtest/hello:v1", name="beta")
    for locator in (secret_id, "/etc/passwd", f"../{alpha['resource']}/{secret_id}.tar.gz"):
        r = bob.request("POST", f"/resources/{beta['resource']}/source",
                        {"source": {"kind": "archive", "locator": locator}})
        assert r.status_code == 400, r.text
    upload(bob, beta["resource"], {"Dockerfile": "FROM lbtest/hello:v1\n"
                                   "COPY index.html /www/\n", "index.html": "beta's own\n"})
    assert body(deployed(bob, beta, timeout=120)["url"]) == "beta's own\n"
