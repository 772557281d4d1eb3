"""Deployments built from source: local git repositories with a Dockerfile, an auto-detected
Python app (on a locally built Debian base image), a static site, and a broken build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from launchbay.settings import Settings

import images
from docker_support import body, deploy, deployed, wait

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
def python_base() -> str:
    return images.ensure_python_base()


@pytest.fixture
def settings(tmp_path, database_url, python_base) -> Settings:
    images.ensure("lbtest/busybox:v1")
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    worker_poll_seconds=0.1, work_lease_seconds=10, reconcile_seconds=2,
                    edge_enabled=False,
                    build_base_images={"python": python_base, "static": "lbtest/busybox:v1"})


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


def git_app(api, url: str, port: int, name: str = "web", **runtime) -> dict[str, str]:
    project = api.post("/projects", {"name": f"{name}-project"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": name,
        "source": {"kind": "git", "locator": url, "gitRef": "main"},
        "networkProfile": {"internalPort": port}, "runtimeProfile": runtime})["id"]
    return {"project": project, "env": env, "resource": resource}


def idle(api, resource: str, within: float = 20) -> None:
    """Waits until no work of the resource is open."""
    import time

    deadline = time.monotonic() + within
    while any(w["status"] in ("pending", "running", "retry-scheduled")
              for w in api.get("/operator-work", params={"resourceId": resource})["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)


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
    assert any("Using cache" in line for line in build_log(api, second["id"]))


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
    d = deployed(api, ids, timeout=120)
    assert body(d["url"]) == "<h1>static</h1>\n"


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
    assert "created app myapp (port 8000)" in result.output and "deployed" in result.output
    url = result.output.strip().splitlines()[-1].split(": ")[-1]
    assert body(url) == "hello from python\n"
    again = CliRunner().invoke(app, ["deploy", str(folder), "--quiet"])  # same app, new release
    assert again.exit_code == 0 and "created app" not in again.output, again.output
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
    engine = cp.targets.docker(api.server_id)

    def tags() -> list[str]:
        return engine.tags(f"lb/{ids['resource']}")

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

    repo(tmp_path / "q", {"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                          "site/index.html": "1\n"})
    ids = git_app(api, str(tmp_path / "q"), 8080)
    deployed(api, ids)
    engine = cp.targets.docker(api.server_id)
    image = engine.tags(f"lb/{ids['resource']}")[0]
    engine.client.images.get(image).tag(f"lb/{ids['resource']}", "just-built")
    with cp.sessions() as db:  # as if a build had just finished: the plan does not name it yet
        work = enqueue(db, "deployment", "test", resource_id=ids["resource"])
        work.status = "running"
        db.commit()
    reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=5)
    assert f"lb/{ids['resource']}:just-built" in engine.tags(f"lb/{ids['resource']}")
    with cp.sessions() as db:
        db.get(type(work), work.id).status = "succeeded"
        db.commit()
    reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=5)
    assert f"lb/{ids['resource']}:just-built" not in engine.tags(f"lb/{ids['resource']}")
