"""Running a deployment: start the new release beside the old one, verify its health, switch,
then retire the old one. A release that is not healthy never takes over.

The runner can be interrupted anywhere (the control plane killed) and run again: it first
removes what an earlier attempt of the same deployment left, unless that attempt had already
switched, in which case it only finishes the retirement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.drivers.edge_proxy import EdgeError
from launchbay.drivers.source_checkout import GitPolicy
from launchbay.engine import build, journal
from launchbay.engine.health import verify
from launchbay.engine.image_access import ImageAccess, ImageRefused
from launchbay.engine.journal import TERMINAL
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.runtime import (
    ContainerSpec,
    ImageMissing,
    Runtime,
    RuntimeFailure,
    RuntimeRefused,
    ServerUnreachable,
    SwarmManager,
)
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Defer, Job, Retry
from launchbay.store import audit
from launchbay.store.models import (
    Deployment,
    DeploymentStatus,
    OperatorWork,
    Resource,
    WorkStatus,
    utcnow,
)
from launchbay.store.profiles import EnvironmentSnapshot

log = logging.getLogger("launchbay.release")
ACTIVE = (DeploymentStatus.PLANNING, DeploymentStatus.PLANNED, DeploymentStatus.RUNNING,
          DeploymentStatus.CANCEL_REQUESTED)


def deployment_labels(d: Deployment) -> dict[str, str]:
    return {"launchbay.organization": d.organization_id, "launchbay.project": d.project_id,
            "launchbay.environment": d.environment_id, "launchbay.resource": d.resource_id,
            "launchbay.deployment": d.id, "launchbay.server": d.server_id}


def runtime_env(snapshot: dict[str, Any], secrets: SecretBox,
                credential_key: str | None = None) -> tuple[dict[str, str], list[str]]:
    """The runtime variables of a deployment's frozen snapshot (the container's environment),
    and the secret values among them (to mask them wherever they would be written). The
    source's git credential is never among them."""
    env, hidden = {}, []
    for var in EnvironmentSnapshot.model_validate(snapshot).variables:
        if var.exposure != "runtime" or var.key == credential_key:
            continue
        value = secrets.decrypt(var.value) if var.kind == "secret" else var.value
        if var.kind == "secret":
            hidden.append(value)
        env[var.key] = value
    return env, hidden


def build_variables(snapshot: dict[str, Any], secrets: SecretBox,
                    credential_key: str | None) -> build.BuildVariables:
    """The build-time variables of a deployment's snapshot, plain ones apart from secrets."""
    variables = build.BuildVariables()
    for var in EnvironmentSnapshot.model_validate(snapshot).variables:
        if var.exposure != "build-time" or var.key == credential_key:
            continue
        if var.kind == "secret":
            variables.secrets[var.key] = secrets.decrypt(var.value)
        else:
            variables.plain[var.key] = var.value
    return variables


def git_credential(snapshot: dict[str, Any], secrets: SecretBox, key: str | None) -> str | None:
    """The deploy key or token stored in the secret variable `key` of the snapshot."""
    for var in EnvironmentSnapshot.model_validate(snapshot).variables:
        if key and var.key == key and var.kind == "secret":
            return secrets.decrypt(var.value)
    return None


class DeploymentRunner:
    """The handler of `deployment` work items."""

    def __init__(self, sessions: sessionmaker, secrets: SecretBox, targets: Targets,
                 images: ImageAccess, git_policy: GitPolicy,
                 reroute: Callable[[str | None], None] | None = None,
                 workspace: Path | None = None,
                 build_slots: int = 1, cluster_release: type[Release] | None = None):
        self.sessions, self.secrets, self.targets = sessions, secrets, targets
        self.images, self.git_policy = images, git_policy
        self.workspace = workspace or Path("/tmp/launchbay-workspaces")
        # Builds at once in this process: a build waits for a slot, an image deploy never.
        self.build_slots = threading.BoundedSemaphore(build_slots)
        # Makes the edge proxy route to the current releases (None: no edge proxy).
        self.reroute = reroute
        # How a release is carried out on a Swarm (engine/swarm_release.py).
        self.cluster_release = cluster_release

    def run(self, job: Job) -> str:
        with self.sessions() as db:
            deployment = db.get(Deployment, job.item.deployment_id)
        if deployment is None:
            return WorkStatus.CANCELED  # deleted with its resource before it ran
        if deployment.status in TERMINAL:
            return WorkStatus.SUCCEEDED
        return self._release(deployment)(self, job, deployment).execute()

    def _release(self, d: Deployment) -> type[Release]:
        """How a release is carried out on the deployment's server."""
        clustered = isinstance(self.targets.of(d.server_id), SwarmManager)
        return self.cluster_release if clustered and self.cluster_release else Release

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        with self.sessions() as db:
            deployment = db.get(Deployment, item.deployment_id)
            if deployment is None or deployment.status in TERMINAL:
                return
            resource = db.get(Resource, deployment.resource_id)
            current = resource is not None and resource.current_deployment_id == deployment.id
        self._release(deployment).abandon(self.targets.of(deployment.server_id), deployment,
                                          current)
        finish(self.sessions, deployment.id, DeploymentStatus.FAILED, code, message)


def stack_network(deployment_id: str) -> str:
    """The network of one release of a compose stack: its services find each other there by
    name, and never meet the services of another release."""
    return f"lb-stack-{deployment_id.split('_')[-1]}"


def remove_containers(docker: Runtime, **labels: str) -> list[str]:
    removed = []
    for container in docker.containers(**labels):
        docker.remove(container.id)
        removed.append(container.name)
    return removed


def finish(sessions: sessionmaker, deployment_id: str, status: str, code: str | None = None,
           message: str | None = None) -> None:
    """Ends a deployment: its status, a final event, and an audit event from the engine."""
    with sessions() as db:
        d = db.get_one(Deployment, deployment_id, with_for_update=True)
        if d.status in TERMINAL:
            return
        d.status, d.finished_at = status, utcnow()
        d.error_code, d.error_message = code, message
        text = {"succeeded": "deployment succeeded", "canceled": "deployment canceled"}.get(
            status, f"deployment failed: {message}")
        journal.append(db, d.id, text, kind="event", phase="finish", status=status,
                       event_type=f"deployment-{status}",
                       level="error" if status == DeploymentStatus.FAILED else "info")
        audit.record(db, f"deployment.{status}", d.id, organization_id=d.organization_id,
                     resourceId=d.resource_id, errorCode=code)
        db.commit()


class Release:
    def __init__(self, runner: DeploymentRunner, job: Job, deployment: Deployment):
        self.sessions, self.job, self.d = runner.sessions, job, deployment
        self.reroute = runner.reroute
        self.plan = ReleasePlan.model_validate(deployment.plan)
        self.credential_key = self.plan.build.credential_key if self.plan.build else None
        self.env, self.hidden = runtime_env(deployment.environment_snapshot, runner.secrets,
                                            credential_key=self.credential_key)
        self.secrets, self.workspace = runner.secrets, runner.workspace
        self.build_slots = runner.build_slots
        self.images, self.git_policy = runner.images, runner.git_policy
        self.targets = runner.targets
        self.docker = runner.targets.of(deployment.server_id)
        # Where images the server lacks may come from: the control plane's own engine.
        local = runner.targets.local_id()
        self.origin = (runner.targets.of(local), local) if deployment.server_id != local \
            else None
        self.image_ids: dict[str, str] = {}  # each image of the plan: the id admitted
        self.companions: list[tuple[str, str]] = []  # a stack's other services: (name, id)
        self.stopped: list[str] = []  # the releases a recreate stopped (started again on failure)

    @classmethod
    def abandon(cls, runtime: Runtime, d: Deployment, current: bool) -> None:
        """Takes back what a release given up did, unless it serves."""
        if not current:
            remove_containers(runtime, **{"launchbay.deployment": d.id})

    # -- journal -----------------------------------------------------------------------------
    def log(self, message: str, phase: str, level: str = "info", source: str = "launchbay") -> None:
        with self.sessions() as db:
            journal.append(db, self.d.id, message, phase=phase, level=level, source=source,
                           secrets=self.hidden)
            db.commit()

    def transition(self, *steps: tuple[str, str, str], **fields: Any) -> None:
        """Moves through (status, phase, message) steps in one transaction, an event each."""
        with self.sessions() as db:
            d = db.get_one(Deployment, self.d.id, with_for_update=True)
            if d.status == DeploymentStatus.CANCEL_REQUESTED:
                return
            for key, value in fields.items():
                setattr(d, key, value)
            for status, phase, message in steps:
                d.status = status
                journal.append(db, d.id, message, kind="event", phase=phase, status=status,
                               event_type=f"deployment-{status}")
            db.commit()
        self.job.progress(phase=steps[-1][1], step=steps[-1][2])

    def update(self, **fields: Any) -> None:
        with self.sessions() as db:
            d = db.get_one(Deployment, self.d.id)
            for key, value in fields.items():
                setattr(d, key, value)
            db.commit()

    def _switched(self) -> bool:
        with self.sessions() as db:
            return db.scalar(select(Deployment.phase).where(
                Deployment.id == self.d.id)) == "switched"

    def cancel_requested(self) -> bool:
        if self.job.lost.is_set():
            return True
        with self.sessions() as db:
            return db.scalar(select(Deployment.status).where(
                Deployment.id == self.d.id)) == DeploymentStatus.CANCEL_REQUESTED

    # -- the release -------------------------------------------------------------------------
    def execute(self) -> str:
        try:
            return self._execute()
        except ServerUnreachable as exc:
            if not exc.permanent:
                raise Retry("server-unreachable", exc.message) from exc
            self.log(f"the server cannot be used: {exc.message}", "plan", level="error")
            finish(self.sessions, self.d.id, DeploymentStatus.FAILED, exc.failure, exc.message)
            return WorkStatus.FAILED
        except RuntimeRefused as exc:
            if self._switched():  # it serves: never discard it; the reconciler tidies up
                self.log(f"retiring older releases: {exc.explanation or exc}", "retire",
                         level="warn")
                return WorkStatus.SUCCEEDED
            if _permanent(exc):  # the engine refused the plan itself: no retry will mend it
                message = exc.explanation or str(exc)
                self.log(f"the Docker engine refused: {message}", "start", level="error")
                self._discard()
                finish(self.sessions, self.d.id, DeploymentStatus.FAILED, "runtime-rejected",
                       str(message))
                return WorkStatus.FAILED
            raise Retry("runtime-error", str(exc)) from exc
        except (RuntimeFailure, OSError) as exc:
            raise Retry("runtime-unreachable", f"Docker engine unreachable: {exc}") from exc

    def _resume(self) -> str | None:
        """What every attempt does first: a cancel asked for before it ran, a turn to wait
        for, a switch an interrupted attempt made (the result then), else None."""
        if self.d.status == DeploymentStatus.CANCEL_REQUESTED:
            return self._cancel()
        self._wait_for_earlier_releases()
        if self.job.item.attempts > 1:
            self.log(f"resuming after an interrupted attempt (attempt {self.job.item.attempts})",
                     "plan", level="warn")
        if self.d.phase == "switched":
            return self._retire_and_succeed()
        return None

    def _execute(self) -> str:
        if (resumed := self._resume()) is not None:
            return resumed
        if self.job.item.attempts > 1:
            removed = remove_containers(self.docker, **{"launchbay.deployment": self.d.id})
            if removed:
                self.log(f"removed {', '.join(removed)} left by an earlier attempt", "start")
        built = self.plan.build is not None and not self.plan.image
        if built and not self._build():
            return WorkStatus.FAILED
        if not self._admit_images():
            return WorkStatus.FAILED
        if self.plan.recreate:
            self._stop_older()
        # Starting a container is mostly waiting for the engine: do it while the deployment's
        # progress is recorded, not after.
        starting = _InBackground(self._start)
        port = f", port {self.plan.internal_port}" if self.plan.internal_port else ""
        self._begin(built, f"plan: image {self.plan.image}{port}",
                    f"starting the new release ({self.plan.image}{port})")
        info = starting.result()
        url = (f"http://{self.docker.reach(info.host_port)}{self.plan.health.path}"
               if info.host_port else None)
        self.job.progress(phase="verify", step="verifying health")
        verdict = verify(url, self.plan.health, running=self._running(info.id),
                         canceled=self.cancel_requested,
                         note=lambda message: self.log(message, "verify"))
        if verdict.outcome == "canceled":
            return self._cancel()
        if verdict.outcome != "healthy":
            self._capture_runtime_logs(info.id)
            self._discard()
            code = "container-exited" if verdict.outcome == "exited" else "health-check-failed"
            self.log(f"the new release is not healthy ({verdict.reason}); "
                     f"{self._fallback()}", "verify", level="error")
            finish(self.sessions, self.d.id, DeploymentStatus.FAILED, code, verdict.reason)
            return WorkStatus.FAILED
        self.log(f"healthy: {verdict.reason}", "verify")
        self._switch()
        return self._retire_and_succeed()

    def _begin(self, built: bool, plan: str, start: str) -> None:
        """The deployment is running its release now (after a build, or at once)."""
        step = (DeploymentStatus.RUNNING, "start", start)
        if built:  # the build already said it started and what its plan is
            self.transition(step)
        else:
            self.transition((DeploymentStatus.PLANNING, "plan", "deployment started"),
                            (DeploymentStatus.PLANNED, "plan", plan), step,
                            started_at=utcnow())

    def _build(self) -> bool:
        """Builds the image from source and freezes it into the plan (so a retry or rollback
        reuses it); False when the build failed (the deployment is then failed)."""
        spec = self.plan.build
        assert spec is not None
        self.transition((DeploymentStatus.PLANNING, "plan", "deployment started"),
                        (DeploymentStatus.PLANNED, "plan", "plan: build from "
                         f"{spec.repository or 'the uploaded archive'}"),
                        (DeploymentStatus.RUNNING, "build", "building the image"),
                        started_at=utcnow())
        variables = build_variables(self.d.environment_snapshot, self.secrets,
                                    self.credential_key)
        credential = git_credential(self.d.environment_snapshot, self.secrets,
                                    self.credential_key)
        self.hidden += [*variables.secrets.values(), *([credential] if credential else [])]
        if not self.build_slots.acquire(blocking=False):
            self.log("waiting for a build slot (LAUNCHBAY_BUILD_SLOTS builds run at once)",
                     "build")
            self.build_slots.acquire()
        try:
            built = build.build(
                spec, self.d.id, self.docker, self.workspace, variables,
                lambda message, level: self.log(message, "build", level),
                admit=self._admit, policy=self.git_policy, credential=credential,
                labels={"launchbay.managed": "true",
                        "launchbay.organization": self.d.organization_id,
                        "launchbay.resource": self.d.resource_id,
                        "launchbay.deployment": self.d.id})
        except (build.BuildFailed, ImageRefused) as exc:
            self.log(f"the build failed: {exc.message}", "build", level="error")
            finish(self.sessions, self.d.id, DeploymentStatus.FAILED, exc.code, exc.message)
            return False
        finally:
            self.build_slots.release()
        plan = self.plan
        plan.image, plan.commit_sha = built.image, built.commit_sha
        plan.internal_port = plan.internal_port or built.port
        plan.command = plan.command or built.command
        plan.env, plan.service_name, plan.services = built.env, built.service_name, built.services
        plan.volumes += built.volumes
        self.update(plan=plan.model_dump(mode="json"))
        self.log(f"built {built.image} from {built.commit_sha[:12]}"
                 + (f" and {len(plan.services)} more service(s)" if plan.services else ""),
                 "build")
        return True

    def _wait_for_earlier_releases(self) -> None:
        """One release of a resource at a time, in the order they were asked for."""
        with self.sessions() as db:
            earlier = db.scalar(select(Deployment.id).where(
                Deployment.resource_id == self.d.resource_id, Deployment.id != self.d.id,
                Deployment.status.in_((DeploymentStatus.CREATED, *ACTIVE)),
                Deployment.created_at < self.d.created_at).limit(1))
        if earlier:
            raise Defer(1.0, f"waiting for {earlier} to finish")

    def _admit(self, reference: str) -> str:
        """The id of an image the organization may use (ImageRefused if it may not)."""
        return self.images.admit(self.docker, self.d.server_id, self.d.organization_id,
                                 reference, lambda message: self.log(message, "image"),
                                 origin=self.origin)

    def _admit_images(self) -> bool:
        """Admits every image of the plan before anything is stopped or started; False when
        one is refused (the deployment is then failed, once: a retry would not mend it)."""
        try:
            self.image_ids = {ref: self._admit(ref) for ref in sorted(self.plan.images())}
        except ImageRefused as exc:
            self.log(exc.message, "image", level="error")
            finish(self.sessions, self.d.id, DeploymentStatus.FAILED, exc.code, exc.message)
            return False
        return True

    def _run(self, spec: ContainerSpec):
        """Starts a container of the image admitted for `spec.image` (by its id: a pull
        meanwhile cannot change what runs)."""
        spec.labels["launchbay.image"] = spec.image
        spec.image = self.image_ids[spec.image]
        try:
            return self.docker.run(spec)
        except ImageMissing as exc:  # removed since it was admitted
            raise Retry("image-not-found", f"image {spec.labels['launchbay.image']} is gone "
                        "from the server") from exc

    def _start(self):
        """Starts the release's containers: a stack's other services first, on the release's
        own network, then the web one, which also joins the environment's network."""
        plan, labels = self.plan, deployment_labels(self.d)
        # Containers join networks by id: a name another creator duplicated a moment ago
        # would be ambiguous.
        network = self.docker.ensure_network(plan.network, {
            "launchbay.environment": self.d.environment_id, "launchbay.server": self.d.server_id})
        for volume in [*plan.volumes, *(v for s in plan.services for v in s.volumes)]:
            self.docker.ensure_volume(volume.docker_name,
                                      {"launchbay.environment": self.d.environment_id})
        suffix = self.d.id.split("_")[-1]
        alias = plan.aliases[0] if plan.aliases else "app"
        networks = {}
        if plan.service_name:
            stack = self.docker.ensure_network(stack_network(self.d.id),
                                               {**labels, "launchbay.stack": "true"})
            networks = {stack: [plan.service_name]}
            for service in plan.services:
                info = self._run(ContainerSpec(
                    name=f"lb-{alias}-{service.name}-{suffix}", image=service.image,
                    labels={**plan.labels, **labels, "launchbay.service": service.name},
                    network=stack, aliases=[service.name], env={**service.env, **self.env},
                    command=service.command, restart_policy=plan.restart_policy,
                    volumes=[(v.docker_name, v.path, v.mode) for v in service.volumes]))
                self.companions.append((service.name, info.id))
                self.log(f"started service {service.name} ({info.name})", "start")
        env = {**plan.env, **self.env}
        if plan.internal_port:
            env.setdefault("PORT", str(plan.internal_port))
        info = self._run(ContainerSpec(
            name=f"lb-{alias}-{suffix}", image=plan.image, labels={**plan.labels, **labels},
            network=network, aliases=plan.aliases, env=env, command=plan.command,
            internal_port=plan.internal_port, cpu_limit=plan.cpu_limit,
            memory_limit_mb=plan.memory_limit_mb, restart_policy=plan.restart_policy,
            volumes=[(v.docker_name, v.path, v.mode) for v in plan.volumes], networks=networks))
        self.update(container_id=info.id, container_name=info.name, host_port=info.host_port,
                    phase="verify")
        where = f" on 127.0.0.1:{info.host_port}" if info.host_port else ""
        self.log(f"started {info.name}{where}", "start")
        return info

    def _running(self, container_id: str) -> Callable[[], tuple[bool, str]]:
        """Whether the new release (and every service of its stack) still runs."""
        def check() -> tuple[bool, str]:
            for name, cid in [*self.companions, (None, container_id)]:
                info = self.docker.inspect(cid)
                which = f"service {name}: " if name else ""
                if info is None:
                    return False, f"{which}the container disappeared"
                if info.status not in ("running", "created"):
                    why = " (out of memory)" if info.oom_killed else ""
                    return False, f"{which}the container exited with code {info.exit_code}{why}"
            return True, "running"
        return check

    def _capture_runtime_logs(self, container_id: str) -> None:
        try:
            lines = self.docker.logs(container_id, tail=50)
        except RuntimeFailure:
            return
        for line in lines:
            self.log(line.message, "verify", level="error" if line.stream == "stderr" else "info",
                     source="runtime")

    def _discard(self) -> None:
        remove_containers(self.docker, **{"launchbay.deployment": self.d.id})
        self.docker.remove_network(stack_network(self.d.id))
        for container_id in self.stopped:
            self.docker.start(container_id)
        if self.stopped:
            self.log("started the previous release again", "start", level="warn")

    def _stop_older(self) -> None:
        """A recreate: the releases this one replaces stop before it starts."""
        newer = self._newer_releases()
        for container in self.docker.containers(**{"launchbay.resource": self.d.resource_id}):
            if container.labels.get("launchbay.deployment") not in (self.d.id, *newer):
                self.docker.stop(container.id)
                self.stopped.append(container.id)
                self.log(f"stopped {container.name} (recreate)", "start")

    def _cancel(self) -> str:
        self._discard()
        finish(self.sessions, self.d.id, DeploymentStatus.CANCELED)
        return WorkStatus.CANCELED

    def _fallback(self) -> str:
        """What serves after this release failed: the one before, or nothing."""
        with self.sessions() as db:
            resource = db.get(Resource, self.d.resource_id)
            serving = resource is not None and resource.current_deployment_id is not None
        return ("the previous release keeps serving" if serving else
                "nothing was deployed before: the app stays undeployed")

    def _switch(self) -> None:
        """The new release becomes the resource's current one, atomically."""
        with self.sessions() as db:
            d = db.get_one(Deployment, self.d.id, with_for_update=True)
            resource = db.get_one(Resource, d.resource_id, with_for_update=True)
            previous = resource.current_deployment_id
            resource.current_deployment_id, d.phase = d.id, "switched"
            if self.plan.adopt_source and self.plan.source_profile is not None:
                resource.source = self.plan.source_profile  # what serves is what is configured
            journal.append(db, d.id, f"now serving (replacing {previous or 'nothing'})",
                           kind="event", phase="switch", status=d.status,
                           event_type="deployment-switched")
            db.commit()
        self.job.progress(phase="switch", step="switched")

    def _retire_and_succeed(self) -> str:
        """Traffic moves to the release: the deployment has succeeded. Then the releases it
        replaced are stopped (after the drain period) and removed; never a newer one."""
        if self.reroute is not None:
            try:
                self.reroute(self.d.server_id)
            except EdgeError as exc:  # nothing is retired while the edge still routes to it
                raise Retry("edge-proxy", str(exc)) from exc
            self.log("the edge proxy routes to the new release", "switch")
        with self.sessions() as db:
            d = db.get_one(Deployment, self.d.id)
            if d.rollback_of_deployment_id:
                rolled = db.get(Deployment, d.rollback_of_deployment_id)
                if rolled is not None and rolled.status == DeploymentStatus.SUCCEEDED:
                    rolled.status = DeploymentStatus.ROLLED_BACK
                    journal.append(db, rolled.id, f"rolled back by {d.id}", kind="event",
                                   phase="finish", status=DeploymentStatus.ROLLED_BACK,
                                   event_type="deployment-rolled-back")
            db.commit()
        finish(self.sessions, self.d.id, DeploymentStatus.SUCCEEDED)
        if self.plan.drain_seconds:
            time.sleep(self.plan.drain_seconds)
        # Asked after the drain: a release asked for meanwhile may already be starting.
        containers = self.docker.containers(**{"launchbay.resource": self.d.resource_id})
        newer = self._newer_releases()
        for container in containers:
            owner = container.labels.get("launchbay.deployment")
            if owner == self.d.id or owner in newer:
                continue
            self.job.progress(phase="retire", step=f"retiring {container.name}")
            self.docker.stop(container.id)
            self.docker.remove(container.id)
            self.log(f"retired {container.name}", "retire")
        for name, labels, attached in self.docker.networks(
                **{"launchbay.resource": self.d.resource_id, "launchbay.stack": "true"}):
            if labels.get("launchbay.deployment") not in (self.d.id, *newer) and not attached:
                self.docker.remove_network(name)
        return WorkStatus.SUCCEEDED

    def _newer_releases(self) -> set[str]:
        with self.sessions() as db:
            return set(db.scalars(select(Deployment.id).where(
                Deployment.resource_id == self.d.resource_id,
                Deployment.created_at > self.d.created_at)))


class _InBackground:
    """Runs a function in a thread; `result()` returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], Any]):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _permanent(exc: RuntimeRefused) -> bool:
    """Whether the engine refused the plan itself (a 4xx, or a runtime that cannot create the
    container as specified), so that the same attempt again would fail the same way."""
    text = str(exc.explanation or exc)
    return bool(exc.status_code and exc.status_code < 500) or \
        "OCI runtime create failed" in text or "runc create failed" in text
