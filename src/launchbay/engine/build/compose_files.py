"""Reading a Docker Compose file into the services launchbay runs as one stack.

Pure logic over the file's text: the plan preview lists the stack without building anything,
and builds use it to know what to build and start. The subset understood is what a stack of
stateless services on one network needs (image or build, command, environment, ports/expose,
named volumes, depends_on); any other key, and anything that would run differently than
written (bind mounts of the host, volume drivers, host networking, privileged containers), is
refused with a reason and a fix.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any


class ComposeError(Exception):
    """The compose file cannot be run as a stack; `fix` says what to change."""

    def __init__(self, code: str, message: str, fix: str):
        super().__init__(message)
        self.code, self.message, self.fix = code, message, fix


# What launchbay runs of a service, and of its `build`; every other key is refused with a fix
# (never dropped: a file that would silently run differently is worse than an error).
SERVICE_KEYS = {"image", "build", "command", "environment", "ports", "expose", "volumes",
                "depends_on"}
BUILD_KEYS = {"context", "dockerfile", "target", "args"}
VOLUME_KEYS = {"type", "source", "target", "read_only"}
# Keys users often write, with what to do instead.
FIXES = {
    "network_mode": "launchbay puts every service on the stack's own network",
    "networks": "launchbay puts every service on the stack's own network",
    "privileged": "privileged containers can take over the server",
    "cap_add": "added kernel capabilities can take over the server",
    "security_opt": "security profiles of the server are not changed by apps",
    "pid": "sharing the host's process namespace is not allowed",
    "ipc": "sharing the host's or another container's IPC namespace is not allowed",
    "userns_mode": "the user namespace of the server is not changed by apps",
    "cgroup_parent": "the server's control groups are not chosen by apps",
    "devices": "host devices are not passed to containers",
    "extends": "`extends` is not supported: inline the service",
    "env_file": "set the variables on the resource, or list them under `environment`",
    "restart": "launchbay restarts services by the resource's restart policy "
               "(runtimeProfile.restartPolicy)",
    "healthcheck": "set the resource's health policy instead",
    "deploy": "set cpuLimit and memoryLimitMb in the resource's runtime profile",
    "container_name": "launchbay names the containers of each release",
    "labels": "launchbay labels the containers it runs",
}


def _refuse(where: str, key: str) -> ComposeError:
    why = FIXES.get(key, "launchbay does not run it")
    return ComposeError("compose-unsupported", f"{where}: {key}: {why}",
                        f"remove `{key}` from {where}")


def _check_keys(where: str, spec: dict[str, Any], allowed: set[str]) -> None:
    """Refuses the first key of `spec` that launchbay does not run (`x-` extensions are
    ignored by compose itself, and by launchbay)."""
    for key in spec:
        if key not in allowed and not str(key).startswith("x-"):
            raise _refuse(where, str(key))


@dataclass
class ComposeService:
    name: str
    image: str | None = None
    build_context: str | None = None  # relative to the compose file's folder
    dockerfile: str | None = None
    build_target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    port: int | None = None  # the container port it serves on, from `ports` or `expose`
    volumes: list[tuple[str, str, str]] = field(default_factory=list)  # (name, path, rw|ro)
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Stack:
    services: list[ComposeService]  # in start order: dependencies first
    web: str  # the service that gets the routes and the health check

    def service(self, name: str) -> ComposeService:
        return next(s for s in self.services if s.name == name)


def parse(text: str, target: str | None = None) -> Stack:
    """The stack a compose file describes; `target` names the web service (else `web`, else
    the only service that publishes a port)."""
    import yaml  # loaded on first use: most deployments have no compose file

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ComposeError("compose-invalid", f"the compose file is not valid YAML: {exc}",
                           "fix the YAML syntax") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) \
            or not doc["services"]:
        raise ComposeError("compose-invalid", "the compose file defines no services",
                           "add a `services:` section")
    _check_keys("the compose file", doc, {"services", "volumes", "version"})
    volumes = doc.get("volumes") or {}
    if not isinstance(volumes, dict):
        raise ComposeError("compose-invalid", "top-level `volumes` must be a mapping",
                           "write `volumes:` as names, each with no options")
    for name, options in volumes.items():
        if options:  # a driver and its options could mount any folder of the server
            key = next(iter(options)) if isinstance(options, dict) else str(options)
            raise ComposeError("compose-unsupported", f"volume {name}: {key}: launchbay "
                               "makes every named volume itself", f"write the volume as "
                               f"`{name}:` with no options")
    declared = set(volumes.keys())
    services = {name: _service(str(name), spec or {}, declared)
                for name, spec in doc["services"].items()}
    order = TopologicalSorter({name: s.depends_on for name, s in services.items()})
    try:
        names = list(order.static_order())
    except CycleError as exc:
        raise ComposeError("compose-invalid", f"depends_on forms a cycle: {exc.args[1]}",
                           "remove the circular dependency") from exc
    unknown = [n for n in names if n not in services]
    if unknown:
        raise ComposeError("compose-invalid", f"depends_on names unknown services: {unknown}",
                           "correct the service names in depends_on")
    return Stack([services[n] for n in names], _web(services, target))


def _web(services: dict[str, ComposeService], target: str | None) -> str:
    if target:
        if target not in services:
            raise ComposeError("compose-target-missing", f"the stack has no service {target}",
                               "set networkProfile.targetServiceName to one of "
                               + ", ".join(sorted(services)))
        return target
    if "web" in services:
        return "web"
    serving = [n for n, s in services.items() if s.port]
    if len(serving) == 1:
        return serving[0]
    raise ComposeError("compose-target-unknown", "which service serves the web is ambiguous",
                       "set networkProfile.targetServiceName")


def _service(name: str, spec: dict[str, Any], declared: set[str]) -> ComposeService:
    _check_keys(f"service {name}", spec, SERVICE_KEYS)
    s = ComposeService(name, image=spec.get("image"))
    build = spec.get("build")
    if isinstance(build, str):
        s.build_context = build
    elif isinstance(build, dict):
        _check_keys(f"the build of service {name}", build, BUILD_KEYS)
        s.build_context = build.get("context", ".")
        s.dockerfile, s.build_target = build.get("dockerfile"), build.get("target")
        s.build_args = _mapping(build.get("args"))
    if not s.image and not s.build_context:
        raise ComposeError("compose-invalid", f"service {name} has neither image nor build",
                           f"give service {name} an `image` or a `build` context")
    command = spec.get("command")
    s.command = shlex.split(command) if isinstance(command, str) else (
        [str(c) for c in command] if command else None)
    s.environment = _mapping(spec.get("environment"))
    s.port = next((p for p in map(_container_port, [*(spec.get("ports") or []),
                                                     *(spec.get("expose") or [])]) if p), None)
    s.volumes = [_volume(name, v, declared) for v in spec.get("volumes") or []]
    depends = spec.get("depends_on") or []
    if isinstance(depends, dict):
        for other, when in depends.items():
            condition = (when or {}).get("condition", "service_started") \
                if isinstance(when, dict) else when
            if condition != "service_started":  # launchbay starts services in order, no more
                raise ComposeError("compose-unsupported", f"service {name}: depends_on "
                                   f"{other}: condition {condition}: launchbay only starts "
                                   "services in order", f"remove the condition on {other}")
    s.depends_on = list(depends.keys() if isinstance(depends, dict) else depends)
    return s


def _mapping(value: Any) -> dict[str, str]:
    """`environment`/`args` as a list of KEY=VALUE or a mapping; a bare KEY is left out (it
    would come from the caller's shell, which a server does not have)."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    pairs = [str(item).split("=", 1) for item in value or []]
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _container_port(entry: Any) -> int | None:
    if isinstance(entry, dict):
        entry = entry.get("target")
    text = str(entry).split("/")[0].rsplit(":", 1)[-1]
    return int(text) if text.isdigit() else None


def _volume(service: str, entry: Any, declared: set[str]) -> tuple[str, str, str]:
    if isinstance(entry, dict):
        _check_keys(f"a volume of service {service}", entry, VOLUME_KEYS)
        kind, source, target = entry.get("type", "volume"), entry.get("source"), entry.get("target")
        mode = "ro" if entry.get("read_only") else "rw"
    else:
        parts = str(entry).split(":")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        mode = "ro" if len(parts) > 2 and "ro" in parts[2].split(",") else "rw"
        kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
    if kind != "volume" or (source and source not in declared):
        raise ComposeError("compose-bind-mount",
                           f"service {service} mounts {source} from the server's disk",
                           "use a named volume declared under the top-level `volumes:`")
    if not source or not target:
        raise ComposeError("compose-invalid", f"service {service}: a volume needs a name",
                           "write volumes as `name:/path`")
    return str(source), str(target), mode
