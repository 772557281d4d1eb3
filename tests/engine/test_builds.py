"""Deployments built from source: local git repositories with a Dockerfile, auto-detected
Python and Node apps (on locally built Debian base images), a static site, a compose stack,
workspace commands, a private repository, and a broken build."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from launchbay.settings import Settings

import images
from docker_support import body, deploy, deployed, tags_of, wait
from support import make_app

APP = """import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s\\n" % GREETING).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

GREETING = "hello from python"
http.server.HTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
"""


@pytest.fixture(scope="module")
def base_images() -> dict[str, str]:
    return {"python": images.ensure_python_base(), "nodejs": images.ensure_node_base(),
            "static": images.ensure("lbtest/busybox:v1"),
            "python@3.12": "lbtest/no-such-python:3.12"}  # configured, but nowhere to be had


@pytest.fixture
def settings(tmp_path, database_url, base_images) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=4,
                    worker_poll_seconds=0.1, work_lease_seconds=10, reconcile_seconds=2,
                    edge_enabled=False, build_base_images=base_images, build_slots=1)


def repo(path: Path, files: dict[str, str], message: str = "change") -> str:
    """A git repository at `path` with `files` committed; returns the commit SHA."""
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.email=t@example.com", "-c",
                    "user.name=t", "commit", "-q", "-m", message], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def git_app(api, url: str, port: int | None, name: str = "web", metadata=None,
            **runtime) -> dict[str, str]:
    project = api.post("/projects", {"name": f"{name}-project"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": name,
        "source": {"kind": "git", "locator": url, "gitRef": "main", "metadata": metadata or {}},
        "networkProfile": {"internalPort": port} if port else {},
        "runtimeProfile": runtime})["id"]
    return {"project": project, "env": env, "resource": resource}


def plan_of(api, ids: dict[str, str]) -> dict:
    return api.get("/deployments/plan", params={
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "serverId": api.server_id})


def idle(api, resource: str, within: float = 20) -> None:
    """Waits until no work of the resource is open."""
    import time

    deadline = time.monotonic() + within
    while any(w["status"] in ("pending", "running", "retry-scheduled")
              for w in api.get("/operator-work", params={"resourceId": resource})["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def built(api, ids: dict[str, str]) -> str:
    """Where the resource's images are built: `lb/<organization>/<resource>`."""
    org = api.get("/organizations/current-context")["currentOrganization"]["organizationId"]
    return f"lb/{org}/{ids['resource']}"


def build_log(api, deployment: str) -> list[str]:
    return [e["message"] for e in api.get(f"/deployments/{deployment}/logs")["logs"]
            if e["phase"] == "build"]


def test_dockerfile_app_from_git(api, tmp_path):
    sha = repo(tmp_path / "repo", {
        "Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
        "site/index.html": "from git\n"})
    ids = git_app(api, str(tmp_path / "repo"), 8080)
    plan = api.get("/deployments/plan", params={
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "serverId": api.server_id})
    assert plan["source"]["runtimeFamily"] == "docker" and plan["planner"]["buildStrategy"] == \
        "dockerfile"
    d = deployed(api, ids)
    assert body(d["url"]) == "from git\n"
    assert d["sourceCommitSha"] == sha
    assert any(f"checked out {sha[:12]}" in m for m in build_log(api, d["id"]))


def test_python_app_is_detected_built_and_reuses_its_cache(api, tmp_path):
    repo(tmp_path / "py", {"requirements.txt": "# no dependencies\n", "app.py": APP})
    ids = git_app(api, str(tmp_path / "py"), 8000)
    plan = api.get("/deployments/plan", params={
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "serverId": api.server_id})
    assert plan["source"]["runtimeFamily"] == "python"
    assert {c["kind"]: c["command"] for c in plan["commands"]} == {
        "install": "pip install --no-cache-dir -r requirements.txt", "start": "python app.py"}
    assert plan["readiness"]["ready"] is True
    first = deployed(api, ids, timeout=180)
    assert body(first["url"]) == "hello from python\n"
    repo(tmp_path / "py", {"app.py": APP.replace("hello from python", "hello again")})
    second = deployed(api, ids, timeout=180)
    assert body(second["url"]) == "hello again\n"
    # BuildKit reuses the dependency layer (the manifests did not change).
    assert any("CACHED" in line for line in build_log(api, second["id"]))


def test_builds_wait_for_a_slot_and_image_deploys_do_not(api, tmp_path):
    apps = []
    for name in ("one", "two"):
        repo(tmp_path / name, {"requirements.txt": "\n", "app.py": APP})
        apps.append(git_app(api, str(tmp_path / name), 8000, name=name))
    image = make_app(api, "lbtest/hello:v1", name="image")
    builds = [deploy(api, ids) for ids in apps]
    plain = wait(api, deploy(api, image), timeout=60)
    assert plain["status"] == "succeeded"  # not queued behind the builds
    ended = [wait(api, d, timeout=180) for d in builds]
    assert [d["status"] for d in ended] == ["succeeded", "succeeded"]
    waited = [any("waiting for a build slot" in line for line in build_log(api, d["id"]))
              for d in ended]
    assert waited.count(True) == 1, waited  # one slot: the second build waited for the first


def test_a_missing_base_image_names_the_setting_that_chose_it(api, tmp_path):
    repo(tmp_path / "py", {"requirements.txt": "\n", "app.py": APP})
    ids = git_app(api, str(tmp_path / "py"), 8000, runtimeName="python@3.12")
    failed = wait(api, deploy(api, ids), timeout=120)
    assert failed["status"] == "failed", failed
    assert "lbtest/no-such-python:3.12" in failed["errorMessage"]
    assert "LAUNCHBAY_BUILD_BASE_IMAGES" in failed["errorMessage"], failed["errorMessage"]


def test_broken_build_fails_with_the_compiler_error_and_keeps_serving(api, tmp_path):
    repo(tmp_path / "b", {"requirements.txt": "\n", "app.py": APP})
    ids = git_app(api, str(tmp_path / "b"), 8000, buildCommand="python -m py_compile app.py")
    good = deployed(api, ids, timeout=180)
    repo(tmp_path / "b", {"app.py": APP + "\ndef broken(:\n"})
    bad = wait(api, deploy(api, ids), timeout=180)
    assert bad["status"] == "failed" and bad["errorCode"] == "build-failed"
    log = "\n".join(build_log(api, bad["id"]))
    assert "SyntaxError" in log
    assert body(good["url"]) == "hello from python\n"


def test_static_site(api, tmp_path):
    repo(tmp_path / "s", {"index.html": "<h1>static</h1>\n"})
    ids = git_app(api, str(tmp_path / "s"), 8080)
    plan = plan_of(api, ids)
    assert (plan["source"]["runtimeFamily"], plan["planner"]["buildStrategy"]) == (
        "static", "static")
    assert any("served as a static site" in r for r in plan["source"]["reasoning"])
    d = deployed(api, ids, timeout=120)
    assert body(d["url"]) == "<h1>static</h1>\n"


NODE_SERVER = """const http = require("http");
const fs = require("fs");
const page = fs.readFileSync(__dirname + "/dist/page.txt");
http.createServer((req, res) => res.end(page)).listen(process.env.PORT);
"""


def test_node_app_is_built_with_its_build_script(api, tmp_path):
    repo(tmp_path / "n", {
        "package.json": json.dumps({"name": "n", "scripts": {
            "build": "node build.js", "start": "node server.js"}}),
        "build.js": 'require("fs").mkdirSync("dist", {recursive: true});\n'
                    'require("fs").writeFileSync("dist/page.txt", "built by node " + '
                    'process.version.split(".")[0] + "\\n");\n',
        "server.js": NODE_SERVER})
    ids = git_app(api, str(tmp_path / "n"), None)
    plan = plan_of(api, ids)
    assert plan["source"]["runtimeFamily"] == "nodejs"
    assert plan["source"]["packageManager"] == "npm" and plan["health"]["port"] == 3000
    assert {c["kind"]: c["command"] for c in plan["commands"]} == {
        "build": "npm run build", "start": "node server.js"}
    d = deployed(api, ids, timeout=180)
    assert body(d["url"]).startswith("built by node v")
    assert any("npm run build" in line for line in build_log(api, d["id"]))


def test_workspace_commands_on_a_chosen_base_image(api, tmp_path):
    repo(tmp_path / "w", {"page.txt": "from the workspace\n"})
    ids = git_app(api, str(tmp_path / "w"), 8080, strategy="workspace-commands",
                  runtimeName="static", installCommand="mkdir -p www",
                  buildCommand="cp page.txt www/index.html",
                  startCommand="exec httpd -f -p $PORT -h /app/www")
    plan = plan_of(api, ids)
    assert plan["planner"]["buildStrategy"] == "workspace-commands"
    assert [c["kind"] for c in plan["commands"]] == ["install", "build", "start"]
    d = deployed(api, ids, timeout=120)
    assert body(d["url"]) == "from the workspace\n"


API_CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo ""
wget -qO- http://api:5000/
"""
COMPOSE = """services:
  web:
    build: ./web
    ports: ["8080"]
    environment: {STACK_NAME: demo}
    depends_on: [api]
  api:
    image: lbtest/hello:v2
    command: httpd -f -p 5000 -h /www
"""


def test_compose_stack_runs_its_services_on_their_own_network(api, cp, tmp_path):
    repo(tmp_path / "c", {
        "compose.yaml": COMPOSE,
        "web/Dockerfile": "FROM lbtest/busybox:v1\nCOPY www /www\n"
                          'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
        "web/www/index.html": "stack web\n", "web/www/cgi-bin/api": API_CGI})
    subprocess.run(["chmod", "+x", str(tmp_path / "c/web/www/cgi-bin/api")], check=True)
    repo(tmp_path / "c", {}, message="executable")
    ids = git_app(api, str(tmp_path / "c"), None)
    plan = plan_of(api, ids)
    assert plan["planner"]["buildStrategy"] == "docker-compose"
    assert plan["planner"]["packagingMode"] == "compose-stack"
    assert plan["artifact"]["metadata"]["services"] == "api,web"
    assert any(r.startswith("web: the web service, built from ./web, port 8080")
               for r in plan["source"]["reasoning"])
    first = deployed(api, ids, timeout=120)
    assert body(first["url"]) == "stack web\n"
    assert body(first["url"] + "cgi-bin/api") == "hello v2\n"  # web reaches api by name
    engine = cp.targets.of(api.server_id)
    services = {c.labels.get("launchbay.service", "web") for c in engine.containers(
        **{"launchbay.deployment": first["id"]})}
    assert services == {"web", "api"}
    assert [(x["name"], x["web"]) for x in first["runtimePlan"]["services"]] == [
        ("web", True), ("api", False)]
    second = deployed(api, ids, timeout=120)
    assert body(second["url"] + "cgi-bin/api") == "hello v2\n"
    idle(api, ids["resource"])
    assert not engine.containers(**{"launchbay.deployment": first["id"]})
    networks = {name for name, *_ in engine.networks(**{"launchbay.resource": ids["resource"]})}
    assert networks == {f"lb-stack-{second['id'].split('_')[-1]}"}  # the first one's is gone


class PrivateGit:
    """A git server on loopback (`git http-backend`) that wants a token."""

    def __init__(self, root: Path, token: str):
        import base64
        import http.server
        import threading

        expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.backend()

            def do_POST(self):
                self.backend()

            def backend(self):
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                       "PATH_INFO": path, "QUERY_STRING": query,
                       "REQUEST_METHOD": self.command, "REMOTE_USER": "x",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(data)),
                       "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                       "PATH": "/usr/bin:/bin"}
                out = subprocess.run(["git", "http-backend"], input=data, env=env,
                                     capture_output=True, check=True).stdout
                head, _, rest = out.partition(b"\r\n\r\n")
                headers = [h.split(": ", 1) for h in head.decode().split("\r\n") if h]
                status = next((v for k, v in headers if k == "Status"), "200 OK")
                self.send_response(int(status.split()[0]))
                for key, value in headers:
                    if key != "Status":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                self.wfile.write(rest)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_private_repository_with_a_token_and_secrets_masked_in_the_build_log(api, tmp_path):
    token, run = "tok-9f8e7d6c5b4a", uuid.uuid4().hex  # `run`: no cached layer hides the output
    repo(tmp_path / "git" / "private", {
        "Dockerfile": "FROM lbtest/hello:v1\n"
                      "RUN --mount=type=secret,id=API_KEY "
                      f'echo "{run}: building with key $(cat /run/secrets/API_KEY)"\n'
                      "COPY site /www\n",
        "site/index.html": "private\n"})
    server = PrivateGit(tmp_path / "git", token)
    try:
        url = f"{server.url}/private/.git"
        ids = git_app(api, url, 8080, metadata={"gitCredential": "GIT_TOKEN"})
        plan = plan_of(api, ids)  # no token stored yet: the repository cannot be read
        assert plan["readiness"]["reasonCodes"] == ["source-unavailable"]
        assert any(p["code"] == "source-unavailable" for p in plan["unsupportedReasons"])
        resource = ids["resource"]
        api.post(f"/resources/{resource}/secrets", {"key": "GIT_TOKEN", "value": token})
        api.post(f"/resources/{resource}/secrets", {"key": "API_KEY", "value": "k3y-v4lue",
                                                     "exposure": "build-time"})
        assert plan_of(api, ids)["readiness"]["ready"] is True
        d = deployed(api, ids, timeout=120)
        assert body(d["url"]) == "private\n"
    finally:
        server.server.shutdown()
    log = build_log(api, d["id"])
    assert any(f"{run}: building with key ****" in line for line in log), log
    everything = json.dumps(api.get(f"/deployments/{d['id']}/logs"))
    assert "k3y-v4lue" not in everything and token not in everything
    env = api.get(f"/deployments/{d['id']}")["deployment"]["environmentSnapshot"]
    assert {v["key"] for v in env["variables"]} == {"GIT_TOKEN", "API_KEY"}


def test_cli_deploys_a_folder_without_a_dockerfile(api, server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from launchbay.cli.main import app

    folder = tmp_path / "myapp"
    repo(folder, {"requirements.txt": "\n", "app.py": APP, ".gitignore": "secret.txt\n",
                  ".dockerignore": "notes\n"})
    (folder / "secret.txt").write_text("not uploaded")
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.md").write_text("not uploaded either")
    (folder / "extra.py").write_text("# untracked but not ignored: uploaded\n")
    monkeypatch.setenv("LAUNCHBAY_URL", server)
    monkeypatch.setenv("LAUNCHBAY_TOKEN", api.token)
    monkeypatch.setenv("LAUNCHBAY_CLI_CONFIG", str(tmp_path / "cli"))
    from launchbay.cli.packing import files_of

    assert files_of(folder) == [".dockerignore", ".gitignore", "app.py", "extra.py",
                                "requirements.txt"]
    result = CliRunner().invoke(app, ["deploy", str(folder)])
    assert result.exit_code == 0, result.output
    assert "created project myapp, environment production, app myapp (port 8000)" in \
        result.output and "deployed" in result.output
    url = result.output.strip().splitlines()[-1].split(": ")[-1]
    assert body(url) == "hello from python\n"
    again = CliRunner().invoke(app, ["deploy", str(folder), "--quiet"])  # same app, new release
    assert again.exit_code == 0 and "created" not in again.output, again.output
    # What it runs is named by the image built and the upload, never a path of the server.
    latest = api.get("/deployments")["items"][0]
    plan = latest["runtimePlan"]
    assert plan["runtimeArtifact"]["image"].startswith("lb/") and "/" not in \
        plan["source"]["locator"] and str(tmp_path) not in str(plan)
    bad = api.request("POST", f"/resources/{api.get('/resources')['items'][0]['id']}"
                      "/source/archive", content=b"not an archive")
    assert bad.status_code == 400 and bad.json()["code"] == "archive_invalid"


def test_old_built_images_are_pruned_and_capacity_prune_spares_the_current_release(api, cp,
                                                                                     tmp_path):
    from launchbay.engine import reconcile

    sha = repo(tmp_path / "r", {"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                                "site/index.html": "1\n"})
    ids = git_app(api, str(tmp_path / "r"), 8080)
    releases = [deployed(api, ids)]
    for n in (2, 3):
        sha = repo(tmp_path / "r", {"site/index.html": f"{n}\n"})
        releases.append(deployed(api, ids))
    assert releases[-1]["sourceCommitSha"] == sha
    engine = cp.targets.of(api.server_id)

    def tags() -> list[str]:
        return tags_of(engine, built(api, ids))

    assert len(tags()) == 3
    idle(api, ids["resource"])  # the last release has finished retiring the older ones
    reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=2)
    kept = [d["runtimePlan"]["runtimeArtifact"]["image"] for d in releases[1:]]
    assert tags() == sorted(kept)
    assert body(releases[-1]["url"]) == "3\n"

    stop = api.ok("POST", f"/resources/{ids['resource']}/runtime/stop")
    deadline = __import__("time").monotonic() + 20
    while api.get(f"/operator-work/{stop['runtimeControlAttemptId']}")["item"]["status"] != \
            "succeeded":
        assert __import__("time").monotonic() < deadline
    preview = api.post(f"/servers/{api.server_id}/capacity/prune")
    assert preview["dryRun"] is True
    current = [c for c in preview["candidates"] if c["category"] == "stopped-containers"]
    assert current and all(c["action"] == "skipped" for c in current)
    done = api.post(f"/servers/{api.server_id}/capacity/prune",
                    {"dryRun": False, "categories": ["stopped-containers"]})
    assert done["summary"]["prunedCount"] == 0 and done["summary"]["skippedCount"] >= 1
    api.ok("POST", f"/resources/{ids['resource']}/runtime/start")


def test_pruning_leaves_a_resource_with_a_release_under_way_alone(api, cp, tmp_path):
    from launchbay.engine import reconcile
    from launchbay.engine.ledger import enqueue
    from launchbay.store.models import utcnow

    repo(tmp_path / "q", {"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                          "site/index.html": "1\n"})
    ids = git_app(api, str(tmp_path / "q"), 8080)
    deployed(api, ids)
    engine = cp.targets.of(api.server_id)
    repository = built(api, ids)
    image = tags_of(engine, repository)[0]
    with cp.sessions() as db:  # a release under way (first: the periodic sweep runs too)...
        work = enqueue(db, "deployment", "test", resource_id=ids["resource"])
        # Held by a worker of another process (not reclaimed as abandoned meanwhile).
        work.status, work.lease_owner = "running", "elsewhere"
        work.lease_expires_at = utcnow() + timedelta(minutes=5)
        db.commit()
    # ...whose build just finished: its plan does not name the image yet.
    engine.client.images.get(image).tag(repository, "just-built")
    reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=5)
    assert f"{repository}:just-built" in tags_of(engine, repository)
    with cp.sessions() as db:
        db.get(type(work), work.id).status = "succeeded"
        db.commit()
    reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=5)
    assert f"{repository}:just-built" not in tags_of(engine, repository)
