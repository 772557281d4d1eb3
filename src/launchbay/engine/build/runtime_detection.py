"""Detecting how to build and run a source tree: the runtime, framework and package manager,
the install/build/start commands, with the reasoning behind each choice.

Pure logic over a folder: the plan preview shows it without building anything, and builds
use it to generate a Dockerfile. Commands given in the runtime profile win over detection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic.alias_generators import to_camel

from launchbay.engine.build.compose_files import ComposeError, Stack, parse
from launchbay.store.profiles import RuntimeProfile

LOCKFILES = [("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), ("bun.lockb", "bun"),
             ("package-lock.json", "npm")]
NODE_FRAMEWORKS = ["next", "nuxt", "@sveltejs/kit", "astro", "vite", "express", "fastify"]
PYTHON_FRAMEWORKS = ["django", "fastapi", "flask", "starlette"]
COMPOSE_FILES = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"]
DEFAULT_PORTS = {"nodejs": 3000, "python": 8000, "golang": 8080, "php": 8080, "ruby": 9292,
                 "java": 8080, "dotnet": 8080, "static": 8080}


@dataclass
class Detection:
    runtime_family: str  # python nodejs golang php ruby java dotnet static docker compose custom
    framework: str | None = None
    package_manager: str | None = None
    detected_files: list[str] = field(default_factory=list)
    detected_scripts: list[str] = field(default_factory=list)
    install_command: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    port: int | None = None
    publish_directory: str | None = None
    dockerfile_path: str | None = None
    compose_file_path: str | None = None
    stack: Stack | None = None  # the services of a compose file
    base_image: str | None = None  # workspace-commands: the image the commands run on
    builder_family: str | None = None  # static: the runtime that builds the site
    reasoning: list[str] = field(default_factory=list)
    unsupported: list[dict[str, str]] = field(default_factory=list)

    @property
    def buildable(self) -> bool:
        return not self.unsupported


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:200_000]
    except OSError:
        return ""


def _procfile_web(root: Path) -> str | None:
    for line in _read(root / "Procfile").splitlines():
        if line.startswith("web:"):
            return line[4:].strip()
    return None


def detect(root: Path, profile: RuntimeProfile | None = None,
           target_service: str | None = None) -> Detection:
    """What `root` is and how to run it. `profile` chooses the strategy and overrides commands,
    the Dockerfile and compose file paths and the publish directory; `target_service` names a
    compose stack's web service."""
    profile = profile or RuntimeProfile()
    files = {p.name for p in root.iterdir()} if root.is_dir() else set()
    d = STRATEGIES.get(profile.strategy, _detect)(root, files, profile)
    if profile.strategy != "auto":
        d.reasoning.insert(0, f"the runtime profile asks for the {profile.strategy} strategy")
    for attr in ("install_command", "build_command", "start_command", "publish_directory"):
        if getattr(profile, attr) and d.runtime_family not in ("docker", "compose"):
            setattr(d, attr, getattr(profile, attr))
            d.reasoning.append(f"{to_camel(attr)} comes from the runtime profile")
    if d.runtime_family == "compose" and d.buildable:
        _read_stack(root, d, target_service)
    if d.runtime_family not in ("docker", "compose", "static") and not d.start_command \
            and d.buildable:
        d.unsupported.append({
            "code": "start-command-unknown",
            "message": f"no start command could be found for this {d.runtime_family} app",
            "fix": "set runtimeProfile.startCommand, add a Procfile `web:` line, or a Dockerfile"})
    return d


def _read_stack(root: Path, d: Detection, target: str | None) -> None:
    try:
        d.stack = parse(_read(root / d.compose_file_path), target)  # type: ignore[operator]  # called only when compose_file_path is set
    except ComposeError as exc:
        d.unsupported.append({"code": exc.code, "message": exc.message, "fix": exc.fix})
        return
    for s in d.stack.services:
        how = f"built from {s.build_context}" if s.build_context else f"image {s.image}"
        role = "the web service" if s.name == d.stack.web else "a service of the stack"
        d.reasoning.append(f"{s.name}: {role}, {how}"
                           + (f", port {s.port}" if s.port else ""))
        if s.volumes:
            d.reasoning.append(
                f"{s.name} keeps data in {', '.join(v[0] for v in s.volumes)}: each release "
                "starts its own copy beside the previous one's on the same volume; keep "
                "databases in a launchbay database instead")
    d.port = d.stack.service(d.stack.web).port


def _dockerfile(root: Path, files: set[str], profile: RuntimeProfile) -> Detection:
    path = profile.dockerfile_path or "Dockerfile"
    d = _named_file(root, "docker", path, "dockerfilePath", "is built as is")
    d.dockerfile_path = path if d.buildable else None
    return d


def _compose(root: Path, files: set[str], profile: RuntimeProfile) -> Detection:
    path = profile.docker_compose_file_path or next(
        (n for n in COMPOSE_FILES if n in files), COMPOSE_FILES[0])
    d = _named_file(root, "compose", path, "dockerComposeFilePath",
                    "describes a stack of services")
    d.compose_file_path = path if d.buildable else None
    return d


def _named_file(root: Path, family: str, path: str, setting: str, what: str) -> Detection:
    if not (root / path).is_file():
        code = "dockerfile-missing" if family == "docker" else "compose-file-missing"
        return Detection(family, unsupported=[{
            "code": code, "message": f"{path} does not exist",
            "fix": f"add {path} or correct runtimeProfile.{setting}"}])
    return Detection(family, detected_files=[path], reasoning=[f"{path} {what}"])


def _static(root: Path, files: set[str], profile: RuntimeProfile) -> Detection:
    """A site of files: built first when the source has a builder (package.json...), then its
    publish directory is served by a tiny file server."""
    builder = next((f(root, files) for f in (_node, _python) if f(root, files)), None)
    publish = profile.publish_directory or next(
        (p for p in (".", "dist", "build", "public", "out")
         if (root / p / "index.html").is_file()), "dist" if builder else ".")
    d = Detection("static", detected_files=["index.html"] if (root / publish).is_dir() else [],
                  publish_directory=publish, port=DEFAULT_PORTS["static"],
                  reasoning=[f"{publish} is served as a static site"])
    if builder:
        d.framework, d.package_manager = builder.framework, builder.package_manager
        d.install_command, d.build_command = builder.install_command, builder.build_command
        d.detected_files += builder.detected_files
        d.builder_family = builder.runtime_family
        d.reasoning.append(f"built first with {builder.runtime_family} "
                           f"({builder.package_manager})")
    return d


def _workspace(root: Path, files: set[str], profile: RuntimeProfile) -> Detection:
    """The profile's own commands on the base image it names (`runtimeName`: a runtime whose
    base image is configured, or an image reference)."""
    runtime = profile.runtime_name
    d = Detection("workspace", base_image=runtime, port=8080,
                  reasoning=[f"install, build and start commands run on {runtime}"])
    if not runtime:
        d.unsupported.append({"code": "base-image-missing",
                              "message": "workspace-commands needs a base image",
                              "fix": "set runtimeProfile.runtimeName to a runtime (python, "
                                     "nodejs...) or an image reference"})
    return d


def _detect(root: Path, files: set[str], profile: RuntimeProfile) -> Detection:
    if profile.dockerfile_path or "Dockerfile" in files:
        return _dockerfile(root, files, profile)
    if profile.docker_compose_file_path or any(n in files for n in COMPOSE_FILES):
        return _compose(root, files, profile)
    web = _procfile_web(root)
    for detector in (_node, _python, _go, _php, _ruby, _java, _dotnet):
        found = detector(root, files)
        if found:
            if web:
                found.start_command = web
                found.detected_files.append("Procfile")
                found.reasoning.append("the Procfile's web command starts it")
            found.port = found.port or DEFAULT_PORTS.get(found.runtime_family)
            return found
    if "index.html" in files or any((root / d / "index.html").is_file()
                                    for d in ("public", "dist", "build")):
        publish = "." if "index.html" in files else next(
            d for d in ("dist", "build", "public") if (root / d / "index.html").is_file())
        return Detection("static", detected_files=["index.html"], publish_directory=publish,
                         port=DEFAULT_PORTS["static"],
                         reasoning=[f"index.html found in {publish}: served as a static site"])
    return Detection("custom", unsupported=[{
        "code": "runtime-unknown", "message": "no known runtime was recognized",
        "fix": "add a Dockerfile, or set the runtime profile's install/build/start commands"}],
        reasoning=["none of the files of a known runtime is present"])


def _node(root: Path, files: set[str]) -> Detection | None:
    if "package.json" not in files:
        return None
    try:
        package = json.loads(_read(root / "package.json") or "{}")
    except ValueError:
        package = {}
    scripts = package.get("scripts") or {}
    deps = {**(package.get("dependencies") or {}), **(package.get("devDependencies") or {})}
    manager, lock = next(((m, f) for f, m in LOCKFILES if f in files), ("npm", None))
    install = {"npm": "npm ci" if lock else "npm install", "pnpm": "pnpm install --frozen-lockfile",
               "yarn": "yarn install --frozen-lockfile", "bun": "bun install"}[manager]
    framework = next((f for f in NODE_FRAMEWORKS if f in deps), None)
    # The start script runs directly, not through the package manager: signals then reach the
    # app (a clean stop) and no idle npm process sits beside it.
    start = scripts.get("start") or (
        f"node {package['main']}" if package.get("main") else
        "node index.js" if "index.js" in files else "node server.js" if "server.js" in files
        else None)
    d = Detection("nodejs", framework=framework, package_manager=manager,
                  detected_files=["package.json"] + ([lock] if lock else []),
                  detected_scripts=sorted(scripts),
                  install_command=install if deps or lock else None,
                  build_command=f"{manager} run build" if "build" in scripts else None,
                  start_command=start,
                  reasoning=[f"package.json: a Node.js app; {manager} from "
                             f"{lock or 'no lockfile (npm)'}"])
    if not (deps or lock):
        d.reasoning.append("package.json declares no dependencies: nothing to install")
    if "start" in scripts:
        d.reasoning.append("the start script runs the app")
    if framework:
        d.reasoning.append(f"{framework} is a dependency")
    return d


def _python(root: Path, files: set[str]) -> Detection | None:
    markers = [f for f in ("requirements.txt", "pyproject.toml", "Pipfile", "setup.py")
               if f in files]
    if not markers:
        return None
    text = " ".join(_read(root / f).lower() for f in markers)
    manager = ("poetry" if "[tool.poetry]" in text else "uv" if "uv.lock" in files
               else "pipenv" if "Pipfile" in files else "pip")
    install = {"pip": "pip install --no-cache-dir -r requirements.txt" if "requirements.txt"
               in markers else "pip install --no-cache-dir .",
               "poetry": "pip install --no-cache-dir poetry && poetry install --no-root",
               "uv": "pip install --no-cache-dir uv && uv sync", "pipenv":
               "pip install --no-cache-dir pipenv && pipenv install --system --deploy"}[manager]
    framework = "django" if "manage.py" in files else next(
        (f for f in PYTHON_FRAMEWORKS if re.search(rf"\b{f}\b", text)), None)
    entry = next((f for f in ("main.py", "app.py", "server.py") if f in files), None)
    start = ("gunicorn --bind 0.0.0.0:$PORT wsgi" if framework == "django" else
             f"uvicorn {entry[:-3]}:app --host 0.0.0.0 --port $PORT" if framework in (
                 "fastapi", "starlette") and entry else
             f"python {entry}" if entry else None)
    return Detection("python", framework=framework, package_manager=manager,
                     detected_files=markers + ([entry] if entry else []), install_command=install,
                     start_command=start,
                     reasoning=[f"{', '.join(markers)}: a Python app installed with {manager}"]
                     + ([f"{entry} is the entry point"] if entry else []))


def _simple(family: str, marker: str, install: str | None, build: str | None,
            start: str | None, why: str):
    def detector(root: Path, files: set[str]) -> Detection | None:
        present = marker in files or (marker.startswith("*") and any(
            f.endswith(marker[1:]) for f in files))
        if not present:
            return None
        return Detection(family, detected_files=[marker], install_command=install,
                         build_command=build, start_command=start, reasoning=[why])
    return detector


_go = _simple("golang", "go.mod", "go mod download", "go build -o /app/server .", "/app/server",
              "go.mod: a Go module, built into one binary")
_php = _simple("php", "composer.json", "composer install --no-dev", None,
               "php -S 0.0.0.0:$PORT -t public", "composer.json: a PHP app")
_ruby = _simple("ruby", "Gemfile", "bundle install", None,
                "bundle exec rackup -o 0.0.0.0 -p $PORT", "Gemfile: a Ruby (Rack) app")
_java = _simple("java", "pom.xml", None, "mvn -q -DskipTests package",
                "java -jar target/app.jar", "pom.xml: a Java app built with Maven")
_dotnet = _simple("dotnet", "*.csproj", None, "dotnet publish -c Release -o /app/out",
                  "dotnet /app/out/app.dll", "a .csproj: a .NET app")


STRATEGIES = {"dockerfile": _dockerfile, "docker-compose": _compose, "static": _static,
              "workspace-commands": _workspace}
