"""Runtime detection over small source trees (pure logic: no build happens)."""

from __future__ import annotations

import json

from launchbay.engine.build import dockerfiles, runtime_detection
from launchbay.engine.build.runtime_detection import Detection
from launchbay.store.profiles import RuntimeProfile


def detect(root, profile: dict[str, str] | None = None) -> Detection:
    """Detection with a runtime profile as the API takes it (camelCase JSON)."""
    return runtime_detection.detect(root, RuntimeProfile.model_validate(profile or {}))


def tree(root, files: dict[str, str]):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_python_with_requirements(tmp_path):
    d = detect(tree(tmp_path, {"requirements.txt": "flask==3.0\n", "app.py": "..."}))
    assert (d.runtime_family, d.framework, d.package_manager) == ("python", "flask", "pip")
    assert d.install_command == "pip install --no-cache-dir -r requirements.txt"
    assert d.start_command == "python app.py" and d.port == 8000 and d.buildable
    assert "requirements.txt" in d.detected_files and d.reasoning


def test_fastapi_and_procfile(tmp_path):
    d = detect(tree(tmp_path, {"pyproject.toml": "[project]\ndependencies=['fastapi']",
                               "main.py": "app = ..."}))
    assert d.framework == "fastapi" and d.start_command.startswith("uvicorn main:app")
    d = detect(tree(tmp_path, {"Procfile": "web: gunicorn shop.wsgi\nworker: celery"}))
    assert d.start_command == "gunicorn shop.wsgi" and "Procfile" in d.detected_files


def test_node_with_lockfiles_and_scripts(tmp_path):
    package = {"scripts": {"build": "vite build", "start": "node server.js"},
               "dependencies": {"express": "4"}}
    d = detect(tree(tmp_path, {"package.json": json.dumps(package), "yarn.lock": ""}))
    assert (d.runtime_family, d.package_manager, d.framework) == ("nodejs", "yarn", "express")
    assert d.install_command == "yarn install --frozen-lockfile"
    # The start script runs directly (no package manager process in between).
    assert d.build_command == "yarn run build" and d.start_command == "node server.js"
    assert d.detected_scripts == ["build", "start"] and d.port == 3000


def test_node_without_lockfile_uses_npm_install(tmp_path):
    package = {"dependencies": {"left-pad": "1"}}
    d = detect(tree(tmp_path, {"package.json": json.dumps(package), "index.js": ""}))
    assert d.install_command == "npm install" and d.start_command == "node index.js"
    bare = detect(tree(tmp_path / "bare", {"package.json": "{}", "index.js": ""}))
    assert bare.install_command is None
    assert any("no dependencies" in r for r in bare.reasoning)


def test_other_runtimes(tmp_path):
    for files, family in [({"go.mod": "module x"}, "golang"), ({"composer.json": "{}"}, "php"),
                          ({"Gemfile": ""}, "ruby"), ({"pom.xml": ""}, "java"),
                          ({"web.csproj": ""}, "dotnet")]:
        root = tmp_path / family
        root.mkdir()
        d = detect(tree(root, files))
        assert d.runtime_family == family and d.start_command, family


def test_static_site_and_dockerfile_and_compose(tmp_path):
    static = detect(tree(tmp_path / "s", {"dist/index.html": "<h1>hi</h1>"}))
    assert static.runtime_family == "static" and static.publish_directory == "dist"
    docker = detect(tree(tmp_path / "d", {"Dockerfile": "FROM x", "package.json": "{}"}))
    assert docker.runtime_family == "docker" and docker.dockerfile_path == "Dockerfile"
    compose = detect(tree(tmp_path / "c", {"compose.yaml": "services: {}"}))
    assert compose.runtime_family == "compose" and compose.compose_file_path == "compose.yaml"
    assert compose.unsupported[0]["code"] == "compose-invalid"  # no services


def test_strategies_from_the_profile(tmp_path):
    site = tree(tmp_path / "site", {"package.json": json.dumps(
        {"scripts": {"build": "node build.js"}}), "build.js": ""})
    static = detect(site, {"strategy": "static", "publishDirectory": "out"})
    assert (static.runtime_family, static.builder_family) == ("static", "nodejs")
    assert static.build_command == "npm run build" and static.publish_directory == "out"
    text = dockerfiles.generate(static, "busybox:1", {"package.json"}, "node:20")
    assert text.startswith("FROM node:20 AS site") and "COPY --from=site /app/out /www" in text
    assert detect(site, {"strategy": "dockerfile"}).unsupported[0]["code"] == \
        "dockerfile-missing"
    assert detect(site, {"strategy": "docker-compose"}).unsupported[0]["code"] == \
        "compose-file-missing"
    work = detect(site, {"strategy": "workspace-commands", "runtimeName": "python",
                         "installCommand": "make deps", "startCommand": "./serve"})
    assert (work.runtime_family, work.base_image, work.start_command) == (
        "workspace", "python", "./serve")
    assert work.install_command == "make deps" and work.buildable
    assert detect(site, {"strategy": "workspace-commands"}).unsupported[0]["code"] == \
        "base-image-missing"


def test_profile_overrides_and_unsupported_reasons(tmp_path):
    d = detect(tree(tmp_path / "p", {"requirements.txt": ""}),
               {"startCommand": "python -m shop", "installCommand": "pip install ."})
    assert d.start_command == "python -m shop" and d.install_command == "pip install ."
    assert any("runtime profile" in r for r in d.reasoning) and d.buildable
    unknown = detect(tree(tmp_path / "u", {"README.md": "hello"}))
    assert unknown.runtime_family == "custom" and not unknown.buildable
    assert unknown.unsupported[0]["fix"]
    no_start = detect(tree(tmp_path / "n", {"requirements.txt": ""}))
    assert no_start.unsupported[0]["code"] == "start-command-unknown"
    missing = detect(tree(tmp_path / "m", {"app.py": ""}), {"dockerfilePath": "ops/Dockerfile"})
    assert missing.unsupported[0]["code"] == "dockerfile-missing"
