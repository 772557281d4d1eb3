"""A Docker Swarm manager as a runtime: a resource's release is one replicated service, updated
in place by each release (Swarm replaces its tasks start-first and rolls back a failed update).

To the rest of launchbay a service looks like a container whose id is `service:<id>`: listed,
inspected, stopped (scaled to 0), started, restarted (its tasks replaced), removed, its logs
read (merged across tasks, each line naming its task and node). The manager's own standalone
containers (databases, jobs' runs, builds) are the Docker engine's as on any server; the tasks'
containers are never listed as launchbay's (they carry no `launchbay.managed` label), so
nothing but Swarm removes them.

Services are reached by their tasks' DNS names on an overlay network (`endpoint_mode: dnsrr`):
a task is in DNS only once its health check passed, and leaves it before it is stopped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from docker import types
from docker.errors import NotFound

from launchbay.drivers.docker_engine import MANAGED, ContainerInfo, LogLine, _line
from launchbay.drivers.remote_docker import RemoteDockerEngine

SERVICE = "service:"
REPLICAS = "launchbay.replicas"  # the replicas a stopped service gets back when started
_NS = 1_000_000_000


@dataclass
class ServiceSpec:
    name: str
    image: str  # an image id: no node tries to pull it
    labels: dict[str, str]  # the service's (launchbay.*); the tasks' containers get `task_labels`
    task_labels: dict[str, str]
    network: str
    aliases: list[str] = field(default_factory=list)
    networks: dict[str, list[str]] = field(default_factory=dict)  # more networks: aliases
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    replicas: int = 1
    # The health check command, and its interval, timeout, retries and start period (seconds);
    # None: no health check, so the update stops the old task first.
    health: list[str] | None = None
    health_timing: tuple[float, float, int, float] = (5, 3, 3, 10)
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None
    volumes: list[tuple[str, str, str]] = field(default_factory=list)  # (name, path, rw|ro)
    constraints: list[str] = field(default_factory=list)  # where Swarm may place its tasks

    @property
    def monitor_seconds(self) -> float:
        """How long Swarm watches each new task for a failure: its start period and retries."""
        interval, timeout, retries, start = self.health_timing
        return start + retries * (interval + timeout) if self.health else 5


@dataclass
class ServiceState:
    id: str
    deployment: str | None  # the release its current spec is
    update: str | None  # Swarm's update state: updating, completed, rollback_completed...
    message: str
    replicas: int
    running: int  # tasks of the current spec running (and healthy, when it has a check)
    errors: list[tuple[str | None, str]]  # (release, why) of failed tasks, newest first
    previous: bool  # it has a spec to roll back to


class SwarmManager(RemoteDockerEngine):
    """A Swarm manager reached over SSH."""

    network_options: dict[str, Any] = {"driver": "overlay", "attachable": True}

    # -- releases ----------------------------------------------------------------------------
    def deploy(self, spec: ServiceSpec) -> str:
        """Creates the service, or updates it to `spec` (Swarm then replaces its tasks); its
        id."""
        mounts = [types.Mount(path, name, type="volume", read_only=mode == "ro")
                  for name, path, mode in spec.volumes]
        health = None
        if spec.health:
            interval, timeout, retries, start = spec.health_timing
            health = types.Healthcheck(test=spec.health, interval=int(interval * _NS),
                                       timeout=int(timeout * _NS), retries=retries,
                                       start_period=int(start * _NS))
        container = types.ContainerSpec(
            spec.image, command=spec.command, env=spec.env, labels=spec.task_labels,
            mounts=mounts, healthcheck=health, init=True, stop_grace_period=10 * _NS)
        resources = types.Resources(
            cpu_limit=int(spec.cpu_limit * _NS) if spec.cpu_limit else None,
            mem_limit=spec.memory_limit_mb * 1024 * 1024 if spec.memory_limit_mb else None)
        template = types.TaskTemplate(
            container, resources=resources,
            restart_policy=types.RestartPolicy("any", delay=2 * _NS),
            placement=types.Placement(constraints=spec.constraints),
            networks=[types.NetworkAttachmentConfig(network, aliases=aliases) for
                      network, aliases in {spec.network: spec.aliases, **spec.networks}.items()])
        order = "start-first" if spec.health else "stop-first"
        monitor = int(spec.monitor_seconds * _NS)
        kwargs: dict[str, Any] = dict(
            name=spec.name, labels={**spec.labels, REPLICAS: str(spec.replicas)},
            mode=types.ServiceMode("replicated", replicas=spec.replicas),
            update_config=types.UpdateConfig(parallelism=1, failure_action="rollback",
                                             monitor=monitor, order=order),
            rollback_config=types.RollbackConfig(parallelism=1, failure_action="pause",
                                                 monitor=monitor, order=order),
            endpoint_spec=types.EndpointSpec(mode="dnsrr"))
        found = self._service(spec.name)
        if found is None:
            return str(self.client.api.create_service(template, **kwargs)["ID"])
        self.client.api.update_service(found["ID"], found["Version"]["Index"], template,
                                       **kwargs)
        return str(found["ID"])

    def service(self, name: str) -> ServiceState | None:
        """The service `name` as Swarm sees it now, or None."""
        found = self._service(name)
        if found is None:
            return None
        labels = found["Spec"].get("Labels") or {}
        deployment = labels.get("launchbay.deployment")
        status = found.get("UpdateStatus") or {}
        running, errors = 0, []
        tasks = sorted(self.client.api.tasks(filters={"service": found["ID"]}),
                       key=lambda t: t.get("UpdatedAt", ""), reverse=True)
        for task in tasks:
            task_labels = task["Spec"]["ContainerSpec"].get("Labels") or {}
            state = task.get("Status") or {}
            ours = task_labels.get("launchbay.deployment") == deployment
            if ours and task.get("DesiredState") == "running" and state.get("State") == "running":
                running += 1
            if state.get("State") in ("failed", "rejected") and state.get("Err"):
                errors.append((task_labels.get("launchbay.deployment"),
                               f"{state['Err']} (task {task['ID'][:12]} on node "
                               f"{task.get('NodeID', '?')[:12]})"))
        mode = found["Spec"].get("Mode", {}).get("Replicated", {})
        return ServiceState(id=found["ID"], deployment=deployment, update=status.get("State"),
                            message=status.get("Message", ""),
                            replicas=int(mode.get("Replicas", 0)), running=running,
                            errors=errors, previous=bool(found.get("PreviousSpec")))

    def rollback(self, name: str) -> None:
        """Asks Swarm to go back to the service's previous spec (as `docker service
        rollback`)."""
        found = self._existing(name)
        api = self.client.api
        answer = api._post_json(api._url("/services/{0}/update", found["ID"]),
                                data=found["Spec"], params={
                                    "version": found["Version"]["Index"],
                                    "rollback": "previous"})
        api._raise_for_status(answer)

    def scale(self, container_id: str, replicas: int, remember: bool = True) -> None:
        """Sets the service's replicas (`remember`: also those `start` gives back)."""
        found = self._existing(_service_id(container_id))
        labels = {**(found["Spec"].get("Labels") or {})}
        if remember:
            labels[REPLICAS] = str(replicas)
        self._respec(found, labels=labels, mode={"Replicated": {"Replicas": replicas}})

    def _respec(self, found: dict[str, Any], **changes: Any) -> None:
        """Updates the service `found` (as inspected) to its own spec with `changes`."""
        spec = found["Spec"]
        self.client.api.update_service(found["ID"], found["Version"]["Index"], **{
            "task_template": spec["TaskTemplate"], "name": spec["Name"],
            "labels": spec.get("Labels"), "mode": spec.get("Mode"),
            "update_config": spec.get("UpdateConfig"),
            "rollback_config": spec.get("RollbackConfig"),
            "endpoint_spec": spec.get("EndpointSpec"), **changes})

    def other_nodes(self) -> list[str]:
        """The addresses of the swarm's ready nodes but this manager."""
        own = self.client.info()["Swarm"]["NodeID"]
        return sorted(n["Status"]["Addr"] for n in self.client.api.nodes()
                      if n["ID"] != own and n["Status"].get("State") == "ready")

    def _service(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            return self._existing(name_or_id)
        except NotFound:
            return None

    def _existing(self, name_or_id: str) -> dict[str, Any]:
        return dict(self.client.api.inspect_service(name_or_id))

    # -- services as containers --------------------------------------------------------------
    def containers(self, **labels: str) -> list[ContainerInfo]:
        filters = [f"{MANAGED}=true"] + [f"{k}={v}" for k, v in labels.items()]
        services = self.client.api.services(filters={"label": filters})
        running = self._running_tasks() if services else {}
        return [*(self._as_container(s, running) for s in services),
                *super().containers(**labels)]

    def inspect(self, container_id: str) -> ContainerInfo | None:
        if not container_id.startswith(SERVICE):
            return super().inspect(container_id)
        found = self._service(_service_id(container_id))
        return self._as_container(found, self._running_tasks(found["ID"])) if found else None

    def stop(self, container_id: str, timeout: int = 10) -> None:
        if not container_id.startswith(SERVICE):
            return super().stop(container_id, timeout)
        self.scale(container_id, 0, remember=False)

    def start(self, container_id: str) -> None:
        if not container_id.startswith(SERVICE):
            return super().start(container_id)
        found = self._existing(_service_id(container_id))
        self.scale(container_id, int((found["Spec"].get("Labels") or {}).get(REPLICAS, 1)))

    def restart(self, container_id: str, timeout: int = 10) -> None:
        """Replaces the service's tasks (one at a time, as a release does)."""
        if not container_id.startswith(SERVICE):
            return super().restart(container_id, timeout)
        found = self._existing(_service_id(container_id))
        template = found["Spec"]["TaskTemplate"]
        template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
        self._respec(found, task_template=template)

    def remove(self, container_id: str) -> None:
        if not container_id.startswith(SERVICE):
            return super().remove(container_id)
        try:
            self.client.api.remove_service(_service_id(container_id))
        except NotFound:
            pass

    def stats(self, container_id: str) -> dict[str, Any]:
        if not container_id.startswith(SERVICE):
            return super().stats(container_id)
        return {}  # a service's tasks run on several nodes: no one engine's figures

    def _log_chunks(self, container_id: str, stream: str, follow: bool, tail: int,
                    since: datetime | None) -> Iterator[bytes]:
        if not container_id.startswith(SERVICE):
            return super()._log_chunks(container_id, stream, follow, tail, since)
        return iter(self.client.api.service_logs(
            _service_id(container_id), details=True, follow=follow, timestamps=True,
            stdout=stream == "stdout", stderr=stream == "stderr", tail=tail,
            since=int(since.timestamp()) if since else None))

    def _log_line(self, stream: str, text: str) -> LogLine:
        """A line of a service's log names its task and node (Swarm's details say them)."""
        line = _line(stream, text)
        details = _DETAILS.match(line.message)
        if details:
            found = dict(pair.split("=", 1) for pair in details.group(1).split(","))
            node = found.get("com.docker.swarm.node.id", "?")[:12]
            task = found.get("com.docker.swarm.task.id", "?")[:12]
            line.message = f"[task {task} on {node}] {line.message[details.end():]}"
        return line

    def _running_tasks(self, service_id: str | None = None) -> dict[str, int]:
        """Tasks running now, by service (of one service, or of all in one listing)."""
        filters = {"desired-state": "running", **({"service": service_id} if service_id
                                                  else {})}
        counts: dict[str, int] = {}
        for task in self.client.api.tasks(filters=filters):
            if (task.get("Status") or {}).get("State") == "running":
                counts[task["ServiceID"]] = counts.get(task["ServiceID"], 0) + 1
        return counts

    def _as_container(self, service: dict[str, Any], running: dict[str, int]) -> ContainerInfo:
        """A service as a container: running while a task of it runs, exited when scaled to
        0, restarting while none of its tasks runs."""
        spec = service["Spec"]
        replicas = int(spec.get("Mode", {}).get("Replicated", {}).get("Replicas", 0))
        status = "exited" if not replicas else \
            "running" if running.get(service["ID"]) else "restarting"
        return ContainerInfo(id=SERVICE + service["ID"], name=spec["Name"], status=status,
                             labels=spec.get("Labels") or {}, host_port=None,
                             exit_code=None if replicas else 0,
                             image_id=spec["TaskTemplate"]["ContainerSpec"].get("Image"))


_DETAILS = re.compile(r"^((?:com\.docker\.swarm\.[a-z.]+=[^,\s]*,?)+) ")


def _service_id(container_id: str) -> str:
    return container_id.removeprefix(SERVICE)
