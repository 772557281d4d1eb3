"""A release on a Docker Swarm: the resource's one service is updated to the new release and
Swarm replaces its tasks one at a time, start-first, each new task taking traffic (entering
the tasks' DNS) only once its health check passed. The deployment succeeds when the update is
`completed` and every replica of the new release runs; when a new task fails, Swarm rolls the
service back to the release before, and the deployment fails with the tasks' errors once the
old release is whole again.

The service's spec names the release it is (`launchbay.deployment`), so an attempt that
resumes after the control plane died reads the truth from Swarm: an update it had asked for
is waited for, never asked twice.
"""

from __future__ import annotations

import shlex
import time

from sqlalchemy import select

from launchbay.engine.journal import TERMINAL
from launchbay.engine.plan import HealthSpec, ReleasePlan
from launchbay.engine.release import Release, deployment_labels, finish
from launchbay.engine.runtime import (
    SERVICE,
    Runtime,
    RuntimeFailure,
    ServerUnreachable,
    ServiceSpec,
    ServiceState,
    SwarmManager,
)
from launchbay.slugs import slugify
from launchbay.store.models import Deployment, DeploymentStatus, Resource, WorkStatus
from launchbay.store.profiles import RuntimeProfile

# Seconds a release may wait for its tasks to be scheduled and their images found, besides
# the health deadline of each replica it replaces.
SCHEDULING_SECONDS = 60


def service_name(resource_id: str) -> str:
    """The resource's service: one name for all its releases (DNS-safe)."""
    return "lb-" + resource_id.replace("_", "-").lower()


def health_command(port: int, health: HealthSpec) -> list[str]:
    """The release's health check as the task runs it inside its container (no file
    written: the image may have no /tmp): curl, else netcat, else wget, whichever the image
    has, against the app's own port."""
    url = shlex.quote(f"http://127.0.0.1:{port}{health.path}")
    timeout = max(1, int(health.timeout_seconds))
    status = str(health.expected_status) if health.expected_status else "[23][0-9][0-9]"
    body = (f"grep -qF -- {shlex.quote(health.expected_text)}" if health.expected_text
            else "cat >/dev/null")
    curl = (f"[ \"$(curl -sS --max-time {timeout} -o /dev/null -w '%{{http_code}}' {url})\" "
            f"= {status} ]" if health.expected_status else
            f"curl -fsS --max-time {timeout} -o /dev/null {url}")
    if health.expected_text:
        curl += f" && curl -sS --max-time {timeout} {url} | {body}"
    netcat = (f"printf 'GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' "
              f"{shlex.quote(health.path)} | nc -w {timeout} 127.0.0.1 {port} | "
              f"(read -r line; case \"$line\" in HTTP/*\\ {status}\\ *) {body};; "
              "*) exit 1;; esac)")
    wget = f"wget -q -T {timeout} -O - {url} | {body}"
    script = (f"if command -v curl >/dev/null 2>&1; then {curl}; "
              f"elif command -v nc >/dev/null 2>&1; then {netcat}; else {wget}; fi")
    return ["CMD-SHELL", script]


def stack_network(resource_id: str) -> str:
    """The overlay network of a resource's compose stack: its services find each other there
    by name (one for all its releases, as its services are)."""
    return f"lb-stack-{resource_id.replace('_', '-').lower()}"


def discard(manager: SwarmManager, d: Deployment, current: bool) -> None:
    """Takes back what a release that did not take over did to its services (the web one and
    a stack's others): each update is rolled back (or, if nothing served before, the service
    removed)."""
    if current:
        return
    for found in manager.containers(**{"launchbay.deployment": d.id}):
        state = manager.service(found.name) if found.id.startswith(SERVICE) else None
        if state is None or state.deployment != d.id:
            continue
        if state.previous:
            manager.rollback(found.name)
        else:
            manager.remove(found.id)


class SwarmRelease(Release):
    docker: SwarmManager

    @classmethod
    def abandon(cls, runtime: Runtime, d: Deployment, current: bool) -> None:
        assert isinstance(runtime, SwarmManager)
        discard(runtime, d, current)

    def _execute(self) -> str:
        if (resumed := self._resume()) is not None:
            return resumed
        name = service_name(self.d.resource_id)
        state = self.docker.service(name) if self.job.item.attempts > 1 else None
        if state is not None and state.deployment == self.d.id:
            self.log("an earlier attempt had updated the service: waiting for Swarm to "
                     "finish it", "verify", level="warn")
            replicas = self._placement().replicas
        else:
            built = self.plan.build is not None and not self.plan.image
            if built and not self._build():
                return WorkStatus.FAILED
            if not self._admit_images() or not self._distribute():
                return WorkStatus.FAILED
            placement = self._placement()
            replicas = placement.replicas
            if replicas > 1 and self.plan.volumes and not placement.pinned:
                return self._refuse("volume-needs-one-replica", "a service with a volume runs "
                                    "one replica unless pinned to a node: the volume is local "
                                    "to a node")
            spec = self._spec(name, replicas, placement.placement_constraints)
            if spec.health is None:
                self.log("no health check can be made (health checks off, or no port): the "
                         "update stops the old task before it starts the new one", "start",
                         level="warn")
            self._begin(built, f"plan: image {self.plan.image} as a Swarm service",
                        f"updating service {name} to {self.plan.image} ({replicas} "
                        f"replica{'s' if replicas > 1 else ''})")
            if not self._companions(placement.placement_constraints):
                return WorkStatus.FAILED
            service_id = self.docker.deploy(spec)
            self.update(container_id=SERVICE + service_id, container_name=name,
                        host_port=None, phase="verify")
        self.job.progress(phase="verify", step="waiting for the service to converge")
        outcome, reason = self._converge(name, replicas)
        if outcome == "canceled":
            return self._cancel()
        if outcome != "healthy":
            self._discard()  # a stack's other services too (Swarm rolled the web one back)
            self.log(f"the new release is not healthy ({reason}); {self._fallback()}",
                     "verify", level="error")
            finish(self.sessions, self.d.id, DeploymentStatus.FAILED,
                   "health-check-failed", reason)
            return WorkStatus.FAILED
        self.log(f"healthy: {reason}", "verify")
        self._switch()
        return self._retire_and_succeed()

    def _companions(self, constraints: list[str]) -> bool:
        """A compose stack's other services, each a service of one replica on the stack's
        network (reached there by its name), updated stop-first (no health check) and
        converged before the web one; False when one fails (the deployment is then failed
        and every service it changed taken back)."""
        plan, labels = self.plan, deployment_labels(self.d)
        for service in plan.services:
            name = f"{service_name(self.d.resource_id)}-{slugify(service.name)}"
            self.docker.deploy(ServiceSpec(
                name=name, image=self.image_ids[service.image],
                labels={**plan.labels, **labels, "launchbay.managed": "true",
                        "launchbay.service": service.name, "launchbay.image": service.image},
                task_labels=self._task_labels(), network=self._stack(),
                aliases=[service.name], env={**service.env, **self.env},
                command=service.command,
                volumes=[(v.docker_name, v.path, v.mode) for v in service.volumes],
                constraints=constraints))
            self.log(f"updating service {service.name} ({name})", "start")
            outcome, reason = self._converge(name, 1)
            if outcome == "canceled":
                self._cancel()
                return False
            if outcome != "healthy":
                self._discard()
                self._refuse("service-failed", f"service {service.name}: {reason}")
                return False
        return True

    def _stack(self) -> str:
        return self.docker.ensure_network(stack_network(self.d.resource_id), {
            "launchbay.environment": self.d.environment_id, "launchbay.server": self.d.server_id,
            "launchbay.resource": self.d.resource_id})

    def _task_labels(self) -> dict[str, str]:
        return {"launchbay.deployment": self.d.id,
                "launchbay.organization": self.d.organization_id,
                "launchbay.swarm-resource": self.d.resource_id}

    def _distribute(self) -> bool:
        """Copies the release's images (by id) from the manager to every other node that
        lacks them (docker save | docker load through the manager); False when a node
        cannot get one (the deployment is then failed, naming it)."""
        address = "?"
        try:
            for address, node in self.targets.nodes(self.d.server_id):
                for ref, image_id in sorted(self.image_ids.items()):
                    if node.image_id(image_id) is None:
                        self.log(f"copying {ref} to node {address}", "image")
                        node.load(self.docker.export(image_id))
        except (ServerUnreachable, RuntimeFailure, OSError) as exc:
            why = exc.message if isinstance(exc, ServerUnreachable) else str(exc)
            self._refuse("image-unavailable-on-node", f"node {address} of the swarm cannot "
                         f"get the release's images: {why}")
            return False
        return True

    def _refuse(self, code: str, message: str) -> str:
        self.log(message, "plan", level="error")
        finish(self.sessions, self.d.id, DeploymentStatus.FAILED, code, message)
        return WorkStatus.FAILED

    def _placement(self) -> RuntimeProfile:
        """The resource's scale and placement now (settings of the resource, not frozen in a
        release: a rollback keeps them)."""
        with self.sessions() as db:
            profile = db.scalar(select(Resource.runtime_profile).where(
                Resource.id == self.d.resource_id))
        return RuntimeProfile.model_validate(profile or {})

    def _spec(self, name: str, replicas: int, constraints: list[str]) -> ServiceSpec:
        plan: ReleasePlan = self.plan
        network = self.docker.ensure_network(plan.network, {
            "launchbay.environment": self.d.environment_id, "launchbay.server": self.d.server_id})
        env = {**plan.env, **self.env}
        if plan.internal_port:
            env.setdefault("PORT", str(plan.internal_port))
        healthy = plan.health.enabled and plan.internal_port
        labels = {**plan.labels, **deployment_labels(self.d), "launchbay.managed": "true",
                  "launchbay.image": plan.image}
        return ServiceSpec(
            name=name, image=self.image_ids[plan.image], labels=labels,
            task_labels=self._task_labels(), network=network, aliases=plan.aliases,
            networks={self._stack(): [plan.service_name]} if plan.service_name else {},
            env=env, command=plan.command,
            replicas=replicas,
            health=health_command(plan.internal_port, plan.health)  # type: ignore[arg-type]  # healthy implies a port
            if healthy else None,
            health_timing=(plan.health.interval_seconds, plan.health.timeout_seconds,
                           plan.health.retries, plan.health.start_period_seconds),
            cpu_limit=plan.cpu_limit, memory_limit_mb=plan.memory_limit_mb,
            volumes=[(v.docker_name, v.path, v.mode) for v in plan.volumes],
            constraints=constraints)

    def _converge(self, name: str, replaced: int) -> tuple[str, str]:
        """Waits for Swarm's verdict on the update: (healthy | failed | canceled, why)."""
        deadline = time.monotonic() + SCHEDULING_SECONDS + replaced * (
            self.plan.health.deadline_seconds + 10)
        while True:
            if self.cancel_requested():
                return "canceled", "canceled"
            state = self.docker.service(name)
            if state is None:
                return "failed", "the service was removed"
            if state.deployment != self.d.id:  # Swarm rolled back to the release before
                return "failed", self._rolled_back(name, state)
            if state.update == "paused":
                return "failed", f"Swarm paused the update: {state.message}"
            if state.update in (None, "completed") and state.running >= state.replicas:
                return "healthy", (f"{state.running} of {state.replicas} replicas of the new "
                                   "release run" + (" and pass their health check"
                                                    if self.plan.health.enabled else ""))
            if state.update is None and not state.previous and self._errors(state):
                # A new service has no release to roll back to: its failing tasks decide.
                self._discard()
                return "failed", "; ".join(self._errors(state)[:3])
            if time.monotonic() > deadline:
                self._discard()
                return "failed", (f"only {state.running} of {state.replicas} replicas ran "
                                  "before the deadline"
                                  + (f": {self._errors(state)[0]}" if self._errors(state)
                                     else ""))
            time.sleep(0.5)

    def _errors(self, state: ServiceState) -> list[str]:
        return [why for release, why in state.errors if release == self.d.id]

    def _rolled_back(self, name: str, state: ServiceState) -> str:
        """Why the update failed, once Swarm's rollback is over (the old release whole)."""
        until = time.monotonic() + SCHEDULING_SECONDS
        while state.update not in ("rollback_completed", "completed", "paused", None) \
                and time.monotonic() < until:
            time.sleep(0.5)
            state = self.docker.service(name) or state
        errors = self._errors(state)
        for error in errors[:5]:
            self.log(f"task failed: {error}", "verify", level="error")
        self.log(f"Swarm rolled the service back ({state.message or state.update})", "verify",
                 level="warn")
        return errors[0] if errors else (state.message or "Swarm rolled the update back")

    def _discard(self) -> None:
        with self.sessions() as db:
            d = db.get_one(Deployment, self.d.id)
            resource = db.get(Resource, d.resource_id)
            current = resource is not None and resource.current_deployment_id == d.id
        if d.status not in TERMINAL:
            discard(self.docker, d, current)
